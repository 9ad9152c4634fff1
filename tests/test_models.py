"""Tests for the model registry, the classifiers and the generator."""

from __future__ import annotations

import functools

import pytest
import torch
from torch import nn

from ssdkd_env.errors import UserError
from ssdkd_env.models import (
    Generator,
    build_model,
    count_parameters,
    get_model_entry,
    init_from_teacher,
    is_compatible,
    list_models,
    register_model,
)

EXPECTED_MODELS = {
    "resnet18",
    "resnet34",
    "wrn16_1",
    "wrn16_2",
    "wrn40_1",
    "wrn40_2",
    "vgg8",
    "vgg11",
    "mobilenetv2",
    "lenet5",
    "lenet5_half",
    "cnn",
    "cnn_half",
}
SEGMENTATION_MODELS = {
    "deeplabv3_resnet50",
    "deeplabv3_mobilenetv2",
    "unet_s",
    "unet_xs",
}  # tests/test_segmentation_models.py

# the forward test takes several seconds on these (four input shapes each, on two CPU cores)
SLOW_FORWARD = {"resnet18", "resnet34"}

# (input shape (C, H, W), num_classes)
CASES = [((1, 8, 8), 10), ((1, 32, 32), 10), ((3, 32, 32), 10), ((3, 32, 32), 100)]


@functools.cache
def cached_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    torch.manual_seed(0)
    return build_model(name, num_classes, in_channels).eval()


def test_registry_has_exactly_the_expected_names() -> None:
    assert set(list_models()) == EXPECTED_MODELS | SEGMENTATION_MODELS
    assert list_models() == sorted(list_models())
    assert {name for name in list_models() if get_model_entry(name).dense} == SEGMENTATION_MODELS


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n in SLOW_FORWARD else n for n in sorted(EXPECTED_MODELS)]
)
def test_forward_shapes_and_head_split(name: str) -> None:
    ran = 0
    for shape, num_classes in CASES:
        if not is_compatible(name, shape):
            continue
        model = cached_model(name, num_classes, shape[0])
        x = torch.randn(2, *shape)
        with torch.no_grad():
            logits = model(x)
            features = model.forward_features(x)
            assert isinstance(model.head, nn.Linear)
            split = model.head(features)
        assert logits.shape == (2, num_classes)
        assert features.ndim == 2 and features.shape[0] == 2
        assert features.shape[1] == model.head.in_features
        assert torch.isfinite(logits).all()
        torch.testing.assert_close(logits, split)
        ran += 1
    assert ran >= 2, f"{name} ran on too few input shapes"


@pytest.mark.parametrize("name", sorted(EXPECTED_MODELS))
def test_runs_at_min_input_size_in_train_mode(name: str) -> None:
    side = get_model_entry(name).min_input_size
    assert is_compatible(name, (3, side, side))
    model = build_model(name, 5, 3).train()
    with torch.no_grad():
        assert model(torch.randn(2, 3, side, side)).shape == (2, 5)


def test_compatibility_rules() -> None:
    assert not is_compatible("lenet5", (1, 8, 8))
    assert not is_compatible("lenet5_half", (1, 28, 28))
    assert not is_compatible("lenet5", (1, 64, 64))
    assert is_compatible("lenet5", (3, 32, 32))
    entry = get_model_entry("lenet5")
    assert entry.fixed_input_size == 32 and entry.min_input_size == 32
    assert is_compatible("cnn", (1, 8, 8))
    assert is_compatible("resnet18", (3, 8, 8))
    assert not is_compatible("resnet18", (3, 4, 4))
    with pytest.raises(ValueError):
        is_compatible("cnn", (8, 8))  # type: ignore[arg-type]


def test_unknown_name_lists_valid_names() -> None:
    with pytest.raises(UserError) as info:
        build_model("resnet1000", 10, 3)
    message = str(info.value)
    assert "resnet1000" in message
    for name in EXPECTED_MODELS:
        assert name in message
    with pytest.raises(UserError):
        is_compatible("nope", (3, 32, 32))
    with pytest.raises(UserError):
        get_model_entry("nope")


def test_duplicate_registration_rejected() -> None:
    with pytest.raises(ValueError, match="already registered"):
        register_model("cnn")(lambda num_classes, in_channels: nn.Linear(1, num_classes))
    assert set(list_models()) == EXPECTED_MODELS | SEGMENTATION_MODELS


def test_parameter_counts() -> None:
    def params(name: str, in_channels: int) -> int:
        return count_parameters(cached_model(name, 10, in_channels))

    assert params("lenet5_half", 1) < params("lenet5", 1)
    assert params("lenet5", 1) == 61_706
    assert params("cnn_half", 1) * 3 < params("cnn", 1) <= 100_000
    assert params("resnet18", 3) < params("resnet34", 3)
    assert 11_000_000 <= params("resnet18", 3) <= 11_400_000
    assert 2_100_000 <= params("wrn40_2", 3) <= 2_300_000
    assert 160_000 <= params("wrn16_1", 3) <= 190_000


def test_count_parameters_counts_frozen_too() -> None:
    layer = nn.Linear(3, 4)
    layer.weight.requires_grad_(False)
    assert count_parameters(layer) == 16


@pytest.mark.parametrize("output", ["sigmoid", "tanh_bn"])
@pytest.mark.parametrize("img_shape", [(1, 8, 8), (3, 32, 32)])
def test_generator_shapes(img_shape: tuple[int, int, int], output: str) -> None:
    gen = Generator(nz=16, img_shape=img_shape, ngf=8, output=output)  # type: ignore[arg-type]
    assert gen.nz == 16
    out = gen(torch.randn(4, 16))
    assert out.shape == (4, *img_shape)
    out.sum().backward()
    assert gen.project.weight.grad is not None


def test_generator_sigmoid_normalisation_range() -> None:
    mean, std = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
    gen = Generator(nz=8, img_shape=(3, 32, 32), ngf=4, mean=mean, std=std).eval()
    with torch.no_grad():
        out = gen(torch.randn(3, 8) * 10)
    for c in range(3):
        low, high = (0 - mean[c]) / std[c], (1 - mean[c]) / std[c]
        assert out[:, c].min() >= low - 1e-5
        assert out[:, c].max() <= high + 1e-5
    assert "mean" in gen.state_dict() and "std" in gen.state_dict()


def test_generator_default_sigmoid_is_unit_range() -> None:
    gen = Generator(nz=8, img_shape=(1, 8, 8), ngf=4)
    out = gen(torch.randn(5, 8))
    assert out.min() >= 0 and out.max() <= 1


def test_generator_tanh_bn_is_batch_normalised() -> None:
    gen = Generator(nz=8, img_shape=(3, 8, 8), ngf=4, output="tanh_bn").train()
    out = gen(torch.randn(16, 8))
    per_channel_mean = out.mean(dim=(0, 2, 3))
    torch.testing.assert_close(per_channel_mean, torch.zeros(3), atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"img_shape": (1, 3, 10)},
        {"img_shape": (3, 32, 32), "output": "relu"},
        {"img_shape": (3, 32, 32), "mean": (0.5,), "std": (0.5,)},
        {"img_shape": (3, 32, 32), "std": (1.0, 0.0, 1.0)},
        {"img_shape": (3, 32, 32), "output": "tanh_bn", "mean": (0.5, 0.5, 0.5)},
    ],
)
def test_generator_rejects_bad_arguments(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        Generator(nz=8, **kwargs)


@pytest.mark.parametrize(("shape", "stages"), [((1, 8, 8), 2), ((3, 32, 32), 2), ((3, 32, 30), 2), ((3, 180, 240), 4)])
def test_generator_reaches_any_size(shape: tuple[int, int, int], stages: int) -> None:
    """Two upsampling stages up to 32x32 (Fast's generator), more for larger images; sizes that are
    not a multiple of the stride are reached by a final resize."""
    generator = Generator(nz=8, img_shape=shape, ngf=4)
    assert sum(isinstance(m, nn.Upsample) for m in generator.body) == stages
    assert generator(torch.randn(2, 8)).shape == (2, *shape)


def _zero_channels(layer: nn.Module, drop: torch.Tensor) -> None:
    """Zero the output channels ``drop`` of a conv/linear layer (weights and bias)."""
    with torch.no_grad():
        layer.weight[drop] = 0
        if layer.bias is not None:
            layer.bias[drop] = 0


@pytest.mark.parametrize(
    ("teacher_arch", "student_arch", "shape"), [("lenet5", "lenet5_half", (1, 32, 32)), ("cnn", "cnn_half", (1, 8, 8))]
)
def test_teacher_init_keeps_the_strongest_channels(
    teacher_arch: str, student_arch: str, shape: tuple[int, int, int]
) -> None:
    """A teacher whose dropped channels are zero computes exactly what its width-pruned copy computes."""
    torch.manual_seed(0)
    teacher = build_model(teacher_arch, 10, shape[0]).eval()
    student = build_model(student_arch, 10, shape[0]).eval()
    t_layers = [m for m in teacher.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][:-1]  # every layer but the head
    s_layers = [m for m in student.modules() if isinstance(m, (nn.Conv2d, nn.Linear))][:-1]
    t_bns = [m for m in teacher.modules() if isinstance(m, nn.BatchNorm2d)] or [None] * len(t_layers)
    kept = []
    for t_layer, s_layer, bn in zip(t_layers, s_layers, t_bns, strict=True):
        n_out, n_keep = t_layer.weight.shape[0], s_layer.weight.shape[0]
        order = torch.randperm(n_out)
        keep, drop = order[:n_keep].sort().values, order[n_keep:]
        _zero_channels(t_layer, drop)
        with torch.no_grad():
            t_layer.weight[keep] += torch.sign(t_layer.weight[keep]) * 0.01  # kept filters never tie at zero
            if bn is not None:  # a zeroed channel stays zero through BN and ReLU
                bn.weight[drop] = 0
                bn.bias[drop] = 0
                bn.running_mean.uniform_(-0.5, 0.5)
                bn.running_var.uniform_(0.5, 2.0)
        kept.append(keep)
    init_from_teacher(student, teacher)
    torch.testing.assert_close(s_layers[0].weight, t_layers[0].weight[kept[0]])
    x = torch.randn(16, *shape)
    with torch.no_grad():
        torch.testing.assert_close(student(x), teacher(x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    ("teacher_arch", "student_arch"),
    [("resnet34", "resnet18"), ("wrn40_2", "wrn16_1"), ("vgg11", "vgg8"), ("lenet5", "cnn_half"), ("cnn_half", "cnn")],
)
def test_teacher_init_refuses_pairs_it_cannot_slice(teacher_arch: str, student_arch: str) -> None:
    teacher, student = build_model(teacher_arch, 10, 3), build_model(student_arch, 10, 3)
    before = [p.clone() for p in student.parameters()]
    with pytest.raises(UserError, match="student_init=teacher"):
        init_from_teacher(student, teacher)
    assert all(torch.equal(p, q) for p, q in zip(before, student.parameters(), strict=True))


def test_conditional_generator_depends_on_the_label_and_needs_it() -> None:
    gen = Generator(16, (3, 32, 32), ngf=8, num_classes=10).eval()
    z = torch.randn(1, 16).repeat(2, 1)
    out = gen(z, torch.tensor([3, 7]))
    assert out.shape == (2, 3, 32, 32) and not torch.allclose(out[0], out[1])
    assert torch.equal(gen(z, torch.tensor([3, 3]))[0], gen(z, torch.tensor([3, 3]))[1])
    with pytest.raises(ValueError, match="needs the target labels"):
        gen(z)


def test_seeded_conditional_generator_equals_the_global_stream_init() -> None:
    from ssdkd_env.models.init import seeded

    built = seeded(lambda: Generator(16, (3, 32, 32), ngf=8, num_classes=10), torch.Generator().manual_seed(5))
    torch.manual_seed(5)
    reference = Generator(16, (3, 32, 32), ngf=8, num_classes=10)
    for (name, a), (_, b) in zip(built.state_dict().items(), reference.state_dict().items(), strict=True):
        assert torch.equal(a, b), name
