"""The interface every agent implements."""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv

from agents.common.actions import action_mode_of
from agents.common.io import META_FILE, atomic_folder, read_meta
from ssdkd_env.env import ACTION_MODES
from ssdkd_env.errors import UserError

Callback = Callable[[dict[str, Any]], Any]
"""Called with each step's record; returning ``False`` (not merely falsy) stops learning."""


class Agent(ABC):
    """An agent acting in an environment.

    Subclasses set ``name``, ``learns``, ``action_modes`` (the action forms they support, the
    preferred first) and ``defaults`` (their hyper-parameters), and register with
    :func:`agents.registry.register_agent`.

    ``learn(total_steps)`` runs until ``num_steps == total_steps``; ``num_steps`` is saved, so a
    loaded agent continues where its checkpoint left off, with the next episode (an unfinished one
    is not saved). Saved at an episode's end, the built-in agents and the on-policy SB3 agents go on
    exactly as if they had not stopped (:class:`agents.sb3.SB3Agent` says when).
    """

    name: ClassVar[str]
    learns: ClassVar[bool]
    action_modes: ClassVar[tuple[str, ...]] = ACTION_MODES
    defaults: ClassVar[dict[str, Any]] = {}

    def __init__(self, env: gym.Env | VecEnv, seed: int = 0, device: str = "cpu", **hyper: Any) -> None:
        mode = action_mode_of(env)
        if mode not in self.action_modes:
            raise UserError(
                f"agent '{self.name}' needs an environment with action_mode in {', '.join(self.action_modes)}; "
                f"got '{mode}' (build it with action_mode='{self.action_modes[0]}')"
            )
        unknown = set(hyper) - self.hyper_names()
        if unknown:
            raise UserError(
                f"unknown hyper-parameters for agent '{self.name}': {', '.join(sorted(unknown))}; "
                f"valid: {', '.join(sorted(self.hyper_names())) or 'none'}"
            )
        self.env: Any = env  # a VecEnv only for the agents that accept one (SB3); SteppingAgent narrows it
        self.seed = int(seed)
        self.device = device
        self.action_mode = mode
        self.hyper: dict[str, Any] = {**self.defaults, **hyper}
        self.num_steps = 0  # environment steps learned so far
        self.num_episodes = 0  # episodes completed while learning
        self._open_episodes: dict[int, tuple[float, int]] = {}  # per environment of a vector: return, length

    @classmethod
    def hyper_names(cls) -> set[str]:
        """The hyper-parameters this agent accepts."""
        return set(cls.defaults)

    @classmethod
    def hyper_types(cls) -> dict[str, Any]:
        """The type each hyper-parameter takes, as an annotation (``Any``: not checked): by default
        the type of its default (see :func:`agents.registry.check_hyper`)."""
        return {name: Any if value is None else type(value) for name, value in cls.defaults.items()}

    @abstractmethod
    def learn(self, total_steps: int, callback: Callback | None = None) -> None:
        """Step the environment (learning, if the agent learns) until ``num_steps == total_steps``.

        ``callback(record)`` runs after every step; the record holds the env ``info`` plus ``step``,
        ``episode``, ``reward``, ``done``, ``episode_return``/``episode_length`` at an episode's end
        and ``losses`` (dict of floats) when the agent updated.
        """

    @abstractmethod
    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray | int:
        """The action for ``obs``, in the environment's form."""

    @abstractmethod
    def _save_state(self, folder: Path) -> None:
        """Write the agent's learned state into ``folder``."""

    @abstractmethod
    def _load_state(self, folder: Path) -> None:
        """Read back what :meth:`_save_state` wrote."""

    def save(self, path: Path) -> None:
        """Save to the folder ``path`` (replaced atomically): ``agent.json`` plus the agent's state."""
        meta = {
            "agent": self.name,
            "seed": self.seed,
            "num_steps": self.num_steps,
            "num_episodes": self.num_episodes,
            "hyper": self.hyper,
        }
        try:
            text = json.dumps(meta, indent=2) + "\n"
        except TypeError as exc:
            raise UserError(f"cannot save agent '{self.name}': hyper-parameters must be JSON values ({exc})") from None
        with atomic_folder(Path(path)) as tmp:
            (tmp / META_FILE).write_text(text)
            self._save_state(tmp)

    @classmethod
    def load(cls, path: Path, env: gym.Env | VecEnv, device: str = "cpu") -> Agent:
        """Rebuild an agent saved by :meth:`save` on ``env`` (see also :func:`agents.load_agent`)."""
        path = Path(path)
        meta = read_meta(path)
        if meta.get("agent") != getattr(cls, "name", None):
            raise UserError(
                f"{path} holds agent '{meta.get('agent')}', not '{getattr(cls, 'name', cls.__name__)}'; "
                "use agents.load_agent to load any agent"
            )
        agent = cls(env, seed=meta["seed"], device=device, **meta["hyper"])
        agent.num_steps = int(meta["num_steps"])
        agent.num_episodes = int(meta["num_episodes"])
        agent._load_state(path)
        return agent

    def _track_step(
        self, reward: float, done: bool, info: dict[str, Any], losses: dict[str, float], env_index: int = 0
    ) -> dict[str, Any]:
        """Count one learning step (of environment ``env_index`` of a vector) and build its callback record."""
        self.num_steps += 1
        episode_return, episode_length = self._open_episodes.get(env_index, (0.0, 0))
        episode_return, episode_length = episode_return + reward, episode_length + 1
        record = {**info, "step": self.num_steps, "episode": self.num_episodes, "reward": reward, "done": done}
        record["env_index"] = env_index
        if losses:
            record["losses"] = losses
        if done:
            record["episode_return"] = episode_return
            record["episode_length"] = episode_length
            self.num_episodes += 1
            self._open_episodes.pop(env_index, None)
        else:
            self._open_episodes[env_index] = (episode_return, episode_length)
        return record
