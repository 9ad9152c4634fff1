"""Configuration of the distillation environment: dataclasses, saved as YAML or JSON."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssdkd_env.engine import EngineConfig, make_config
from ssdkd_env.errors import UserError

REWARDS = ("probe", "oracle")
ACTION_MODES = ("continuous", "multi_discrete", "discrete")


@dataclass
class EnvConfig:
    """Every knob of :class:`~ssdkd_env.env.DistillationEnv`.

    ``engine`` holds the run itself (task, method, rounds, steps per round, batch sizes, buffer
    size, loss weights); the rest says how an agent sees and steers it.
    """

    engine: EngineConfig = field(default_factory=lambda: make_config("digits"))
    teacher: str | None = None  # teacher checkpoint; None: the task's cached teacher (trained if needed)
    data_root: str | None = None
    download: bool = False
    reward: str = "probe"  # "probe": data-free agreement on the synthetic probe; "oracle": real test accuracy
    action_mode: str = "continuous"  # "continuous" Box, "multi_discrete", or a single "discrete"
    action_bins: int = 3  # points per dimension in the discrete forms
    compute_cost: float = 1e-6  # reward cost per synthesised sample
    divergence_penalty: float = 1.0  # reward on a diverged (NaN/Inf) round
    probe_seed: int = 0  # the probe set is built once per environment from this seed
    device: str = "auto"

    def validate(self) -> None:
        if self.reward not in REWARDS:
            raise UserError(f"unknown reward '{self.reward}'; valid: {', '.join(REWARDS)}")
        if self.action_mode not in ACTION_MODES:
            raise UserError(f"unknown action mode '{self.action_mode}'; valid: {', '.join(ACTION_MODES)}")
        if self.action_bins < 2:
            raise UserError("action_bins must be at least 2")
        self.engine.action.validate()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EnvConfig:
        """Build from a (possibly partial) dict; ``engine`` starts from the task's defaults."""
        data = dict(data)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - fields
        if unknown:
            raise UserError(f"unknown EnvConfig keys: {', '.join(sorted(unknown))}; valid: {', '.join(sorted(fields))}")
        engine_data = dict(data.pop("engine", {}) or {})
        base = make_config(engine_data.get("task", "digits"), engine_data.get("method", "ssdkd"))
        config = cls(engine=base.merged_with(engine_data), **data)
        config.validate()
        return config

    def save(self, path: str | Path) -> None:
        """Write as YAML (``.yaml``/``.yml``) or JSON (anything else)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix in (".yaml", ".yml"):
            import yaml

            path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False))
        else:
            path.write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> EnvConfig:
        from ssdkd_env.engine.config import read_config_file

        return cls.from_dict(read_config_file(Path(path)))
