"""BatchNorm-statistics matching: hooks on every BN layer of the teacher (DeepInversion / Fast)."""

from __future__ import annotations

import warnings

import torch
import torch.nn as nn


class BNStatsHook:
    """Records, for one BN layer, the distance between batch and running statistics.

    The batch statistics are mixed with a momentum buffer of earlier rounds' statistics
    (``mix = momentum * buffer + (1 - momentum) * batch``) before the comparison, which
    lets a small batch match the running statistics on average over rounds.
    """

    def __init__(self, module: nn.modules.batchnorm._BatchNorm, momentum: float) -> None:
        self.module = module
        self.momentum = momentum
        self.loss = torch.zeros(())
        self.batch_mean: torch.Tensor | None = None
        self.batch_var: torch.Tensor | None = None
        self.mean_buffer: torch.Tensor | None = None
        self.var_buffer: torch.Tensor | None = None
        self.handle = module.register_forward_hook(self._hook)

    def _hook(self, module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        x = inputs[0]
        dims = [0, *range(2, x.dim())]
        mean = x.mean(dims)
        var = x.var(dims, unbiased=False)
        self.batch_mean, self.batch_var = mean, var
        if self.mean_buffer is not None and self.var_buffer is not None:
            mean = self.momentum * self.mean_buffer + (1 - self.momentum) * mean
            var = self.momentum * self.var_buffer + (1 - self.momentum) * var
        bn = self.module
        self.loss = torch.norm(mean - bn.running_mean, 2) + torch.norm(var - bn.running_var, 2)

    def commit(self) -> None:
        """Fold the last batch's statistics into the momentum buffer (once per round)."""
        if self.batch_mean is None or self.batch_var is None:
            return
        mean, var = self.batch_mean.detach(), self.batch_var.detach()
        if self.mean_buffer is None or self.var_buffer is None:
            self.mean_buffer, self.var_buffer = mean, var
        else:
            self.mean_buffer = self.momentum * self.mean_buffer + (1 - self.momentum) * mean
            self.var_buffer = self.momentum * self.var_buffer + (1 - self.momentum) * var

    def remove(self) -> None:
        self.handle.remove()


class BNStatsLoss:
    """Sum of per-layer BN-statistics distances over every BatchNorm layer of a model."""

    def __init__(self, model: nn.Module, momentum: float = 0.9) -> None:
        layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        layers = [m for m in layers if m.running_mean is not None and m.running_var is not None]
        self.hooks = [BNStatsHook(m, momentum) for m in layers]
        if not self.hooks:
            warnings.warn("the teacher has no BatchNorm layers: the BN-statistics loss is switched off", stacklevel=2)

    @property
    def enabled(self) -> bool:
        return bool(self.hooks)

    def value(self) -> torch.Tensor:
        """Loss of the most recent forward pass (0 when there are no BN layers)."""
        if not self.hooks:
            return torch.zeros(())
        return torch.stack([h.loss for h in self.hooks]).sum()

    def commit(self) -> None:
        for h in self.hooks:
            h.commit()

    def remove(self) -> None:
        for h in self.hooks:
            h.remove()
