"""The round of DeepInversion (round loop ``synthesize-distil``): invert a batch, distil on it, drop it.

Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion" (CVPR 2020)
distil on images inverted from the teacher; in this engine's taxonomy nothing is kept between
rounds. Each round the synthesizer makes ``synth_budget`` images, then the student takes
``kd_steps`` steps on batches drawn uniformly (with replacement, uniform weights) from them, and
the images are dropped. As in the replay round, the steps' scalars and the synthesizer's losses
are summed on the device and read once, at the end of the round.
"""

from __future__ import annotations

from typing import Any

import torch

from ssdkd_env.action import RoundAction
from ssdkd_env.methods.base import ROUND_LOOPS, RoundContext, RoundLoop, RoundOutcome, read_round
from ssdkd_env.replay import BaseMemory, BufferBatch
from ssdkd_env.synthesis.base import BaseSynthesizer, SynthesisRequest


class SynthesizeThenDistil(RoundLoop):
    """Fresh synthesis every round and uniform distillation on it; no memory."""

    @classmethod
    def action_fields(
        cls, options: Any, synthesizer: type[BaseSynthesizer], memory: type[BaseMemory] | None
    ) -> tuple[str, ...]:
        return ("synth_budget", *synthesizer.action_fields)

    def __init__(self, options: Any, ctx: RoundContext) -> None:
        self.no_classes = torch.zeros(ctx.num_classes)  # no memory: diversity draws uniformly

    def run(self, ctx: RoundContext, action: RoundAction) -> RoundOutcome:
        distiller, cfg, device = ctx.distiller, ctx.config, ctx.device
        synth = ctx.synthesizer.synthesize(
            SynthesisRequest(action.synth_budget, self.no_classes, ctx.round, action.diversity, action.difficulty)
        )
        n, batch = synth.images.shape[0], cfg.distiller.batch_size
        weights = torch.ones(batch, device=device)
        sums = torch.zeros(3, dtype=torch.float64, device=device)  # loss, discrepancy, agreement
        for _ in range(cfg.kd_steps):
            index = torch.randint(n, (batch,), generator=ctx.device_rng, device=device)
            step = distiller.step(BufferBatch(index, synth.images[index], synth.teacher_logits[index], weights))
            sums += torch.stack([step.loss, step.mean_discrepancy, step.agreement]).double()
        names = list(synth.losses)
        losses = [torch.as_tensor(synth.losses[name], dtype=torch.float64, device=device).reshape(1) for name in names]
        outcome, values = read_round(torch.cat([sums, *losses]), cfg.kd_steps, action.synth_budget)  # one read
        outcome.losses = dict(zip(names, values, strict=True))
        return outcome


ROUND_LOOPS.add("synthesize-distil", SynthesizeThenDistil)
