"""Timing from the outside: thin wrappers installed on component instances, no library changes.

:meth:`PhaseRecorder.wrap` replaces a method on one instance (``engine.distiller.step``) by a
call that reads the wall clock before and after it (synchronising CUDA first) and, while a
``FlopCounterMode`` is attached, the FLOPs counted so far. Times and FLOPs are *exclusive*: a
timed call nested in another timed call is subtracted from its parent, so the parts of a round
add up to the whole round exactly.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
from torch.utils.flop_counter import FlopCounterMode

from ssdkd_env.benchmarking.system import synchronize

R = TypeVar("R")


@dataclass
class CallStats:
    """What the calls of one name took since the last :meth:`PhaseRecorder.take` (exclusive)."""

    seconds: float = 0.0
    calls: int = 0
    flops: int = 0


class PhaseRecorder:
    """Accumulates exclusive wall time (and FLOPs) per call name."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.counter: FlopCounterMode | None = None  # set while one round is counted
        self._stats: defaultdict[str, CallStats] = defaultdict(CallStats)
        self._children: list[list[float]] = []  # per open call: [seconds, flops] of its timed children

    def wrap(self, obj: Any, method: str, name: str) -> None:
        """Replace ``obj.method`` on this instance only by a recorded call named ``name``."""
        original = getattr(obj, method)

        @functools.wraps(original)
        def recorded(*args: Any, **kwargs: Any) -> Any:
            return self.call(name, original, *args, **kwargs)

        setattr(obj, method, recorded)

    def call(self, name: str, fn: Callable[..., R], *args: Any, **kwargs: Any) -> R:
        """Run ``fn(*args, **kwargs)`` and record it as ``name``."""
        synchronize(self.device)
        flops_before = self._flops()
        self._children.append([0.0, 0])
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            synchronize(self.device)
            seconds = time.perf_counter() - start
            flops = self._flops() - flops_before
            child_seconds, child_flops = self._children.pop()
            if self._children:
                self._children[-1][0] += seconds
                self._children[-1][1] += flops
            stats = self._stats[name]
            stats.seconds += seconds - child_seconds
            stats.flops += flops - int(child_flops)
            stats.calls += 1

    def take(self) -> dict[str, CallStats]:
        """The statistics since the last call, by name; the recorder starts afresh."""
        stats, self._stats = dict(self._stats), defaultdict(CallStats)
        return stats

    def _flops(self) -> int:
        return 0 if self.counter is None else int(self.counter.get_total_flops())
