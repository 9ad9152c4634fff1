"""Feature-statistics matching: hooks on every BN layer of the teacher (DeepInversion / Fast).

For a teacher without BatchNorm the only statistics known without data are those of the
normalised input (per-channel mean 0, variance 1, by the task's normalisation): that
prior replaces the BN term, with a warning.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch
import torch.nn as nn

MomentumBuffer = tuple[torch.Tensor | None, torch.Tensor | None]


class StatsMatcher:
    """Distance between the statistics of observed activations and target (running) statistics.

    Observed batch statistics are mixed with a momentum buffer of earlier rounds' statistics
    (``mix = momentum * buffer + (1 - momentum) * batch``) before the comparison, which lets a
    small batch match the targets on average over rounds.
    """

    def __init__(self, target_mean: torch.Tensor, target_var: torch.Tensor, momentum: float) -> None:
        self.target_mean, self.target_var = target_mean, target_var
        self.momentum = momentum
        self.loss = torch.zeros(())
        self.batch_mean: torch.Tensor | None = None
        self.batch_var: torch.Tensor | None = None
        self.mean_buffer: torch.Tensor | None = None
        self.var_buffer: torch.Tensor | None = None

    def observe(self, x: torch.Tensor) -> None:
        """Statistics of ``x`` (in fp32, whatever precision the forward pass ran at)."""
        x = x.float()
        dims = [0, *range(2, x.dim())]
        mean, var = x.mean(dims), x.var(dims, unbiased=False)
        self.batch_mean, self.batch_var = mean, var
        if self.mean_buffer is not None and self.var_buffer is not None:
            mean = self.momentum * self.mean_buffer + (1 - self.momentum) * mean
            var = self.momentum * self.var_buffer + (1 - self.momentum) * var
        self.loss = torch.norm(mean - self.target_mean, 2) + torch.norm(var - self.target_var, 2)

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


class BNStatsLoss:
    """Sum of statistics distances over every BatchNorm layer of a model (or its input prior).

    The hooks observe only while ``active``: an owner that also runs the model for other work
    (relabelling, evaluation) builds it inactive and observes inside :meth:`observing`, so those
    passes pay nothing for the statistics.
    """

    def __init__(
        self, model: nn.Module, momentum: float = 0.9, input_channels: int | None = None, active: bool = True
    ) -> None:
        self.active = active
        layers = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
        layers = [m for m in layers if m.running_mean is not None and m.running_var is not None]
        self.matchers: list[StatsMatcher] = []
        self.handles = []
        for bn in layers:
            assert bn.running_mean is not None and bn.running_var is not None  # filtered above
            matcher = StatsMatcher(bn.running_mean, bn.running_var, momentum)
            self.matchers.append(matcher)
            self.handles.append(bn.register_forward_hook(lambda _m, inputs, _o, s=matcher: self._observe(s, inputs[0])))
        self.uses_input_prior = not layers and input_channels is not None
        if not layers:
            fallback = (
                "matching the normalised input's statistics (mean 0, variance 1) instead"
                if self.uses_input_prior
                else "the BN-statistics loss is switched off"
            )
            warnings.warn(f"the teacher has no BatchNorm layers: {fallback}", stacklevel=2)
        if self.uses_input_prior:
            assert input_channels is not None
            param = next(model.parameters())
            matcher = StatsMatcher(
                torch.zeros(input_channels, device=param.device),
                torch.ones(input_channels, device=param.device),
                momentum,
            )
            self.matchers.append(matcher)
            self.handles.append(
                model.register_forward_pre_hook(lambda _m, inputs, s=matcher: self._observe(s, inputs[0]))
            )

    def _observe(self, matcher: StatsMatcher, x: torch.Tensor) -> None:
        if self.active:
            matcher.observe(x)

    @contextlib.contextmanager
    def observing(self) -> Iterator[None]:
        """Observe the statistics of the forward passes inside this block."""
        was_active, self.active = self.active, True
        try:
            yield
        finally:
            self.active = was_active

    @property
    def momentum_buffers(self) -> list[MomentumBuffer]:
        """Each matcher's (mean, var) momentum buffer; ``(None, None)`` before its first commit."""
        return [(m.mean_buffer, m.var_buffer) for m in self.matchers]

    @momentum_buffers.setter
    def momentum_buffers(self, buffers: list[MomentumBuffer]) -> None:
        for matcher, (mean, var) in zip(self.matchers, buffers, strict=True):
            matcher.mean_buffer, matcher.var_buffer = mean, var

    @property
    def enabled(self) -> bool:
        return bool(self.matchers)

    def value(self) -> torch.Tensor:
        """Loss of the most recent forward pass (0 when nothing is matched)."""
        if not self.matchers:
            return torch.zeros(())
        return torch.stack([m.loss for m in self.matchers]).sum()

    def commit(self) -> None:
        for m in self.matchers:
            m.commit()

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
