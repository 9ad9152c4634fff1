"""What components are built from: the run's models, task, configuration, device and generators."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from ssdkd_env.tasks import TaskSpec
from ssdkd_env.tasks.kinds import TaskKind

if TYPE_CHECKING:
    from ssdkd_env.engine.config import EngineConfig


@dataclass
class RunContext:
    """Shared by every component of one run. ``rng`` drives the sampling of a round (targets,
    latents); ``device_rng`` the draws of every step (replay, augmentation), on the run's device
    (on a CPU it is ``rng``); ``init_rng`` draws initial weights. Nothing uses the global torch RNG."""

    config: EngineConfig
    task: TaskSpec
    kind: TaskKind
    teacher: nn.Module
    student: nn.Module
    device: torch.device
    rng: torch.Generator
    init_rng: torch.Generator
    device_rng: torch.Generator
