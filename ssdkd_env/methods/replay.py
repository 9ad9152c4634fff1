"""The round of SSD-KD and Fast: synthesise, store in the memory, then replay-distil.

1. The synthesizer makes ``synth_budget`` samples, with phi's diversity drawn against the
   memory's class histogram and phi's difficulty as the focal exponent.
2. Their priorities (the KD loss's per-sample discrepancy to the current student) go into the
   memory with the round's replacement share and eviction rule.
3. ``kd_steps`` student steps on batches sampled with P(i) ~ p_i^alpha and weights
   (N P(i))^-beta; each step refreshes the priorities of the samples it used.

The steps' scalars are summed on the device (in float64: exactly the sums of the same values
as Python floats) and read on the host once, at the end of the round, so on CUDA the steps
queue up without synchronisation. Without augmentation the steps train on the teacher outputs
cached in the memory (no teacher forward pass); with it the distiller relabels each batch.
"""

from __future__ import annotations

from typing import Any

import torch

from ssdkd_env.action import RoundAction
from ssdkd_env.common.images import predict_logits
from ssdkd_env.methods.base import (
    ROUND_LOOPS,
    RoundContext,
    RoundLoop,
    RoundOutcome,
    decisions,
    read_round,
    require_memory,
)
from ssdkd_env.replay import BaseMemory
from ssdkd_env.synthesis.base import BaseSynthesizer, SynthesisRequest


class SynthesizeThenReplay(RoundLoop):
    """Synthesis, a partial memory update, then prioritized replay distillation."""

    @classmethod
    def action_fields(
        cls, options: Any, synthesizer: type[BaseSynthesizer], memory: type[BaseMemory] | None
    ) -> tuple[str, ...]:
        memory_fields = () if memory is None else (*memory.sample_fields, *memory.insert_fields)
        return ("synth_budget", *synthesizer.action_fields, *memory_fields)

    def run(self, ctx: RoundContext, action: RoundAction) -> RoundOutcome:
        memory, distiller, cfg = require_memory(ctx), ctx.distiller, ctx.config
        synth = ctx.synthesizer.synthesize(
            SynthesisRequest(
                action.synth_budget, memory.class_histogram(), ctx.round, action.diversity, action.difficulty
            )
        )
        s_logits = predict_logits(ctx.student, synth.images, precision=cfg.precision)
        priorities = distiller.discrepancy(synth.teacher_logits, s_logits)
        memory.insert(synth.images, synth.teacher_logits, priorities, **decisions(action, memory.insert_fields))
        sums = torch.zeros(3, dtype=torch.float64, device=ctx.device)  # loss, discrepancy, agreement
        for _ in range(cfg.kd_steps):
            batch = memory.sample(cfg.distiller.batch_size, ctx.device_rng, **decisions(action, memory.sample_fields))
            step = distiller.step(batch)
            memory.update_priorities(batch.index, step.discrepancy)
            sums += torch.stack([step.loss, step.mean_discrepancy, step.agreement]).double()
        outcome, _ = read_round(sums, cfg.kd_steps, action.synth_budget)  # the round's one read of the steps
        outcome.losses = {name: float(value) for name, value in synth.losses.items()}
        return outcome


ROUND_LOOPS.add("synthesize-replay", SynthesizeThenReplay)
