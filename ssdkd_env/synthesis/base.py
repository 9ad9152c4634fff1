"""The synthesizer interface: produce a round's synthetic samples, report losses by name."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ssdkd_env.common.validation import NoOptions, Validated
from ssdkd_env.registry import Registry

if TYPE_CHECKING:
    from ssdkd_env.context import RunContext


@dataclass
class SynthesisRequest:
    """What a round asks of the synthesizer.

    ``class_counts`` is the memory's teacher-predicted class histogram; ``diversity`` and
    ``difficulty`` are the two parts of SSD-KD's modulating function phi (strength of drawing
    targets against that histogram; focal exponent gamma of the class loss).
    """

    n: int
    class_counts: torch.Tensor
    round_index: int
    diversity: float = 0.0
    difficulty: float = 0.0


@dataclass
class SynthesisResult:
    """What one round of synthesis produced (all detached)."""

    images: torch.Tensor
    targets: torch.Tensor
    teacher_logits: torch.Tensor  # the teacher's outputs on ``images``
    losses: dict[str, float | torch.Tensor]  # scalars; a 0-d tensor is read once, at the end of the round


class BaseSynthesizer(ABC):
    """Makes synthetic samples from the teacher. Subclasses register themselves in ``SYNTHESIZERS``.

    A synthesizer is built as ``cls(options, ctx)``: ``options`` is an instance of its ``Config`` (the
    run configuration's ``synthesizer_options``, checked against it), ``ctx`` the run's shared
    :class:`~ssdkd_env.context.RunContext`. ``action_fields`` names the round decisions of a
    :class:`SynthesisRequest` (``diversity``, ``difficulty``) that it acts on; the environment has a
    dimension only for those. ``task_defaults_from`` names the components whose per-task tuning
    (``TaskSpec.component_defaults``) it takes before its own (a synthesizer that extends another's options).
    """

    Config: ClassVar[type[Validated]] = NoOptions
    action_fields: ClassVar[tuple[str, ...]] = ()
    task_defaults_from: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    def __init__(self, options: Any, ctx: RunContext) -> None:
        """Build the synthesizer of a run from its options and the run's context."""

    @classmethod  # noqa: B027  (optional hook: most synthesizers read no input)
    def check_inputs(cls, options: Any, ctx: RunContext) -> None:
        """Fail with a :class:`~ssdkd_env.errors.UserError` when an input the run needs is missing,
        before the run's expensive set-up (the probe's inversion)."""

    @abstractmethod
    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """Produce ``request.n`` new samples with the teacher's outputs and the losses of the round."""

    def close(self) -> None:  # noqa: B027  (optional hook: most synthesizers hold nothing shared)
        """Release what the synthesizer put on shared models (hooks on the teacher)."""

    def report(self) -> dict[str, Any]:
        """Facts of the run's synthesis worth a line in ``summary.json`` (none by default)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:  # noqa: B027  (stateless by default)
        """Restore what :meth:`state_dict` returned."""


SYNTHESIZERS: Registry[type[BaseSynthesizer]] = Registry("synthesizer")
