"""Observation fields: declared by the components that produce them, assembled in one place.

Every element of the environment's observation comes from a named :class:`ObsField`: the field
gives its size, bounds, meaning and how the raw value is brought into its bounds. The layout, the
observation space and the documentation's table are all derived from the same list.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces

Transform = Literal["none", "squash", "per_round"]


@dataclass(frozen=True)
class ObsField:
    """One named block of the observation.

    ``transform``: ``none`` (already in bounds), ``squash`` (x / (1 + x) for a non-negative
    unbounded quantity), or ``per_round`` (divided by the episode's rounds, capped at 1).
    """

    name: str
    size: int
    low: float
    high: float
    meaning: str
    transform: Transform = "none"


def squash(x: np.ndarray) -> np.ndarray:
    """Non-negative unbounded values (a KL, a priority) to [0, 1): x / (1 + x); inf -> 1."""
    x = np.maximum(np.asarray(x, dtype=np.float64), 0.0)
    return np.where(np.isfinite(x), x / (1.0 + np.where(np.isfinite(x), x, 0.0)), 1.0)


def _as_array(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().float().cpu().numpy()
    return np.asarray(value, dtype=np.float64).reshape(-1)


def observation_space(fields: Sequence[ObsField]) -> spaces.Box:
    low = np.concatenate([np.full(f.size, f.low, np.float32) for f in fields])
    high = np.concatenate([np.full(f.size, f.high, np.float32) for f in fields])
    return spaces.Box(low, high, dtype=np.float32)


def assemble(fields: Sequence[ObsField], values: Mapping[str, Any], rounds: int) -> np.ndarray:
    """The flat observation: each field's value, transformed, checked for size, clipped to bounds."""
    parts = []
    for f in fields:
        if f.name not in values:
            raise KeyError(f"no value for observation field '{f.name}'")
        x = _as_array(values[f.name])
        if x.size != f.size:
            raise ValueError(f"observation field '{f.name}' has {x.size} values, declared {f.size}")
        if f.transform == "squash":
            x = squash(x)
        elif f.transform == "per_round":
            x = np.minimum(1.0, x / max(1, rounds))
        x = np.nan_to_num(x, nan=0.0, posinf=f.high, neginf=f.low)
        parts.append(np.clip(x, f.low, f.high))
    return np.concatenate(parts).astype(np.float32)


def markdown_table(fields: Sequence[ObsField]) -> str:
    """The documentation's observation table (indices for the given sizes)."""
    lines = ["| # | name | size | range | meaning |", "|---|---|---|---|---|"]
    start = 0
    for f in fields:
        index = str(start) if f.size == 1 else f"{start}–{start + f.size - 1}"
        lines.append(f"| {index} | `{f.name}` | {f.size} | [{f.low:g}, {f.high:g}] | {f.meaning} |")
        start += f.size
    return "\n".join(lines)
