"""The environment's action space (one canonical Box per method) and the observation layout.

The canonical action is a vector in [-1, 1]^n with one dimension per round decision that the
method's components act on (:func:`action_fields`, in the catalogue's order ``ACTION_FIELDS``),
each mapped linearly to its range; the decisions a method does not act on keep their configured
values. The multi-discrete and discrete forms are Gymnasium wrappers around it
(:class:`MultiDiscreteActions`, :class:`DiscreteActions`). The observation is assembled from named
fields declared by the components that produce them (:func:`observation_fields`).

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

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ssdkd_env.action import RoundAction
from ssdkd_env.engine.config import EngineConfig, make_config
from ssdkd_env.errors import UserError
from ssdkd_env.methods import METHODS, ROUND_LOOPS
from ssdkd_env.observation import ObsField
from ssdkd_env.replay import EVICTION_RULES, MEMORIES, NO_MEMORY, BaseMemory
from ssdkd_env.synthesis import SYNTHESIZERS


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
"""Every round decision an action may hold, in the canonical order (a method's Box keeps this order)."""
ACTION_SIZE = len(ACTION_FIELDS)
ACTION_NAMES = tuple(f.name for f in ACTION_FIELDS)


def action_fields(config: EngineConfig) -> tuple[ActionField, ...]:
    """The round decisions a run of ``config`` acts on, as its round loop, synthesizer and memory
    declare them, in the canonical order."""
    memory = None if config.memory == NO_MEMORY else MEMORIES.get(config.memory)
    loop = ROUND_LOOPS.get(config.round_loop)
    declared = set(loop.action_fields(config.options("round_loop"), SYNTHESIZERS.get(config.synthesizer), memory))
    unknown = declared - set(ACTION_NAMES)
    if unknown:
        raise ValueError(f"components of method '{config.method}' declare unknown action fields: {sorted(unknown)}")
    return tuple(f for f in ACTION_FIELDS if f.name in declared)


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


def observation_fields(num_classes: int, memory: type[BaseMemory], action_size: int = ACTION_SIZE) -> list[ObsField]:
    """Every block of the observation, in order: the episode's progress, the memory's fields, the
    round's measures of the student, the previous action (``action_size`` dimensions)."""
    previous = ObsField(
        "previous_action", action_size, -1, 1, "the previous action in its canonical [-1, 1] form (0 at reset)"
    )
    return [PROGRESS_FIELD, *memory.observation_fields(num_classes), *METRIC_FIELDS, previous]


def action_space(fields: Sequence[ActionField]) -> spaces.Box:
    return spaces.Box(-1.0, 1.0, shape=(len(fields),), dtype=np.float32)


def action_table() -> str:
    """The catalogue of round decisions for the documentation (docs/environment.md)."""
    lines = ["| name | range | meaning |", "|---|---|---|"]
    for f in ACTION_FIELDS:
        lines.append(f"| `{f.name}` | [{f.low:g}, {f.high:g}] | {f.meaning} |")
    return "\n".join(lines)


def method_action_table(task: str = "digits") -> str:
    """Per method with a memory (the environment's methods): the index of each decision in its
    Box, or a dash where the method does not act on it."""
    lines = [
        "| method | dims | " + " | ".join(f"`{f.name}`" for f in ACTION_FIELDS) + " |",
        "|---|---|" + "---|" * ACTION_SIZE,
    ]
    for name in METHODS.names():
        config = make_config(task, name)
        if config.memory == NO_MEMORY:
            continue
        index = {f.name: i for i, f in enumerate(action_fields(config))}
        cells = [str(index[f.name]) if f.name in index else "—" for f in ACTION_FIELDS]
        lines.append(f"| `{name}` | {len(index)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


class ActionMapper:
    """Maps canonical [-1, 1]^n vectors over ``fields`` to round decisions and back; the decisions
    outside ``fields`` are ``configured``'s."""

    def __init__(self, fields: Sequence[ActionField], configured: RoundAction) -> None:
        self.fields = tuple(fields)
        self.names = tuple(f.name for f in self.fields)
        self.configured = configured
        self.default_budget = configured.synth_budget

    def canonical(self, action: Any) -> np.ndarray:
        """``action`` as a float64 vector in [-1, 1]^n: clipped, or :class:`InvalidAction` when a value is
        not a finite number (the module's rule)."""
        return np.clip(finite_values(action, self.names), -1.0, 1.0)

    def decode(self, unit: Any) -> RoundAction:
        """The [-1, 1]^n vector -> a :class:`RoundAction` (through :meth:`canonical`)."""
        unit = self.canonical(unit)
        chosen: dict[str, Any] = {}
        for f, u in zip(self.fields, unit, strict=True):
            # rounded to 1e-6 so that configured values (0.6, 0.1, ...) survive encode -> decode exactly
            value = round(f.low + (float(u) + 1.0) / 2.0 * (f.high - f.low), 6)
            if f.name == "eviction":
                third = int(np.floor((float(u) + 1.0) / 2.0 * len(EVICTION_RULES)))
                chosen[f.name] = EVICTION_RULES[min(len(EVICTION_RULES) - 1, third)]
            elif f.name == "synth_budget":
                chosen[f.name] = max(1, int(round(value * self.default_budget)))
            else:
                chosen[f.name] = value
        return dataclasses.replace(self.configured, **chosen)

    def encode(self, action: RoundAction) -> np.ndarray:
        """A :class:`RoundAction` -> the [-1, 1]^n vector that decodes to it in the dimensions of
        ``fields`` (values outside a dimension's range are clipped to it)."""
        unit = np.zeros(len(self.fields))
        for i, f in enumerate(self.fields):
            if f.name == "eviction":
                unit[i] = -1.0 + (2 * EVICTION_RULES.index(action.eviction) + 1) / len(EVICTION_RULES)
            else:
                value = getattr(action, f.name)
                if f.name == "synth_budget":
                    value = value / self.default_budget
                unit[i] = np.clip(2.0 * (value - f.low) / (f.high - f.low) - 1.0, -1.0, 1.0)
        return unit


class BinnedActions(gym.ActionWrapper):
    """Evenly spaced points of [-1, 1] per canonical dimension of the environment (eviction: its 3 rules)."""

    def __init__(self, env: gym.Env, bins: int = 3) -> None:
        super().__init__(env)
        if bins < 2:
            raise ValueError("bins must be at least 2")
        fields: tuple[ActionField, ...] = env.unwrapped.action_fields  # type: ignore[attr-defined]
        self.names = tuple(f.name for f in fields)
        self.bins = [len(EVICTION_RULES) if f.name == "eviction" else bins for f in fields]

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
        values = finite_values(action, self.names)
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
