"""DeepInversion (synthesizer ``pixel-inversion``): the pixels of a batch are the optimised variables.

Yin et al., "Dreaming to Distill: Data-free Knowledge Transfer via DeepInversion" (CVPR 2020).
Each round a fresh batch starts from Gaussian noise (in the task's normalised space) and its
pixels are optimised by Adam against the teacher for ``iterations`` steps:

    L = oh * CE(T(x'), y) + bn * sum_l (||mu_l - running_mu_l||_2 + ||var_l - running_var_l||_2)
        + tv_l1 * TV_1(x) + tv_l2 * TV_2(x) + l2 * mean_i ||x_i||_2
        + adaptive * (1 - JS(p_T(x'), p_S(x')))

where ``x'`` is ``x`` randomly jittered (and flipped), so that no pixel pattern satisfies the
teacher at one position only. The last term is DeepInversion's adaptive "competition" (ADI): it
seeks images on which the frozen student disagrees with the teacher. After each step the pixels
are clamped to the image range, [0, 1] before normalisation. No generator and no state survive
the round: every batch is inverted from scratch. SSD-KD's phi applies as in the meta-generator
(diversity draws the targets, difficulty focal-weights the class loss).

The priors are means, not norms of the whole batch, so their weights do not depend on the batch size.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from ssdkd_env.common.images import random_hflip, random_translate
from ssdkd_env.common.precision import autocast_for, to_layout
from ssdkd_env.common.validation import Validated, spec
from ssdkd_env.losses import jensen_shannon
from ssdkd_env.synthesis.base import SYNTHESIZERS, BaseSynthesizer, SynthesisRequest, SynthesisResult
from ssdkd_env.synthesis.bn_hooks import BNStatsLoss
from ssdkd_env.synthesis.modulation import diversity_class_probs, draw_targets
from ssdkd_env.synthesis.synthesizer import _frozen, total_variation

if TYPE_CHECKING:
    from ssdkd_env.context import RunContext


@dataclass
class PixelInversionConfig(Validated):
    """DeepInversion's optimisation and loss weights. The defaults are its CIFAR-10 settings (2k
    iterations, lr 0.05, BN weight 10, no adaptive term); the prior weights are this project's own,
    for priors that are means."""

    iterations: int = spec(2000, ge=1)  # Adam steps on the pixels of each batch
    lr: float = spec(0.05, ge=0)  # Adam learning rate of the pixels
    bn_weight: float = spec(10.0, ge=0)  # BN-statistics loss (DeepInversion's r_feature)
    oh_weight: float = spec(1.0, ge=0)  # cross-entropy to the drawn targets
    tv_l1: float = spec(0.0, ge=0)  # total variation, mean absolute neighbour difference
    tv_l2: float = spec(1e-3, ge=0)  # total variation, mean squared neighbour difference
    l2_weight: float = spec(0.0, ge=0)  # mean per-image L2 norm of the (normalised) pixels
    adaptive_weight: float = spec(0.0, ge=0)  # 1 - JS(p_T, p_S) with the frozen student (ADI; 0 = plain DI)
    jitter: int = spec(2, ge=0)  # random translation, in pixels, of what the losses see
    flip: bool = False  # random horizontal flips of what the losses see (natural images)


def total_variation_l2(images: torch.Tensor) -> torch.Tensor:
    """Mean squared difference between neighbouring pixels (a smoothness prior)."""
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).square().mean()
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).square().mean()
    return dx + dy


class PixelInversion(BaseSynthesizer):
    """Inverts the teacher into a batch of images by optimising the pixels themselves."""

    action_fields = ("diversity", "difficulty")

    Config = PixelInversionConfig

    def __init__(self, options: PixelInversionConfig, ctx: RunContext) -> None:
        """``ctx.rng`` draws targets and the initial noise (on the CPU); ``ctx.device_rng`` the jitter
        and flips of every step. Forward passes run at ``ctx.precision``, the losses in fp32;
        ``ctx.kind`` reads the teacher's outputs."""
        self.teacher, self.student, self.img_shape = ctx.teacher, ctx.student, ctx.input_shape
        self.kind = ctx.kind
        self.config, self.device, self.rng, self.device_rng = options, ctx.device, ctx.rng, ctx.step_rng
        self.precision, self.channels_last = ctx.precision, ctx.channels_last
        m = torch.tensor(ctx.mean, device=ctx.device).view(1, -1, 1, 1)
        s = torch.tensor(ctx.std, device=ctx.device).view(1, -1, 1, 1)
        self.low, self.high = (0 - m) / s, (1 - m) / s  # the image range [0, 1], normalised

    def weights(self) -> dict[str, float]:
        """The weight of each loss term, by the names :meth:`objective` reports."""
        cfg = self.config
        return {
            "bn": cfg.bn_weight,
            "oh": cfg.oh_weight,
            "tv_l1": cfg.tv_l1,
            "tv_l2": cfg.tv_l2,
            "l2": cfg.l2_weight,
            "adaptive": cfg.adaptive_weight,
        }

    @contextlib.contextmanager
    def statistics(self) -> Iterator[BNStatsLoss]:
        """BN-statistics hooks on the teacher for the length of one inversion, each batch matched on
        its own statistics (DeepInversion: no momentum mixing across rounds). Nothing stays on the
        shared teacher between rounds, so the synthesizer also works after the run is closed."""
        bn_loss = BNStatsLoss(self.teacher, momentum=0.0, input_channels=self.img_shape[0])
        try:
            yield bn_loss
        finally:
            bn_loss.remove()

    def objective(
        self,
        pixels: torch.Tensor,
        targets: torch.Tensor,
        difficulty: float,
        student: nn.Module | None,
        bn_loss: BNStatsLoss,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The weighted loss of ``pixels`` and its unweighted terms by name, with ``bn_loss`` from
        :meth:`statistics`. The class, BN and adaptive terms see a jittered copy of the pixels, the
        priors the pixels themselves; the adaptive term is 0 without a ``student``."""
        with autocast_for(self.device, self.precision):
            seen = to_layout(self._augment(pixels), self.channels_last)
            t_logits = self.teacher(seen).float()
            s_logits = None if student is None else student(seen).float()
        x = pixels.float()
        no_student = torch.zeros((), device=self.device)
        terms = {
            "bn": bn_loss.value().to(self.device),
            "oh": self.kind.target_loss(t_logits, targets, difficulty),
            "tv_l1": total_variation(x),
            "tv_l2": total_variation_l2(x),
            "l2": x.flatten(1).norm(dim=1).mean(),
            "adaptive": no_student if s_logits is None else 1 - jensen_shannon(t_logits, s_logits).mean(),
        }
        weighted = [weight * terms[name] for name, weight in self.weights().items() if weight > 0]
        total = torch.stack(weighted).sum() if weighted else torch.zeros((), device=self.device)
        return total, terms

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """Invert ``request.n`` images from noise: ``iterations`` Adam steps on the pixels, each
        followed by a clamp to the image range."""
        cfg = self.config
        probs = diversity_class_probs(request.class_counts, request.diversity)
        targets = draw_targets(probs, request.n, self.rng).to(self.device)
        noise = torch.randn(request.n, *self.img_shape, generator=self.rng)
        pixels = to_layout(torch.maximum(torch.minimum(noise.to(self.device), self.high), self.low), self.channels_last)
        pixels.requires_grad_(True)
        optimizer = torch.optim.Adam([pixels], lr=cfg.lr)
        student = self.student if cfg.adaptive_weight > 0 else None
        with _frozen(student), self.statistics() as bn_loss:
            for _ in range(cfg.iterations):
                loss, terms = self.objective(pixels, targets, request.difficulty, student, bn_loss)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                with torch.no_grad():
                    pixels.copy_(torch.maximum(torch.minimum(pixels, self.high), self.low))
        images = pixels.detach()
        with torch.no_grad(), autocast_for(self.device, self.precision):
            t_logits = self.teacher(images).float()
        return SynthesisResult(
            images=images,
            targets=targets,
            teacher_logits=t_logits,
            losses={name: value.detach() for name, value in terms.items()},
        )

    def _augment(self, pixels: torch.Tensor) -> torch.Tensor:
        """Random jitter and flips (differentiable), drawn from the run's device generator."""
        seen = random_translate(pixels, self.config.jitter, self.device_rng)
        return random_hflip(seen, self.device_rng) if self.config.flip else seen


SYNTHESIZERS.add("pixel-inversion", PixelInversion)
