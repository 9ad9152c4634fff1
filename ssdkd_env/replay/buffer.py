"""The dynamic replay buffer of SSD-KD: fixed capacity, on-device tensors, priority sampling.

Every operation is vectorised: no Python loop runs over samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

EvictionRule = Literal["lowest", "oldest", "class"]
EVICTION_RULES: tuple[EvictionRule, ...] = ("lowest", "oldest", "class")


@dataclass
class BufferBatch:
    """A sampled batch: slot indices, images, cached teacher logits and importance weights."""

    index: torch.Tensor
    images: torch.Tensor
    teacher_logits: torch.Tensor
    weights: torch.Tensor


@dataclass
class BufferStats:
    """Summary statistics of the buffer's contents (all tensors on the buffer's device)."""

    fill: float
    class_share: torch.Tensor  # [K] share of samples per teacher-predicted class
    class_priority: torch.Tensor  # [K] mean priority per class (0 for an empty class)
    priority_mean: float
    priority_std: float
    priority_max: float
    age_mean: float
    class_entropy: float  # entropy of class_share / log(K), in [0, 1]
    teacher_confidence: float  # mean max softmax probability of the teacher


class ReplayBuffer:
    """Fixed-capacity store of synthetic samples with cached teacher logits and priorities.

    Sampling follows prioritized experience replay: ``P(i) = p_i^alpha / sum_j p_j^alpha`` and
    importance weights ``w_i = (N P(i))^-beta``, divided by their largest possible value
    ``max_j (N P(j))^-beta`` so that every weight lies in (0, 1].
    """

    def __init__(
        self,
        capacity: int,
        image_shape: tuple[int, ...],
        num_classes: int,
        device: torch.device | str = "cpu",
        min_priority: float = 1e-4,
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.num_classes = num_classes
        self.device = torch.device(device)
        self.min_priority = min_priority
        self.images = torch.zeros((capacity, *image_shape), device=self.device)
        self.teacher_logits = torch.zeros((capacity, num_classes), device=self.device)
        self.priorities = torch.zeros(capacity, device=self.device)
        self.birth_round = torch.zeros(capacity, dtype=torch.long, device=self.device)
        self.size = 0
        self.round = 0

    # ----------------------------------------------------------------- writing
    def insert(
        self,
        images: torch.Tensor,
        teacher_logits: torch.Tensor,
        priorities: torch.Tensor,
        replace_fraction: float = 1.0,
        rule: EvictionRule = "lowest",
    ) -> torch.Tensor:
        """Add new samples: fill empty slots first, then evict by ``rule``.

        At most ``ceil(replace_fraction * capacity)`` occupied slots are overwritten in one call
        (the partial update of SSD-KD); surplus new samples are dropped. Returns the slots written.
        """
        if not bool(torch.isfinite(priorities).all()):
            raise FloatingPointError("non-finite priorities for new samples (the run diverged)")
        n_new = images.shape[0]
        free = min(self.capacity - self.size, n_new)
        budget = min(n_new - free, int(round(replace_fraction * self.capacity)))
        slots = torch.arange(self.size, self.size + free, device=self.device)
        if budget > 0:
            slots = torch.cat([slots, self.eviction_order(rule)[:budget]])
        k = slots.numel()
        self.images[slots] = images[:k].to(self.device, self.images.dtype)
        self.teacher_logits[slots] = teacher_logits[:k].to(self.device, self.teacher_logits.dtype)
        self.priorities[slots] = priorities[:k].to(self.device).float().clamp_min(self.min_priority)
        self.birth_round[slots] = self.round
        self.size += free
        return slots

    def eviction_order(self, rule: EvictionRule) -> torch.Tensor:
        """Occupied slots sorted from first to last to evict under ``rule``.

        - ``lowest``: lowest priority first.
        - ``oldest``: earliest insertion round first (lowest priority breaks ties).
        - ``class``: always from the currently most over-represented teacher class (greedy
          levelling of the histogram), lowest priority first within a class.
        """
        n = self.size
        prio = self.priorities[:n]
        if rule == "lowest":
            return torch.argsort(prio, stable=True)
        if rule == "oldest":
            by_prio = torch.argsort(prio, stable=True)
            return by_prio[torch.argsort(self.birth_round[:n][by_prio], stable=True)]
        if rule == "class":
            classes = self.predicted_classes()
            counts = torch.bincount(classes, minlength=self.num_classes)
            by_prio = torch.argsort(prio, stable=True)
            # rank of each slot inside its class when its class is ordered by priority
            cls_sorted = classes[by_prio]
            order_in_class = torch.argsort(cls_sorted, stable=True)
            starts = torch.cumsum(counts, 0) - counts
            rank_sorted = torch.empty_like(order_in_class)
            rank_sorted[order_in_class] = torch.arange(n, device=self.device) - starts[cls_sorted[order_in_class]]
            # evicting the r-th sample of class c leaves counts[c] - r - 1 in it: evict where that is largest
            remaining = counts[cls_sorted] - rank_sorted
            return by_prio[torch.argsort(-remaining, stable=True)]
        raise ValueError(f"unknown eviction rule '{rule}'; valid: {', '.join(EVICTION_RULES)}")

    def update_priorities(self, index: torch.Tensor, priorities: torch.Tensor) -> None:
        """Refresh the priorities of replayed slots (a slot drawn twice keeps one of its values)."""
        self.priorities[index] = priorities.detach().to(self.device).float().clamp_min(self.min_priority)

    def end_round(self) -> None:
        """Advance the buffer's clock (sample ages count rounds)."""
        self.round += 1

    # ----------------------------------------------------------------- reading
    def probabilities(self, alpha: float) -> torch.Tensor:
        """Sampling distribution P over occupied slots for priority exponent ``alpha``."""
        scaled = self.priorities[: self.size].pow(alpha)
        return scaled / scaled.sum()

    def sample(
        self, batch_size: int, alpha: float = 1.0, beta: float = 0.4, generator: torch.Generator | None = None
    ) -> BufferBatch:
        """Draw ``batch_size`` slots with replacement, P(i) proportional to p_i^alpha."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty buffer")
        probs = self.probabilities(alpha)
        index = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        weights = (self.size * probs[index]).pow(-beta) / (self.size * probs.min()).pow(-beta)
        return BufferBatch(index, self.images[index], self.teacher_logits[index], weights)

    def predicted_classes(self) -> torch.Tensor:
        """Teacher's predicted class of every occupied slot."""
        return self.teacher_logits[: self.size].argmax(1)

    def class_histogram(self) -> torch.Tensor:
        """Number of occupied slots per teacher-predicted class."""
        return torch.bincount(self.predicted_classes(), minlength=self.num_classes)

    def stats(self) -> BufferStats:
        """Statistics for observations and logs, computed in a few tensor operations."""
        k = self.num_classes
        if self.size == 0:
            zeros = torch.zeros(k, device=self.device)
            return BufferStats(0.0, zeros, zeros, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0)
        prio = self.priorities[: self.size]
        classes = self.predicted_classes()
        counts = torch.bincount(classes, minlength=k).float()
        share = counts / self.size
        class_prio = torch.zeros(k, device=self.device).index_add_(0, classes, prio) / counts.clamp_min(1)
        nonzero = share[share > 0]
        entropy = float(-(nonzero * nonzero.log()).sum() / torch.log(torch.tensor(float(k))))
        confidence = float(self.teacher_logits[: self.size].softmax(1).amax(1).mean())
        ages = (self.round - self.birth_round[: self.size]).float()
        return BufferStats(
            fill=self.size / self.capacity,
            class_share=share,
            class_priority=class_prio,
            priority_mean=float(prio.mean()),
            priority_std=float(prio.std(unbiased=False)),
            priority_max=float(prio.max()),
            age_mean=float(ages.mean()),
            class_entropy=entropy,
            teacher_confidence=confidence,
        )

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """Contents for checkpoints."""
        n = self.size
        return {
            "images": self.images[:n].cpu(),
            "teacher_logits": self.teacher_logits[:n].cpu(),
            "priorities": self.priorities[:n].cpu(),
            "birth_round": self.birth_round[:n].cpu(),
            "round": self.round,
        }

    def load_state_dict(self, state: dict[str, torch.Tensor | int]) -> None:
        """Restore contents written by :meth:`state_dict`."""
        images = state["images"]
        assert isinstance(images, torch.Tensor)
        n = images.shape[0]
        self.images[:n] = images.to(self.device)
        self.teacher_logits[:n] = state["teacher_logits"].to(self.device)  # type: ignore[union-attr]
        self.priorities[:n] = state["priorities"].to(self.device)  # type: ignore[union-attr]
        self.birth_round[:n] = state["birth_round"].to(self.device)  # type: ignore[union-attr]
        self.size, self.round = n, int(state["round"])
