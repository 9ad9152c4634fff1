"""LinUCB: a contextual bandit over a discrete set of decisions, the observation as context."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.builtin.ucb import curated_arms
from agents.common.stepping import SteppingAgent, Transition
from agents.registry import register_agent
from ssdkd_env.errors import UserError

ARM_SETS = ("curated", "all")


@register_agent
class LinUCBAgent(SteppingAgent):
    """LinUCB with disjoint arms (Li et al., WWW 2010): per arm a ridge regression of the round's reward
    on the observation; plays the highest prediction plus ``exploration`` times its confidence width.

    Li, Chu, Langford and Schapire, "A contextual-bandit approach to personalized news article
    recommendation", WWW 2010, Algorithm 1: with context x = (observation, 1), A_a = ridge I + sum x x'
    and b_a = sum reward x over the steps arm a was played, and theta_a = A_a^-1 b_a, it plays
    argmax_a theta_a.x + exploration sqrt(x' A_a^-1 x).

    ``arms``: ``curated`` (``ucb``'s arms: SSD-KD's decision and one-decision changes of it) or
    ``all`` (every action of the discrete form, the product of its bins; needs ``action_mode="discrete"``).
    ``ridge`` is the regression's prior precision (A_a starts at ridge I). Deterministic actions
    take the best predicted reward. Updates are rank-one (Sherman-Morrison) on A_a^-1; scoring is
    vectorised over arms.
    """

    name = "linucb"
    learns = True
    action_modes = ("discrete", "multi_discrete", "continuous")
    defaults = {"exploration": 0.05, "ridge": 1.0, "arms": "curated"}

    def __init__(self, env: gym.Env, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        super().__init__(env, seed, device, **hyper)
        if self.hyper["arms"] not in ARM_SETS:
            raise UserError(f"linucb: arms must be one of {', '.join(ARM_SETS)}; got {self.hyper['arms']!r}")
        if not float(self.hyper["ridge"]) > 0:
            raise UserError(f"linucb: ridge must be > 0; got {self.hyper['ridge']}")
        obs_space = env.observation_space
        if not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
            raise UserError("linucb needs a flat Box observation space (its context)")
        self.arms = self._build_arms(env)
        dim = obs_space.shape[0] + 1
        self.a_inv = np.tile(np.eye(dim) / float(self.hyper["ridge"]), (len(self.arms), 1, 1))  # A_a^-1 per arm
        self.b = np.zeros((len(self.arms), dim))  # sum of reward * x per arm
        self._arm = 0
        self._context = np.zeros(dim)

    def _build_arms(self, env: gym.Env) -> list[np.ndarray | int]:
        if self.hyper["arms"] == "curated":
            return curated_arms(env)
        space = env.action_space
        if not isinstance(space, gym.spaces.Discrete):
            raise UserError("linucb with arms='all' needs an environment with action_mode='discrete'")
        return list(range(int(space.n)))

    @staticmethod
    def context(obs: np.ndarray) -> np.ndarray:
        """The observation with a constant 1 appended (the per-arm intercept)."""
        return np.append(np.asarray(obs, dtype=np.float64).reshape(-1), 1.0)

    def scores(self, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per arm: the predicted reward theta_a.x and the confidence width sqrt(x' A_a^-1 x)."""
        x = self.context(obs)
        theta = np.einsum("kij,kj->ki", self.a_inv, self.b)
        width = np.sqrt(np.maximum(np.einsum("i,kij,j->k", x, self.a_inv, x), 0.0))
        return theta @ x, width

    def select(self, obs: np.ndarray, explore: bool) -> int:
        """The arm to play: the upper confidence bound when ``explore``, else the best prediction."""
        mean, width = self.scores(obs)
        return int(np.argmax(mean + self.hyper["exploration"] * width if explore else mean))

    def _arm_action(self, arm: int) -> np.ndarray | int:
        action = self.arms[arm]
        return action if isinstance(action, int) else action.copy()

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray | int:
        return self._arm_action(self.select(obs, explore=not deterministic))

    def explore(self, obs: np.ndarray) -> np.ndarray | int:
        self._arm, self._context = self.select(obs, explore=True), self.context(obs)
        return self._arm_action(self._arm)

    def observe(self, step: Transition) -> dict[str, float]:
        x, a_inv = self._context, self.a_inv[self._arm]
        ax = a_inv @ x
        a_inv -= np.outer(ax, ax) / (1.0 + x @ ax)
        self.b[self._arm] += step.reward * x
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {"a_inv": torch.from_numpy(self.a_inv.copy()), "b": torch.from_numpy(self.b.copy())}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        a_inv, b = torch.as_tensor(state["a_inv"]).numpy(), torch.as_tensor(state["b"]).numpy()
        if a_inv.shape != self.a_inv.shape or b.shape != self.b.shape:
            raise ValueError(
                f"linucb checkpoint has {a_inv.shape[0]} arms x {b.shape[-1]} context dimensions, this env gives "
                f"{self.b.shape[0]} x {self.b.shape[1]} (was it saved with another action_mode, action_bins or task?)"
            )
        self.a_inv, self.b = a_inv.astype(np.float64), b.astype(np.float64)
