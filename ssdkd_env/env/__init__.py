"""The Gymnasium environment: distillation rounds as steps, memory statistics as observations."""

from ssdkd_env.env.config import ACTION_MODES, REWARDS, EnvConfig
from ssdkd_env.env.distillation_env import DistillationEnv, make_env
from ssdkd_env.env.spaces import (
    ACTION_FIELDS,
    ActionMapper,
    BinnedActions,
    DiscreteActions,
    InvalidAction,
    MultiDiscreteActions,
    observation_fields,
)

__all__ = [
    "ACTION_FIELDS",
    "ACTION_MODES",
    "REWARDS",
    "ActionMapper",
    "BinnedActions",
    "DiscreteActions",
    "DistillationEnv",
    "EnvConfig",
    "InvalidAction",
    "MultiDiscreteActions",
    "make_env",
    "observation_fields",
]
