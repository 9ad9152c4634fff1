"""Action forms: which one an environment uses, and mapping canonical [-1, 1]^n vectors (one dimension per
decision the method acts on, ``DistillationEnv.action_fields``) into it."""

from __future__ import annotations

import dataclasses

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.vec_env import VecEnv

from ssdkd_env.env import BinnedActions, DistillationEnv
from ssdkd_env.errors import UserError


def action_mode_of(env: gym.Env | VecEnv) -> str:
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


def binned_form(env: gym.Env) -> BinnedActions | None:
    """The discrete-form wrapper in ``env``'s wrapper chain, if any."""
    while isinstance(env, gym.Wrapper):
        if isinstance(env, BinnedActions):
            return env
        env = env.env
    return None


def unit_to_action(env: gym.Env, unit: np.ndarray) -> np.ndarray | int:
    """A canonical [-1, 1]^n vector -> the action in ``env``'s form (the discrete forms snap to the nearest bin)."""
    unit = np.clip(np.asarray(unit, dtype=np.float64).reshape(-1), -1.0, 1.0)
    wrapper = binned_form(env)
    return unit.astype(np.float32) if wrapper is None else wrapper.nearest(unit)


def default_action(env: gym.Env) -> np.ndarray | int:
    """The environment's configured decisions in ``env``'s form."""
    return unit_to_action(env, distillation_env(env).default_action())


def canonical_rule(env: gym.Env | VecEnv) -> np.ndarray:
    """The method's configured decisions as a canonical [-1, 1]^n vector (of the first env of a vector)."""
    if isinstance(env, VecEnv):
        return np.asarray(env.env_method("default_action", indices=[0])[0], dtype=np.float32)
    return distillation_env(env).default_action().astype(np.float32)


def canonical_uniform(env: gym.Env | VecEnv) -> np.ndarray:
    """The ``uniform`` baseline's canonical action: the configured decisions with alpha = beta = 0
    (uniform replay, no importance weights), of the first env of a vector."""
    if isinstance(env, VecEnv):
        rule = env.get_attr("config", indices=[0])[0].engine.action
        decision = dataclasses.replace(rule, alpha=0.0, beta=0.0)
        return np.asarray(env.env_method("encode_action", decision, indices=[0])[0], dtype=np.float32)
    base = distillation_env(env)
    return base.encode_action(dataclasses.replace(base.config.engine.action, alpha=0.0, beta=0.0))
