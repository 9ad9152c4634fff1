"""What components are built from: the run's models, shapes, device, generators and sizes.

A leaf of the package: synthesizers, memories and the probe read it without importing the engine.
Each component's constructor takes its own options (its ``Config``) and one :class:`RunContext`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ssdkd_env.common.precision import Precision
from ssdkd_env.tasks import TaskSpec
from ssdkd_env.tasks.kinds import TASK_KINDS, TaskKind


@dataclass
class RunContext:
    """Shared by every component of one run. ``rng`` drives the sampling of a round (targets,
    latents); ``device_rng`` the draws of every step (replay, augmentation), on the run's device
    (by default ``rng``); ``init_rng`` draws initial weights. Nothing uses the global torch RNG.

    ``task`` is the task these shapes come from, for the components that read its data (``kd-real``)
    or check their inputs against it (``csmi``); components made for bare shapes (tests) leave it out.
    """

    teacher: nn.Module
    input_shape: tuple[int, int, int]
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    rng: torch.Generator
    init_rng: torch.Generator
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    device_rng: torch.Generator | None = None
    student: nn.Module | None = None
    kind: TaskKind = field(default_factory=lambda: TASK_KINDS.get("classification"))
    precision: Precision = "auto"
    channels_last: bool = False
    task: TaskSpec | None = None
    rounds: int = 1  # rounds of the run (schedules that span it)
    buffer_size: int = 1  # the memory's capacity in samples
    synth_budget: int = 1  # samples synthesised a round by the configured action (a growing pool's rounds x this)
    condensed_path: str | None = (
        None  # csmi's condensed samples (train/condense.py), read by its synthesizer and memory
    )

    def __post_init__(self) -> None:
        if self.device_rng is None:
            self.device_rng = self.rng

    @property
    def step_rng(self) -> torch.Generator:
        """``device_rng`` (typed: never ``None`` once built)."""
        assert self.device_rng is not None
        return self.device_rng

    def require_task(self, component: str) -> TaskSpec:
        """The run's task, for a ``component`` that reads its data (an error for a bare-shapes context)."""
        if self.task is None:
            raise ValueError(f"{component} reads its task's data: build its context with RunContext.of_task")
        return self.task

    @classmethod
    def of_task(
        cls,
        task: TaskSpec,
        teacher: nn.Module,
        rng: torch.Generator,
        init_rng: torch.Generator | None = None,
        **fields: Any,
    ) -> RunContext:
        """A context for ``task``'s shapes, normalisation and kind (``init_rng`` defaults to ``rng``)."""
        return cls(
            teacher,
            task.input_shape,
            task.num_classes,
            task.mean,
            task.std,
            rng,
            rng if init_rng is None else init_rng,
            kind=TASK_KINDS.get(task.kind),
            task=task,
            **fields,
        )
