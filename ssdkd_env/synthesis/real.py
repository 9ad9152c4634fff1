"""Knowledge distillation with the original data (synthesizer ``real-images``, method ``kd-real``).

The reference row of every data-free table (Hinton et al.'s KD on the training images; DFAD's
"KD with the original data", CamVid 0.535 mIoU against its teacher's 0.594): instead of
inverting the teacher, each round draws ``n`` images of the task's real training split, without
their labels, and the teacher labels them. Everything else (memory, replay, distiller, schedule)
is the method's own, so the gap between a data-free method and this row on the same schedule is
the price of having no data, and this row's gap to the teacher is the price of the schedule.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from ssdkd_env.common.images import normalize_uint8
from ssdkd_env.common.precision import autocast_for, to_layout
from ssdkd_env.common.validation import Validated
from ssdkd_env.errors import UserError
from ssdkd_env.synthesis.base import SYNTHESIZERS, BaseSynthesizer, SynthesisRequest, SynthesisResult

if TYPE_CHECKING:
    from ssdkd_env.context import RunContext


@dataclass
class RealDataConfig(Validated):
    """Where ``kd-real`` reads the task's training split (``train/distill.py`` fills it from
    ``--data-root``; tasks whose data ships with a package need none)."""

    data_root: str | None = None


class RealImageSampler(BaseSynthesizer):
    """Draws each round's samples from the real training images (uniformly, without replacement
    within a round), normalised as the models expect, with the teacher's outputs and its
    predicted classes as targets. It makes nothing and reports no losses."""

    Config = RealDataConfig

    def __init__(self, options: RealDataConfig, ctx: RunContext, images: torch.Tensor | None = None) -> None:
        """``images``: the training split as ``uint8`` [N, C, H, W] (default: ``ctx.task``'s, read
        from ``options.data_root``); ``ctx.rng`` (on the CPU) draws which of them each round takes."""
        if images is None:
            self.check_inputs(options, ctx)
            images = ctx.require_task("the real-images synthesizer").load(options.data_root, train=True).images
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[0] == 0:
            raise ValueError("images must be a non-empty uint8 tensor of shape [N, C, H, W]")
        self.teacher, self.kind, self.device, self.rng = ctx.teacher, ctx.kind, ctx.device, ctx.rng
        self.images = images.to(ctx.device)
        self.mean, self.std = ctx.mean, ctx.std
        self.precision, self.channels_last = ctx.precision, ctx.channels_last

    @classmethod
    def check_inputs(cls, options: RealDataConfig, ctx: RunContext) -> None:
        task = ctx.require_task("the real-images synthesizer")
        if task.needs_data_root and options.data_root is None:
            raise UserError(f"kd-real distils on the real training images of {task.name}: give --data-root")

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
