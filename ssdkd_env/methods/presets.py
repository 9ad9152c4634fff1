"""Methods as data: each is a name, the components it uses and the settings it changes.

A preset is a mapping of dotted configuration keys applied on top of the task's defaults
(``TaskSpec.engine_defaults`` and ``component_defaults``), e.g. ``{"memory": "pool", "action.alpha": 0.0}``
or ``{"synthesizer": "adversarial-generator", "synthesizer_options.bn_weight": 1.0}``: the components it
names are chosen first, then the task's tuning of them, then the preset's other settings. Where a task's
tuning does not belong to a method (DFAD has no student augmentation), the preset names those keys in
``skip_task_defaults``: on every task they keep the dataclass defaults unless the preset sets them.
A new method is a new preset registered with :func:`register_method`, usually beside the
components it introduces.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ssdkd_env.distillation import DistillerConfig
from ssdkd_env.registry import Registry
from ssdkd_env.replay.base import NO_MEMORY


@dataclass(frozen=True)
class MethodPreset:
    name: str
    overrides: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    skip_task_defaults: tuple[str, ...] = ()  # dotted keys of the task's defaults that do not apply to the method


METHODS: Registry[MethodPreset] = Registry("method")


def register_method(
    name: str, overrides: dict[str, Any], description: str, skip_task_defaults: tuple[str, ...] = ()
) -> MethodPreset:
    return METHODS.add(name, MethodPreset(name, dict(overrides), description, tuple(skip_task_defaults)))


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
# Fast's published settings per number of generator steps (its CIFAR scripts): more inner steps
# take smaller generator and latent learning rates.
_FAST_STEPS = {2: (5e-3, 1.5e-2), 5: (3e-3, 1e-2), 10: (2e-3, 1e-2)}
for _steps, (_lr_g, _lr_z) in _FAST_STEPS.items():
    register_method(
        f"fast{_steps}",
        {
            **METHODS.get("fast").overrides,
            "synthesizer_options.g_steps": _steps,
            "synthesizer_options.lr_g": _lr_g,
            "synthesizer_options.lr_z": _lr_z,
        },
        f"Fast{_steps} (Fang et al., AAAI 2022): the fast preset with {_steps} generator steps per round "
        f"(lr_g {_lr_g:g}, lr_z {_lr_z:g})",
    )

register_method(
    "kd-real",
    {**METHODS.get("fast").overrides, "synthesizer": "real-images"},
    "KD with the original data (Hinton et al., 2015; the with-data row of DFAD's tables): the fast preset's "
    "growing pool and uniform replay, filled each round with real training images that the teacher labels "
    "instead of inverted ones (give --data-root)",
)
register_method(
    "csmi",
    {**METHODS.get("fast2").overrides, "synthesizer": "condensed-guided", "memory": "condensed-pool"},
    "Condensed-sample guided model inversion (2024) on Fast2 (its 2 generator steps and rates on every task): "
    "a class-conditional discriminator on the teacher's features separates condensed from synthetic samples and "
    "the generator learns to fool it; the student also trains on the condensed samples (set condensed_path to a "
    "file of train/condense.py)",
)

_DFAD_GAME = {"round_loop": "adversarial", "synthesizer": "adversarial-generator"}
# DFAD trains the student on the generator's images as they are (Fang et al., 2019), and MB-DFKD on those and its
# bank's (Binici et al., WACV 2022): a task's student augmentation does not apply to either
_STUDENT_AUGMENTATION = tuple(
    f"distiller.{f.name}" for f in dataclasses.fields(DistillerConfig) if f.name.startswith("augment_")
)
register_method(
    "dfad",
    {
        **_DFAD_GAME,
        "memory": NO_MEMORY,
        "distiller.kd_loss": "l1",
    },
    "DFAD (Fang et al., 2019): a generator maximises the teacher-student logit discrepancy (MAE), the student "
    "minimises it on fresh images, 5 student steps per generator step, nothing stored",
    skip_task_defaults=_STUDENT_AUGMENTATION,
)
register_method(
    "mb-dfkd",
    {
        **_DFAD_GAME,
        "memory": "replay",
        "distiller.kd_loss": "l1",
        "synthesizer_options.bn_weight": 1.0,
        "round_loop_options.replay_ratio": 1.0,
        **_UNIFORM,
        "action.eviction": "oldest",
        "action.replace_fraction": 0.5,
    },
    "MB-DFKD (Binici et al., WACV 2022): DFAD's game with the teacher's BN statistics as a constraint on the "
    "generator, and a memory bank of earlier samples (first in, first out) replayed beside each fresh batch",
    skip_task_defaults=_STUDENT_AUGMENTATION,
)

register_method(
    "deepinv",
    {
        "round_loop": "synthesize-distil",
        "synthesizer": "pixel-inversion",
        "memory": NO_MEMORY,
        **_NO_DIVERSITY,
        **_NO_DIFFICULTY,
    },
    "DeepInversion (Yin et al., CVPR 2020): the pixels of each batch are optimised from noise (class loss, BN "
    "statistics, image priors), the student distils on them for the round, nothing stored",
)
register_method(
    "pre-dfkd",
    {
        **_DFAD_GAME,
        "memory": "vae",
        "synthesizer_options.objective": "one-minus-js",
        "synthesizer_options.oh_weight": 1.0,
        "synthesizer_options.balance_weight": 1.0,
        "round_loop_options.replay_ratio": 0.125,
        **_UNIFORM,
        "action.replace_fraction": 0.5,
    },
    "PRE-DFKD (Binici et al., AAAI 2022): a generator seeking disagreement (1 - JS) with class and balance terms; "
    "a VAE learns past samples with a teacher-aware loss and the student rehearses on its samples (1/8 of each "
    "batch), no images stored",
)
