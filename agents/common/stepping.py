"""Agents whose step loop runs here, one environment step at a time (everything but SB3)."""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from agents.base import Agent, Callback
from ssdkd_env.common.io import load_data_file
from ssdkd_env.errors import UserError

STATE_FILE = "state.pt"


@dataclass
class Transition:
    """One environment step as the agent saw it."""

    obs: np.ndarray
    action: np.ndarray | int
    reward: float
    next_obs: np.ndarray
    terminated: bool
    truncated: bool

    @property
    def done(self) -> bool:
        return self.terminated or self.truncated


class SteppingAgent(Agent):
    """Runs the learn loop; subclasses choose actions (:meth:`explore`) and learn (:meth:`observe`).

    Episode ``k`` (counted over the agent's life) is reset with seed ``seed + k``. Learning state
    lives in :meth:`state_dict`, saved as ``state.pt``; an unfinished episode is not saved.
    """

    env: gym.Env

    def __init__(self, env: gym.Env, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        if not isinstance(env, gym.Env):
            raise UserError(f"agent '{self.name}' plays one environment at a time, got {type(env).__name__}")
        super().__init__(env, seed, device, **hyper)
        self._obs: np.ndarray | None = None  # None: the next step starts an episode

    def learn(self, total_steps: int, callback: Callback | None = None) -> None:
        while self.num_steps < total_steps:
            if self._obs is None:
                self._obs, _ = self.env.reset(seed=self.seed + self.num_episodes)
            action = self.explore(self._obs)
            next_obs, reward, terminated, truncated, info = self.env.step(action)
            step = Transition(self._obs, action, float(reward), next_obs, bool(terminated), bool(truncated))
            losses = self.observe(step)
            self._obs = None if step.done else next_obs
            record = self._track_step(step.reward, step.done, info, losses)
            if callback is not None and callback(record) is False:
                return

    def explore(self, obs: np.ndarray) -> np.ndarray | int:
        """The action to take while learning (default: a stochastic :meth:`act`)."""
        return self.act(obs, deterministic=False)

    def observe(self, step: Transition) -> dict[str, float]:
        """Learn from a step; return losses when the agent updated (default: nothing to learn)."""
        return {}

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Learned state (tensors and plain Python values only)."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""

    def _save_state(self, folder: Path) -> None:
        torch.save(self.state_dict(), folder / STATE_FILE)

    def _load_state(self, folder: Path) -> None:
        """Read ``state.pt`` as data only (tensors and plain values): a pickle of any other object is
        refused before it runs; a refused, damaged or mismatched file is a one-line :class:`UserError`."""
        file, fix = folder / STATE_FILE, "save the agent again, or start the run afresh"
        state = load_data_file(file, f"state of agent '{self.name}'", fix)
        try:
            self.load_state_dict(state)
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            reason = " ".join(str(exc).split())
            raise UserError(
                f"{file} does not fit agent '{self.name}' ({type(exc).__name__}: {reason}); {fix}"
            ) from None
