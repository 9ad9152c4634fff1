"""Configuration of the distillation environment: dataclasses, saved as YAML or JSON."""

from __future__ import annotations

import copy
import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ssdkd_env.common.io import write_text
from ssdkd_env.common.validation import Validated, spec
from ssdkd_env.engine import EngineConfig, make_config, replace_nested
from ssdkd_env.errors import UserError

Reward = Literal["probe", "oracle"]
ActionMode = Literal["continuous", "multi_discrete", "discrete"]
REWARDS: tuple[Reward, ...] = ("probe", "oracle")
ACTION_MODES: tuple[ActionMode, ...] = ("continuous", "multi_discrete", "discrete")


@dataclass
class EnvConfig(Validated):
    """Every knob of :class:`~ssdkd_env.env.DistillationEnv`.

    ``engine`` holds the run itself (task, method, rounds, steps per round, batch sizes, buffer
    size, loss weights); the rest says how an agent sees and steers it.
    """

    engine: EngineConfig = field(default_factory=lambda: make_config("digits"))
    teacher: str | None = None  # teacher checkpoint; None: the task's cached teacher
    data_root: str | None = None
    download: bool = False
    reward: Reward = "probe"  # "probe": data-free agreement on the synthetic probe; "oracle": real test accuracy
    action_mode: ActionMode = "continuous"  # the canonical Box, or a wrapper: "multi_discrete", "discrete" (make_env)
    action_bins: int = spec(3, ge=2)  # points per dimension in the discrete forms
    compute_cost: float = spec(1e-6, ge=0)  # reward cost per synthesised sample
    divergence_penalty: float = spec(1.0, ge=0)  # reward on a diverged (NaN/Inf) round is minus this
    probe_seed: int = spec(0, ge=0)  # the probe set is built once per environment from this seed
    device: str = "auto"
    suite: str | None = None  # instance suite (ssdkd_env.env.instances.SUITES); needs instance_set
    instance_set: Literal["train", "test"] | None = None  # episodes start from this split of the suite's instances
    instance_dir: str | None = None  # folder of the suite's instance sets; None: the cache's instances/<suite>

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.suite is None) != (self.instance_set is None):
            raise UserError(
                "EnvConfig.suite and EnvConfig.instance_set go together: e.g. suite='digits', instance_set='train'"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvConfig:
        """Build from a (possibly partial) dict; ``engine`` starts from the task's defaults."""
        if not isinstance(data, dict):
            raise UserError(f"an environment config must be a mapping, got {data!r}")
        data = dict(data)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise UserError(f"unknown EnvConfig keys: {', '.join(sorted(unknown))}; valid: {', '.join(sorted(fields))}")
        engine_data = data.pop("engine", {}) or {}
        if not isinstance(engine_data, dict):
            raise UserError(f"EnvConfig.engine must be a mapping, got {engine_data!r}")
        base = make_config(engine_data.get("task", "digits"), engine_data.get("method", "ssdkd"))
        return cls(engine=base.merged_with(engine_data), **data)

    def refined(self, task: str | None = None, method: str | None = None, **overrides: Any) -> EnvConfig:
        """A copy with ``task``/``method`` (the engine restarts from their defaults), EnvConfig
        fields by name, and anything else as dotted engine fields (``rounds=20``)."""
        config = copy.deepcopy(self)
        if task is not None or method is not None:
            config.engine = make_config(task or config.engine.task, method or config.engine.method)
        env_fields = {f.name for f in dataclasses.fields(EnvConfig)} - {"engine"}
        mine = {k: overrides.pop(k) for k in list(overrides) if k in env_fields}
        engine = replace_nested(config.engine, **overrides) if overrides else config.engine
        return EnvConfig.from_dict({**config.to_dict(), **mine, "engine": engine.to_dict()})

    def save(self, path: str | Path) -> None:
        """Write as YAML (``.yaml``/``.yml``) or JSON (anything else), atomically."""
        path = Path(path)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            write_text(path, yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path, source: str = "--config file", fix: str = "") -> EnvConfig:
        """Read a file written by :meth:`save` (``source`` and ``fix`` as in ``read_config_file``)."""
        from ssdkd_env.engine.config import read_config_file

        return cls.from_dict(read_config_file(Path(path), source, fix))
