"""Segmentation data: CamVid and NYUv2 loaders on tiny fake PNGs, and the procedural shapes task."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ssdkd_env.errors import UserError
from ssdkd_env.tasks.data import IGNORE_INDEX
from ssdkd_env.tasks.segmentation_data import (
    CAMVID_CLASSES,
    NYUV2_CLASSES,
    SHAPES_CLASSES,
    _shape_masks,
    load_camvid_split,
    load_nyuv2_split,
    make_shapes,
)

# ----------------------------------------------------------------------------------------------
# Fake files in the real layouts
# ----------------------------------------------------------------------------------------------


def _write_png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_camvid(
    root: Path, names: dict[str, list[str]], height: int = 12, width: int = 16, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``root/CamVid/{split,splitannot}/NAME.png`` (RGB frames, L-mode labels 0..11 plus a stray 200).

    Returns per split the frames [N, H, W, 3] and raw label maps [N, H, W], in sorted name order.
    Every label map's first pixel is its frame's index in the sorted order (to check the pairing).
    """
    rng = np.random.default_rng(seed)
    written = {}
    for split, split_names in names.items():
        images, labels = {}, {}
        for name in split_names:
            images[name] = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            label = rng.integers(0, 12, size=(height, width)).astype(np.uint8)
            label[0, 1], label[0, 2], label[0, 3] = 11, 200, 10  # unlabelled, out of range, last class
            labels[name] = label
        for index, name in enumerate(sorted(split_names)):
            labels[name][0, 0] = index
            _write_png(root / "CamVid" / split / f"{name}.png", images[name])
            _write_png(root / "CamVid" / f"{split}annot" / f"{name}.png", labels[name])
        order = sorted(split_names)
        written[split] = (np.stack([images[n] for n in order]), np.stack([labels[n] for n in order]))
    return written


def write_nyuv2(
    root: Path, zero_based: bool, n_train: int = 3, n_test: int = 2, height: int = 24, width: int = 32, seed: int = 0
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``root/NYUv2/{image,seg13}/{train,test}/%05d.png`` with label maps constant on 2x2 blocks.

    ``zero_based``: 255 = unlabelled and classes 0..12 (later toolkit); else 0 = unlabelled and
    classes 1..13 (early toolkit, nyuv2-meta-data). Returns per split the frames and the labels
    expected after loading (classes 0..12, 255 unlabelled) at full size, in file-name order.
    Frame 0 of each split is one flat colour.
    """
    rng = np.random.default_rng(seed)
    written = {}
    index = 1
    for split, n in (("train", n_train), ("test", n_test)):
        images, expected = [], []
        for i in range(n):
            image = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            if i == 0:
                image[:] = (10, 120, 230)
            blocks = rng.integers(-1, 13, size=(height // 2, width // 2))  # -1: unlabelled
            blocks[0, 0], blocks[0, 1], blocks[0, 2] = -1, 0, 12
            target = np.where(blocks < 0, IGNORE_INDEX, blocks).repeat(2, 0).repeat(2, 1)
            stored = (np.where(blocks < 0, 255, blocks) if zero_based else blocks + 1).astype(np.uint8)
            name = f"{index * 7:05d}.png"
            _write_png(root / "NYUv2" / "image" / split / name, image)
            _write_png(root / "NYUv2" / "seg13" / split / name, stored.repeat(2, 0).repeat(2, 1))
            images.append(image)
            expected.append(target)
            index += 1
        written[split] = (np.stack(images), np.stack(expected))
    return written


CAMVID_NAMES = {"train": ["0001TP_c", "0001TP_a", "Seq05VD_b"], "test": ["0016E5_z", "0016E5_y"]}


# ----------------------------------------------------------------------------------------------
# CamVid
# ----------------------------------------------------------------------------------------------


def test_camvid_classes() -> None:
    assert len(CAMVID_CLASSES) == 11 and CAMVID_CLASSES[0] == "Sky" and CAMVID_CLASSES[-1] == "Bicyclist"


@pytest.mark.parametrize("inside", [False, True])
def test_camvid_reads_fake_layout(tmp_path: Path, inside: bool) -> None:
    written = write_camvid(tmp_path, CAMVID_NAMES)
    root = tmp_path / "CamVid" if inside else tmp_path
    for train, split, n in ((True, "train", 3), (False, "test", 2)):
        data = load_camvid_split(root, train=train)
        images, raw = written[split]
        assert data.images.shape == (n, 3, 12, 16) and data.images.dtype == torch.uint8
        assert data.labels.shape == (n, 12, 16) and data.labels.dtype == torch.int64
        assert data.dense and len(data) == n
        assert np.array_equal(data.images.numpy(), images.transpose(0, 3, 1, 2))
        expected = np.where(raw > 10, IGNORE_INDEX, raw).astype(np.int64)
        assert np.array_equal(data.labels.numpy(), expected)
        # sorted by name and paired by name: label i carries index i in its first pixel
        assert data.labels[:, 0, 0].tolist() == list(range(n))
        assert (data.labels[:, 0, 1] == IGNORE_INDEX).all() and (data.labels[:, 0, 2] == IGNORE_INDEX).all()
        assert (data.labels[:, 0, 3] == 10).all()
        assert set(torch.unique(data.labels).tolist()) <= set(range(11)) | {IGNORE_INDEX}


def _one_line_error(excinfo: pytest.ExceptionInfo[UserError]) -> str:
    message = str(excinfo.value)
    assert "\n" not in message and message
    return message


@pytest.mark.parametrize("root", [None, "empty"])
def test_camvid_missing_data_names_the_layout(tmp_path: Path, root: str | None) -> None:
    with pytest.raises(UserError) as excinfo:
        load_camvid_split(None if root is None else tmp_path, train=True)
    message = _one_line_error(excinfo)
    assert "CamVid/{train,trainannot,test,testannot}" in message and "--data-root" in message
    assert "tar xf" not in message


def test_camvid_unextracted_tar_says_how_to_extract(tmp_path: Path) -> None:
    (tmp_path / "camvid-240x180.tar").write_bytes(b"")
    with pytest.raises(UserError) as excinfo:
        load_camvid_split(tmp_path, train=False)
    message = _one_line_error(excinfo)
    where = tmp_path.resolve()
    assert f"tar xf {where / 'camvid-240x180.tar'} -C {where}" in message
    with pytest.raises(UserError) as excinfo:
        load_camvid_split(tmp_path / "camvid-240x180.tar", train=False)
    assert "tar xf" in _one_line_error(excinfo)


def test_camvid_frame_without_annotation_is_named(tmp_path: Path) -> None:
    write_camvid(tmp_path, CAMVID_NAMES)
    (tmp_path / "CamVid" / "testannot" / "0016E5_y.png").unlink()
    with pytest.raises(UserError) as excinfo:
        load_camvid_split(tmp_path, train=False)
    assert "0016E5_y.png" in _one_line_error(excinfo)
    assert len(load_camvid_split(tmp_path, train=True)) == 3  # the other split still loads


def test_camvid_size_mismatch_is_named(tmp_path: Path) -> None:
    write_camvid(tmp_path, CAMVID_NAMES)
    _write_png(tmp_path / "CamVid" / "trainannot" / "0001TP_c.png", np.zeros((12, 15), dtype=np.uint8))
    with pytest.raises(UserError) as excinfo:
        load_camvid_split(tmp_path, train=True)
    message = _one_line_error(excinfo)
    assert "0001TP_c.png" in message and "15x12" in message
    # a frame of another size than the split's first
    write_camvid(tmp_path, CAMVID_NAMES)
    _write_png(tmp_path / "CamVid" / "test" / "0016E5_z.png", np.zeros((10, 16, 3), dtype=np.uint8))
    _write_png(tmp_path / "CamVid" / "testannot" / "0016E5_z.png", np.zeros((10, 16), dtype=np.uint8))
    with pytest.raises(UserError) as excinfo:
        load_camvid_split(tmp_path, train=False)
    assert "0016E5_z.png" in _one_line_error(excinfo)


def test_camvid_rgb_annotation_is_rejected(tmp_path: Path) -> None:
    write_camvid(tmp_path, CAMVID_NAMES)
    _write_png(tmp_path / "CamVid" / "testannot" / "0016E5_y.png", np.zeros((12, 16, 3), dtype=np.uint8))
    with pytest.raises(UserError) as excinfo:
        load_camvid_split(tmp_path, train=False)
    assert "0016E5_y.png" in _one_line_error(excinfo)


# ----------------------------------------------------------------------------------------------
# NYUv2
# ----------------------------------------------------------------------------------------------


def test_nyuv2_classes() -> None:
    assert len(NYUV2_CLASSES) == 13 and NYUV2_CLASSES[0] == "bed" and NYUV2_CLASSES[-1] == "window"


@pytest.mark.parametrize("zero_based", [False, True])
@pytest.mark.parametrize("inside", [False, True])
def test_nyuv2_reads_and_resizes_fake_layout(tmp_path: Path, zero_based: bool, inside: bool) -> None:
    written = write_nyuv2(tmp_path, zero_based=zero_based)
    root = tmp_path / "NYUv2" if inside else tmp_path
    for train, split, n in ((True, "train", 3), (False, "test", 2)):
        data = load_nyuv2_split(root, train=train, size=(12, 16))
        images, expected = written[split]
        assert data.images.shape == (n, 3, 12, 16) and data.images.dtype == torch.uint8
        assert data.labels.shape == (n, 12, 16) and data.labels.dtype == torch.int64
        # labels are constant on 2x2 blocks: a 2x nearest downscale gives each block's class
        assert np.array_equal(data.labels.numpy(), expected[:, ::2, ::2])
        assert set(torch.unique(data.labels).tolist()) <= set(range(13)) | {IGNORE_INDEX}
        assert data.labels[:, 0, 0].eq(IGNORE_INDEX).all() and data.labels[:, 0, 1].eq(0).all()
        assert data.labels[:, 0, 2].eq(12).all()
        # a flat frame stays flat; the others keep their mean brightness
        assert data.images[0].reshape(3, -1).T.unique(dim=0).tolist() == [[10, 120, 230]]
        assert abs(data.images.float().mean().item() - images.mean()) < 3.0


def test_nyuv2_keeps_the_files_size_when_asked(tmp_path: Path) -> None:
    written = write_nyuv2(tmp_path, zero_based=True)
    data = load_nyuv2_split(tmp_path, train=False, size=(24, 32))
    images, expected = written["test"]
    assert np.array_equal(data.images.numpy(), images.transpose(0, 3, 1, 2))
    assert np.array_equal(data.labels.numpy(), expected)
    upscaled = load_nyuv2_split(tmp_path, train=False, size=(48, 64))
    assert np.array_equal(upscaled.labels.numpy(), expected.repeat(2, 1).repeat(2, 2))


def test_nyuv2_missing_data_names_the_layout(tmp_path: Path) -> None:
    for root in (None, tmp_path):
        with pytest.raises(UserError) as excinfo:
            load_nyuv2_split(root, train=True, size=(12, 16))
        message = _one_line_error(excinfo)
        assert "NYUv2/{image,seg13}/{train,test}" in message and "--data-root" in message
    (tmp_path / "nyu_depth_v2_labeled.mat").write_bytes(b"")
    with pytest.raises(UserError) as excinfo:
        load_nyuv2_split(tmp_path, train=True, size=(12, 16))
    assert "extract_nyuv2.py" in _one_line_error(excinfo)


def test_nyuv2_rejects_values_outside_seg13(tmp_path: Path) -> None:
    write_nyuv2(tmp_path, zero_based=False)
    _write_png(tmp_path / "NYUv2" / "seg13" / "test" / "00035.png", np.full((24, 32), 30, dtype=np.uint8))
    with pytest.raises(UserError) as excinfo:
        load_nyuv2_split(tmp_path, train=False, size=(12, 16))
    message = _one_line_error(excinfo)
    assert "00035.png" in message and "30" in message


# ----------------------------------------------------------------------------------------------
# Procedural shapes
# ----------------------------------------------------------------------------------------------


def test_shapes_are_deterministic_and_leave_the_global_rng_alone() -> None:
    state = torch.get_rng_state()
    a, b = make_shapes(50, 32, seed=3), make_shapes(50, 32, seed=3)
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    c = make_shapes(50, 32, seed=4)
    assert not torch.equal(a.images, c.images) and not torch.equal(a.labels, c.labels)
    assert make_shapes(0, 32, seed=0).images.shape == (0, 3, 32, 32)


def test_shapes_format_and_class_balance() -> None:
    data = make_shapes(200, 32, seed=0)
    assert SHAPES_CLASSES == ("background", "disc", "square", "triangle", "ring")
    assert data.images.shape == (200, 3, 32, 32) and data.images.dtype == torch.uint8
    assert data.labels.shape == (200, 32, 32) and data.labels.dtype == torch.int64
    assert int(data.labels.min()) >= 0 and int(data.labels.max()) <= 4
    share = torch.bincount(data.labels.flatten(), minlength=5).float() / data.labels.numel()
    assert 0.3 < share[0] < 0.9
    assert (share[1:] > 0.01).all()  # every shape class present, none negligible
    assert (data.labels.flatten(1) > 0).any(dim=1).all()  # every image shows a shape
    assert (data.images.float().std(dim=(2, 3)) > 3).all()  # textured, never flat


def test_shapes_contrast_with_their_background() -> None:
    data = make_shapes(200, 32, seed=1)
    images = data.images.float()
    fg = (data.labels > 0)[:, None].float()
    fg_mean = (images * fg).sum(dim=(2, 3)) / fg.sum(dim=(2, 3))
    bg_mean = (images * (1 - fg)).sum(dim=(2, 3)) / (1 - fg).sum(dim=(2, 3))
    distance = (fg_mean - bg_mean).norm(dim=1)
    assert distance.mean() > 0.3 * 255 and (distance > 0.1 * 255).float().mean() > 0.9


def test_shape_masks_have_the_right_geometry() -> None:
    """One centred shape of each class on a fine grid: areas, fills and holes as drawn."""
    coords = (torch.arange(128, dtype=torch.float32) + 0.5) / 128
    dx, dy = coords[None, None, :] - 0.5, coords[None, :, None] - 0.5
    radius, inner = torch.tensor(0.25).reshape(1, 1, 1), torch.tensor(0.5).reshape(1, 1, 1)
    for angle in (0.0, 0.4, 1.0):
        disc, square, triangle, ring = _shape_masks(dx, dy, radius, torch.tensor(angle).reshape(1, 1, 1), inner)
        area = {name: float(m.float().mean()) for name, m in zip("dstr", (disc, square, triangle, ring), strict=True)}
        assert area["d"] == pytest.approx(np.pi * 0.25**2, rel=0.02)
        assert area["s"] == pytest.approx(np.pi * 0.25**2, rel=0.03)  # equal-area square
        assert 0.75 * area["d"] < area["t"] < area["d"]
        assert area["r"] == pytest.approx(np.pi * (0.25 * 1.15) ** 2 * (1 - 0.5**2), rel=0.03)
        assert bool(disc[0, 64, 64]) and bool(square[0, 64, 64]) and bool(triangle[0, 64, 64])
        assert not bool(ring[0, 64, 64])
        iou = float((square & triangle).sum() / (square | triangle).sum())
        assert iou < 0.75  # a triangle is never mistaken for a square
