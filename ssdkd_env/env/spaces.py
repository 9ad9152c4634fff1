"""Observation layout and action mapping of the distillation environment, documented as data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from gymnasium import spaces

from ssdkd_env.distillation import ProbeMetrics
from ssdkd_env.engine import RoundAction
from ssdkd_env.engine.engine import DistillationEngine, RoundMetrics
from ssdkd_env.replay import EVICTION_RULES


def squash(x: float) -> float:
    """Map a non-negative unbounded quantity (a KL, a priority) to [0, 1): x / (1 + x)."""
    x = max(0.0, float(x))
    return x / (1.0 + x) if np.isfinite(x) else 1.0


@dataclass(frozen=True)
class ObsField:
    name: str
    size: int  # 1, or the number of classes K, or the number of action dimensions
    low: float
    high: float
    meaning: str


@dataclass(frozen=True)
class ActionField:
    name: str
    low: float
    high: float
    meaning: str


ACTION_FIELDS: tuple[ActionField, ...] = (
    ActionField("alpha", 0.0, 2.0, "priority exponent: P(i) ~ p_i^alpha (0 = uniform replay)"),
    ActionField("beta", 0.0, 1.0, "importance-weight exponent: w_i = (N P(i))^-beta"),
    ActionField("phi_mix", 0.0, 1.0, "phi's balance: diversity strength 2*mix, difficulty gamma 4*(1-mix)"),
    ActionField("replace_fraction", 0.0, 0.5, "share of the buffer replaced by new samples this round"),
    ActionField("eviction", 0.0, 2.0, "eviction rule: 0 lowest priority, 1 oldest, 2 most over-represented class"),
    ActionField("synth_budget", 0.25, 2.0, "new synthetic samples, as a multiple of the task's default budget"),
)
DIVERSITY_MAX, DIFFICULTY_MAX = 2.0, 4.0


def observation_fields(num_classes: int) -> list[ObsField]:
    """Every element of the observation, in order."""
    k = num_classes
    return [
        ObsField("progress", 1, 0, 1, "rounds done / rounds in the episode"),
        ObsField("buffer_fill", 1, 0, 1, "occupied slots / buffer capacity"),
        ObsField("class_share", k, 0, 1, "share of the buffer per class (teacher's prediction)"),
        ObsField("class_priority", k, 0, 1, "mean priority per class, squashed x/(1+x)"),
        ObsField("priority_mean", 1, 0, 1, "mean priority (teacher–student KL), squashed"),
        ObsField("priority_std", 1, 0, 1, "priority standard deviation, squashed"),
        ObsField("priority_max", 1, 0, 1, "largest priority, squashed"),
        ObsField("age_mean", 1, 0, 1, "mean sample age in rounds / rounds in the episode"),
        ObsField("class_entropy", 1, 0, 1, "entropy of the class shares / log K"),
        ObsField("teacher_confidence", 1, 0, 1, "mean max-softmax of the teacher on the buffer"),
        ObsField("batch_kl", 1, 0, 1, "student–teacher KL on the round's training batches, squashed"),
        ObsField("batch_agreement", 1, 0, 1, "student–teacher top-1 agreement on the round's batches"),
        ObsField("probe_kl", 1, 0, 1, "student–teacher KL on the held-out synthetic probe, squashed"),
        ObsField("probe_agreement", 1, 0, 1, "student–teacher top-1 agreement on the probe"),
        ObsField("previous_action", len(ACTION_FIELDS), -1, 1, "the previous action in [-1, 1] form (0 at reset)"),
    ]


def observation_space(num_classes: int) -> spaces.Box:
    fields = observation_fields(num_classes)
    low = np.concatenate([np.full(f.size, f.low, np.float32) for f in fields])
    high = np.concatenate([np.full(f.size, f.high, np.float32) for f in fields])
    return spaces.Box(low, high, dtype=np.float32)


def observe(
    engine: DistillationEngine,
    metrics: RoundMetrics | None,
    previous_action: np.ndarray,
    probe: ProbeMetrics | None = None,
) -> np.ndarray:
    """The observation after a round (``metrics=None`` before any round; ``probe``: an existing
    measurement of the probe then, else it is measured)."""
    stats = engine.buffer.stats()
    rounds = max(1, engine.config.rounds)
    if metrics is None:
        probe = probe or engine.probe.measure(engine.delivered_student)
        batch_kl, batch_agreement, probe_kl, probe_agreement = 0.0, 0.0, probe.kl, probe.agreement
    else:
        batch_kl, batch_agreement = metrics.batch_kl, metrics.batch_agreement
        probe_kl, probe_agreement = metrics.probe_kl, metrics.probe_agreement
    parts = [
        [engine.round / rounds, stats.fill],
        stats.class_share.cpu().numpy(),
        (stats.class_priority / (1 + stats.class_priority)).cpu().numpy(),
        [
            squash(stats.priority_mean),
            squash(stats.priority_std),
            squash(stats.priority_max),
            min(1.0, stats.age_mean / rounds),
            stats.class_entropy,
            stats.teacher_confidence,
            squash(batch_kl),
            batch_agreement,
            squash(probe_kl),
            probe_agreement,
        ],
        previous_action,
    ]
    obs = np.concatenate([np.asarray(p, dtype=np.float32).ravel() for p in parts])
    return np.clip(np.nan_to_num(obs, nan=0.0, posinf=1.0, neginf=0.0), -1.0, 1.0).astype(np.float32)


class ActionMapper:
    """Maps [-1, 1]^6 vectors (the continuous form) to round decisions and back.

    The discrete forms pick from ``bins`` evenly spaced points of [-1, 1] per dimension
    (eviction always has its 3 rules); the single-``Discrete`` form enumerates their product.
    """

    def __init__(self, default_budget: int, bins: int = 3) -> None:
        self.default_budget = default_budget
        self.bins = [len(EVICTION_RULES) if f.name == "eviction" else bins for f in ACTION_FIELDS]

    def space(self, mode: str) -> spaces.Space:
        if mode == "continuous":
            return spaces.Box(-1.0, 1.0, shape=(len(ACTION_FIELDS),), dtype=np.float32)
        if mode == "multi_discrete":
            return spaces.MultiDiscrete(self.bins)
        if mode == "discrete":
            return spaces.Discrete(int(np.prod(self.bins)))
        raise ValueError(f"unknown action mode '{mode}'; valid: continuous, multi_discrete, discrete")

    def to_unit(self, action: np.ndarray | int, mode: str) -> np.ndarray:
        """Any action form -> the [-1, 1]^6 vector."""
        if mode == "continuous":
            return np.clip(np.asarray(action, dtype=np.float64).reshape(-1), -1.0, 1.0)
        if mode == "discrete":
            action = np.array(np.unravel_index(int(action), self.bins))
        idx = np.asarray(action, dtype=np.int64).reshape(-1)
        return np.array([-1.0 + 2.0 * i / (n - 1) for i, n in zip(idx, self.bins, strict=True)])

    def decode(self, unit: np.ndarray) -> RoundAction:
        """The [-1, 1]^6 vector -> a :class:`RoundAction`."""
        # rounded to 1e-6 so that configured values (0.6, 0.1, ...) survive encode -> decode exactly
        v = {
            f.name: round(f.low + (float(u) + 1.0) / 2.0 * (f.high - f.low), 6)
            for f, u in zip(ACTION_FIELDS, unit, strict=True)
        }
        rule = EVICTION_RULES[min(len(EVICTION_RULES) - 1, int(np.floor((float(unit[4]) + 1.0) / 2.0 * 3.0)))]
        return RoundAction(
            alpha=v["alpha"],
            beta=v["beta"],
            diversity=DIVERSITY_MAX * v["phi_mix"],
            difficulty=DIFFICULTY_MAX * (1.0 - v["phi_mix"]),
            replace_fraction=v["replace_fraction"],
            eviction=rule,
            synth_budget=max(1, int(round(v["synth_budget"] * self.default_budget))),
        )

    def encode(self, action: RoundAction) -> np.ndarray:
        """A :class:`RoundAction` -> the [-1, 1]^6 vector that decodes to it (phi from diversity)."""

        def unit(name: str, value: float) -> float:
            f = next(f for f in ACTION_FIELDS if f.name == name)
            return float(np.clip(2.0 * (value - f.low) / (f.high - f.low) - 1.0, -1.0, 1.0))

        rule_index = EVICTION_RULES.index(action.eviction)
        return np.array(
            [
                unit("alpha", action.alpha),
                unit("beta", action.beta),
                unit("phi_mix", action.diversity / DIVERSITY_MAX),
                unit("replace_fraction", action.replace_fraction),
                -1.0 + (2 * rule_index + 1) / 3.0,
                unit("synth_budget", action.synth_budget / self.default_budget),
            ]
        )
