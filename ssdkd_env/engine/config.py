"""Configuration of a distillation run, as plain dataclasses (serialisable to JSON/YAML).

Methods are presets: functions that adjust an :class:`EngineConfig`, kept in ``METHODS``.
Per-task defaults live in ``TASK_DEFAULTS`` as data.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ssdkd_env.distillation import DistillerConfig
from ssdkd_env.errors import UserError, unknown_name
from ssdkd_env.replay import EVICTION_RULES, EvictionRule
from ssdkd_env.synthesis import SynthesisConfig

StudentInit = Literal["random", "teacher"]
STUDENT_INITS: tuple[StudentInit, ...] = ("random", "teacher")


@dataclass
class RoundAction:
    """The sampling and buffer-update decisions of one round (what an RL agent controls)."""

    alpha: float = 0.6  # priority exponent: P(i) ~ p_i^alpha (0 = uniform replay)
    beta: float = 0.4  # importance-weight exponent: w_i = (N P(i))^-beta
    diversity: float = 1.0  # phi: strength of drawing targets against the buffer's class histogram
    difficulty: float = 2.0  # phi: focal exponent gamma of (1 - p_T(y|x))^gamma
    replace_fraction: float = 0.1  # share of the buffer's slots replaced by new samples per round
    eviction: EvictionRule = "lowest"  # which slots the new samples replace
    synth_budget: int = 200  # new synthetic samples per round

    def validate(self) -> None:
        if self.eviction not in EVICTION_RULES:
            raise UserError(f"unknown eviction rule '{self.eviction}'; valid: {', '.join(EVICTION_RULES)}")
        if self.synth_budget < 1 or not 0.0 <= self.replace_fraction <= 1.0:
            raise UserError("synth_budget must be >= 1 and replace_fraction in [0, 1]")


@dataclass
class EngineConfig:
    """Everything that defines a distillation run except the teacher and the seed."""

    method: str = "ssdkd"
    task: str = "digits"
    student_arch: str | None = None  # None: the task's default student
    student_init: StudentInit = "random"  # "teacher": start as a width-pruned copy of the teacher
    rounds: int = 60
    kd_steps: int = 25  # distillation steps per round
    buffer_size: int = 2000
    grow_only: bool = False  # Fast-like pool: keep every sample, never evict
    probe_size: int = 500  # held-out synthetic samples for the data-free measure (0: none)
    probe_rounds: int = 20  # inversion rounds that build the probe (the second half is kept)
    eval_every: int = 1  # real test accuracy every N rounds when test data exists (0: last round only)
    synthesis: SynthesisConfig = field(default_factory=SynthesisConfig)
    distiller: DistillerConfig = field(default_factory=DistillerConfig)
    action: RoundAction = field(default_factory=RoundAction)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineConfig:
        """Build from a (possibly partial) nested dict; unknown keys are errors."""
        return _from_dict(cls, data)

    def merged_with(self, partial: dict[str, Any]) -> EngineConfig:
        """A copy with the fields of ``partial`` (nested sections merged key by key) replaced."""
        data = self.to_dict()
        for key, value in partial.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        return EngineConfig.from_dict(data)


def _from_dict(cls: type, data: dict[str, Any]) -> Any:
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(data) - set(fields)
    if unknown:
        raise UserError(f"unknown {cls.__name__} keys: {', '.join(sorted(unknown))}; valid: {', '.join(fields)}")
    kwargs = {}
    for name, value in data.items():
        default = getattr(cls(), name)
        kwargs[name] = _from_dict(type(default), value) if dataclasses.is_dataclass(default) else value
    return cls(**kwargs)


def replace_nested(config: EngineConfig, **changes: Any) -> EngineConfig:
    """Copy of ``config`` with dotted-path changes, e.g. ``{"action.alpha": 0.0}``."""
    data = config.to_dict()
    for path, value in changes.items():
        node = data
        *parents, leaf = path.split(".")
        for key in parents:
            node = node[key]
        if leaf not in node:
            raise UserError(f"unknown config key '{path}'")
        node[leaf] = value
    return EngineConfig.from_dict(data)


# BN-free LeNet-5 teachers: the student starts as a width-pruned copy of the teacher; deeper
# inversion (10 steps) with four small generators taking turns; shift, shrink and mixup
# augmentation relabelled by the teacher (measured in BENCHMARKS.md).
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

# Per-task defaults (dotted keys). Anything not named keeps the dataclass default.
TASK_DEFAULTS: dict[str, dict[str, Any]] = {
    "digits": {"rounds": 120, "kd_steps": 40, "action.synth_budget": 128},
    "mnist": _LENET_DEFAULTS,
    "fashion-mnist": _LENET_DEFAULTS,
    "svhn": {"rounds": 200, "kd_steps": 200, "buffer_size": 7300, "action.synth_budget": 256},
    "cifar10": {"rounds": 220, "kd_steps": 400, "buffer_size": 5000, "action.synth_budget": 256},
    "cifar100": {"rounds": 220, "kd_steps": 400, "buffer_size": 5000, "action.synth_budget": 256},
}


def _no_diversity(c: EngineConfig) -> EngineConfig:
    return replace_nested(c, **{"action.diversity": 0.0})


def _no_difficulty(c: EngineConfig) -> EngineConfig:
    return replace_nested(c, **{"action.difficulty": 0.0})


def _uniform(c: EngineConfig) -> EngineConfig:
    return replace_nested(c, **{"action.alpha": 0.0, "action.beta": 0.0})


def _grow(c: EngineConfig) -> EngineConfig:
    return replace_nested(c, grow_only=True)


def _fast(c: EngineConfig) -> EngineConfig:
    """Fast (Fang et al.): growing pool, uniform replay, plain CE targets drawn uniformly."""
    return _grow(_uniform(_no_difficulty(_no_diversity(c))))


METHODS: dict[str, Callable[[EngineConfig], EngineConfig]] = {
    "ssdkd": lambda c: c,
    "ssdkd-no-diversity": _no_diversity,
    "ssdkd-no-difficulty": _no_difficulty,
    "ssdkd-uniform": _uniform,
    "ssdkd-grow": _grow,
    "fast": _fast,
}


def make_config(task: str, method: str = "ssdkd", **overrides: Any) -> EngineConfig:
    """The default configuration of ``method`` on ``task``, then ``overrides`` (dotted keys)."""
    if method not in METHODS:
        raise unknown_name("method", method, METHODS)
    base = replace_nested(EngineConfig(task=task, method=method), **TASK_DEFAULTS.get(task, {}))
    config = METHODS[method](base)
    if overrides:
        config = replace_nested(config, **overrides)
    config.action.validate()
    return config


def read_config_file(path: Path) -> dict[str, Any]:
    """Read a JSON or YAML file holding (partial) config fields."""
    if not path.is_file():
        raise UserError(f"--config file {path} does not exist")
    text = path.read_text()
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            data = yaml.safe_load(text)
        else:
            data = json.loads(text)
    except Exception as exc:  # yaml and json raise many error types
        raise UserError(f"--config file {path} is not valid {path.suffix[1:] or 'JSON'}: {exc}") from None
    if not isinstance(data, dict):
        raise UserError(f"--config file {path} must hold a mapping of config fields")
    return data


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``KEY=VALUE`` (VALUE as JSON when it parses, else a string)."""
    if "=" not in text:
        raise UserError(f"--set expects KEY=VALUE, got '{text}'")
    key, raw = text.split("=", 1)
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value
