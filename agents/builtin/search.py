"""The best constant action, found by random search with a learner's budget of environment steps.

Learned data-selection policies are judged against this baseline: a policy that cannot beat the
best of a few constant actions, tried with the same number of environment steps, has learned
nothing that a search over the fixed rules would not have found.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.actions import distillation_env, unit_to_action
from agents.common.stepping import SteppingAgent, Transition
from agents.registry import register_agent


@register_agent
class ConstantSearchAgent(SteppingAgent):
    """Random search over constant actions: every ``episodes_per_candidate`` learning episodes
    play one candidate, drawn uniformly from the method's canonical [-1, 1] box (seeded), and score it by
    its mean return; ``act`` takes the best candidate so far.

    With ``total_steps`` of learning it tries ``total_steps / (rounds * episodes_per_candidate)``
    candidates: exactly the environment steps a learner trained with ``total_steps`` used.
    """

    name = "search"
    learns = True
    defaults = {"episodes_per_candidate": 1}

    def __init__(self, env: gym.Env, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        super().__init__(env, seed, device, **hyper)
        if int(self.hyper["episodes_per_candidate"]) < 1:
            raise ValueError("episodes_per_candidate must be at least 1")
        self._rng = np.random.default_rng(self.seed)
        self.candidates: list[list[float]] = []  # canonical actions tried, in order
        self.returns: list[list[float]] = []  # the returns of each candidate's finished episodes
        self._episode_return = 0.0
        self._next_candidate()

    def _next_candidate(self) -> None:
        width = len(distillation_env(self.env).action_names)
        self.candidates.append([float(u) for u in self._rng.uniform(-1.0, 1.0, width)])
        self.returns.append([])

    def best_unit(self) -> np.ndarray:
        """The canonical action of the best scored candidate (the current one before any is scored)."""
        scored = [i for i, r in enumerate(self.returns) if r]
        if not scored:
            return np.asarray(self.candidates[-1])
        best = max(scored, key=lambda i: float(np.mean(self.returns[i])))
        return np.asarray(self.candidates[best])

    def explore(self, obs: np.ndarray) -> np.ndarray | int:
        return unit_to_action(self.env, np.asarray(self.candidates[-1]))

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray | int:
        return unit_to_action(self.env, self.best_unit())

    def observe(self, step: Transition) -> dict[str, float]:
        self._episode_return += step.reward
        if not step.done:
            return {}
        self.returns[-1].append(self._episode_return)
        self._episode_return = 0.0
        scored = {"candidate_return": float(np.mean(self.returns[-1]))}
        if len(self.returns[-1]) >= int(self.hyper["episodes_per_candidate"]):
            self._next_candidate()
        scored["best_return"] = max(float(np.mean(r)) for r in self.returns if r)
        scored["candidates"] = float(sum(1 for r in self.returns if r))
        return scored

    def state_dict(self) -> dict[str, Any]:
        return {
            "rng": self._rng.bit_generator.state,
            "candidates": self.candidates,
            "returns": self.returns,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._rng.bit_generator.state = state["rng"]
        self.candidates = [list(c) for c in state["candidates"]]
        self.returns = [list(r) for r in state["returns"]]
        self._episode_return = 0.0
