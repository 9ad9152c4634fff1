"""A held-out synthetic probe set: measures the student data-free, never trained on."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from ssdkd_env.common.images import predict_logits
from ssdkd_env.synthesis import per_sample_kl


@dataclass
class ProbeMetrics:
    agreement: float  # share of probe samples where student and teacher predict the same class
    kl: float  # mean KL(p_T || p_S) at temperature 1


class ProbeSet:
    """A ring of synthetic samples with cached teacher logits, refreshed a slice at a time."""

    def __init__(self, capacity: int, image_shape: tuple[int, ...], num_classes: int, device: torch.device) -> None:
        self.capacity = capacity
        self.images = torch.zeros((capacity, *image_shape), device=device)
        self.teacher_logits = torch.zeros((capacity, num_classes), device=device)
        self.size = 0
        self.cursor = 0

    def add(self, images: torch.Tensor, teacher_logits: torch.Tensor) -> None:
        """Overwrite the oldest entries with ``images`` (at most ``capacity`` of them)."""
        n = min(images.shape[0], self.capacity)
        slots = (self.cursor + torch.arange(n, device=self.images.device)) % self.capacity
        self.images[slots] = images[:n]
        self.teacher_logits[slots] = teacher_logits[:n]
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    def measure(self, student: nn.Module) -> ProbeMetrics:
        """Student–teacher agreement and KL on the probe samples."""
        if self.size == 0:
            return ProbeMetrics(0.0, 0.0)
        t_logits = self.teacher_logits[: self.size]
        s_logits = predict_logits(student, self.images[: self.size]).float()
        agreement = float((s_logits.argmax(1) == t_logits.argmax(1)).float().mean())
        return ProbeMetrics(agreement, float(per_sample_kl(t_logits, s_logits).mean()))

    def state_dict(self) -> dict:
        return {
            "images": self.images[: self.size].cpu(),
            "teacher_logits": self.teacher_logits[: self.size].cpu(),
            "cursor": self.cursor,
        }

    def load_state_dict(self, state: dict) -> None:
        n = state["images"].shape[0]
        self.images[:n] = state["images"].to(self.images.device)
        self.teacher_logits[:n] = state["teacher_logits"].to(self.images.device)
        self.size, self.cursor = n, int(state["cursor"])
