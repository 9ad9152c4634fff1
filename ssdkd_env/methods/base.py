"""Round loops: the part of a method that owns one round (what runs, in which order).

The engine builds the components (synthesizer, memory, distiller), then calls its round loop once
per round and measures the student afterwards. A loop sees the run through a :class:`RoundContext`:
the components, the student, the generators, the round number and the sizes it needs, and nothing
that holds real data (the engine, which holds the test split, is never given to it). A loop that
interleaves generator and student steps (DFAD), or that distils without a memory, is a new loop
registered in ``ROUND_LOOPS``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
import torch.nn as nn

from ssdkd_env.action import RoundAction
from ssdkd_env.common.precision import Precision
from ssdkd_env.common.validation import NoOptions, Validated
from ssdkd_env.distillation import Distiller, DistillerConfig
from ssdkd_env.errors import UserError
from ssdkd_env.registry import Registry
from ssdkd_env.replay import BaseMemory
from ssdkd_env.synthesis import BaseSynthesizer


class RoundConfig(Protocol):
    """The fields of a run's configuration that round loops read."""

    method: str
    synthesizer: str
    kd_steps: int
    distiller: DistillerConfig
    precision: Precision


@dataclass
class RoundContext:
    """What a round loop sees of its run: the components, the student, the generators, the round
    number and the sizes it needs. Nothing in it holds real data (the engine builds one per round;
    tests build one by hand from components made without data)."""

    config: RoundConfig
    num_classes: int
    synthesizer: BaseSynthesizer
    memory: BaseMemory | None
    distiller: Distiller
    student: nn.Module
    device: torch.device
    rng: torch.Generator  # the run's sampling generator (targets, latents)
    device_rng: torch.Generator  # the draws of every step (replay, augmentation), on the run's device
    round: int  # rounds completed before this one


def require_memory(ctx: RoundContext) -> BaseMemory:
    """The run's memory; a one-line error for a configuration that has none."""
    if ctx.memory is None:
        raise UserError(f"method '{ctx.config.method}' keeps no memory, but its round loop needs one")
    return ctx.memory


@dataclass
class RoundOutcome:
    """What a round loop did: new samples, the student's training scalars, losses by name."""

    synthesized: int  # new synthetic samples this round
    kd_loss: float  # mean training loss of the round's student steps
    batch_discrepancy: float  # mean per-sample teacher–student discrepancy on the trained batches
    batch_agreement: float  # mean teacher–student agreement on the trained batches
    losses: dict[str, float] = field(default_factory=dict)  # e.g. the synthesizer's bn / oh / adv


def read_round(sums: torch.Tensor, kd_steps: int, synthesized: int) -> tuple[RoundOutcome, list[float]]:
    """The round's one host read of its summed step scalars: ``sums`` holds the student's loss,
    discrepancy and agreement summed over the round's ``kd_steps`` steps, then any other values.
    Returns the outcome (means over the steps, no losses yet) and the other values as they are;
    a non-finite loss is an error."""
    loss_sum, discrepancy_sum, agree_sum, *rest = sums.tolist()
    if not math.isfinite(loss_sum):
        raise FloatingPointError("non-finite distillation loss")
    steps = max(1, kd_steps)
    return RoundOutcome(synthesized, loss_sum / steps, discrepancy_sum / steps, agree_sum / steps), rest


def decisions(action: RoundAction, names: tuple[str, ...]) -> dict[str, Any]:
    """The ``names`` fields of ``action`` by name (what a component declares it takes)."""
    return {name: getattr(action, name) for name in names}


class RoundLoop(ABC):
    """One round of a method, built as ``cls(options, ctx)``: ``options`` an instance of its ``Config``
    (the run configuration's ``round_loop_options``). State that must survive a checkpoint goes in
    :meth:`state_dict`."""

    Config: ClassVar[type[Validated]] = NoOptions

    @classmethod
    @abstractmethod
    def action_fields(
        cls, options: Any, synthesizer: type[BaseSynthesizer], memory: type[BaseMemory] | None
    ) -> tuple[str, ...]:
        """The ``RoundAction`` fields a run of this loop (with ``options``) acts on, with these
        components: the loop's own and those of the components it passes them to (their declarations)."""

    def __init__(self, options: Any, ctx: RoundContext) -> None:  # noqa: B027  (a loop may build its own parts)
        """Built once per run, after the engine's components (a loop may add its own, e.g. optimisers)."""

    @abstractmethod
    def run(self, ctx: RoundContext, action: RoundAction) -> RoundOutcome:
        """Advance the run by one round with ``action``'s decisions."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027  (stateless by default)
        """Restore what :meth:`state_dict` returned."""


ROUND_LOOPS: Registry[type[RoundLoop]] = Registry("round loop")
