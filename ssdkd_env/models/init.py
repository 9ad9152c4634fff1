"""Building modules whose random initialisation comes from a run's own generator.

``seeded(factory, generator)`` constructs the module on the meta device (so PyTorch's default
initialisers never draw from the global RNG), materialises it on the CPU and initialises it with
PyTorch's default rules, drawing from ``generator`` in the order the constructor would have drawn
from the global stream. A generator seeded with ``s`` therefore gives exactly the weights that
``torch.manual_seed(s)`` followed by ``factory()`` gives, without touching the global RNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TypeVar

import torch
from torch import nn

M = TypeVar("M", bound=nn.Module)

_RANDOM_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
_NORM_LAYERS = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)


def _materialize(module: nn.Module) -> None:
    """Replace meta tensors by uninitialised CPU tensors (constants made on the CPU are kept)."""
    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None and param.is_meta:
                sub._parameters[name] = nn.Parameter(torch.empty_like(param, device="cpu"), param.requires_grad)
        for name, buf in list(sub._buffers.items()):
            if buf is not None and buf.is_meta:
                sub._buffers[name] = torch.empty_like(buf, device="cpu")


def _default_init(layer: nn.Linear | nn.Conv1d | nn.Conv2d | nn.Conv3d, generator: torch.Generator) -> None:
    """PyTorch's ``reset_parameters`` of Linear / Conv (kaiming-uniform, a = sqrt(5)), from ``generator``."""
    weight, bias = layer.weight, layer.bias
    nn.init.kaiming_uniform_(weight, a=math.sqrt(5), generator=generator)
    if bias is not None:
        fan_in, _ = nn.init._calculate_fan_in_and_fan_out(weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        nn.init.uniform_(bias, -bound, bound, generator=generator)


def seeded(factory: Callable[[], M], generator: torch.Generator) -> M:
    """``factory()`` initialised from ``generator`` instead of the global RNG (see the module doc)."""
    with torch.device("meta"):
        module = factory()
    _materialize(module)
    with torch.no_grad():
        for sub in module.modules():
            if isinstance(sub, _RANDOM_LAYERS):
                _default_init(sub, generator)
            elif isinstance(sub, nn.Embedding):
                nn.init.normal_(sub.weight, generator=generator)  # Embedding.reset_parameters: N(0, 1)
            elif isinstance(sub, _NORM_LAYERS):
                sub.reset_parameters()  # constants only: ones, zeros, fresh running statistics
            elif any(True for _ in sub.parameters(recurse=False)):
                raise TypeError(
                    f"seeded(): no initialiser for {type(sub).__name__}; add it to ssdkd_env/models/init.py"
                )
    return module
