"""The round of DFAD (round loop ``adversarial``): student and generator steps interleaved, no memory.

Fang et al., "Data-Free Adversarial Distillation" (2019). A round is ``kd_steps`` student steps,
each on a fresh batch from the generator, with one generator step after every
``adversarial.student_steps`` of them (DFAD: 5). Both sides use the distiller's discrepancy (the
KD loss; DFAD found the mean absolute error of the logits best). As in the replay round, the
steps' scalars are summed on the device and read once, at the end of the round.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch

from ssdkd_env.errors import UserError
from ssdkd_env.methods.base import ROUND_LOOPS, RoundLoop, RoundOutcome
from ssdkd_env.replay import BufferBatch
from ssdkd_env.synthesis.adversarial import AdversarialGenerator
from ssdkd_env.synthesis.base import SynthesisRequest

if TYPE_CHECKING:
    from ssdkd_env.engine.config import RoundAction
    from ssdkd_env.engine.engine import DistillationEngine


class AdversarialRound(RoundLoop):
    """DFAD's min-max game, a round at a time. ``action`` is not used: nothing is stored or replayed."""

    def __init__(self, engine: DistillationEngine) -> None:
        if not isinstance(engine.synthesizer, AdversarialGenerator):
            raise UserError(
                f"round loop 'adversarial' needs synthesizer 'adversarial-generator', not '{engine.config.synthesizer}'"
            )
        self.generator: AdversarialGenerator = engine.synthesizer
        self.no_classes = torch.zeros(engine.task.num_classes)

    def run(self, engine: DistillationEngine, action: RoundAction) -> RoundOutcome:
        distiller, cfg = engine.distiller, engine.config
        n, every = cfg.distiller.batch_size, cfg.adversarial.student_steps
        # student loss, discrepancy, agreement; generator loss
        sums = torch.zeros(4, dtype=torch.float64, device=engine.device)
        no_generator_loss = torch.zeros((), device=engine.device)
        generator_steps = 0
        weights = torch.ones(n, device=engine.device)
        index = torch.arange(n, device=engine.device)
        for step in range(cfg.kd_steps):
            fresh = self.generator.synthesize(SynthesisRequest(n, self.no_classes, engine.round))
            result = distiller.step(BufferBatch(index, fresh.images, fresh.teacher_logits, weights))
            generator_loss = no_generator_loss
            if (step + 1) % every == 0:
                generator_loss = self.generator.adversarial_step(engine.student, distiller.discrepancy, n)
                generator_steps += 1
            sums += torch.stack([result.loss, result.mean_discrepancy, result.agreement, generator_loss]).double()
        loss_sum, discrepancy_sum, agree_sum, generator_sum = sums.tolist()  # the round's one read of the steps
        if not math.isfinite(loss_sum):
            raise FloatingPointError("non-finite distillation loss")
        steps = max(1, cfg.kd_steps)
        return RoundOutcome(
            synthesized=(cfg.kd_steps + generator_steps) * n,
            kd_loss=loss_sum / steps,
            batch_discrepancy=discrepancy_sum / steps,
            batch_agreement=agree_sum / steps,
            losses={"generator": generator_sum / max(1, generator_steps)},
        )


ROUND_LOOPS.add("adversarial", AdversarialRound)
