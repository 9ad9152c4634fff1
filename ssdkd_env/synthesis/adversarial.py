"""DFAD's adversarial generator (synthesizer ``adversarial-generator``), with the extra generator
terms of the methods built on it.

Fang et al., "Data-Free Adversarial Distillation" (2019): one persistent generator (Tanh output
then a BatchNorm without affine parameters) is trained by Adam to *maximise* the teacher–student
discrepancy on the images it makes, while the student minimises the same discrepancy on fresh
images from it. The adversarial objective is -D (classification), -log(1 + D) (the form DFAD uses
for segmentation) or 1 - JS(p_T, p_S) (PRE-DFKD, Binici et al., AAAI 2022). Optional terms, all
off by default: the BN-statistics constraint of MB-DFKD (Binici et al., WACV 2022), and
PRE-DFKD's cross-entropy to the teacher's own prediction and class balance (negative entropy of
the batch-mean prediction). The round that interleaves the two sides, with or without a memory,
is ``ssdkd_env.methods.adversarial``.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssdkd_env.common.precision import autocast_for, module_layout, to_layout
from ssdkd_env.common.validation import Validated, spec
from ssdkd_env.losses import jensen_shannon
from ssdkd_env.models import Generator
from ssdkd_env.models.init import seeded
from ssdkd_env.synthesis.base import SYNTHESIZERS, BaseSynthesizer, SynthesisRequest, SynthesisResult
from ssdkd_env.synthesis.bn_hooks import BNStatsLoss

if TYPE_CHECKING:
    from ssdkd_env.context import RunContext


GeneratorObjective = Literal["negative", "negative-log1p", "one-minus-js"]


@dataclass
class AdversarialGeneratorConfig(Validated):
    """The adversarial generator and its loss terms (DFAD's CIFAR settings by default)."""

    nz: int = spec(256, ge=1)
    ngf: int = spec(64, ge=1)
    lr: float = spec(1e-3, ge=0)  # Adam
    objective: GeneratorObjective = "negative"  # -D, -log(1 + D) (DFAD on segmentation), 1 - JS (PRE-DFKD)
    bn_weight: float = spec(0.0, ge=0)  # teacher BN-statistics constraint (MB-DFKD)
    oh_weight: float = spec(0.0, ge=0)  # cross-entropy to the teacher's prediction (PRE-DFKD)
    balance_weight: float = spec(0.0, ge=0)  # class balance: log K - entropy of the batch-mean prediction


def generator_objective(mean_discrepancy: torch.Tensor, objective: GeneratorObjective) -> torch.Tensor:
    """The generator's adversarial loss for a batch's mean disagreement D: ``-D``, ``-log(1 + D)``,
    or ``1 - D`` where D is then the mean Jensen-Shannon divergence (``one-minus-js``)."""
    if objective == "negative":
        return -mean_discrepancy
    if objective == "negative-log1p":
        return -torch.log1p(mean_discrepancy)
    return 1 - mean_discrepancy


def class_balance(teacher_logits: torch.Tensor) -> torch.Tensor:
    """``log K - H(mean_i p_T(x_i))``: 0 when the batch's predictions cover the K classes evenly
    (for dense outputs the mean runs over every pixel of the batch)."""
    probs = F.softmax(teacher_logits, dim=1)
    mean_p = probs.mean(0) if probs.dim() == 2 else probs.transpose(0, 1).flatten(1).mean(1)
    return math.log(teacher_logits.shape[1]) + (mean_p * mean_p.clamp_min(1e-12).log()).sum()


class AdversarialGenerator(BaseSynthesizer):
    """Fresh images from one generator; :meth:`adversarial_step` moves it towards disagreement."""

    Config = AdversarialGeneratorConfig

    def __init__(self, options: AdversarialGeneratorConfig, ctx: RunContext) -> None:
        """``ctx.init_rng`` draws the generator's initial weights, ``ctx.device_rng`` every latent;
        ``ctx.kind`` reads the teacher's outputs."""
        config = options
        self.teacher, self.config, self.device = ctx.teacher, config, ctx.device
        self.kind = ctx.kind
        self.device_rng, self.precision, self.channels_last = ctx.step_rng, ctx.precision, ctx.channels_last
        img_shape = ctx.input_shape
        self.generator = module_layout(
            seeded(lambda: Generator(config.nz, img_shape, config.ngf, "tanh_bn"), ctx.init_rng).to(ctx.device),
            ctx.channels_last,
        )
        self.optimizer = torch.optim.Adam(self.generator.parameters(), lr=config.lr)
        # plain batch statistics (no momentum mixing), observed only inside the generator's step
        self.bn_loss = (
            BNStatsLoss(ctx.teacher, momentum=0.0, input_channels=img_shape[0], active=False)
            if config.bn_weight > 0
            else None
        )
        self.last_terms: dict[str, torch.Tensor] = {}

    def _images(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.config.nz, generator=self.device_rng, device=self.device)
        return to_layout(self.generator(z), self.channels_last)

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """``request.n`` fresh images (no optimisation) with the teacher's outputs; the targets
        are the teacher's predictions (DFAD draws no target classes)."""
        self.generator.train()  # DFAD's generator always normalises with its batch statistics
        with torch.no_grad(), autocast_for(self.device, self.precision):
            images = self._images(request.n)
            t_logits = self.teacher(images).float()
        targets = self.kind.predicted_classes(t_logits)
        return SynthesisResult(images=images.float(), targets=targets, teacher_logits=t_logits, losses={})

    def adversarial_step(
        self,
        student: nn.Module,
        discrepancy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        n: int,
        lr_scale: float = 1.0,
    ) -> torch.Tensor:
        """One Adam step of the generator on ``n`` fresh images, minimising the adversarial
        objective of the per-sample ``discrepancy(teacher_out, student_out)`` (or of JS) plus the
        configured terms; returns the total loss, and keeps each weighted term in ``last_terms``.

        ``lr_scale`` multiplies the configured learning rate for this step: the round loop passes
        the student's schedule, so both sides of the game slow down together (DFAD decays the
        two learning rates at the same epochs). The student's weights get no gradient; it stays
        in its mode (training, as in DFAD)."""
        for group in self.optimizer.param_groups:
            group["lr"] = self.config.lr * lr_scale
        self.generator.train()
        student.requires_grad_(False)
        cfg = self.config
        try:
            with self._observing_bn(), autocast_for(self.device, self.precision):
                images = self._images(n)
                t_logits = self.teacher(images).float()
            with autocast_for(self.device, self.precision):
                s_logits = student(images).float()
            if cfg.objective == "one-minus-js":
                disagreement = jensen_shannon(t_logits, s_logits).mean()
            else:
                disagreement = discrepancy(t_logits, s_logits).mean()
            terms = {"adv": generator_objective(disagreement, cfg.objective)}
            if self.bn_loss is not None:
                terms["bn"] = cfg.bn_weight * self.bn_loss.value()
            if cfg.oh_weight > 0:
                terms["oh"] = cfg.oh_weight * F.cross_entropy(t_logits, t_logits.argmax(1))
            if cfg.balance_weight > 0:
                terms["balance"] = cfg.balance_weight * class_balance(t_logits)
            loss = torch.stack(list(terms.values())).sum()
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        finally:
            student.requires_grad_(True)
        self.last_terms = {name: value.detach() for name, value in terms.items()}
        return loss.detach()

    def _observing_bn(self) -> contextlib.AbstractContextManager[None]:
        """Observe the teacher's BN statistics in this block when the constraint is on."""
        return contextlib.nullcontext() if self.bn_loss is None else self.bn_loss.observing()

    def close(self) -> None:
        """Remove the BN hooks this synthesizer put on the teacher."""
        if self.bn_loss is not None:
            self.bn_loss.remove()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])


SYNTHESIZERS.add("adversarial-generator", AdversarialGenerator)
