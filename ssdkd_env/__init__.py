"""ssdkd_env: data-free knowledge distillation (SSD-KD and related methods) as a Gymnasium environment.

``import ssdkd_env`` registers the Gymnasium ids (:mod:`ssdkd_env.env.registration`):
``SSDKD/<task>-<regime>-v0`` for every task with a shipped teacher (for example
``SSDKD/digits-budget-v0``), ``SSDKD-v0`` (any task) and ``SSDKD-Digits-Tiny-v0`` (a digits run
that steps in a fraction of a second, for tests and examples). It exposes the environment, its
configuration, the registries of interchangeable parts and the teacher zoo. Entry-point plugins
(:mod:`ssdkd_env.plugins`) load at the first registry lookup after this import.
"""

from ssdkd_env import plugins
from ssdkd_env.engine import EngineConfig, make_config
from ssdkd_env.env import DistillationEnv, EnvConfig, make_env
from ssdkd_env.env.regimes import REGIMES
from ssdkd_env.env.registration import TINY_DIGITS, env_id, register_envs, task_env_ids
from ssdkd_env.losses import KD_LOSSES
from ssdkd_env.methods.base import ROUND_LOOPS
from ssdkd_env.methods.presets import METHODS
from ssdkd_env.models import MODELS, build_model, list_models
from ssdkd_env.replay.base import MEMORIES
from ssdkd_env.synthesis.base import SYNTHESIZERS
from ssdkd_env.tasks import TASKS, get_task
from ssdkd_env.tasks.kinds import TASK_KINDS
from ssdkd_env.zoo import find_zoo_teacher, zoo_cards

__version__ = "0.1.0"

register_envs()
plugins.enable()  # last: a plugin may import anything of the package

__all__ = [
    "KD_LOSSES",
    "MEMORIES",
    "METHODS",
    "MODELS",
    "REGIMES",
    "ROUND_LOOPS",
    "SYNTHESIZERS",
    "TASKS",
    "TASK_KINDS",
    "TINY_DIGITS",
    "DistillationEnv",
    "EngineConfig",
    "EnvConfig",
    "__version__",
    "build_model",
    "env_id",
    "find_zoo_teacher",
    "get_task",
    "list_models",
    "make_config",
    "make_env",
    "task_env_ids",
    "zoo_cards",
]
