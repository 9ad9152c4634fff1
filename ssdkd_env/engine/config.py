"""Configuration of a distillation run, as plain dataclasses (serialisable to JSON/YAML).

Every field is type- and range-checked when a config is built (``Validated``). Methods are
presets (``ssdkd_env.methods.presets``): the components they use and the settings they change,
applied on top of the task's defaults (``TaskSpec.engine_defaults``, viewed by name in ``TASK_DEFAULTS``).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator, Mapping
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
from ssdkd_env.tasks import TASKS, get_task, list_tasks

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


def _is_field(config: EngineConfig, path: str) -> bool:
    """Whether the dotted ``path`` names a field (not a section) of ``config``."""
    node: Any = config.to_dict()
    for key in path.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return not isinstance(node, dict)


class _TaskDefaults(Mapping[str, Mapping[str, Any]]):
    """Each registered task's ``engine_defaults`` by task name (read-only; tasks registered later appear too)."""

    def __getitem__(self, task: str) -> Mapping[str, Any]:
        if task not in TASKS:
            raise KeyError(task)
        return get_task(task).engine_defaults

    def __iter__(self) -> Iterator[str]:
        return iter(list_tasks())

    def __len__(self) -> int:
        return len(TASKS)


TASK_DEFAULTS: Mapping[str, Mapping[str, Any]] = _TaskDefaults()
"""Per-task defaults (dotted keys), a view of ``TaskSpec.engine_defaults``: a task sets them where it is registered."""


def make_config(task: str, method: str = "ssdkd", **overrides: Any) -> EngineConfig:
    """The default configuration of ``method`` on ``task``: the task's ``engine_defaults`` (less the keys the
    method's preset skips), then the preset's overrides, then ``overrides`` (dotted keys)."""
    preset = METHODS.get(method)
    config = EngineConfig(task=task, method=method)
    unknown = [key for key in preset.skip_task_defaults if not _is_field(config, key)]
    if unknown:
        raise UserError(f"method '{method}' skips unknown config keys: {', '.join(unknown)}")
    task_defaults = {k: v for k, v in get_task(task).engine_defaults.items() if k not in preset.skip_task_defaults}
    base = replace_nested(config, **task_defaults)
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
