"""The Gymnasium environment: distillation rounds as steps, buffer statistics as observations."""

from ssdkd_env.env.config import ACTION_MODES, REWARDS, EnvConfig
from ssdkd_env.env.distillation_env import DistillationEnv
from ssdkd_env.env.spaces import ACTION_FIELDS, ActionMapper, observation_fields

__all__ = [
    "ACTION_FIELDS",
    "ACTION_MODES",
    "REWARDS",
    "ActionMapper",
    "DistillationEnv",
    "EnvConfig",
    "observation_fields",
]
