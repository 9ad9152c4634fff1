"""Task kinds: what a model's output means, so the rest of the engine need not assume ``[N, K]`` logits.

A task kind turns teacher and student outputs into the quantities the engine uses: per-sample
reductions of element-wise discrepancies, agreement, a class histogram of a set of samples, and
one representative class per sample (for sample grids and class-aware eviction). Classification
is the kind every task has today; dense prediction (segmentation) is a second kind registered the
same way, with outputs ``[N, K, H, W]``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch

from ssdkd_env.registry import Registry


class TaskKind(ABC):
    """How outputs of shape ``[N, K, ...]`` (class dimension 1) are read."""

    name: str

    def per_sample(self, values: torch.Tensor) -> torch.Tensor:
        """Reduce element-wise values ``[N, ...]`` (class dimension already reduced) to ``[N]``."""
        if values.dim() == 1:
            return values
        return values.reshape(values.shape[0], -1).mean(1)

    @abstractmethod
    def agreement(self, student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
        """Per-sample share ``[N]`` of predictions on which student and teacher agree."""

    @abstractmethod
    def class_histogram(self, teacher_out: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Counts ``[K]`` of the teacher's predicted classes over a set of samples."""

    @abstractmethod
    def predicted_classes(self, teacher_out: torch.Tensor) -> torch.Tensor:
        """One representative class ``[N]`` per sample."""

    def confidence(self, teacher_out: torch.Tensor) -> torch.Tensor:
        """Per-sample teacher confidence ``[N]``: mean max-softmax over the sample's predictions."""
        return self.per_sample(teacher_out.softmax(1).amax(1))


TASK_KINDS: Registry[TaskKind] = Registry("task kind")


class Classification(TaskKind):
    """One class per image: outputs are logits ``[N, K]``."""

    name = "classification"

    def agreement(self, student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
        return (student_out.argmax(1) == teacher_out.argmax(1)).float()

    def class_histogram(self, teacher_out: torch.Tensor, num_classes: int) -> torch.Tensor:
        return torch.bincount(teacher_out.argmax(1), minlength=num_classes)

    def predicted_classes(self, teacher_out: torch.Tensor) -> torch.Tensor:
        return teacher_out.argmax(1)


TASK_KINDS.add("classification", Classification())
