"""Configuration of a distillation run, as plain dataclasses (serialisable to JSON/YAML).

Every field is type- and range-checked when a config is built (``Validated``). Methods are
presets (``ssdkd_env.methods.presets``): the components they use and the settings they change,
applied on top of the per-task defaults in ``TASK_DEFAULTS``.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ssdkd_env.action import RoundAction
from ssdkd_env.common.precision import Precision
from ssdkd_env.common.validation import Validated, spec
from ssdkd_env.distillation import DistillerConfig
from ssdkd_env.errors import UserError
from ssdkd_env.methods import METHODS, ROUND_LOOPS
from ssdkd_env.replay import NO_MEMORY, VAEConfig, memory_names
from ssdkd_env.synthesis import (
    SYNTHESIZERS,
    AdversarialConfig,
    CondensedConfig,
    PixelInversionConfig,
    RealDataConfig,
    SynthesisConfig,
)
from ssdkd_env.tasks import list_tasks

StudentInit = Literal["random", "teacher"]


@dataclass
class EngineConfig(Validated):
    """Everything that defines a distillation run except the teacher and the seed."""

    method: str = spec("ssdkd", choices=METHODS.names)  # the preset this config was made from (a label)
    task: str = spec("digits", choices=list_tasks)
    round_loop: str = spec("synthesize-replay", choices=ROUND_LOOPS.names)  # what one round does
    synthesizer: str = spec("meta-generator", choices=SYNTHESIZERS.names)  # how samples are made
    memory: str = spec("replay", choices=memory_names)  # where samples are kept: replay buffer, growing pool, none
    student_arch: str | None = None  # None: the task's default student
    student_init: StudentInit = "random"  # "teacher": start as a width-pruned copy of the teacher
    rounds: int = spec(60, ge=1)
    kd_steps: int = spec(25, ge=0)  # distillation steps per round
    buffer_size: int = spec(2000, ge=1)
    probe_size: int = spec(500, ge=0)  # held-out synthetic samples for the data-free measure (0: none)
    probe_rounds: int = spec(20, ge=1)  # inversion rounds that build the probe (the second half is kept)
    eval_every: int = spec(1, ge=0)  # real test accuracy every N rounds when test data exists (0: last round only)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)  # DFAD's generator and schedule
    vae: VAEConfig = field(default_factory=VAEConfig)  # PRE-DFKD's generative replay memory (memory "vae")
    pixel: PixelInversionConfig = field(default_factory=PixelInversionConfig)  # DeepInversion's pixel optimisation
    condensed: CondensedConfig = field(default_factory=CondensedConfig)  # csmi's condensed samples and discriminator
    real: RealDataConfig = field(default_factory=RealDataConfig)  # where kd-real reads the real training images
    distiller: DistillerConfig = field(default_factory=DistillerConfig)
    action: RoundAction = field(default_factory=RoundAction)
    # how forward passes run (ssdkd_env.common.precision); on a CPU the defaults give plain fp32 results
    precision: Precision = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere; bf16 or fp32 on any device
    channels_last: bool = False  # models and image batches in channels_last memory format
    compile: bool = False  # torch.compile the KD step's forward passes (gain measured by train/benchmark.py)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineConfig:
        """Build from a (possibly partial) nested dict; unknown keys and bad values are errors."""
        return _from_dict(cls, data, "")

    def merged_with(self, partial: dict[str, Any]) -> EngineConfig:
        """A copy with the fields of ``partial`` (nested sections merged key by key) replaced."""
        data = self.to_dict()
        for key, value in partial.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        return EngineConfig.from_dict(data)


def _from_dict(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise UserError(f"config section '{path.rstrip('.')}' must be a mapping, got {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise UserError(
            f"unknown config keys: {', '.join(path + k for k in sorted(map(str, unknown)))}; valid: {', '.join(fields)}"
        )
    kwargs = {}
    defaults = cls()
    for name, value in data.items():
        default = getattr(defaults, name)
        nested = dataclasses.is_dataclass(default)
        kwargs[name] = _from_dict(type(default), value, f"{path}{name}.") if nested else value
    return cls(**kwargs)


def replace_nested(config: EngineConfig, **changes: Any) -> EngineConfig:
    """Copy of ``config`` with dotted-path changes, e.g. ``{"action.alpha": 0.0}``."""
    data = config.to_dict()
    for path, value in changes.items():
        node = data
        *parents, leaf = path.split(".")
        for key in parents:
            if not isinstance(node.get(key), dict):
                raise UserError(f"unknown config key '{path}'")
            node = node[key]
        if leaf not in node:
            raise UserError(f"unknown config key '{path}'")
        if isinstance(node[leaf], dict):
            raise UserError(f"'{path}' is a config section: set its fields, e.g. {path}.FIELD=VALUE")
        node[leaf] = value
    return EngineConfig.from_dict(data)


# BN-free LeNet-5 teachers: the student starts as a width-pruned copy of the teacher; deeper
# inversion (10 steps) with four small generators taking turns; shift, shrink and mixup
# augmentation relabelled by the teacher (measured in docs/notebook/2026-11-21.md).
_LENET_DEFAULTS: dict[str, Any] = {
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
    "synthesis.g_steps": 10,
    "synthesis.ngf": 8,
    "synthesis.generators": 4,
}

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
_CIFAR_CPU_DEFAULTS: dict[str, Any] = {
    **_FAST_CIFAR_KD,
    "rounds": 48,
    "kd_steps": 20,
    "buffer_size": 5000,
    "probe_rounds": 2,
    "eval_every": 4,
    "action.synth_budget": 256,
    "distiller.augment_shift": 4,
    "distiller.augment_flip": True,
    "synthesis.g_steps": 5,
    "synthesis.augment_shift": 4,
    "synthesis.augment_flip": True,
    "synthesis.adv_weight": 1.1,
    "synthesis.oh_weight": 2.0,
    "synthesis.ngf": 32,
    "synthesis.conditional": True,
    "pixel.flip": True,
}

# CIFAR at the paper's scale (ResNet-34 -> ResNet-18): Fast's CIFAR schedule and losses for a ResNet-34
# teacher (220 rounds of 400 KD steps, 20 warm-up rounds, adversarial weight 1.33), SSD-KD's 5,000-sample buffer.
_CIFAR_PAPER_DEFAULTS: dict[str, Any] = {
    **_FAST_CIFAR_KD,
    "rounds": 220,
    "kd_steps": 400,
    "buffer_size": 5000,
    "action.synth_budget": 256,
    "synthesis.adv_weight": 1.33,
    "synthesis.warmup_rounds": 20,
    "pixel.flip": True,
}

# Segmentation at CPU scale (U-Net pairs): two generator steps a round (Fast2's; five gave lower student
# mIoU on shapes at equal rounds, docs/notebook/2026-12-02.md "Segmentation"); images are shifted and flipped where the
# generator's losses see them and where the student replays them (masks move with the pixels: the teacher
# relabels them); DFAD's -log(1 + D) generator loss. The probe is small: a dense sample's outputs are K x H x W.
_SEGMENTATION_CPU_DEFAULTS: dict[str, Any] = {
    "probe_size": 64,
    "probe_rounds": 2,
    "synthesis.nz": 128,
    "synthesis.ngf": 32,
    "synthesis.g_steps": 2,
    "synthesis.augment_shift": 2,
    "synthesis.augment_flip": True,
    "adversarial.nz": 128,
    "adversarial.ngf": 32,
    "adversarial.objective": "negative-log1p",  # DFAD's generator loss for segmentation
    "distiller.augment_shift": 2,
    "distiller.augment_flip": True,
    "pixel.flip": True,
}

# The papers' segmentation pairs (camvid, nyuv2: DeepLabV3-ResNet50 -> DeepLabV3-MobileNetV2), otherwise at the
# dataclass defaults: DFAD's -log(1 + D) generator loss (its segmentation setting), flips of scenes, and the small
# probe of every dense task (a probe sample's outputs are K x H x W).
_SEGMENTATION_PAPER_DEFAULTS: dict[str, Any] = {
    key: _SEGMENTATION_CPU_DEFAULTS[key]
    for key in (
        "probe_size",
        "adversarial.objective",
        "synthesis.augment_flip",
        "distiller.augment_flip",
        "pixel.flip",
    )
}

# Road and indoor scenes at CPU scale (camvid-cpu, nyuv2-cpu): a dense sample of a scene is 40 to 130 times
# the pixels of a 32x32 one, so fewer and smaller batches, a smaller buffer and probe.
_SCENE_CPU_DEFAULTS: dict[str, Any] = {
    **_SEGMENTATION_CPU_DEFAULTS,
    "rounds": 40,
    "kd_steps": 20,
    "buffer_size": 400,
    "probe_size": 32,
    "eval_every": 4,
    "action.synth_budget": 32,
    "distiller.batch_size": 16,
    "distiller.lr": 0.05,
}

# Per-task defaults (dotted keys). Anything not named keeps the dataclass default.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    # DeepInversion's pixel optimisation converges in far fewer steps on 8x8 images (docs/notebook/2026-12-01.md)
    "digits": {"rounds": 120, "kd_steps": 40, "action.synth_budget": 128, "pixel.iterations": 50, "pixel.lr": 0.1},
    "mnist": _LENET_DEFAULTS,
    "fashion-mnist": _LENET_DEFAULTS,
    "svhn": {"rounds": 200, "kd_steps": 200, "buffer_size": 7300, "action.synth_budget": 256},
    "cifar10": _CIFAR_PAPER_DEFAULTS,
    "cifar10-cpu": _CIFAR_CPU_DEFAULTS,
    "cifar100": _CIFAR_PAPER_DEFAULTS,
    # shapes' classes are set by geometry, not colour: replayed samples are recoloured (channel order, gain,
    # offset) and relabelled, so a generator settled on one palette still shows every colour
    # (docs/notebook/2026-12-02.md)
    "shapes": {
        **_SEGMENTATION_CPU_DEFAULTS,
        "rounds": 60,
        "kd_steps": 30,
        "distiller.augment_color": 0.5,
        "buffer_size": 1000,
        "eval_every": 4,
        "action.synth_budget": 64,
        "distiller.batch_size": 64,
        "distiller.lr": 0.05,
    },
    "camvid": _SEGMENTATION_PAPER_DEFAULTS,
    "nyuv2": _SEGMENTATION_PAPER_DEFAULTS,
    "camvid-cpu": {**_SCENE_CPU_DEFAULTS, "synthesis.augment_shift": 16, "distiller.augment_shift": 16},
    "nyuv2-cpu": _SCENE_CPU_DEFAULTS,
}


def make_config(task: str, method: str = "ssdkd", **overrides: Any) -> EngineConfig:
    """The default configuration of ``method`` on ``task``, then ``overrides`` (dotted keys)."""
    preset = METHODS.get(method)
    base = replace_nested(EngineConfig(task=task, method=method), **TASK_DEFAULTS.get(task, {}))
    config = replace_nested(base, **preset.overrides) if preset.overrides else base
    if overrides:
        config = replace_nested(config, **overrides)
    return config


def with_data_root(config: EngineConfig, data_root: str | Path | None) -> EngineConfig:
    """``config`` with ``real.data_root`` set to ``data_root`` (a script's ``--data-root``) when its
    synthesizer reads the real training images and no root is set yet."""
    if config.synthesizer != "real-images" or config.real.data_root is not None or data_root is None:
        return config
    return replace_nested(config, **{"real.data_root": str(data_root)})


def methods_with_memory() -> list[str]:
    """The methods whose runs keep a memory between rounds (those an environment can observe and steer)."""
    return [name for name in METHODS.names() if make_config("digits", name).memory != NO_MEMORY]


def read_config_file(path: Path, source: str = "--config file", fix: str = "") -> dict[str, Any]:
    """Read a JSON or YAML file holding (partial) config fields; ``source`` names the file in
    messages and ``fix`` (if given) ends them."""
    end = f"; {fix}" if fix else ""
    if not path.is_file():
        raise UserError(f"{source} {path} does not exist{end}")
    try:
        text = path.read_text()
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml and json raise many error types, and the text may not be UTF-8
        reason = " ".join(str(exc).split())
        raise UserError(f"{source} {path} is not valid {path.suffix[1:] or 'JSON'} ({reason}){end}") from None
    if not isinstance(data, dict):
        raise UserError(f"{source} {path} must hold a mapping of config fields{end}")
    return data


def parse_override(text: str, flag: str = "--set") -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` (VALUE as JSON when it parses, else a string), given to ``flag``."""
    if "=" not in text:
        raise UserError(f"{flag} expects KEY=VALUE, got '{text}'")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
