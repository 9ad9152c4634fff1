"""Numeric precision and memory layout of forward passes, decided in one place.

``auto`` is bf16 autocast on CUDA and full fp32 elsewhere, so CPU results are those of plain
fp32; ``bf16`` asks for bf16 autocast on any device (CPU included, which exercises that path
without a GPU). Losses and statistics are computed from outputs cast back to fp32.
"""

from __future__ import annotations

import contextlib
from typing import Literal, TypeVar

import torch
import torch.nn as nn

Precision = Literal["auto", "fp32", "bf16"]
M = TypeVar("M", bound=nn.Module)


def autocast_dtype(device: torch.device, precision: Precision) -> torch.dtype | None:
    """The autocast dtype of ``precision`` on ``device``; None for plain fp32."""
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def autocast_for(device: torch.device, precision: Precision) -> contextlib.AbstractContextManager[object]:
    """A context manager that runs forward passes on ``device`` at ``precision`` (a no-op for fp32)."""
    dtype = autocast_dtype(device, precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def to_layout(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """An image batch ``[N, C, H, W]`` in channels_last memory format when asked, else unchanged."""
    return images.contiguous(memory_format=torch.channels_last) if channels_last else images


def module_layout(model: M, channels_last: bool) -> M:
    """``model`` with its 4-D weights in channels_last memory format when asked, else unchanged."""
    return model.to(memory_format=torch.channels_last) if channels_last else model
