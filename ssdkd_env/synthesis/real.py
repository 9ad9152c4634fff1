"""Knowledge distillation with the original data (synthesizer ``real-images``, method ``kd-real``).

The reference row of every data-free table (Hinton et al.'s KD on the training images; DFAD's
"KD with the original data", CamVid 0.535 mIoU against its teacher's 0.594): instead of
inverting the teacher, each round draws ``n`` images of the task's real training split, without
their labels, and the teacher labels them. Everything else (memory, replay, distiller, schedule)
is the method's own, so the gap between a data-free method and this row on the same schedule is
the price of having no data, and this row's gap to the teacher is the price of the schedule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from ssdkd_env.common.images import normalize_uint8
from ssdkd_env.common.precision import Precision, autocast_for, to_layout
from ssdkd_env.errors import UserError
from ssdkd_env.synthesis.base import SYNTHESIZERS, BaseSynthesizer, SynthesisRequest, SynthesisResult
from ssdkd_env.tasks.kinds import TaskKind

if TYPE_CHECKING:
    from ssdkd_env.context import RunContext


class RealImageSampler(BaseSynthesizer):
    """Draws each round's samples from the real training images (uniformly, without replacement
    within a round), normalised as the models expect, with the teacher's outputs and its
    predicted classes as targets. It makes nothing and reports no losses."""

    def __init__(
        self,
        teacher: nn.Module,
        images: torch.Tensor,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        kind: TaskKind,
        device: torch.device,
        rng: torch.Generator,
        precision: Precision = "fp32",
        channels_last: bool = False,
    ) -> None:
        """``images`` are the training split as ``uint8`` [N, C, H, W]; ``rng`` (on the CPU)
        draws which of them each round takes."""
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[0] == 0:
            raise ValueError("images must be a non-empty uint8 tensor of shape [N, C, H, W]")
        self.teacher, self.kind, self.device, self.rng = teacher, kind, device, rng
        self.images = images.to(device)
        self.mean, self.std = mean, std
        self.precision, self.channels_last = precision, channels_last

    @classmethod
    def check_inputs(cls, ctx: RunContext) -> None:
        task, cfg = ctx.task, ctx.config
        if task.needs_data_root and cfg.real.data_root is None:
            raise UserError(f"method {cfg.method} distils on the real training images of {task.name}: give --data-root")

    @classmethod
    def from_context(cls, ctx: RunContext) -> RealImageSampler:
        task, cfg = ctx.task, ctx.config
        cls.check_inputs(ctx)
        train = task.load(cfg.real.data_root, train=True)
        return cls(
            ctx.teacher,
            train.images,
            task.mean,
            task.std,
            ctx.kind,
            ctx.device,
            ctx.rng,
            cfg.precision,
            cfg.channels_last,
        )

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """``request.n`` training images: a fresh permutation per round, repeated when ``n`` exceeds the
        split. phi does not apply (nothing is inverted)."""
        count = self.images.shape[0]
        repeats = -(-request.n // count)
        order = torch.cat([torch.randperm(count, generator=self.rng) for _ in range(repeats)])[: request.n]
        picked = normalize_uint8(self.images[order.to(self.device)], self.mean, self.std)
        images = to_layout(picked, self.channels_last)
        with torch.no_grad(), autocast_for(self.device, self.precision):
            t_logits = self.teacher(images).float()
        return SynthesisResult(
            images=images,
            targets=self.kind.predicted_classes(t_logits),
            teacher_logits=t_logits,
            losses={},
        )

    def report(self) -> dict[str, Any]:
        """That the run is not data-free, and the size of the split it drew from (the run's
        ``synthetic_samples`` counts these real draws, plus the synthetic probe's images)."""
        return {"data_free": False, "train_images": int(self.images.shape[0])}


SYNTHESIZERS.add("real-images", RealImageSampler)
