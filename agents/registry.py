"""The agent registry: names -> agent classes."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import gymnasium as gym
from stable_baselines3.common.vec_env import VecEnv

from agents.base import Agent
from agents.common.io import read_meta
from ssdkd_env.errors import unknown_name

AGENTS: dict[str, type[Agent]] = {}

A = TypeVar("A", bound=type[Agent])


def register_agent(cls: A) -> A:
    """Class decorator: make ``cls`` available as ``make_agent(cls.name, ...)``."""
    existing = AGENTS.get(cls.name)
    if existing is not None and existing is not cls:
        raise ValueError(f"agent name '{cls.name}' is already registered by {existing.__qualname__}")
    AGENTS[cls.name] = cls
    return cls


def agent_class(name: str) -> type[Agent]:
    """The class registered as ``name``."""
    if name not in AGENTS:
        raise unknown_name("agent", name, AGENTS)
    return AGENTS[name]


def make_agent(name: str, env: gym.Env | VecEnv, seed: int = 0, device: str = "cpu", **hyper: Any) -> Agent:
    """Build the agent ``name`` on ``env``."""
    return agent_class(name)(env, seed=seed, device=device, **hyper)


def load_agent(path: Path, env: gym.Env | VecEnv, device: str = "cpu") -> Agent:
    """Load any saved agent (its name is read from the checkpoint)."""
    return agent_class(read_meta(Path(path)).get("agent", "")).load(path, env, device)


def list_agents() -> list[str]:
    """Registered agent names, sorted."""
    return sorted(AGENTS)


def preferred_action_mode(name: str) -> str:
    """The action form the environment should be built with for agent ``name``."""
    return agent_class(name).action_modes[0]
