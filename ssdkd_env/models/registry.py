"""Name -> architecture registry for teachers and students: classifiers (logits ``[N, K]``) and
dense predictors (segmentation logits ``[N, K, H, W]`` at the input's size)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from ssdkd_env.models.init import seeded
from ssdkd_env.registry import Registry

Builder = Callable[[int, int], nn.Module]
"""Signature of a model builder: ``(num_classes, in_channels) -> classifier``."""

_B = TypeVar("_B", bound=Builder)


@dataclass(frozen=True)
class ModelEntry:
    """A registered architecture and the input sizes it accepts."""

    name: str
    builder: Builder
    min_input_size: int
    fixed_input_size: int | None
    description: str
    dense: bool = False  # True: per-pixel outputs [N, K, H, W] (a segmentation model)


MODELS: Registry[ModelEntry] = Registry("architecture")


def register_model(
    name: str,
    *,
    min_input_size: int = 8,
    fixed_input_size: int | None = None,
    description: str = "",
    dense: bool = False,
) -> Callable[[_B], _B]:
    """Decorator registering ``builder(num_classes, in_channels)`` under ``name``.

    ``min_input_size`` is the smallest square side the model runs on; ``fixed_input_size``
    (if set) is the only side it accepts and then also becomes ``min_input_size``. ``dense``
    marks a segmentation model (outputs ``[N, K, H, W]`` at the input's height and width).
    Registering a name twice raises ``ValueError``.
    """

    def decorator(builder: _B) -> _B:
        MODELS.add(
            name,
            ModelEntry(
                name=name,
                builder=builder,
                min_input_size=fixed_input_size if fixed_input_size is not None else min_input_size,
                fixed_input_size=fixed_input_size,
                description=description,
                dense=dense,
            ),
        )
        return builder

    return decorator


def list_models() -> list[str]:
    """Sorted names of all registered architectures."""
    return sorted(MODELS)


def get_model_entry(name: str) -> ModelEntry:
    """Registry entry for ``name``; raises ``UserError`` listing valid names if unknown."""
    return MODELS.get(name)


def build_model(name: str, num_classes: int, in_channels: int, generator: torch.Generator | None = None) -> nn.Module:
    """Instantiate a freshly initialised classifier by registry name.

    With ``generator`` its initial weights are drawn from that generator and the global RNG is
    left untouched (what the engine does); without, from the global RNG (PyTorch's default).
    """
    builder = get_model_entry(name).builder
    if generator is None:
        return builder(num_classes, in_channels)
    return seeded(lambda: builder(num_classes, in_channels), generator)


def is_compatible(name: str, input_shape: tuple[int, int, int]) -> bool:
    """Whether model ``name`` runs on inputs of shape ``(C, H, W)``.

    Any channel count works since ``in_channels`` is a build argument; only H and W matter.
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {tuple(input_shape)}")
    entry = get_model_entry(name)
    _, height, width = input_shape
    if entry.fixed_input_size is not None:
        return height == width == entry.fixed_input_size
    return min(height, width) >= entry.min_input_size


def count_parameters(model: nn.Module) -> int:
    """Total number of parameters (trainable or not) in ``model``."""
    return sum(p.numel() for p in model.parameters())
