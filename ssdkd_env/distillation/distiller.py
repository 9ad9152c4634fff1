"""The student's side: importance-weighted KD on replay-buffer batches."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn as nn

from ssdkd_env.replay import BufferBatch
from ssdkd_env.synthesis import per_sample_kl


@dataclass
class DistillerConfig:
    """Student optimiser and KD loss settings."""

    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    temperature: float = 4.0
    batch_size: int = 128


@dataclass
class StepResult:
    """Per-sample discrepancies (new priorities) and the step's scalars."""

    discrepancy: torch.Tensor
    loss: float
    kl: float
    agreement: float


class Distiller:
    """SGD with a cosine schedule over the run's total KD steps; bf16 autocast on CUDA."""

    def __init__(self, student: nn.Module, config: DistillerConfig, total_steps: int, device: torch.device) -> None:
        self.student = student
        self.config = config
        self.device = device
        self.optimizer = torch.optim.SGD(
            student.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        total = max(1, total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        )
        self.steps = 0

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self, batch: BufferBatch) -> StepResult:
        """One importance-weighted KD step; returns per-sample KL as refreshed priorities."""
        self.student.train()
        temperature = self.config.temperature
        with self._autocast():
            s_logits = self.student(batch.images)
        s_logits = s_logits.float()
        kl = per_sample_kl(batch.teacher_logits, s_logits, temperature)
        loss = (batch.weights * kl).mean() * temperature**2
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite distillation loss")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.steps += 1
        agreement = (s_logits.argmax(1) == batch.teacher_logits.argmax(1)).float().mean()
        return StepResult(kl.detach(), float(loss.detach()), float(kl.mean().detach()), float(agreement))

    def state_dict(self) -> dict:
        return {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(), "steps": self.steps}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.steps = int(state["steps"])
