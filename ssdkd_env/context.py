"""What components are built from: the run's models, task, configuration, device and generators.

A leaf of the package: synthesizers and memories read it without importing the engine, and the
engine's ``EngineConfig`` is one :class:`ComponentConfig`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn as nn

from ssdkd_env.action import RoundAction
from ssdkd_env.common.precision import Precision
from ssdkd_env.replay.config import VAEConfig
from ssdkd_env.synthesis.config import (
    AdversarialConfig,
    CondensedConfig,
    PixelInversionConfig,
    RealDataConfig,
    SynthesisConfig,
)
from ssdkd_env.tasks import TaskSpec
from ssdkd_env.tasks.kinds import TaskKind


class ComponentConfig(Protocol):
    """The fields of a run's configuration that synthesizers and memories read."""

    method: str
    rounds: int
    buffer_size: int
    synthesis: SynthesisConfig
    adversarial: AdversarialConfig
    vae: VAEConfig
    pixel: PixelInversionConfig
    condensed: CondensedConfig
    real: RealDataConfig
    action: RoundAction
    precision: Precision
    channels_last: bool


@dataclass
class RunContext:
    """Shared by every component of one run. ``rng`` drives the sampling of a round (targets,
    latents); ``device_rng`` the draws of every step (replay, augmentation), on the run's device
    (on a CPU it is ``rng``); ``init_rng`` draws initial weights. Nothing uses the global torch RNG."""

    config: ComponentConfig
    task: TaskSpec
    kind: TaskKind
    teacher: nn.Module
    student: nn.Module
    device: torch.device
    rng: torch.Generator
    init_rng: torch.Generator
    device_rng: torch.Generator
