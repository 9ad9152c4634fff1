"""Action forms: which one an environment uses, and mapping [-1, 1]^6 vectors into it."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from ssdkd_env.env import DistillationEnv
from ssdkd_env.errors import UserError


def action_mode_of(env: gym.Env) -> str:
    """The action form of ``env``: ``continuous`` (Box), ``multi_discrete`` or ``discrete``."""
    space = env.action_space
    if isinstance(space, spaces.Box):
        return "continuous"
    if isinstance(space, spaces.MultiDiscrete):
        return "multi_discrete"
    if isinstance(space, spaces.Discrete):
        return "discrete"
    raise UserError(f"unsupported action space {space}; agents need a Box, MultiDiscrete or Discrete space")


def distillation_env(env: gym.Env) -> DistillationEnv:
    """The :class:`DistillationEnv` under any wrappers (agents that build SSD-KD decisions need it)."""
    base = env.unwrapped
    if not isinstance(base, DistillationEnv):
        raise UserError(f"this agent needs a DistillationEnv, got {type(base).__name__}")
    return base


def unit_to_action(env: DistillationEnv, unit: np.ndarray) -> np.ndarray | int:
    """A [-1, 1]^6 vector -> the action in ``env``'s form (the discrete forms snap to the nearest bin)."""
    unit = np.clip(np.asarray(unit, dtype=np.float64).reshape(-1), -1.0, 1.0)
    mode = env.config.action_mode
    if mode == "continuous":
        return unit.astype(np.float32)
    bins = env.mapper.bins
    idx = [int(round((u + 1.0) / 2.0 * (n - 1))) for u, n in zip(unit, bins, strict=True)]
    if mode == "multi_discrete":
        return np.array(idx, dtype=np.int64)
    return int(np.ravel_multi_index(idx, bins))
