"""KD with the original data (method ``kd-real``): the with-data reference row of every table."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers import random_teacher, tiny_config
from scripts import assert_one_line_error, run_in_process

from ssdkd_env.checkpoint import card_for, save_model
from ssdkd_env.common.images import normalize_uint8
from ssdkd_env.context import RunContext
from ssdkd_env.engine import DistillationEngine, make_config, with_data_root
from ssdkd_env.models import build_model
from ssdkd_env.synthesis import RealDataConfig, RealImageSampler, SynthesisRequest
from ssdkd_env.tasks import get_task

CPU = torch.device("cpu")
DIGITS = get_task("digits")


def sampler(images: torch.Tensor, seed: int = 0) -> tuple[RealImageSampler, torch.nn.Module]:
    teacher = random_teacher()
    context = RunContext.of_task(DIGITS, teacher, torch.Generator().manual_seed(seed))
    return RealImageSampler(RealDataConfig(), context, images), teacher


def training_rows(images: torch.Tensor, drawn: torch.Tensor) -> torch.Tensor:
    """For each drawn (normalised) image, the index of the training image it equals (-1: none)."""
    real = normalize_uint8(images, DIGITS.mean, DIGITS.std).flatten(1)
    same = (drawn.flatten(1)[:, None, :] == real[None]).all(2)
    return torch.where(same.any(1), same.float().argmax(1), torch.full((drawn.shape[0],), -1))


def test_a_round_draws_distinct_training_images_labelled_by_the_teacher() -> None:
    images = DIGITS.load(None, train=True).images[:12]
    synth, teacher = sampler(images)
    result = synth.synthesize(SynthesisRequest(5, torch.zeros(10), 0))
    rows = training_rows(images, result.images)
    assert (rows >= 0).all() and rows.unique().numel() == 5  # five different training images, as normalised
    with torch.no_grad():
        expected = teacher(result.images)
    assert torch.allclose(result.teacher_logits, expected)
    assert torch.equal(result.targets, expected.argmax(1)) and result.losses == {}
    assert synth.report() == {"data_free": False, "train_images": 12}  # summary.json says it is not data-free


def test_more_samples_than_the_split_repeat_every_image_evenly() -> None:
    images = DIGITS.load(None, train=True).images[:12]
    result = sampler(images)[0].synthesize(SynthesisRequest(30, torch.zeros(10), 0))
    counts = torch.bincount(training_rows(images, result.images), minlength=12)
    assert counts.sum() == 30 and counts.min() >= 2 and counts.max() <= 3  # two permutations, then part of a third


def test_the_draws_follow_the_run_generator() -> None:
    images = DIGITS.load(None, train=True).images[:40]

    def two_rounds(seed: int) -> list[torch.Tensor]:
        synth = sampler(images, seed)[0]
        return [synth.synthesize(SynthesisRequest(8, torch.zeros(10), r)).images for r in range(2)]

    first, again, other = two_rounds(3), two_rounds(3), two_rounds(4)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], first[1]) and not torch.equal(first[0], other[0])


def test_kd_real_fills_its_memory_with_training_images_only() -> None:
    engine = DistillationEngine(tiny_config("kd-real"), DIGITS, random_teacher(), CPU, 0, DIGITS.load(None, False))
    for _ in range(2):
        engine.run_round()
    stored, _ = engine.require_memory().contents()
    assert stored.shape[0] > 0 and (training_rows(DIGITS.load(None, train=True).images, stored) >= 0).all()


def test_the_data_root_reaches_kd_real_only() -> None:
    assert with_data_root(make_config("mnist", "kd-real"), "/data").synthesizer_options.get("data_root") == "/data"
    assert (
        with_data_root(make_config("mnist", "ssdkd"), "/data").synthesizer_options.get("data_root") is None
    )  # nothing else records it
    assert with_data_root(make_config("mnist", "kd-real"), None).synthesizer_options.get("data_root") is None


def test_kd_real_without_the_data_is_a_one_line_error(tmp_path: Path) -> None:
    teacher = tmp_path / "mnist.pt"
    mnist = get_task("mnist")
    save_model(teacher, build_model(mnist.teacher_arch, 10, 1), card_for(mnist, mnist.teacher_arch, "teacher", 0.9))
    flags = ["--task", "mnist", "--method", "kd-real", "--teacher", str(teacher), "--no-progress", "--device", "cpu"]
    result = run_in_process("distill", *flags)
    assert_one_line_error(result, "kd-real distils on the real training images of mnist: give --data-root")
