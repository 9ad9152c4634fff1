"""Configuration of a distillation run, as plain dataclasses (serialisable to JSON/YAML).

Every field is type- and range-checked when a config is built (``Validated``). The run's components
(round loop, synthesizer, memory) are each a registered name plus its options (``synthesizer`` and
``synthesizer_options``, as Stable-Baselines3's ``replay_buffer_class`` and ``replay_buffer_kwargs``);
the options are checked against the component's own ``Config`` when the configuration is built, and
a configuration holds the options of the components it uses only. Methods are presets
(``ssdkd_env.methods.presets``): the components they use and the settings they change, applied on top
of the task's defaults (``TaskSpec.engine_defaults`` for the run, ``TaskSpec.component_defaults`` for
each component it tunes). The configuration keys of earlier releases (``synthesis.g_steps``) still
work, with a one-line notice (:mod:`ssdkd_env.engine.legacy`).
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
from ssdkd_env.common.validation import NoOptions, Validated, build_options, spec
from ssdkd_env.distillation import DistillerConfig
from ssdkd_env.engine.legacy import LEGACY_SECTIONS, legacy_target, notice_legacy
from ssdkd_env.errors import UserError
from ssdkd_env.methods import METHODS, ROUND_LOOPS
from ssdkd_env.replay import MEMORIES, NO_MEMORY, memory_names
from ssdkd_env.synthesis import SYNTHESIZERS, SynthesisConfig
from ssdkd_env.tasks import TASKS, get_task, list_tasks

StudentInit = Literal["random", "teacher"]

ROLES: tuple[str, ...] = ("round_loop", "synthesizer", "memory")
"""The run's registered components: each is a name field and an ``<role>_options`` field."""


def component_config(role: str, name: str) -> type[Validated]:
    """The ``Config`` class of component ``name`` in ``role`` (``NoOptions`` for no memory)."""
    if role == "memory" and name == NO_MEMORY:
        return NoOptions
    return _registry(role).get(name).Config  # type: ignore[no-any-return]


def _option_defaults(role: str, name: str) -> dict[str, Any]:
    return dataclasses.asdict(component_config(role, name)())  # type: ignore[call-overload]


@dataclass
class EngineConfig(Validated):
    """Everything that defines a distillation run except the teacher and the seed."""

    method: str = spec("ssdkd", choices=METHODS.names)  # the preset this config was made from (a label)
    task: str = spec("digits", choices=list_tasks)
    round_loop: str = spec("synthesize-replay", choices=ROUND_LOOPS.names)  # what one round does
    round_loop_options: dict[str, Any] = field(default_factory=dict)  # the round loop's Config fields
    synthesizer: str = spec("meta-generator", choices=SYNTHESIZERS.names)  # how samples are made
    synthesizer_options: dict[str, Any] = field(default_factory=dict)  # the synthesizer's Config fields
    memory: str = spec("replay", choices=memory_names)  # where samples are kept: replay buffer, growing pool, none
    memory_options: dict[str, Any] = field(default_factory=dict)  # the memory's Config fields
    student_arch: str | None = None  # None: the task's default student
    student_init: StudentInit = "random"  # "teacher": start as a width-pruned copy of the teacher
    rounds: int = spec(60, ge=1)
    kd_steps: int = spec(25, ge=0)  # distillation steps per round
    buffer_size: int = spec(2000, ge=1)
    probe_size: int = spec(500, ge=0)  # held-out synthetic samples for the data-free measure (0: none)
    probe_rounds: int = spec(20, ge=1)  # inversion rounds that build the probe (the second half is kept)
    # how the probe is inverted: the task's meta-generator tuning, the same for every method of a task
    probe_inversion: SynthesisConfig = field(default_factory=SynthesisConfig)
    condensed_path: str | None = None  # csmi's condensed samples (a file of train/condense.py)
    eval_every: int = spec(1, ge=0)  # real test accuracy every N rounds when test data exists (0: last round only)
    distiller: DistillerConfig = field(default_factory=DistillerConfig)
    action: RoundAction = field(default_factory=RoundAction)
    # how forward passes run (ssdkd_env.common.precision); on a CPU the defaults give plain fp32 results
    precision: Precision = "auto"  # auto: bf16 autocast on CUDA, fp32 elsewhere; bf16 or fp32 on any device
    channels_last: bool = False  # models and image batches in channels_last memory format
    compile: bool = False  # torch.compile the KD step's forward passes (gain measured by train/benchmark.py)

    def __post_init__(self) -> None:
        super().__post_init__()
        for role in ROLES:  # each component's options, checked against its Config and completed
            name = getattr(self, role)
            owner = f"{role.replace('_', ' ')} '{name}'"
            options = build_options(component_config(role, name), getattr(self, f"{role}_options"), owner)
            setattr(self, f"{role}_options", dataclasses.asdict(options))

    def options(self, role: str) -> Any:
        """The options of the run's ``role`` component (an instance of its ``Config``)."""
        return component_config(role, getattr(self, role))(**getattr(self, f"{role}_options"))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EngineConfig:
        """Build from a (possibly partial) nested dict; unknown keys and bad values are errors. A section
        named by a component (``{"meta-generator": {"g_steps": 5}}``) tunes it as the dotted keys
        ``meta-generator.g_steps`` do; the sections of earlier releases (``synthesis``, ``adversarial``,
        ...) are mapped to where their settings live now (:mod:`ssdkd_env.engine.legacy`)."""
        if not isinstance(data, dict):
            raise UserError(f"a configuration must be a mapping, got {data!r}")
        legacy = {key: data[key] for key in LEGACY_SECTIONS if isinstance(data.get(key), dict)}
        tuning = {key: data[key] for key in data if key not in legacy and key in component_names()}
        current = {key: value for key, value in data.items() if key not in legacy and key not in tuning}
        config: EngineConfig = _from_dict(cls, current, "")
        if legacy:
            notice_legacy("a configuration with sections " + ", ".join(legacy))
        changes = {
            f"{name}.{key}": value
            for name, values in {**legacy, **tuning}.items()
            for key, value in _mapping(values, name).items()
        }
        return _replace(config, changes, quiet=True) if changes else config

    def merged_with(self, partial: dict[str, Any]) -> EngineConfig:
        """A copy with the fields of ``partial`` (nested sections merged key by key) replaced; a
        component whose name changes starts from its own default options."""
        data = self.to_dict()
        for role in ROLES:
            if role in partial and partial[role] != data[role]:
                data[f"{role}_options"] = {}
        for key, value in partial.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key].update(value)
            else:
                data[key] = value
        return EngineConfig.from_dict(data)


def _mapping(values: Any, section: str) -> Mapping[str, Any]:
    if not isinstance(values, Mapping):
        raise UserError(f"config section '{section}' must be a mapping, got {values!r}")
    return values


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
    """Copy of ``config`` with dotted-path changes, e.g. ``{"action.alpha": 0.0}`` or
    ``{"synthesizer": "pixel-inversion", "synthesizer_options.iterations": 50}``.

    A component's name is set before the other keys, and a component whose name changes starts from
    its own default options. A key led by a component's name (``"meta-generator.g_steps"``) tunes that
    component wherever the run uses it (see :func:`component_tuning`) and is ignored otherwise. Keys of
    earlier releases (``synthesis.g_steps``) are mapped to where they live now
    (:mod:`ssdkd_env.engine.legacy`), with a one-line notice.
    """
    return _replace(config, changes, quiet=False)


def _replace(config: EngineConfig, changes: Mapping[str, Any], quiet: bool) -> EngineConfig:
    """:func:`replace_nested`; ``quiet``: no notice for keys of earlier releases (an old file read back)."""
    data = config.to_dict()
    for role in ROLES:
        name = changes.get(role, data[role])
        if name != data[role]:
            data[role] = name
            data[f"{role}_options"] = _option_defaults(role, name) if _known(role, name) else {}
    tuning: dict[str, dict[str, Any]] = {}
    plain: dict[str, Any] = {}
    for path, value in changes.items():
        head, _, key = path.partition(".")
        if path in ROLES:
            continue
        if head in LEGACY_SECTIONS and key:
            component, new_path = legacy_target(path)
            if not quiet and (new_path or component != head):  # "vae.latent" reads the same now
                notice_legacy(f"config key '{path}'", new_path or f"{component}.{key}")
            if new_path:
                plain[new_path] = value
            else:
                tuning.setdefault(component, {})[key] = value
        elif key and head in component_names():
            tuning.setdefault(head, {})[key] = value
        else:
            plain[path] = value
    for path, value in {**component_tuning(data, tuning), **plain}.items():
        _set_path(data, path, value)
    return EngineConfig.from_dict(data)


def component_names() -> set[str]:
    """Every registered round loop, synthesizer and memory name."""
    return {*ROUND_LOOPS.names(), *SYNTHESIZERS.names(), *MEMORIES.names()}


def component_tuning(data: Mapping[str, Any], tuning: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """Options by component name (a task's ``component_defaults``, or keys such as
    ``meta-generator.g_steps``) as the dotted keys that set them in a configuration ``data`` (a dict of
    ``EngineConfig`` fields): each component the run uses takes the tuning of the components it extends
    (``task_defaults_from``), then its own; the probe's inversion takes the meta-generator's. An option
    that the named component does not have is an error, used or not."""
    for name, options in tuning.items():
        role = next((r for r in ROLES if name in _registry(r)), None)
        if role is None:
            raise UserError(f"unknown component '{name}'; valid: {', '.join(sorted(component_names()))}")
        fields = {f.name for f in dataclasses.fields(component_config(role, name))}  # type: ignore[arg-type]
        unknown = sorted(set(options) - fields)
        if unknown:
            owner = f"{role.replace('_', ' ')} '{name}'"
            raise UserError(f"unknown option {', '.join(unknown)} of {owner}; valid: {', '.join(sorted(fields))}")
    keys = {f"probe_inversion.{k}": v for k, v in tuning.get("meta-generator", {}).items()}
    for role in ROLES:
        name = data[role]
        if name not in _registry(role):  # no memory, or a name the configuration's check refuses
            continue
        cls = _registry(role).get(name)
        for source in (*getattr(cls, "task_defaults_from", ()), name):
            keys.update({f"{role}_options.{k}": v for k, v in tuning.get(source, {}).items()})
    return keys


def _registry(role: str) -> Any:
    return {"round_loop": ROUND_LOOPS, "synthesizer": SYNTHESIZERS, "memory": MEMORIES}[role]


def _known(role: str, name: str) -> bool:
    try:
        component_config(role, name)
    except UserError:
        return False
    return True


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    """Set the dotted ``path`` of nested ``data``; a component's options take any key (checked when
    the configuration is built, against the component's ``Config``)."""
    node = data
    *parents, leaf = path.split(".")
    for key in parents:
        if not isinstance(node.get(key), dict):
            raise UserError(f"unknown config key '{path}'")
        node = node[key]
    is_options = len(parents) == 1 and parents[0].endswith("_options")
    if leaf not in node and not is_options:
        raise UserError(f"unknown config key '{path}'")
    if isinstance(node.get(leaf), dict):
        raise UserError(f"'{path}' is a config section: set its fields, e.g. {path}.FIELD=VALUE")
    node[leaf] = value


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
    """The default configuration of ``method`` on ``task``: the components the method's preset names,
    the task's ``engine_defaults`` (less the keys the preset skips) and its ``component_defaults`` for
    the components the run uses (the probe's inversion takes the task's meta-generator tuning), then the
    preset's other settings, then ``overrides`` (dotted keys)."""
    preset = METHODS.get(method)
    spec_ = get_task(task)
    config = EngineConfig(task=task, method=method)
    unknown = [key for key in preset.skip_task_defaults if not _is_field(config, key)]
    if unknown:
        raise UserError(f"method '{method}' skips unknown config keys: {', '.join(unknown)}")
    chosen = {key: value for key, value in preset.overrides.items() if key in ROLES}
    config = replace_nested(config, **chosen)
    tuning = {k: v for k, v in spec_.engine_defaults.items() if k not in preset.skip_task_defaults}
    tuning.update(component_tuning(config.to_dict(), spec_.component_defaults))
    config = replace_nested(config, **tuning)
    rest = {key: value for key, value in preset.overrides.items() if key not in ROLES}
    if rest:
        config = replace_nested(config, **rest)
    if overrides:
        config = replace_nested(config, **overrides)
    return config


def with_data_root(config: EngineConfig, data_root: str | Path | None) -> EngineConfig:
    """``config`` with its synthesizer's ``data_root`` set to ``data_root`` (a script's ``--data-root``)
    when its synthesizer reads the real training images and no root is set yet."""
    if "data_root" not in config.synthesizer_options or config.synthesizer_options["data_root"] is not None:
        return config
    if data_root is None:
        return config
    return replace_nested(config, **{"synthesizer_options.data_root": str(data_root)})


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
