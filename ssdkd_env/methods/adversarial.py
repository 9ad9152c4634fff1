"""The round of DFAD and of the methods built on its game (round loop ``adversarial``).

Fang et al., "Data-Free Adversarial Distillation" (2019). A round is ``kd_steps`` student steps,
each on a fresh batch from the generator, with one generator step after every
``student_steps`` of them (the loop's option) (DFAD: 5). The generator's learning rate follows the
student's cosine schedule: with a constant one it keeps moving while the student's decays to
zero, and the student, whose BatchNorm statistics follow the generator, collapses late in the
run (measured on digits, docs/notebook/2026-12-01.md). Both sides use the distiller's discrepancy (the KD
loss; DFAD found the mean absolute error of the logits best).

With a memory (MB-DFKD's bank, PRE-DFKD's generative replay) each student step also replays
``replay_ratio`` samples per fresh one, drawn with the round's priority exponents,
and at the end of the round ``action.synth_budget`` fresh samples go into the memory with the
round's replacement share and eviction rule: the student rehearses what the generator made
before, against forgetting. As in the replay round, the steps' scalars are summed on the device
and read once, at the end of the round.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ssdkd_env.action import RoundAction
from ssdkd_env.common.images import predict_logits
from ssdkd_env.common.validation import Validated, spec
from ssdkd_env.errors import UserError
from ssdkd_env.methods.base import (
    ROUND_LOOPS,
    RoundContext,
    RoundLoop,
    RoundOutcome,
    decisions,
    read_round,
)
from ssdkd_env.replay import BaseMemory, BufferBatch
from ssdkd_env.synthesis.adversarial import AdversarialGenerator
from ssdkd_env.synthesis.base import BaseSynthesizer, SynthesisRequest


@dataclass
class AdversarialRoundConfig(Validated):
    """The schedule of the game (DFAD's by default) and the share of replayed samples."""

    student_steps: int = spec(5, ge=1)  # student steps per generator step
    replay_ratio: float = spec(0.0, ge=0)  # replayed samples per fresh one in each student step (with a memory)


class AdversarialRound(RoundLoop):
    """The min-max game a round at a time; with a memory, replay of earlier samples beside it.

    Without a memory ``action`` is not used; with one, ``synth_budget`` and the decisions the memory
    declares (priority exponents, replacement share, eviction rule) steer the replay and the memory's
    update. The generator's requests carry no phi: it acts on neither diversity nor difficulty."""

    Config = AdversarialRoundConfig

    @classmethod
    def action_fields(
        cls, options: AdversarialRoundConfig, synthesizer: type[BaseSynthesizer], memory: type[BaseMemory] | None
    ) -> tuple[str, ...]:
        if memory is None:
            return ()
        replayed = memory.sample_fields if options.replay_ratio > 0 else ()
        return ("synth_budget", *replayed, *memory.insert_fields)

    def __init__(self, options: AdversarialRoundConfig, ctx: RoundContext) -> None:
        if not isinstance(ctx.synthesizer, AdversarialGenerator):
            raise UserError(
                f"round loop 'adversarial' needs synthesizer 'adversarial-generator', not '{ctx.config.synthesizer}'"
            )
        self.options = options
        self.generator: AdversarialGenerator = ctx.synthesizer
        weights = self.generator.config
        extra = {"bn": weights.bn_weight, "oh": weights.oh_weight, "balance": weights.balance_weight}
        self.terms = ["adv", *(name for name, weight in extra.items() if weight > 0)]  # the generator's loss terms
        self.no_classes = torch.zeros(ctx.num_classes)

    def run(self, ctx: RoundContext, action: RoundAction) -> RoundOutcome:
        distiller, cfg, memory = ctx.distiller, ctx.config, ctx.memory
        n, every = cfg.distiller.batch_size, self.options.student_steps
        n_replay = round(self.options.replay_ratio * n) if memory is not None and memory.size > 0 else 0
        device = ctx.device
        # student loss, discrepancy, agreement, then the generator's total and weighted terms
        sums = torch.zeros(4 + len(self.terms), dtype=torch.float64, device=device)
        no_generator_step = torch.zeros(1 + len(self.terms), device=device)
        generator_steps = 0
        for step in range(cfg.kd_steps):
            batch = self._fresh(n, ctx.round)
            if n_replay > 0:
                assert memory is not None
                replayed = memory.sample(n_replay, ctx.device_rng, **decisions(action, memory.sample_fields))
                batch = BufferBatch(
                    torch.cat([batch.index, replayed.index]),
                    torch.cat([batch.images, replayed.images]),
                    torch.cat([batch.teacher_logits, replayed.teacher_logits]),
                    torch.cat([batch.weights, replayed.weights]),
                )
            result = distiller.step(batch)
            if n_replay > 0:
                assert memory is not None
                memory.update_priorities(batch.index[n:], result.discrepancy[n:])
            generator = no_generator_step
            if (step + 1) % every == 0:
                total = self.generator.adversarial_step(ctx.student, distiller.discrepancy, n, distiller.lr_scale)
                generator = torch.stack([total, *(self.generator.last_terms[name] for name in self.terms)])
                generator_steps += 1
            student_scalars = torch.stack([result.loss, result.mean_discrepancy, result.agreement])
            sums += torch.cat([student_scalars, generator]).double()
        synthesized = (cfg.kd_steps + generator_steps) * n
        if memory is not None:
            synthesized += self._store(ctx, memory, action)
        outcome, (generator_sum, *term_sums) = read_round(sums, cfg.kd_steps, synthesized)  # the round's one read
        g_steps = max(1, generator_steps)
        outcome.losses = {"generator": generator_sum / g_steps}
        outcome.losses.update(
            {f"generator_{name}": value / g_steps for name, value in zip(self.terms, term_sums, strict=True)}
        )
        return outcome

    def _fresh(self, n: int, round_index: int) -> BufferBatch:
        """A fresh batch from the generator; its samples have no memory slot (index -1)."""
        fresh = self.generator.synthesize(SynthesisRequest(n, self.no_classes, round_index))
        index = torch.full((n,), -1, device=fresh.images.device, dtype=torch.long)
        return BufferBatch(index, fresh.images, fresh.teacher_logits, torch.ones(n, device=fresh.images.device))

    def _store(self, ctx: RoundContext, memory: BaseMemory, action: RoundAction) -> int:
        """Put ``synth_budget`` fresh samples into the memory, prioritised by the student's current discrepancy."""
        fresh = self.generator.synthesize(SynthesisRequest(action.synth_budget, self.no_classes, ctx.round))
        s_logits = predict_logits(ctx.student, fresh.images, precision=ctx.config.precision)
        priorities = ctx.distiller.discrepancy(fresh.teacher_logits, s_logits)
        memory.insert(fresh.images, fresh.teacher_logits, priorities, **decisions(action, memory.insert_fields))
        return action.synth_budget


ROUND_LOOPS.add("adversarial", AdversarialRound)
