"""The distillation engine: configuration, method presets and the round loop."""

from ssdkd_env.engine.config import (
    TASK_DEFAULTS,
    EngineConfig,
    RoundAction,
    make_config,
    methods_with_memory,
    replace_nested,
    with_data_root,
)
from ssdkd_env.engine.engine import DistillationEngine, RoundMetrics
from ssdkd_env.methods import METHODS

__all__ = [
    "METHODS",
    "TASK_DEFAULTS",
    "DistillationEngine",
    "EngineConfig",
    "RoundAction",
    "RoundMetrics",
    "make_config",
    "methods_with_memory",
    "replace_nested",
    "with_data_root",
]
