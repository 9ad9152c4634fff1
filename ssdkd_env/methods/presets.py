"""Methods as data: each is a name, the components it uses and the settings it changes.

A preset is a mapping of dotted configuration keys applied on top of the task's defaults
(``ssdkd_env.engine.config.TASK_DEFAULTS``), e.g. ``{"memory": "pool", "action.alpha": 0.0}``.
A new method is a new preset registered with :func:`register_method`, usually beside the
components it introduces.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ssdkd_env.registry import Registry
from ssdkd_env.replay.base import NO_MEMORY


@dataclass(frozen=True)
class MethodPreset:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""


METHODS: Registry[MethodPreset] = Registry("method")


def register_method(name: str, overrides: dict[str, Any], description: str) -> MethodPreset:
    return METHODS.add(name, MethodPreset(name, dict(overrides), description))


_NO_DIVERSITY = {"action.diversity": 0.0}
_NO_DIFFICULTY = {"action.difficulty": 0.0}
_UNIFORM = {"action.alpha": 0.0, "action.beta": 0.0}
_GROW = {"memory": "pool"}

register_method(
    "ssdkd",
    {},
    "SSD-KD (Liu et al., CVPR 2024): phi-modulated inversion, a dynamic replay buffer updated partially "
    "each round, prioritized replay",
)
register_method("ssdkd-no-diversity", _NO_DIVERSITY, "SSD-KD without phi's diversity part (uniform target classes)")
register_method("ssdkd-no-difficulty", _NO_DIFFICULTY, "SSD-KD without phi's difficulty part (plain cross-entropy)")
register_method("ssdkd-uniform", _UNIFORM, "SSD-KD with uniform replay (no priority, no importance weights)")
register_method("ssdkd-grow", _GROW, "SSD-KD with a pool that only grows instead of the dynamic buffer")
register_method(
    "fast",
    {**_NO_DIVERSITY, **_NO_DIFFICULTY, **_UNIFORM, **_GROW},
    "Fast (Fang et al., AAAI 2022) in this engine: meta-generator inversion, a growing pool, uniform replay",
)
register_method(
    "dfad",
    {
        "round_loop": "adversarial",
        "synthesizer": "adversarial-generator",
        "memory": NO_MEMORY,
        "distiller.kd_loss": "l1",
    },
    "DFAD (Fang et al., 2019): a generator maximises the teacher-student logit discrepancy (MAE), the student "
    "minimises it on fresh images, 5 student steps per generator step, nothing stored",
)
