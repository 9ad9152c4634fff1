"""Engine defaults shared by several tasks.

A task's ``TaskSpec.engine_defaults`` are dotted keys of the run's configuration (``"distiller.lr"``);
its ``TaskSpec.component_defaults`` are options by component name (``{"meta-generator": {"g_steps": 5}}``),
applied to a run only when it uses that component (the probe's inversion takes the meta-generator's).
Both are applied to the dataclass defaults before a method's preset
(``ssdkd_env.engine.config.make_config``); anything not named keeps its default. Keys are checked when
a configuration is built, so this module needs nothing of the engine.
"""

from __future__ import annotations

from typing import Any

# BN-free LeNet-5 teachers: the student starts as a width-pruned copy of the teacher; deeper
# inversion (10 steps) with four small generators taking turns; shift, shrink and mixup
# augmentation relabelled by the teacher (measured in docs/notebook/2026-11-21.md).
LENET_DEFAULTS: dict[str, Any] = {
    "student_init": "teacher",
    "rounds": 60,
    "kd_steps": 200,
    "buffer_size": 6000,
    "eval_every": 10,
    "action.synth_budget": 256,
    "distiller.batch_size": 256,
    "distiller.lr": 0.05,
    "distiller.augment_shift": 2,
    "distiller.augment_shrink": 0.5,
    "distiller.augment_mixup": 0.5,
}
LENET_COMPONENTS: dict[str, dict[str, Any]] = {"meta-generator": {"g_steps": 10, "ngf": 8, "generators": 4}}

# Fast's CIFAR student recipe (Fang et al., AAAI 2022): KL at temperature 20 (scaled by T^2), SGD at 0.2.
# A task default, so it holds for every method on the task (DFAD's own CIFAR rate is 0.1:
# --set distiller.lr=0.1). On the CPU preset it kept 2.2 points more of the teacher than T = 4 at 0.1
# (docs/notebook/2026-12-02.md, "Fast's student recipe").
_FAST_CIFAR_KD: dict[str, Any] = {"distiller.temperature": 20.0, "distiller.lr": 0.2}

# CIFAR-10 at CPU scale (WRN-16-1 pair, 2 cores, well under 45 minutes): 48 rounds of 20 KD steps (more
# rounds beat more KD steps per round at equal wall time), with more of each round spent on the generator
# (5 steps per round, a class-conditional generator at half width, a larger class-loss weight) and the
# images augmented (shift 4, flips) both where the generator's losses see them and where the student
# replays them. `--rounds 120` is the longer schedule that keeps 87% of the teacher (38 minutes alone on
# 2 cores). docs/notebook/ ("CIFAR-10 at CPU scale", 2026-11-23 to 12-02) has the measurements.
CIFAR_CPU_DEFAULTS: dict[str, Any] = {
    **_FAST_CIFAR_KD,
    "rounds": 48,
    "kd_steps": 20,
    "buffer_size": 5000,
    "probe_rounds": 2,
    "eval_every": 4,
    "action.synth_budget": 256,
    "distiller.augment_shift": 4,
    "distiller.augment_flip": True,
}
CIFAR_CPU_COMPONENTS: dict[str, dict[str, Any]] = {
    "meta-generator": {
        "g_steps": 5,
        "augment_shift": 4,
        "augment_flip": True,
        "adv_weight": 1.1,
        "oh_weight": 2.0,
        "ngf": 32,
        "conditional": True,
    },
    "pixel-inversion": {"flip": True},
}

# CIFAR-10 at 16x16 (cifar10-16: the digits' cnn -> cnn_half pair, the CIFAR-like agent suite): the CPU preset's
# student recipe and generator tuning, with 2-pixel shifts for 16-pixel images and rounds cheap enough for an
# environment step of under a second on 2 cores.
CIFAR16_DEFAULTS: dict[str, Any] = {
    **_FAST_CIFAR_KD,
    "rounds": 48,
    "kd_steps": 20,
    "buffer_size": 2000,
    "probe_rounds": 2,
    "eval_every": 4,
    "action.synth_budget": 128,
    "distiller.batch_size": 128,
    "distiller.augment_shift": 2,
    "distiller.augment_flip": True,
}
CIFAR16_COMPONENTS: dict[str, dict[str, Any]] = {
    "meta-generator": {**CIFAR_CPU_COMPONENTS["meta-generator"], "augment_shift": 2},
    "pixel-inversion": {"flip": True},
}

# CIFAR at the paper's scale (ResNet-34 -> ResNet-18): Fast's CIFAR schedule and losses for a ResNet-34
# teacher (220 rounds of 400 KD steps, 20 warm-up rounds, adversarial weight 1.33), SSD-KD's 5,000-sample buffer.
CIFAR_PAPER_DEFAULTS: dict[str, Any] = {
    **_FAST_CIFAR_KD,
    "rounds": 220,
    "kd_steps": 400,
    "buffer_size": 5000,
    "action.synth_budget": 256,
}
CIFAR_PAPER_COMPONENTS: dict[str, dict[str, Any]] = {
    "meta-generator": {"adv_weight": 1.33, "warmup_rounds": 20},
    "pixel-inversion": {"flip": True},
}

# Segmentation at CPU scale (U-Net pairs): two generator steps a round (Fast2's; five gave lower student
# mIoU on shapes at equal rounds, docs/notebook/2026-12-02.md "Segmentation"); images are shifted and flipped where the
# generator's losses see them and where the student replays them (masks move with the pixels: the teacher
# relabels them); DFAD's -log(1 + D) generator loss. The probe is small: a dense sample's outputs are K x H x W.
SEGMENTATION_CPU_DEFAULTS: dict[str, Any] = {
    "probe_size": 64,
    "probe_rounds": 2,
    "distiller.augment_shift": 2,
    "distiller.augment_flip": True,
}
SEGMENTATION_CPU_COMPONENTS: dict[str, dict[str, Any]] = {
    "meta-generator": {"nz": 128, "ngf": 32, "g_steps": 2, "augment_shift": 2, "augment_flip": True},
    "adversarial-generator": {"nz": 128, "ngf": 32, "objective": "negative-log1p"},  # DFAD's loss for segmentation
    "pixel-inversion": {"flip": True},
}

# The papers' segmentation pairs (camvid, nyuv2: DeepLabV3-ResNet50 -> DeepLabV3-MobileNetV2), otherwise at the
# dataclass defaults: DFAD's -log(1 + D) generator loss (its segmentation setting), flips of scenes, and the small
# probe of every dense task (a probe sample's outputs are K x H x W).
SEGMENTATION_PAPER_DEFAULTS: dict[str, Any] = {
    key: SEGMENTATION_CPU_DEFAULTS[key] for key in ("probe_size", "distiller.augment_flip")
}
SEGMENTATION_PAPER_COMPONENTS: dict[str, dict[str, Any]] = {
    "meta-generator": {"augment_flip": True},
    "adversarial-generator": {"objective": "negative-log1p"},
    "pixel-inversion": {"flip": True},
}

# Road and indoor scenes at CPU scale (camvid-cpu, nyuv2-cpu): a dense sample of a scene is 40 to 130 times
# the pixels of a 32x32 one, so fewer and smaller batches, a smaller buffer and probe.
SCENE_CPU_DEFAULTS: dict[str, Any] = {
    **SEGMENTATION_CPU_DEFAULTS,
    "rounds": 40,
    "kd_steps": 20,
    "buffer_size": 400,
    "probe_size": 32,
    "eval_every": 4,
    "action.synth_budget": 32,
    "distiller.batch_size": 16,
    "distiller.lr": 0.05,
}
