"""The student's side: importance-weighted KD on replay-buffer batches."""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ssdkd_env.common.images import random_affine, random_hflip, random_mixup, random_shrink, random_translate
from ssdkd_env.common.validation import Validated, spec
from ssdkd_env.losses import KD_LOSSES
from ssdkd_env.replay import BufferBatch
from ssdkd_env.tasks.kinds import TASK_KINDS, TaskKind


@dataclass
class DistillerConfig(Validated):
    """Student optimiser and KD loss settings."""

    lr: float = spec(0.1, ge=0)
    momentum: float = spec(0.9, ge=0, lt=1)
    weight_decay: float = spec(1e-4, ge=0)
    temperature: float = spec(4.0, gt=0)
    kd_loss: str = spec("kl", choices=KD_LOSSES.names)  # discrepancy the student minimises (ssdkd_env.losses)
    batch_size: int = spec(128, ge=2)  # at least 2: BatchNorm needs more than one sample in training
    augment_shift: int = spec(0, ge=0)  # random translation (pixels) of replayed samples; relabelled by the teacher
    augment_flip: bool = False  # random horizontal flips of replayed samples (natural images)
    augment_rotate: float = spec(0.0, ge=0, le=180)  # random rotation of replayed samples, up to this many degrees
    augment_scale: float = spec(0.0, ge=0, lt=1)  # random rescaling of replayed samples by a factor in [1 - s, 1 + s]
    augment_shrink: float = spec(0.0, ge=0, le=1)  # > 0: shrink by a factor in [s, 1] onto the darkest value
    augment_mixup: float = spec(0.0, ge=0, le=1)  # share of each batch blended with another sample, relabelled
    ema_decay: float = spec(0.0, ge=0, lt=1)  # > 0: the run delivers an EMA of the student's weights

    @property
    def augments(self) -> bool:
        return (
            self.augment_shift > 0
            or self.augment_flip
            or self.augment_rotate > 0
            or self.augment_scale > 0
            or self.augment_mixup > 0
            or self.augment_shrink > 0
        )


@dataclass
class StepResult:
    """Per-sample discrepancies (new priorities) and the step's scalars."""

    discrepancy: torch.Tensor
    loss: float
    mean_discrepancy: float
    agreement: float


class Distiller:
    """SGD with a cosine schedule over the run's total KD steps; bf16 autocast on CUDA.

    Without augmentation the teacher logits cached in the buffer are the targets (no teacher
    forward pass); with augmentation the teacher labels each augmented batch afresh.
    """

    def __init__(
        self,
        student: nn.Module,
        config: DistillerConfig,
        total_steps: int,
        device: torch.device,
        teacher: nn.Module | None = None,
        rng: torch.Generator | None = None,
        kind: TaskKind | None = None,
    ) -> None:
        if config.augments and teacher is None:
            raise ValueError("augmentation needs the teacher to relabel augmented samples")
        self.loss_fn = KD_LOSSES.get(config.kd_loss)
        self.kind = kind or TASK_KINDS.get("classification")
        self.student = student
        self.teacher = teacher
        self.rng = rng
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
        self.ema: AveragedModel | None = None
        if config.ema_decay > 0:
            self.ema = AveragedModel(student, multi_avg_fn=get_ema_multi_avg_fn(config.ema_decay), use_buffers=True)

    @property
    def delivered(self) -> nn.Module:
        """The student the run delivers: the weight average when ``ema_decay > 0``, else the student."""
        return self.student if self.ema is None else self.ema.module

    def discrepancy(self, teacher_out: torch.Tensor, student_out: torch.Tensor) -> torch.Tensor:
        """The KD loss's per-sample discrepancy at the configured temperature (a sample's priority)."""
        return self.kind.per_sample(self.loss_fn.discrepancy(teacher_out, student_out, self.config.temperature))

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def step(self, batch: BufferBatch) -> StepResult:
        """One importance-weighted KD step; returns the per-sample discrepancy as refreshed priorities."""
        self.student.train()
        cfg = self.config
        temperature = cfg.temperature
        images, t_logits = batch.images, batch.teacher_logits
        if cfg.augments and self.teacher is not None:
            images = random_affine(images, cfg.augment_rotate, cfg.augment_scale, self.rng)
            images = random_translate(images, cfg.augment_shift, self.rng)
            images = random_shrink(images, cfg.augment_shrink, self.rng)
            if cfg.augment_flip:
                images = random_hflip(images, self.rng)
            images = random_mixup(images, cfg.augment_mixup, self.rng)
            with torch.no_grad(), self._autocast():
                t_logits = self.teacher(images).float()
        with self._autocast():
            s_logits = self.student(images)
        s_logits = s_logits.float()
        discrepancy = self.discrepancy(t_logits, s_logits)
        loss = (batch.weights * discrepancy).mean() * self.loss_fn.scale(temperature)
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite distillation loss")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update_parameters(self.student)
        self.steps += 1
        agreement = self.kind.agreement(s_logits, t_logits).mean()
        return StepResult(
            discrepancy.detach(), float(loss.detach()), float(discrepancy.mean().detach()), float(agreement)
        )

    def state_dict(self) -> dict:
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "steps": self.steps,
        }
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.steps = int(state["steps"])
        if self.ema is not None:
            self.ema.load_state_dict(state["ema"])
