"""Segmentation as a second task kind: metrics, the kind's readings, teachers, the engine's
methods and the environment on dense outputs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from ssdkd_env.checkpoint import card_for
from ssdkd_env.engine import DistillationEngine, make_config
from ssdkd_env.engine.run import RunSpec, run_distillation
from ssdkd_env.env import DistillationEnv
from ssdkd_env.errors import UserError
from ssdkd_env.models import build_model
from ssdkd_env.supervised import TeacherRun, augment_pair, train_teacher
from ssdkd_env.tasks import LabeledImages, get_task
from ssdkd_env.tasks.data import IGNORE_INDEX
from ssdkd_env.tasks.kinds import TASK_KINDS, confusion_matrix, pixel_class_shares, segmentation_scores

SEG = TASK_KINDS.get("segmentation")
TINY_SEG = {
    "rounds": 3,
    "kd_steps": 2,
    "buffer_size": 24,
    "probe_size": 8,
    "probe_rounds": 2,
    "action.synth_budget": 8,
    "distiller.batch_size": 4,
    "meta-generator.nz": 8,
    "meta-generator.ngf": 4,
    "meta-generator.warmup_rounds": 1,
    "adversarial-generator.nz": 8,
    "adversarial-generator.ngf": 4,
    "adversarial.student_steps": 2,
}


def random_seg_teacher(seed: int = 0) -> torch.nn.Module:
    """An untrained shapes segmenter whose BN layers hold non-trivial running statistics."""
    task = get_task("shapes")
    model = build_model("unet_xs", task.num_classes, 3, generator=torch.Generator().manual_seed(seed))
    model.train()
    with torch.no_grad():
        for _ in range(2):
            model(torch.randn(8, *task.input_shape, generator=torch.Generator().manual_seed(seed)))
    return model.eval()


def one_hot_logits(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Logits [N, K, H, W] whose argmax is ``classes`` [N, H, W]."""
    return torch.nn.functional.one_hot(classes, num_classes).permute(0, 3, 1, 2).float() * 5


def test_miou_ignores_unlabelled_pixels_and_absent_classes() -> None:
    labels = torch.tensor([[[0, 0], [1, IGNORE_INDEX]]])
    pred = torch.tensor([[[0, 1], [1, 2]]])  # the last pixel is unlabelled: its prediction does not count
    scores = segmentation_scores(confusion_matrix(pred, labels, 4))
    # class 0: tp 1, union 2; class 1: tp 1, union 2; classes 2 and 3 never occur in labels or predictions
    assert scores["miou"] == pytest.approx(0.5)
    assert scores["pixel_acc"] == pytest.approx(2 / 3)


def test_kind_reads_pixel_shares() -> None:
    classes = torch.zeros(2, 4, 4, dtype=torch.long)
    classes[0, :, :1] = 2  # image 0: a quarter class 2, the rest class 0
    classes[1] = 1  # image 1: all class 1
    logits = one_hot_logits(classes, 3)
    shares = pixel_class_shares(logits)
    assert torch.allclose(shares, torch.tensor([[0.75, 0.0, 0.25], [0.0, 1.0, 0.0]]))
    assert torch.allclose(SEG.class_histogram(logits, 3), torch.tensor([0.75, 1.0, 0.25]))
    assert SEG.predicted_classes(logits).tolist() == [0, 1]
    # class means weight each sample by its pixel share of the class
    mean = SEG.class_mean(logits, torch.tensor([2.0, 4.0]), 3)
    assert torch.allclose(mean, torch.tensor([2.0, 4.0, 2.0]))
    histogram, together = SEG.class_statistics(logits, torch.tensor([2.0, 4.0]), 3)  # one read of the shares
    assert torch.allclose(histogram, torch.tensor([0.75, 1.0, 0.25])) and torch.allclose(together, mean)
    student = logits.clone()
    student[0, :, 0, 0] = torch.tensor([0.0, 9.0, 0.0])  # one pixel of 16 disagrees
    assert torch.allclose(SEG.agreement(student, logits), torch.tensor([15 / 16, 1.0]))
    assert SEG.output_shape(3, (3, 4, 4)) == (3, 4, 4)


def test_target_loss_stops_pulling_once_the_target_covers_its_share() -> None:
    classes = torch.zeros(1, 10, 10, dtype=torch.long)
    classes[0, :5] = 1  # class 1 covers half of the image, more than the target share
    logits = one_hot_logits(classes, 3).requires_grad_(True)
    covered = SEG.target_loss(logits, torch.tensor([1]), 0.0)
    missing = SEG.target_loss(logits, torch.tensor([2]), 0.0)
    assert missing > covered + 1.0  # class 2 is absent: the presence term is large
    (grad,) = torch.autograd.grad(SEG.target_loss(logits, torch.tensor([2]), 0.0), logits)
    assert grad[0, 2].sum() < 0  # descending the loss raises class 2 everywhere


def test_augment_pair_moves_labels_with_their_pixels() -> None:
    images = torch.arange(2 * 8 * 8, dtype=torch.float32).view(2, 1, 8, 8)
    labels = torch.arange(2 * 8 * 8).view(2, 8, 8) % 5
    moved_x, moved_y = augment_pair(images, labels, 2, True, torch.Generator().manual_seed(0))
    assert moved_y.dtype == torch.long and moved_y.shape == labels.shape
    # each output pixel still carries the label of the input pixel it came from
    source = moved_x.long().flatten()
    assert torch.equal(moved_y.flatten(), (labels.flatten()[source]))


def test_a_classifier_on_a_segmentation_task_is_a_one_line_error() -> None:
    config = make_config("shapes", "ssdkd", student_arch="cnn", **TINY_SEG)
    with pytest.raises(UserError, match="classifier.*segmentation") as info:
        DistillationEngine(config, get_task("shapes"), random_seg_teacher(), torch.device("cpu"), 0)
    assert "\n" not in str(info.value)


def tiny_shapes(n: int) -> LabeledImages:
    from ssdkd_env.tasks.segmentation_data import make_shapes

    return make_shapes(n, 32, seed=3)


def test_teacher_training_on_dense_labels_reports_miou(tmp_path: Path) -> None:
    task = dataclasses.replace(
        get_task("shapes"),
        loader=lambda root, train, download: tiny_shapes(32 if train else 16),
        recipe=dataclasses.replace(get_task("shapes").recipe, batch_size=16),
    )
    summary = train_teacher(TeacherRun(task, "unet_xs", tmp_path, epochs=2, progress=False))
    assert summary["metric"] == "miou"
    assert 0 <= summary["test_acc"] <= 1 and summary["test_acc"] == summary["test_scores"]["miou"]
    assert 0 <= summary["test_scores"]["pixel_acc"] <= 1
    assert (tmp_path / "teacher.pt").is_file()


@pytest.mark.parametrize("task", ["shapes", "camvid", "camvid-cpu", "nyuv2", "nyuv2-cpu"])
def test_every_segmentation_task_takes_dfads_segmentation_loss_and_a_small_probe(task: str) -> None:
    """DFAD's generator loss on segmentation is -log(1 + D), at the papers' scale as on CPU (PRE-DFKD keeps its own
    1 - JS); no flips for the student (DFAD trains it on the generator's images as they are; since 2026-12-07 on
    every task); a probe whose dense outputs stay small, inverted with flips of the scenes where its losses see them."""
    config = make_config(task, "dfad")
    assert config.synthesizer_options["objective"] == "negative-log1p" and config.probe_size <= 64
    assert config.probe_inversion.augment_flip and not config.distiller.augment_flip
    assert make_config(task, "ssdkd").synthesizer_options["augment_flip"]
    assert make_config(task, "pre-dfkd").synthesizer_options["objective"] == "one-minus-js"
    assert make_config("cifar10", "dfad").synthesizer_options["objective"] == "negative"  # classification keeps -D


@pytest.mark.parametrize("method", ["ssdkd", "fast2", "dfad"])
def test_methods_run_on_dense_outputs(method: str) -> None:
    task = get_task("shapes")
    config = make_config("shapes", method, **TINY_SEG)
    engine = DistillationEngine(config, task, random_seg_teacher(), torch.device("cpu"), 0, tiny_shapes(8))
    while not engine.done:
        metrics = engine.run_round()
        assert 0 <= metrics.probe_agreement <= 1 and torch.isfinite(torch.tensor(metrics.kd_loss))
    assert metrics.test_acc is not None and 0 <= metrics.test_acc <= 1
    if engine.memory is not None:
        images, outputs = engine.memory.contents()
        assert outputs.shape[1:] == (task.num_classes, 32, 32) and len(images) == engine.memory.size > 0
        hist = engine.memory.class_histogram()
        assert float(hist.sum()) == pytest.approx(engine.memory.size, rel=1e-5)  # pixel shares sum to one a sample
    engine.close()


def test_run_writes_masks_figure_and_miou_summary(tmp_path: Path) -> None:
    task = get_task("shapes")
    config = make_config("shapes", "ssdkd", **{**TINY_SEG, "rounds": 2})
    teacher = random_seg_teacher()
    spec = RunSpec(
        task,
        teacher,
        card_for(task, "unet_xs", "teacher", 0.5),
        torch.device("cpu"),
        0,
        tmp_path,
        test_set=tiny_shapes(8),
        progress=False,
    )
    run_distillation(config, spec)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["metric"] == "miou" and set(summary["student_scores"]) == {"miou", "pixel_acc"}
    assert summary["student_acc"] == summary["student_scores"]["miou"]
    for name in ("segmentation_samples.png", "segmentation_synthetic.png", "buffer_samples.png", "curves.png"):
        assert (tmp_path / name).is_file(), name


def test_env_on_a_segmentation_task_passes_both_checkers() -> None:
    env = DistillationEnv(teacher_model=random_seg_teacher(), task="shapes", device="cpu", **TINY_SEG)
    gym_check_env(env, skip_render_check=True)
    sb3_check_env(env, warn=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
