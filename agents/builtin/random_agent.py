"""Uniformly random actions."""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np

from agents.common.stepping import SteppingAgent
from agents.registry import register_agent


@register_agent
class RandomAgent(SteppingAgent):
    """Samples the action space uniformly (seeded); ``deterministic`` is ignored."""

    name = "random"
    learns = False

    def __init__(self, env: gym.Env, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        super().__init__(env, seed, device, **hyper)
        self._space = copy.deepcopy(env.action_space)
        self._space.seed(self.seed)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray | int:
        action = self._space.sample()
        return int(action) if self.action_mode == "discrete" else action

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self._space.np_random.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._space.np_random.bit_generator.state = state["rng"]
