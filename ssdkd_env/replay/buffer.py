"""The dynamic replay buffer of SSD-KD: fixed capacity, on-device tensors, priority sampling.

Every operation is vectorised: no Python loop runs over samples.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from ssdkd_env.observation import ObsField
from ssdkd_env.replay.base import MEMORIES, BaseMemory, BufferBatch
from ssdkd_env.replay.config import EVICTION_RULES, EvictionRule
from ssdkd_env.tasks.kinds import TASK_KINDS, TaskKind

if TYPE_CHECKING:
    from ssdkd_env.context import RunContext


class ReplayBuffer(BaseMemory):
    """Fixed-capacity store of synthetic samples with cached teacher logits and priorities.

    Sampling follows prioritized experience replay: ``P(i) = p_i^alpha / sum_j p_j^alpha`` and
    importance weights ``w_i = (N P(i))^-beta``, divided by their largest possible value
    ``max_j (N P(j))^-beta`` so that every weight lies in (0, 1].
    """

    sample_fields: ClassVar[tuple[str, ...]] = ("alpha", "beta")
    insert_fields: ClassVar[tuple[str, ...]] = ("replace_fraction", "eviction")

    def __init__(
        self,
        capacity: int,
        image_shape: tuple[int, ...],
        num_classes: int,
        device: torch.device | str = "cpu",
        min_priority: float = 1e-4,
        kind: TaskKind | None = None,
        output_shape: tuple[int, ...] | None = None,
    ) -> None:
        """``output_shape``: the teacher's output per sample (default ``(num_classes,)``; dense
        tasks store ``(K, H, W)``); ``kind`` reads those outputs (default classification)."""
        if capacity < 1:
            raise ValueError("capacity must be positive")
        self.capacity = capacity
        self.num_classes = num_classes
        self.kind = kind or TASK_KINDS.get("classification")
        self.device = torch.device(device)
        self.min_priority = min_priority
        self.images = torch.zeros((capacity, *image_shape), device=self.device)
        self.teacher_logits = torch.zeros((capacity, *(output_shape or (num_classes,))), device=self.device)
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
        eviction: EvictionRule = "lowest",
    ) -> torch.Tensor:
        """Add new samples: fill empty slots first, then evict by the ``eviction`` rule.

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
            slots = torch.cat([slots, self.eviction_order(eviction)[:budget]])
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
        """Refresh the priorities of replayed slots (a slot drawn twice keeps one of its values).

        A non-finite value (a diverged step: the round reports it at its end, without reading
        every step on the host) becomes the minimum priority, so that sampling stays valid."""
        floor = self.min_priority
        new = torch.nan_to_num(priorities.detach().to(self.device).float(), nan=floor, posinf=floor, neginf=floor)
        self.priorities[index] = new.clamp_min(floor)

    def end_round(self) -> None:
        """Advance the buffer's clock (sample ages count rounds)."""
        self.round += 1

    # ----------------------------------------------------------------- reading
    def probabilities(self, alpha: float) -> torch.Tensor:
        """Sampling distribution P over occupied slots for priority exponent ``alpha``."""
        scaled = self.priorities[: self.size].pow(alpha)
        return scaled / scaled.sum()

    def sample(
        self, batch_size: int, generator: torch.Generator | None = None, alpha: float = 1.0, beta: float = 0.4
    ) -> BufferBatch:
        """Draw ``batch_size`` slots with replacement, P(i) proportional to p_i^alpha."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty buffer")
        probs = self.probabilities(alpha)
        index = torch.multinomial(probs, batch_size, replacement=True, generator=generator)
        weights = (self.size * probs[index]).pow(-beta) / (self.size * probs.min()).pow(-beta)
        return BufferBatch(index, self.images[index], self.teacher_logits[index], weights)

    @classmethod
    def build(cls, options: Any, ctx: RunContext) -> ReplayBuffer:
        return cls(cls.capacity_for(options, ctx), **_buffer_args(ctx))

    @classmethod
    def capacity_for(cls, options: Any, ctx: RunContext) -> int:
        """The slots of a run's buffer: its ``buffer_size`` (a variant may read its options)."""
        return ctx.buffer_size

    def predicted_classes(self) -> torch.Tensor:
        """Teacher's predicted class of every occupied slot (a representative one for dense outputs)."""
        return self.kind.predicted_classes(self.teacher_logits[: self.size])

    def class_histogram(self) -> torch.Tensor:
        """Teacher-predicted class counts over the occupied slots (pixels for dense outputs)."""
        return self.kind.class_histogram(self.teacher_logits[: self.size], self.num_classes)

    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[: self.size], self.teacher_logits[: self.size]

    def memory_bytes(self) -> int:
        return self.images.numel() * self.images.element_size() + self.teacher_logits.numel() * 4

    @classmethod
    def observation_fields(cls, num_classes: int) -> list[ObsField]:
        k = num_classes
        return [
            ObsField("buffer_fill", 1, 0, 1, "occupied slots / buffer capacity"),
            ObsField("class_share", k, 0, 1, "share of the buffer per class (teacher's prediction)"),
            ObsField("class_priority", k, 0, 1, "mean priority per class, squashed x/(1+x)", "squash"),
            ObsField("priority_mean", 1, 0, 1, "mean priority (teacher–student discrepancy), squashed", "squash"),
            ObsField("priority_std", 1, 0, 1, "priority standard deviation, squashed", "squash"),
            ObsField("priority_max", 1, 0, 1, "largest priority, squashed", "squash"),
            ObsField("age_mean", 1, 0, 1, "mean sample age in rounds / rounds in the episode", "per_round"),
            ObsField("class_entropy", 1, 0, 1, "entropy of the class shares / log K"),
            ObsField("teacher_confidence", 1, 0, 1, "mean max-softmax of the teacher on the buffer"),
        ]

    def stats(self) -> dict[str, torch.Tensor | float]:
        """Statistics for observations and logs, computed in a few tensor operations.

        The class statistics count samples by their teacher-predicted class (dense samples by
        their pixel share of each class).
        """
        k = self.num_classes
        if self.size == 0:
            zeros = torch.zeros(k, device=self.device)
            names = ("priority_mean", "priority_std", "priority_max", "age_mean", "class_entropy", "teacher_confidence")
            return {"buffer_fill": 0.0, "class_share": zeros, "class_priority": zeros, **dict.fromkeys(names, 0.0)}
        prio = self.priorities[: self.size]
        logits = self.teacher_logits[: self.size]
        histogram, class_prio = self.kind.class_statistics(logits, prio, k)
        share = histogram.float() / self.size
        nonzero = share[share > 0]
        ages = (self.round - self.birth_round[: self.size]).float()
        return {
            "buffer_fill": self.size / self.capacity,
            "class_share": share,
            "class_priority": class_prio,
            "priority_mean": float(prio.mean()),
            "priority_std": float(prio.std(unbiased=False)),
            "priority_max": float(prio.max()),
            "age_mean": float(ages.mean()),
            "class_entropy": float(-(nonzero * nonzero.log()).sum()) / math.log(k),
            "teacher_confidence": float(self.kind.confidence(logits).mean()),
        }

    def state_dict(self) -> dict[str, Any]:
        """Contents for checkpoints."""
        n = self.size
        return {
            "images": self.images[:n].cpu(),
            "teacher_logits": self.teacher_logits[:n].cpu(),
            "priorities": self.priorities[:n].cpu(),
            "birth_round": self.birth_round[:n].cpu(),
            "round": self.round,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore contents written by :meth:`state_dict`."""
        images = state["images"]
        assert isinstance(images, torch.Tensor)
        n = images.shape[0]
        self.images[:n] = images.to(self.device)
        self.teacher_logits[:n] = state["teacher_logits"].to(self.device)
        self.priorities[:n] = state["priorities"].to(self.device)
        self.birth_round[:n] = state["birth_round"].to(self.device)
        self.size, self.round = n, int(state["round"])


class GrowingPool(ReplayBuffer):
    """Fast's pool (Fang et al., 2022): every synthesised sample is kept, nothing is evicted.

    Sized for the run's rounds at the configured budget; it declares no insert decisions (nothing is
    replaced), and ignores a ``replace_fraction`` or ``eviction`` given to it.
    """

    insert_fields = ()

    def insert(
        self,
        images: torch.Tensor,
        teacher_logits: torch.Tensor,
        priorities: torch.Tensor,
        replace_fraction: float = 0.0,
        eviction: EvictionRule = "lowest",
    ) -> torch.Tensor:
        return super().insert(images, teacher_logits, priorities, 0.0, eviction)

    @classmethod
    def capacity_for(cls, options: Any, ctx: RunContext) -> int:
        """Every sample of the run: its rounds times the configured round's budget."""
        return ctx.rounds * ctx.synth_budget


def _buffer_args(ctx: RunContext) -> dict[str, Any]:
    return {
        "image_shape": ctx.input_shape,
        "num_classes": ctx.num_classes,
        "device": ctx.device,
        "kind": ctx.kind,
        "output_shape": ctx.kind.output_shape(ctx.num_classes, ctx.input_shape),
    }


MEMORIES.add("replay", ReplayBuffer)
MEMORIES.add("pool", GrowingPool)
