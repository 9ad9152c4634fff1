"""Tests for the segmentation models (dense logits ``[N, K, H, W]``) in the model registry."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from ssdkd_env.models import build_model, count_parameters, get_model_entry, is_compatible

DENSE_MODELS = ("deeplabv3_mobilenetv2", "deeplabv3_resnet50", "unet_s", "unet_xs")
LIGHT_PAIR = ("unet_s", "unet_xs")  # (teacher, student)
# sizes that are not multiples of any model's stride (8 or 16), and the 32x32 procedural task
SIZES = ((36, 44), (32, 32))
NUM_CLASSES = 5


pytestmark = pytest.mark.usefixtures("one_thread")  # tiny networks: fastest on one thread (conftest.py)


def seed(value: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(value)


@functools.cache
def cached_model(name: str) -> nn.Module:
    """One single-channel build per model (the 3-channel stems are replaced): ResNet-50 is built once."""
    return build_model(name, NUM_CLASSES, 1, generator=seed())


def first_conv(model: nn.Module) -> nn.Conv2d:
    return next(m for m in model.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("name", DENSE_MODELS)
def test_registered_as_dense_and_has_batchnorm(name: str) -> None:
    entry = get_model_entry(name)
    assert entry.dense
    assert entry.min_input_size <= 32 and entry.fixed_input_size is None
    assert is_compatible(name, (3, 180, 240)) and is_compatible(name, (1, 32, 32))
    model = cached_model(name)
    assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())


@pytest.mark.parametrize("name", DENSE_MODELS)
def test_logits_at_the_input_size(name: str) -> None:
    model = cached_model(name).eval()
    for height, width in SIZES:
        with torch.no_grad():
            out = model(torch.randn(2, 1, height, width))
        assert type(out) is torch.Tensor
        assert out.shape == (2, NUM_CLASSES, height, width)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", LIGHT_PAIR)
def test_runs_at_min_input_size_in_train_mode(name: str) -> None:
    side = get_model_entry(name).min_input_size
    model = build_model(name, NUM_CLASSES, 3, generator=seed()).train()
    with torch.no_grad():
        assert model(torch.randn(2, 3, side, side + 3)).shape == (2, NUM_CLASSES, side, side + 3)


@pytest.mark.parametrize("name", ["deeplabv3_mobilenetv2", *LIGHT_PAIR])
def test_generator_seeded_builds_are_identical_and_match_the_global_stream(name: str) -> None:
    a = build_model(name, NUM_CLASSES, 3, generator=seed(7))
    state = torch.get_rng_state()
    b = build_model(name, NUM_CLASSES, 3, generator=seed(7))
    assert torch.equal(torch.get_rng_state(), state), "a seeded build must leave the global RNG alone"
    torch.manual_seed(7)
    c = build_model(name, NUM_CLASSES, 3)
    for (key, x), y, z in zip(a.state_dict().items(), b.state_dict().values(), c.state_dict().values(), strict=True):
        assert torch.equal(x, y), key
        assert torch.equal(x, z), key
    other = build_model(name, NUM_CLASSES, 3, generator=seed(8))
    assert not torch.equal(first_conv(a).weight, first_conv(other).weight)


@pytest.mark.parametrize("name", DENSE_MODELS)
def test_one_input_channel_and_gradients_reach_the_first_conv(name: str) -> None:
    model = cached_model(name).train()
    stem = first_conv(model)
    assert stem.in_channels == 1
    model.zero_grad()
    out = model(torch.randn(2, 1, 36, 44))
    assert out.shape == (2, NUM_CLASSES, 36, 44)
    nn.functional.cross_entropy(out, torch.randint(NUM_CLASSES, (2, 36, 44))).backward()
    assert stem.weight.grad is not None and stem.weight.grad.abs().sum() > 0


def test_mobilenetv2_backbone_has_output_stride_16() -> None:
    model = cached_model("deeplabv3_mobilenetv2").eval()
    with torch.no_grad():
        assert model.backbone(torch.randn(1, 1, 64, 96)).shape == (1, 1280, 4, 6)


def test_students_are_smaller_than_teachers() -> None:
    teacher, student = (count_parameters(cached_model(name)) for name in LIGHT_PAIR)
    assert 3 * student < teacher < 1_000_000
    assert count_parameters(cached_model("deeplabv3_mobilenetv2")) < count_parameters(
        cached_model("deeplabv3_resnet50")
    )
