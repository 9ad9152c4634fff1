"""The distillation process as a Gymnasium environment.

An episode is one distillation run; a step is one round of the SSD-KD engine with the agent's
sampling and buffer-update decisions. Running it with a fixed action is ``train/distill.py``.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import torch.nn as nn

from ssdkd_env.checkpoint import ModelCard
from ssdkd_env.common.device import resolve_device
from ssdkd_env.distillation import ProbeSet, build_probe
from ssdkd_env.engine import DistillationEngine, RoundAction, make_config, replace_nested
from ssdkd_env.engine.engine import RoundMetrics
from ssdkd_env.env.config import EnvConfig
from ssdkd_env.env.spaces import ActionMapper, observation_fields, observation_space, observe
from ssdkd_env.errors import UserError
from ssdkd_env.reporting.plots import class_sorted_grid, denormalize
from ssdkd_env.tasks import get_task
from ssdkd_env.teachers import obtain_teacher, test_split_if_available


class DistillationEnv(gym.Env):
    """Data-free distillation as an environment (see the README for every observation element)."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 4}

    def __init__(
        self,
        config: EnvConfig | dict[str, Any] | None = None,
        render_mode: str | None = None,
        teacher_model: nn.Module | None = None,
        task: str | None = None,
        method: str | None = None,
        **overrides: Any,
    ) -> None:
        """``config``: an :class:`EnvConfig` (or its dict). Keyword arguments refine it:
        ``task`` and ``method`` pick the engine's defaults, :class:`EnvConfig` field names
        (``reward``, ``action_mode``, ``teacher``, ``data_root``, ``device``, ...) set those, and
        anything else is a dotted engine field (``rounds=20``, ``**{"action.synth_budget": 64}``).
        ``teacher_model``: an in-memory teacher (tests, notebooks) instead of a checkpoint."""
        super().__init__()
        if config is None:
            config = EnvConfig()
        elif isinstance(config, dict):
            config = EnvConfig.from_dict(config)
        config = copy.deepcopy(config)
        if task is not None or method is not None:
            config.engine = make_config(task or config.engine.task, method or config.engine.method)
        env_fields = {f.name for f in dataclasses.fields(EnvConfig)} - {"engine"}
        for key in [k for k in overrides if k in env_fields]:
            setattr(config, key, overrides.pop(key))
        if overrides:
            config.engine = replace_nested(config.engine, **overrides)
        config.validate()
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise UserError(f"unknown render mode '{render_mode}'; valid: rgb_array")
        self.config = config
        self.render_mode = render_mode
        self.task = get_task(config.engine.task)
        self.device = resolve_device(config.device)
        if teacher_model is not None:
            self.teacher = teacher_model.to(self.device).eval()
            self.teacher_card = ModelCard(
                "teacher",
                self.task.name,
                "in-memory",
                self.task.num_classes,
                self.task.input_shape,
                self.task.mean,
                self.task.std,
                None,
            )
        else:
            self.teacher, self.teacher_card = obtain_teacher(
                self.task, config.teacher, config.data_root, config.download, self.device, progress=False
            )
        self.test_set = test_split_if_available(self.task, config.data_root, config.download)
        if config.reward == "oracle" and self.test_set is None:
            raise UserError(
                f"reward='oracle' needs the real test split of '{self.task.name}' (not data-free): set data_root"
            )
        self.mapper = ActionMapper(config.engine.action.synth_budget, config.action_bins)
        self.action_space = self.mapper.space(config.action_mode)
        self.observation_space = observation_space(self.task.num_classes)
        self.observation_names = [f.name for f in observation_fields(self.task.num_classes)]
        self._probe: ProbeSet | None = None
        self.engine: DistillationEngine | None = None
        self._quality = 0.0
        self._previous = np.zeros(len(self.mapper.bins))
        self._needs_reset = True

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Fresh student, generator, buffer (the teacher and the probe set are kept).

        ``options`` may override engine fields for this episode by dotted key, e.g. ``{"rounds": 10}``.
        """
        super().reset(seed=seed)
        episode_seed = int(self.np_random.integers(0, 2**31 - 1)) if seed is None else int(seed)
        if self.engine is not None:
            self.engine.close()  # the teacher is shared: drop the previous episode's hooks
        engine_config = self.config.engine
        if options:
            engine_config = replace_nested(engine_config, **options)
        self.engine = DistillationEngine(
            engine_config, self.task, self.teacher, self.device, episode_seed, self.test_set, self.probe
        )
        self._previous = np.zeros(len(self.mapper.bins))
        initial_probe = self.engine.probe.measure(self.engine.delivered_student)
        obs = observe(self.engine, None, self._previous, initial_probe)
        # Quality before any round is chance level (1/K) for every episode: a fresh student knows
        # nothing, and its measured agreement only reflects its random initialisation, which
        # would add noise unrelated to the run's outcome to every episode's return.
        self._quality = 1.0 / self.task.num_classes
        self._needs_reset = False
        info = {
            "quality": self._quality,
            "initial_probe_agreement": initial_probe.agreement,
            "synthetic_samples": self.engine.synthetic_samples,
            "kd_steps": 0,
            "episode_seed": episode_seed,
        }
        return obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._needs_reset or self.engine is None:
            raise RuntimeError("call reset() before step() (the episode ended or diverged)")
        unit = self.mapper.to_unit(action, self.config.action_mode)
        decision = self.mapper.decode(unit)
        snapshot = copy.deepcopy(self.engine.state_dict())
        try:
            metrics = self.engine.run_round(decision)
            if not np.isfinite([metrics.kd_loss, metrics.probe_kl, metrics.batch_kl]).all():
                raise FloatingPointError("non-finite round metrics")
        except FloatingPointError:
            self.engine.load_state_dict(snapshot)  # roll the round back
            self._needs_reset = True
            info = {"diverged": True, "action": decision.__dict__, **self._counters()}
            obs = observe(self.engine, None, self._previous)
            return obs, -float(self.config.divergence_penalty), False, True, info
        quality = self._measure_quality(metrics)
        reward = quality - self._quality - self.config.compute_cost * decision.synth_budget
        self._quality = quality
        self._previous = unit
        terminated = self.engine.done
        self._needs_reset = terminated
        info = {**metrics.as_dict(), "quality": quality, "diverged": False, "action": decision.__dict__}
        return observe(self.engine, metrics, unit), float(reward), terminated, False, info

    def render(self) -> np.ndarray | None:
        """An RGB grid of buffer samples, one row per teacher class."""
        if self.render_mode != "rgb_array" or self.engine is None:
            return None
        buf = self.engine.buffer
        if buf.size == 0:
            return np.zeros((32, 32, 3), dtype=np.uint8)
        from torchvision.utils import make_grid

        grid, nrow = class_sorted_grid(buf.images[: buf.size], buf.predicted_classes(), self.task.num_classes)
        pixels = make_grid(denormalize(grid, self.task.mean, self.task.std).cpu(), nrow=nrow, padding=1)
        if pixels.shape[0] == 1:
            pixels = pixels.expand(3, -1, -1)
        return (pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        super().close()

    # ------------------------------------------------------------------ helpers
    @property
    def probe(self) -> ProbeSet:
        """The environment's probe set, built on first use and shared by every episode."""
        if self._probe is None:
            cfg = self.config.engine
            self._probe = build_probe(
                self.teacher,
                self.task,
                cfg.probe_size,
                cfg.probe_rounds,
                cfg.synthesis,
                self.device,
                self.config.probe_seed,
            )
        return self._probe

    def default_action(self) -> np.ndarray | int:
        """The action that reproduces the engine's configured (fixed) decisions, in this env's form."""
        unit = self.mapper.encode(self.config.engine.action)
        if self.config.action_mode == "continuous":
            return unit.astype(np.float32)
        idx = [int(round((u + 1.0) / 2.0 * (n - 1))) for u, n in zip(unit, self.mapper.bins, strict=True)]
        if self.config.action_mode == "multi_discrete":
            return np.array(idx, dtype=np.int64)
        return int(np.ravel_multi_index(idx, self.mapper.bins))

    def decode_action(self, action: Any) -> RoundAction:
        return self.mapper.decode(self.mapper.to_unit(action, self.config.action_mode))

    def _measure_quality(self, metrics: RoundMetrics) -> float:
        """m_t after a round: probe agreement, or (oracle) real test accuracy."""
        assert self.engine is not None
        if self.config.reward == "oracle":
            acc = metrics.test_acc if metrics.test_acc is not None else self.engine.test_accuracy()
            return float(acc) if acc is not None else 0.0
        return metrics.probe_agreement

    def _counters(self) -> dict[str, Any]:
        assert self.engine is not None
        return {
            "synthetic_samples": self.engine.synthetic_samples,
            "kd_steps": self.engine.distiller.steps,
            "round": self.engine.round,
        }
