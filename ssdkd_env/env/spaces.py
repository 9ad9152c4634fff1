"""The environment's action space (one canonical Box) and the observation layout.

The canonical action is a vector in [-1, 1]^7, each dimension mapped linearly to its range
(``ACTION_FIELDS``); the multi-discrete and discrete forms are Gymnasium wrappers around it
(:class:`MultiDiscreteActions`, :class:`DiscreteActions`). The observation is assembled from
named fields declared by the components that produce them (:func:`observation_fields`).

What an action may hold, in every dimension and every form:

- a value that is not a finite number (NaN, +inf, -inf) is refused: ``step`` raises
  :class:`InvalidAction` (a ``UserError`` and a ``ValueError``) naming every such dimension, and
  the environment is left as it was (no round runs; the episode goes on with the next action);
- a finite value outside the space is brought into it: the continuous form clips each dimension
  to [-1, 1]; the multi-discrete form clips each index to [0, bins - 1] and rounds it down; the
  discrete form, a single index into the product of the bins, refuses an index outside
  [0, n - 1] (it stands for no action) and rounds one inside down.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ssdkd_env.engine import RoundAction
from ssdkd_env.errors import UserError
from ssdkd_env.observation import ObsField
from ssdkd_env.replay import EVICTION_RULES, BaseMemory


@dataclass(frozen=True)
class ActionField:
    name: str
    low: float
    high: float
    meaning: str


ACTION_FIELDS: tuple[ActionField, ...] = (
    ActionField("alpha", 0.0, 2.0, "priority exponent: P(i) ~ p_i^alpha (0 = uniform replay)"),
    ActionField("beta", 0.0, 1.0, "importance-weight exponent: w_i = (N P(i))^-beta"),
    ActionField("diversity", 0.0, 2.0, "phi's diversity: strength of drawing targets against the class histogram"),
    ActionField("difficulty", 0.0, 4.0, "phi's difficulty: focal exponent gamma of the class loss"),
    ActionField("replace_fraction", 0.0, 0.5, "share of the memory replaced by new samples this round"),
    ActionField("eviction", 0.0, 2.0, "eviction rule: thirds of [-1, 1] pick lowest priority, oldest, largest class"),
    ActionField("synth_budget", 0.25, 2.0, "new synthetic samples, as a multiple of the configured budget"),
)
ACTION_SIZE = len(ACTION_FIELDS)
ACTION_NAMES = tuple(f.name for f in ACTION_FIELDS)
_EVICTION_INDEX = ACTION_NAMES.index("eviction")


class InvalidAction(UserError, ValueError):
    """An action the environment refuses (a value that is not a finite number, the wrong size, a discrete
    index outside the space); the step does nothing."""


def finite_values(action: Any, names: Sequence[str]) -> np.ndarray:
    """``action`` as a vector of ``len(names)`` finite float64 values; otherwise :class:`InvalidAction`
    naming each dimension (by ``names``) that is not a finite number."""
    values = np.asarray(action, dtype=np.float64).reshape(-1)
    if values.size != len(names):
        raise InvalidAction(f"an action has {len(names)} elements, got {values.size}")
    bad = [f"{name}={value}" for name, value in zip(names, values, strict=True) if not np.isfinite(value)]
    if bad:
        raise InvalidAction(f"action values that are not finite numbers: {', '.join(bad)}; actions must be finite")
    return values


PROGRESS_FIELD = ObsField("progress", 1, 0, 1, "rounds done / rounds in the episode")
METRIC_FIELDS: tuple[ObsField, ...] = (
    ObsField(
        "batch_discrepancy", 1, 0, 1, "student–teacher discrepancy (the KD loss) on the round's batches", "squash"
    ),
    ObsField("batch_agreement", 1, 0, 1, "student–teacher top-1 agreement on the round's batches"),
    ObsField("probe_kl", 1, 0, 1, "student–teacher KL on the held-out synthetic probe, squashed", "squash"),
    ObsField("probe_agreement", 1, 0, 1, "student–teacher top-1 agreement on the probe"),
)
PREVIOUS_ACTION_FIELD = ObsField(
    "previous_action", ACTION_SIZE, -1, 1, "the previous action in its canonical [-1, 1] form (0 at reset)"
)


def observation_fields(num_classes: int, memory: type[BaseMemory]) -> list[ObsField]:
    """Every block of the observation, in order: the episode's progress, the memory's fields, the
    round's measures of the student, the previous action."""
    return [PROGRESS_FIELD, *memory.observation_fields(num_classes), *METRIC_FIELDS, PREVIOUS_ACTION_FIELD]


def action_space() -> spaces.Box:
    return spaces.Box(-1.0, 1.0, shape=(ACTION_SIZE,), dtype=np.float32)


def action_table() -> str:
    """The action table of the documentation (docs/environment.md)."""
    lines = ["| # | name | range | meaning |", "|---|---|---|---|"]
    for i, f in enumerate(ACTION_FIELDS):
        lines.append(f"| {i} | `{f.name}` | [{f.low:g}, {f.high:g}] | {f.meaning} |")
    return "\n".join(lines)


class ActionMapper:
    """Maps canonical [-1, 1]^7 vectors to round decisions and back."""

    def __init__(self, default_budget: int) -> None:
        self.default_budget = default_budget

    @staticmethod
    def canonical(action: Any) -> np.ndarray:
        """``action`` as a float64 vector in [-1, 1]^7: clipped, or :class:`InvalidAction` when a value is
        not a finite number (the module's rule)."""
        return np.clip(finite_values(action, ACTION_NAMES), -1.0, 1.0)

    def decode(self, unit: Any) -> RoundAction:
        """The [-1, 1]^7 vector -> a :class:`RoundAction` (through :meth:`canonical`)."""
        unit = self.canonical(unit)
        # rounded to 1e-6 so that configured values (0.6, 0.1, ...) survive encode -> decode exactly
        v = {
            f.name: round(f.low + (float(u) + 1.0) / 2.0 * (f.high - f.low), 6)
            for f, u in zip(ACTION_FIELDS, unit, strict=True)
        }
        third = int(np.floor((float(unit[_EVICTION_INDEX]) + 1.0) / 2.0 * len(EVICTION_RULES)))
        return RoundAction(
            alpha=v["alpha"],
            beta=v["beta"],
            diversity=v["diversity"],
            difficulty=v["difficulty"],
            replace_fraction=v["replace_fraction"],
            eviction=EVICTION_RULES[min(len(EVICTION_RULES) - 1, third)],
            synth_budget=max(1, int(round(v["synth_budget"] * self.default_budget))),
        )

    def encode(self, action: RoundAction) -> np.ndarray:
        """A :class:`RoundAction` -> the [-1, 1]^7 vector that decodes to it (values outside a
        dimension's range are clipped to it)."""
        values = {
            "alpha": action.alpha,
            "beta": action.beta,
            "diversity": action.diversity,
            "difficulty": action.difficulty,
            "replace_fraction": action.replace_fraction,
            "synth_budget": action.synth_budget / self.default_budget,
        }
        unit = np.zeros(ACTION_SIZE)
        for i, f in enumerate(ACTION_FIELDS):
            if f.name == "eviction":
                unit[i] = -1.0 + (2 * EVICTION_RULES.index(action.eviction) + 1) / len(EVICTION_RULES)
            else:
                unit[i] = np.clip(2.0 * (values[f.name] - f.low) / (f.high - f.low) - 1.0, -1.0, 1.0)
        return unit


class BinnedActions(gym.ActionWrapper):
    """Evenly spaced points of [-1, 1] per canonical dimension (eviction: its 3 rules)."""

    def __init__(self, env: gym.Env, bins: int = 3) -> None:
        super().__init__(env)
        if bins < 2:
            raise ValueError("bins must be at least 2")
        self.bins = [len(EVICTION_RULES) if f.name == "eviction" else bins for f in ACTION_FIELDS]

    def indices_to_unit(self, idx: np.ndarray) -> np.ndarray:
        idx = np.asarray(idx, dtype=np.int64).reshape(-1)
        return np.array([-1.0 + 2.0 * i / (n - 1) for i, n in zip(idx, self.bins, strict=True)], dtype=np.float32)

    def unit_to_indices(self, unit: np.ndarray) -> np.ndarray:
        unit = np.clip(np.asarray(unit, dtype=np.float64).reshape(-1), -1.0, 1.0)
        return np.array([int(round((u + 1.0) / 2.0 * (n - 1))) for u, n in zip(unit, self.bins, strict=True)])

    def nearest(self, unit: np.ndarray) -> Any:
        """The action of this form closest to a canonical vector."""
        raise NotImplementedError

    def default_action(self) -> Any:
        """The configured decisions, snapped to the nearest point of this form."""
        return self.nearest(self.env.unwrapped.default_action())  # type: ignore[attr-defined]


class MultiDiscreteActions(BinnedActions):
    """``MultiDiscrete`` form: one bin index per canonical dimension."""

    def __init__(self, env: gym.Env, bins: int = 3) -> None:
        super().__init__(env, bins)
        self.action_space = spaces.MultiDiscrete(self.bins)

    def action(self, action: Any) -> np.ndarray:
        """Bin indices -> the canonical vector; indices clipped to their bins and rounded down, a value
        that is not a finite number refused (the module's rule)."""
        values = finite_values(action, ACTION_NAMES)
        return self.indices_to_unit(np.clip(values, 0, np.array(self.bins) - 1).astype(np.int64))

    def nearest(self, unit: np.ndarray) -> np.ndarray:
        return self.unit_to_indices(unit).astype(np.int64)


class DiscreteActions(BinnedActions):
    """A single ``Discrete`` over the product of the bins (for DQN)."""

    def __init__(self, env: gym.Env, bins: int = 3) -> None:
        super().__init__(env, bins)
        self.action_space = spaces.Discrete(int(np.prod(self.bins)))

    def action(self, action: Any) -> np.ndarray:
        """An index into the product of the bins -> the canonical vector; rounded down, refused when it
        is not a finite number or outside [0, n - 1] (the module's rule)."""
        value = finite_values(action, ("index",))[0]
        n = int(np.prod(self.bins))
        if not 0 <= value < n:
            raise InvalidAction(f"a discrete action is an index in [0, {n - 1}], got {value:g}")
        return self.indices_to_unit(np.array(np.unravel_index(int(value), self.bins)))

    def nearest(self, unit: np.ndarray) -> int:
        return int(np.ravel_multi_index(tuple(self.unit_to_indices(unit)), self.bins))


ACTION_WRAPPERS: dict[str, type[BinnedActions]] = {"multi_discrete": MultiDiscreteActions, "discrete": DiscreteActions}
