"""The student's side: importance-weighted KD on replay-buffer batches."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from ssdkd_env.common.images import (
    random_affine,
    random_color,
    random_hflip,
    random_mixup,
    random_shrink,
    random_translate,
)
from ssdkd_env.common.precision import Precision, autocast_for, to_layout
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
    augment_color: float = spec(0.0, ge=0, le=1)  # > 0: channels shuffled, per-channel gain/offset of this strength
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
            or self.augment_color > 0
        )


@dataclass
class StepResult:
    """Per-sample discrepancies (new priorities) and the step's scalars, as detached 0-d tensors
    on the device: a round reads them on the host once, at its end."""

    discrepancy: torch.Tensor
    loss: torch.Tensor
    mean_discrepancy: torch.Tensor
    agreement: torch.Tensor


class Distiller:
    """SGD with a cosine schedule over the run's total KD steps; forward passes at ``precision``
    (``auto``: bf16 autocast on CUDA), the losses in fp32.

    Without augmentation the teacher logits cached in the buffer are the targets (no teacher
    forward pass); with augmentation the teacher labels each augmented batch afresh.

    ``compile``: the step's student and teacher forward passes go through ``torch.compile``
    (the modules themselves, their state_dict keys and checkpoints are unchanged); what it gains
    is measured on a GPU by ``train/benchmark.py``. A step never reads a device value on the
    host, so on CUDA the steps of a round queue up without synchronisation.
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
        precision: Precision = "auto",
        channels_last: bool = False,
        compile: bool = False,
    ) -> None:
        """``rng`` draws the augmentation (on the device it lives on); ``channels_last`` is the
        layout of the batches the models see."""
        if config.augments and teacher is None:
            raise ValueError("augmentation needs the teacher to relabel augmented samples")
        self.loss_fn = KD_LOSSES.get(config.kd_loss)
        self.kind = kind or TASK_KINDS.get("classification")
        self.student = student
        self.rng = rng
        self.config = config
        self.device = device
        self.precision, self.channels_last = precision, channels_last
        self.student_forward: Callable[[torch.Tensor], torch.Tensor] = torch.compile(student) if compile else student
        self.teacher_forward: Callable[[torch.Tensor], torch.Tensor] | None = (
            torch.compile(teacher) if compile and teacher is not None else teacher
        )
        self.optimizer = torch.optim.SGD(
            student.parameters(), lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
        total = max(1, total_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total) / total))
        )
        self.steps = 0
        self.ema: AveragedModel | None = None
        self.ema_update = get_ema_multi_avg_fn(config.ema_decay)  # used when ema_decay > 0
        if config.ema_decay > 0:
            self.ema = AveragedModel(student, multi_avg_fn=self.ema_update, use_buffers=True)

    @property
    def lr_scale(self) -> float:
        """The cosine schedule's current factor on the base learning rate (1 at the start, 0 at the end)."""
        return float(self.scheduler.get_last_lr()[0]) / self.config.lr if self.config.lr > 0 else 0.0

    @property
    def delivered(self) -> nn.Module:
        """The student the run delivers: the weight average when ``ema_decay > 0``, else the student."""
        return self.student if self.ema is None else self.ema.module

    def discrepancy(self, teacher_out: torch.Tensor, student_out: torch.Tensor) -> torch.Tensor:
        """The KD loss's per-sample discrepancy at the configured temperature (a sample's priority)."""
        return self.kind.per_sample(self.loss_fn.discrepancy(teacher_out, student_out, self.config.temperature))

    def step(self, batch: BufferBatch) -> StepResult:
        """One importance-weighted KD step; returns the per-sample discrepancy as refreshed priorities."""
        self.student.train()
        cfg = self.config
        temperature = cfg.temperature
        images, t_logits = batch.images, batch.teacher_logits
        teacher = self.teacher_forward if cfg.augments else None  # augmented batches are relabelled
        if teacher is not None:
            images = random_affine(images, cfg.augment_rotate, cfg.augment_scale, self.rng)
            images = random_translate(images, cfg.augment_shift, self.rng)
            images = random_shrink(images, cfg.augment_shrink, self.rng)
            if cfg.augment_flip:
                images = random_hflip(images, self.rng)
            images = random_color(images, cfg.augment_color, self.rng)
            images = random_mixup(images, cfg.augment_mixup, self.rng)
        images = to_layout(images, self.channels_last)
        with autocast_for(self.device, self.precision):
            if teacher is not None:
                with torch.no_grad():
                    t_logits = teacher(images).float()
            s_logits = self.student_forward(images).float()
        discrepancy = self.discrepancy(t_logits, s_logits)
        loss = (batch.weights * discrepancy).mean() * self.loss_fn.scale(temperature)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self._update_ema(self.ema)
        self.steps += 1
        agreement = self.kind.agreement(s_logits, t_logits).mean()
        return StepResult(discrepancy.detach(), loss.detach(), discrepancy.mean().detach(), agreement.detach())

    @torch.no_grad()
    def _update_ema(self, ema: AveragedModel) -> None:
        """``ema.update_parameters(student)`` without reading its step count (a CPU tensor) and
        copying it to the device on every call, a synchronisation on CUDA: the average is updated
        once per step, so ``self.steps`` counts its updates."""
        averaged = [*ema.module.parameters(), *ema.module.buffers()]
        current = [*self.student.parameters(), *self.student.buffers()]
        if self.steps == 0:
            for avg, cur in zip(averaged, current, strict=True):
                avg.copy_(cur)
        else:
            by_dtype: dict[torch.dtype, tuple[list[torch.Tensor], list[torch.Tensor]]] = {}
            for avg, cur in zip(averaged, current, strict=True):
                group = by_dtype.setdefault(avg.dtype, ([], []))
                group[0].append(avg)
                group[1].append(cur)
            for avgs, curs in by_dtype.values():
                self.ema_update(avgs, curs, ema.n_averaged)
        ema.n_averaged += 1

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
