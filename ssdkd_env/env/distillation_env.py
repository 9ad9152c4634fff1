"""The distillation process as a Gymnasium environment.

An episode is one distillation run; a step is one round of the engine with the agent's sampling
and memory-update decisions. Running it with the fixed action ``default_action()`` is exactly
``train/distill.py``. The action space is one canonical Box with a dimension per round decision
that the method's components act on (``action_fields``); :func:`make_env` adds the discrete forms
as wrappers and is the one place that may train a missing teacher.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn

from ssdkd_env.checkpoint import ModelCard
from ssdkd_env.common.device import resolve_device
from ssdkd_env.distillation import ProbeMetrics, ProbeSet, build_probe
from ssdkd_env.engine import (
    DistillationEngine,
    EngineConfig,
    RoundAction,
    methods_with_memory,
    replace_nested,
    with_data_root,
)
from ssdkd_env.engine.engine import RoundMetrics
from ssdkd_env.env.config import EnvConfig
from ssdkd_env.env.instances import InstanceSet, load_instance_set, teacher_identity
from ssdkd_env.env.spaces import ACTION_WRAPPERS, ActionMapper, action_fields, action_space, observation_fields
from ssdkd_env.errors import UserError
from ssdkd_env.observation import assemble, observation_space
from ssdkd_env.replay import MEMORIES, NO_MEMORY
from ssdkd_env.reporting.plots import class_sorted_grid, denormalize
from ssdkd_env.tasks import get_task
from ssdkd_env.teachers import obtain_teacher, test_split_if_available


class DistillationEnv(gym.Env):
    """Data-free distillation as an environment (docs/environment.md describes every observation element).

    Actions follow one rule (:mod:`ssdkd_env.env.spaces`): a value that is not a finite number (NaN,
    +-inf), in any dimension, is refused -- ``step`` raises :class:`~ssdkd_env.env.spaces.InvalidAction`
    (a ``UserError`` and a ``ValueError``) naming those dimensions and leaves the environment as it
    was; finite values outside [-1, 1] are clipped to it. The Box has one dimension per field of
    ``action_fields`` (the decisions the method's components act on, in the canonical order); the
    other decisions of each round are the configured ones.
    """

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
        (``reward``, ``teacher``, ``data_root``, ``device``, ...) set those, and anything else is
        a dotted engine field (``rounds=20``, ``**{"action.synth_budget": 64}``).
        ``teacher_model``: an in-memory teacher (tests, notebooks) instead of a checkpoint. Without
        one, the teacher is loaded (``config.teacher`` or the task's cache), never trained."""
        super().__init__()
        config = resolve_env_config(config, task, method, overrides)
        self.instances: InstanceSet | None = None
        if config.suite is not None and config.instance_set is not None:
            # an instance continues its reference run: that run's configuration and teacher
            self.instances = load_instance_set(config.suite, config.instance_set, config.instance_dir)
            teacher = config.teacher
            if teacher is None and self.instances.teacher.source == "checkpoint":
                teacher = self.instances.teacher.path
            config = dataclasses.replace(config, engine=self.instances.engine, teacher=teacher)
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise UserError(f"unknown render mode '{render_mode}'; valid: rgb_array")
        if config.engine.memory == NO_MEMORY:
            raise UserError(
                f"method '{config.engine.method}' keeps no memory, so the environment has nothing to observe or "
                f"steer; methods with a memory: {', '.join(methods_with_memory())}"
            )
        memory_class = MEMORIES.get(config.engine.memory)
        config = dataclasses.replace(config, engine=with_data_root(config.engine, config.data_root))  # kd-real's images
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
                self.task, config.teacher, config.data_root, config.download, self.device, progress=False, train=False
            )
            if self.instances is not None:  # an in-memory teacher is the caller's to vouch for
                self.instances.check_teacher(teacher_identity(self.task, config.teacher, self.teacher_card.arch))
        if self.instances is not None:
            self.instances.check_device(self.device)
        self.test_set = test_split_if_available(self.task, config.data_root, config.download)
        if config.reward == "oracle" and self.test_set is None:
            raise UserError(
                f"reward='oracle' needs the real test split of '{self.task.name}' (not data-free): set data_root"
            )
        self.action_fields = action_fields(config.engine)
        self.action_names = [f.name for f in self.action_fields]
        self.mapper = ActionMapper(self.action_fields, config.engine.action)
        self.action_space = action_space(self.action_fields)
        self.observation_fields = observation_fields(self.task.num_classes, memory_class, len(self.action_fields))
        self.observation_space = observation_space(self.observation_fields)
        self.observation_names = [f.name for f in self.observation_fields]
        self._probe: ProbeSet | None = None
        self.engine: DistillationEngine | None = None
        self._quality = 0.0
        self._previous = np.zeros(len(self.action_fields))
        self._last_obs: np.ndarray | None = None
        self._needs_reset = True
        self._end_round = 0
        self._instance_info: dict[str, Any] = {}

    # ------------------------------------------------------------------ gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Fresh student, generator, memory (the teacher and the probe set are kept); with an instance
        set, the state of an instance: ``options={"instance": i}``, else one drawn from the
        environment's own generator (seeded by ``seed``). An instance's episode draws its randomness
        from the episode seed (``seed``, else one drawn from the environment's generator), so one
        instance under several seeds gives several runs from the same state;
        ``options={"replay_reference": True}`` keeps the reference run's own random states instead
        (with the configured actions the episode is then exactly that run's rounds ``k+1..``).

        Without an instance set, ``options`` may override engine fields for this episode by dotted
        key, e.g. ``{"rounds": 10}``.
        """
        super().reset(seed=seed)
        options = dict(options or {})
        instance = options.pop("instance", None)
        replay_reference = bool(options.pop("replay_reference", False))
        if self.engine is not None:
            self.engine.close()  # the teacher is shared: drop the previous episode's hooks
        if self.instances is not None:
            if options:
                raise UserError(
                    f"an instance's episode keeps its reference run's configuration: reset options "
                    f"{', '.join(sorted(options))} are refused with an instance set (only 'instance' and "
                    f"'replay_reference' are taken)"
                )
            index = self._instance_index(instance)
            start = self.instances.instances[index]
            self.engine = self._engine(self.config.engine, start.seed)
            self._load_instance(index)
            self._end_round = start.end_round
            self._instance_info = {"instance": index, "instance_name": start.name}
            episode_seed = start.seed
            if not replay_reference:
                episode_seed = int(self.np_random.integers(0, 2**31 - 1)) if seed is None else int(seed)
                self.engine.reseed(episode_seed)
        else:
            if instance is not None or replay_reference:
                raise UserError(
                    "reset options 'instance' and 'replay_reference' need an instance set: make the environment "
                    "with suite=... and instance_set='train' or 'test'"
                )
            episode_seed = int(self.np_random.integers(0, 2**31 - 1)) if seed is None else int(seed)
            engine_config = replace_nested(self.config.engine, **options) if options else self.config.engine
            self.engine = self._engine(engine_config, episode_seed)
            self._end_round = self.engine.config.rounds
        self._previous = np.zeros(len(self.action_fields))
        initial_probe = self.engine.measure_probe()
        self._last_obs = self._observe(None, initial_probe)
        # Quality before any round of a fresh run is chance level (1/K) for every episode: a fresh
        # student knows nothing, and its measured agreement only reflects its random initialisation,
        # which would add noise unrelated to the run's outcome to every episode's return. An
        # instance's student is the reference run's: its agreement is the episode's start.
        self._quality = initial_probe.agreement if self.instances is not None else 1.0 / self.task.num_classes
        self._needs_reset = False
        info = {
            "quality": self._quality,
            "initial_probe_agreement": initial_probe.agreement,
            "synthetic_samples": self.engine.synthetic_samples,
            "kd_steps": self.engine.distiller.steps,
            "episode_seed": episode_seed,
            **self._instance_info,
        }
        return self._last_obs, info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict]:
        if self._needs_reset or self.engine is None or self._last_obs is None:
            raise RuntimeError("call reset() before step() (the episode ended or diverged)")
        unit = self.mapper.canonical(action)  # refuses a value that is not a finite number
        decision = self.mapper.decode(unit)
        try:
            metrics = self.engine.run_round(decision)
            if not np.isfinite([metrics.kd_loss, metrics.probe_kl, metrics.batch_discrepancy]).all():
                raise FloatingPointError("non-finite round metrics")
        except FloatingPointError:
            # the engine's state is not trusted any more: the episode ends here and needs a reset
            self._needs_reset = True
            info = {"diverged": True, "action": dataclasses.asdict(decision), **self._counters()}
            return self._last_obs, -float(self.config.divergence_penalty), False, True, info
        quality = self._measure_quality(metrics)
        reward = quality - self._quality - self.config.compute_cost * decision.synth_budget
        self._quality = quality
        self._previous = unit
        terminated = self.engine.round >= self._end_round
        self._needs_reset = terminated
        info = {
            **metrics.as_dict(),
            "quality": quality,
            "diverged": False,
            "action": dataclasses.asdict(decision),
            **self._instance_info,
        }
        self._last_obs = self._observe(metrics)
        return self._last_obs, float(reward), terminated, False, info

    def render(self) -> np.ndarray | None:
        """An RGB grid of memory samples, one row per teacher class (images under 32 pixels upscaled)."""
        if self.render_mode != "rgb_array" or self.engine is None or self.engine.memory is None:
            return None
        images, outputs = self.engine.memory.contents()
        if images.shape[0] == 0:
            return np.zeros((32, 32, 3), dtype=np.uint8)
        from torchvision.utils import make_grid

        classes = self.engine.kind.predicted_classes(outputs)
        grid, nrow = class_sorted_grid(images, classes, self.task.num_classes)
        tiles = denormalize(grid, self.task.mean, self.task.std).cpu()
        upscale = max(1, 32 // min(tiles.shape[-2:]))  # an 8x8 digit shows as 32x32
        if upscale > 1:
            tiles = torch.nn.functional.interpolate(tiles, scale_factor=upscale, mode="nearest")
        pixels = make_grid(tiles, nrow=nrow, padding=1)
        if pixels.shape[0] == 1:
            pixels = pixels.expand(3, -1, -1)
        return (pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
        super().close()

    # ------------------------------------------------------------------ helpers
    def _engine(self, config: EngineConfig, seed: int) -> DistillationEngine:
        return DistillationEngine(config, self.task, self.teacher, self.device, seed, self.test_set, self.probe)

    def _instance_index(self, requested: Any) -> int:
        """The instance an episode starts from: ``requested``, else one drawn from ``np_random``."""
        assert self.instances is not None
        count = len(self.instances)
        if requested is None:
            return int(self.np_random.integers(count))
        if isinstance(requested, bool) or not isinstance(requested, int | np.integer) or not 0 <= requested < count:
            raise UserError(f"reset option 'instance' is an index in [0, {count - 1}], got {requested!r}")
        return int(requested)

    def _load_instance(self, index: int) -> None:
        """Put the engine in the state instance ``index`` starts from."""
        assert self.instances is not None and self.engine is not None
        try:
            self.engine.load_state_dict(self.instances.state(index))
        except (KeyError, ValueError, TypeError, RuntimeError) as exc:  # another version's or shape's state
            raise UserError(
                f"the state of instance {self.instances.instances[index].name} does not fit this version of the "
                f"engine ({type(exc).__name__}: {' '.join(str(exc).split())}); {self.instances.fix}"
            ) from None

    @property
    def probe(self) -> ProbeSet:
        """The environment's probe set, built on first use and shared by every episode (with an instance
        set: the reference runs' probe set, which every instance's state holds)."""
        if self._probe is None and self.instances is not None:
            self._probe = self.instances.probe(self.device)
        if self._probe is None:
            cfg = self.config.engine
            self._probe = build_probe(
                self.teacher,
                self.task,
                cfg.probe_size,
                cfg.probe_rounds,
                cfg.probe_inversion,
                self.device,
                self.config.probe_seed,
                precision=cfg.precision,
                channels_last=cfg.channels_last,
            )
        return self._probe

    def sibling(self) -> DistillationEnv:
        """A second environment of the same configuration that shares this one's teacher, test split and
        probe set (what a vector of environments in one process holds), with its own episodes."""
        twin = copy.copy(self)
        twin.engine, twin._last_obs, twin._needs_reset = None, None, True
        twin._previous, twin._quality = np.zeros(len(self.action_fields)), 0.0
        twin._probe = self.probe  # built now, once, for both
        twin._np_random, twin._np_random_seed = None, None
        return twin

    def default_action(self) -> np.ndarray:
        """The canonical action that reproduces the engine's configured (fixed) decisions."""
        return self.mapper.encode(self.config.engine.action).astype(np.float32)

    def encode_action(self, decision: RoundAction) -> np.ndarray:
        """The canonical action for ``decision``."""
        return self.mapper.encode(decision).astype(np.float32)

    def decode_action(self, action: Any) -> RoundAction:
        """The decisions a canonical action stands for."""
        return self.mapper.decode(np.asarray(action))

    def _observe(self, metrics: RoundMetrics | None, probe: ProbeMetrics | None = None) -> np.ndarray:
        """The observation after a round (``metrics=None`` before any round, with ``probe`` then)."""
        engine = self.engine
        assert engine is not None and engine.memory is not None
        if metrics is None:
            probe = probe or engine.measure_probe()
            measures = {"batch_discrepancy": 0.0, "batch_agreement": 0.0, "probe_kl": probe.kl}
            measures["probe_agreement"] = probe.agreement
        else:
            measures = {
                "batch_discrepancy": metrics.batch_discrepancy,
                "batch_agreement": metrics.batch_agreement,
                "probe_kl": metrics.probe_kl,
                "probe_agreement": metrics.probe_agreement,
            }
        rounds = max(1, engine.config.rounds)
        values = {
            "progress": engine.round / rounds,
            **engine.memory.stats(),
            **measures,
            "previous_action": self._previous,
        }
        return assemble(self.observation_fields, values, rounds)

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


def resolve_env_config(
    config: EnvConfig | dict[str, Any] | None, task: str | None, method: str | None, overrides: dict[str, Any]
) -> EnvConfig:
    """An :class:`EnvConfig` from a config or its dict, refined by ``task``/``method`` and overrides."""
    if config is None:
        config = EnvConfig()
    elif isinstance(config, dict):
        config = EnvConfig.from_dict(config)
    if task is None and method is None and not overrides:
        return config
    return config.refined(task, method, **overrides)


def make_env(
    config: EnvConfig | dict[str, Any] | None = None,
    *,
    train_teacher: bool = False,
    render_mode: str | None = None,
    teacher_model: nn.Module | None = None,
    task: str | None = None,
    method: str | None = None,
    **overrides: Any,
) -> gym.Env:
    """The environment in the action form of ``config.action_mode`` (the discrete forms wrap the
    canonical Box). ``train_teacher=True`` trains and caches the task's teacher first when there is
    none (the only way building an environment trains anything)."""
    config = resolve_env_config(config, task, method, dict(overrides))
    if train_teacher and teacher_model is None:
        obtain_teacher(
            get_task(config.engine.task),
            config.teacher,
            config.data_root,
            config.download,
            resolve_device(config.device),
            progress=True,
            train=True,
        )
    return in_action_form(DistillationEnv(config, render_mode=render_mode, teacher_model=teacher_model))


def in_action_form(env: DistillationEnv) -> gym.Env:
    """``env`` in the action form of its ``config.action_mode`` (the discrete forms wrap the canonical Box)."""
    wrapper = ACTION_WRAPPERS.get(env.config.action_mode)
    return wrapper(env, env.config.action_bins) if wrapper is not None else env
