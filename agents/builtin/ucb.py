"""UCB1 bandit over a small curated set of decisions around SSD-KD's defaults."""

from __future__ import annotations

import math
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.actions import distillation_env, unit_to_action
from agents.common.stepping import SteppingAgent, Transition
from agents.registry import register_agent
from ssdkd_env.errors import UserError
from ssdkd_env.replay import EVICTION_RULES

# Unit values tried per varied decision: the low end, middle and high end of its range, and each eviction rule.
VARIED: dict[str, tuple[float, ...]] = {
    "alpha": (-1.0, 0.0, 1.0),
    "diversity": (-1.0, 0.0, 1.0),
    "difficulty": (-1.0, 0.0, 1.0),
    "replace_fraction": (-1.0, 0.0, 1.0),
    "eviction": tuple(-1.0 + (2 * i + 1) / 3.0 for i in range(len(EVICTION_RULES))),
}


def curated_arms(env: gym.Env) -> list[np.ndarray | int]:
    """SSD-KD's decision first, then it with one of alpha, diversity, difficulty, replace_fraction or
    eviction changed (those the method acts on).

    Arms are built as vectors of the method's canonical [-1, 1] box and mapped to the env's form;
    duplicates (after snapping to the discrete forms' bins) are dropped.
    """
    base_env = distillation_env(env)
    base = base_env.default_action().astype(np.float64)
    index = {name: i for i, name in enumerate(base_env.action_names)}
    units = [base]
    for field, values in VARIED.items():
        for value in values if field in index else ():
            unit = base.copy()
            unit[index[field]] = value
            units.append(unit)
    arms: list[np.ndarray | int] = []
    seen: set[tuple[float, ...]] = set()
    for unit in units:
        arm = unit_to_action(env, unit)
        key = tuple(np.round(np.ravel(arm).astype(np.float64), 6))
        if key not in seen:
            seen.add(key)
            arms.append(arm)
    return arms


@register_agent
class UCBAgent(SteppingAgent):
    """UCB1 over :func:`curated_arms`; an arm's reward is the per-step reward.

    Plays every arm once (in order), then the arm maximising mean + exploration * sqrt(ln t / n).
    Per-round rewards are agreement gains (mostly well below 0.1), hence the small default constant.
    Deterministic actions pick the best mean so far.
    """

    name = "ucb"
    learns = True
    action_modes = ("discrete", "multi_discrete", "continuous")
    defaults = {"exploration": 0.05}

    def __init__(self, env: gym.Env, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        super().__init__(env, seed, device, **hyper)
        self.arms = curated_arms(env)
        self.counts = np.zeros(len(self.arms), dtype=np.int64)
        self.sums = np.zeros(len(self.arms), dtype=np.float64)
        self._arm = 0

    @property
    def means(self) -> np.ndarray:
        """Mean reward per arm (0 for arms not played yet)."""
        return np.divide(self.sums, self.counts, out=np.zeros_like(self.sums), where=self.counts > 0)

    def select(self, explore: bool) -> int:
        """The arm to play: UCB1 when ``explore``, else the best mean so far."""
        if not explore:
            means = np.where(self.counts > 0, self.means, -np.inf)
            return int(np.argmax(means)) if self.counts.any() else 0
        untried = np.flatnonzero(self.counts == 0)
        if untried.size:
            return int(untried[0])
        bonus = self.hyper["exploration"] * np.sqrt(math.log(self.counts.sum()) / self.counts)
        return int(np.argmax(self.means + bonus))

    def _arm_action(self, arm: int) -> np.ndarray | int:
        action = self.arms[arm]
        return action if isinstance(action, int) else action.copy()

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray | int:
        return self._arm_action(self.select(explore=not deterministic))

    def explore(self, obs: np.ndarray) -> np.ndarray | int:
        self._arm = self.select(explore=True)
        return self._arm_action(self._arm)

    def observe(self, step: Transition) -> dict[str, float]:
        self.counts[self._arm] += 1
        self.sums[self._arm] += step.reward
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.tolist(), "sums": self.sums.tolist()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["counts"]) != len(self.arms):
            raise UserError(
                f"ucb checkpoint has {len(state['counts'])} arms but this env gives {len(self.arms)} "
                "(was it saved with another action_mode or action_bins?)"
            )
        self.counts = np.asarray(state["counts"], dtype=np.int64)
        self.sums = np.asarray(state["sums"], dtype=np.float64)
