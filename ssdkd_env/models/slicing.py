"""Initialise a narrow student from its teacher's weights: a width-pruned copy of the teacher.

The student must be the teacher's architecture with fewer channels per layer (LeNet-5 ->
LeNet-5-half, ``cnn`` -> ``cnn_half``). Layer by layer, the student keeps the teacher's output
channels with the largest L1 filter norm (Li et al., "Pruning Filters for Efficient ConvNets"),
restricted to the input channels the previous layer kept. Only the teacher's weights are used,
so the initialisation is data-free.
"""

from __future__ import annotations

import torch
from torch import nn

from ssdkd_env.errors import UserError
from ssdkd_env.models.base import Classifier

_WEIGHTED = (nn.Conv2d, nn.Linear, nn.BatchNorm2d)


def _weighted_layers(model: nn.Module) -> list[nn.Conv2d | nn.Linear | nn.BatchNorm2d]:
    return [m for m in model.modules() if isinstance(m, _WEIGHTED)]


def _input_index(keep: torch.Tensor, teacher_in: int, channels: int) -> torch.Tensor:
    """Teacher input columns of the kept channels; a flattened ``[C, H, W]`` map repeats each channel."""
    if teacher_in % channels:
        raise UserError(f"student_init=teacher: {teacher_in} inputs do not split into {channels} channels")
    per_channel = teacher_in // channels
    return (keep[:, None] * per_channel + torch.arange(per_channel)).flatten()


def _copy_plan(student: nn.Module, teacher: nn.Module) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every student tensor with the teacher values it receives; a :class:`UserError` when the pair
    does not fit. Nothing is written, so a refused pair leaves the student as it was."""
    name = type(student).__name__
    if type(student) is not type(teacher) or not isinstance(student, Classifier) or not student.plain_chain:
        raise UserError(
            f"student_init=teacher needs a student that is a narrower copy of a plain feed-forward teacher "
            f"(LeNet-5, the digits CNN, VGG); got teacher {type(teacher).__name__} and student {name}. "
            "Use --set student_init=random"
        )
    s_layers, t_layers = _weighted_layers(student), _weighted_layers(teacher)
    if [type(m) for m in s_layers] != [type(m) for m in t_layers]:
        raise UserError(f"student_init=teacher: the {name} student and teacher differ in depth")
    plan: list[tuple[torch.Tensor, torch.Tensor]] = []
    keep: torch.Tensor | None = None  # teacher channels the previous layer kept
    teacher_channels = 0
    for s_layer, t_layer in zip(s_layers, t_layers, strict=True):
        if isinstance(t_layer, nn.BatchNorm2d):
            # the layer types match (checked above), and a BN layer follows a conv
            assert isinstance(s_layer, nn.BatchNorm2d) and keep is not None
            for tensor in ("weight", "bias", "running_mean", "running_var"):
                s_tensor, t_tensor = getattr(s_layer, tensor), getattr(t_layer, tensor)
                if s_tensor is not None and t_tensor is not None:
                    plan.append((s_tensor, t_tensor.detach().cpu()[keep]))
            s_count, t_count = s_layer.num_batches_tracked, t_layer.num_batches_tracked
            if s_count is not None and t_count is not None:
                plan.append((s_count, t_count.cpu()))
            continue
        assert not isinstance(s_layer, nn.BatchNorm2d)  # the layer types match (checked above)
        weight = t_layer.weight.detach().cpu()
        if keep is not None:
            weight = weight[:, _input_index(keep, weight.shape[1], teacher_channels)]
        n_out = s_layer.weight.shape[0]
        if n_out > weight.shape[0] or weight.shape[1:] != s_layer.weight.shape[1:]:
            raise UserError(
                f"student_init=teacher: student layer {tuple(s_layer.weight.shape)} does not fit "
                f"inside teacher layer {tuple(t_layer.weight.shape)}"
            )
        keep = weight.flatten(1).abs().sum(1).topk(n_out).indices.sort().values
        teacher_channels = weight.shape[0]
        plan.append((s_layer.weight, weight[keep]))
        if s_layer.bias is not None and t_layer.bias is not None:
            plan.append((s_layer.bias, t_layer.bias.detach().cpu()[keep]))
    for s_tensor, values in plan:
        if s_tensor.shape != values.shape:
            raise UserError(
                f"student_init=teacher: a {name} student tensor of shape {tuple(s_tensor.shape)} "
                f"cannot take the teacher's {tuple(values.shape)}"
            )
    return plan


def check_teacher_init_pair(student: nn.Module, teacher: nn.Module) -> None:
    """Raise :class:`UserError` unless :func:`init_from_teacher` can initialise ``student`` from ``teacher``."""
    _copy_plan(student, teacher)


@torch.no_grad()
def init_from_teacher(student: nn.Module, teacher: nn.Module) -> None:
    """Overwrite ``student``'s weights with a width-pruned copy of ``teacher``'s (in place).

    Raises :class:`UserError`, leaving the student unchanged, when the student is not a narrower
    copy of a plain feed-forward teacher (residual networks are not supported: their channel
    choices would have to agree across every skip connection).
    """
    for s_tensor, values in _copy_plan(student, teacher):
        s_tensor.copy_(values)
