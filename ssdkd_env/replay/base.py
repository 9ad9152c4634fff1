"""The memory interface: where a method keeps synthetic samples between rounds.

A memory stores samples with their cached teacher outputs and priorities, hands out
importance-weighted batches, refreshes priorities after each step, and describes itself to the
environment through named statistics (:meth:`BaseMemory.stats`), the observation fields it
declares (:meth:`BaseMemory.observation_fields`) and the round decisions it acts on
(:attr:`BaseMemory.sample_fields`, :attr:`BaseMemory.insert_fields`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ssdkd_env.common.validation import NoOptions, Validated
from ssdkd_env.observation import ObsField
from ssdkd_env.registry import Registry

if TYPE_CHECKING:
    from ssdkd_env.context import RunContext


@dataclass
class BufferBatch:
    """A sampled batch: slot indices, images, cached teacher outputs and importance weights."""

    index: torch.Tensor
    images: torch.Tensor
    teacher_logits: torch.Tensor
    weights: torch.Tensor


class BaseMemory(ABC):
    """Synthetic samples kept across rounds. Subclasses register themselves in ``MEMORIES``; a run
    builds its memory with :meth:`build` from the memory's options (an instance of its ``Config``:
    the run configuration's ``memory_options``) and the run's context.

    ``sample_fields`` names the round decisions (``RoundAction`` fields) that :meth:`sample` takes as
    keywords; ``insert_fields`` those that :meth:`insert` acts on. Round loops pass a memory only
    what it declares, and the environment's action space has a dimension only for what is declared.
    """

    capacity: int
    size: int
    Config: ClassVar[type[Validated]] = NoOptions
    sample_fields: ClassVar[tuple[str, ...]] = ()
    insert_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    @abstractmethod
    def build(cls, options: Any, ctx: RunContext) -> BaseMemory:
        """The memory of a run: ``options`` (an instance of ``cls.Config``), capacity and shapes from ``ctx``."""

    @abstractmethod
    def insert(self, images: torch.Tensor, teacher_logits: torch.Tensor, priorities: torch.Tensor) -> torch.Tensor:
        """Add new samples; returns the slots written (a memory that declares ``insert_fields``, such as
        the replay buffer's replacement share and eviction rule, takes them as keywords)."""

    @abstractmethod
    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> BufferBatch:
        """A batch of ``batch_size`` samples with importance weights, drawn with ``generator``
        (a memory that declares ``sample_fields`` takes them as keywords)."""

    @abstractmethod
    def update_priorities(self, index: torch.Tensor, priorities: torch.Tensor) -> None:
        """Refresh the priorities of replayed slots."""

    def end_round(self) -> None:  # noqa: B027  (optional hook)
        """Called once at the end of every round."""

    @abstractmethod
    def class_histogram(self) -> torch.Tensor:
        """Samples per teacher-predicted class ``[K]`` (what phi's diversity part balances)."""

    @abstractmethod
    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Stored images and their teacher outputs (for sample grids and rendering)."""

    @abstractmethod
    def stats(self) -> dict[str, torch.Tensor | float]:
        """Named statistics; every declared observation field has a value here."""

    @classmethod
    @abstractmethod
    def observation_fields(cls, num_classes: int) -> list[ObsField]:
        """The observation fields this memory fills from :meth:`stats`, in order."""

    def memory_bytes(self) -> int:
        """Bytes held on the device by stored samples and their outputs."""
        return 0

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Contents for checkpoints."""

    @abstractmethod
    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""


MEMORIES: Registry[type[BaseMemory]] = Registry("memory")

NO_MEMORY = "none"  # the memory of a method that keeps nothing between rounds (DFAD, DeepInversion)


def memory_names() -> list[str]:
    """What a configuration's ``memory`` may name: a registered memory or ``"none"``."""
    return [*MEMORIES.names(), NO_MEMORY]
