"""Condensed-sample guided model inversion (synthesizer ``condensed-guided``, method ``csmi``).

A few condensed samples per class (``ssdkd_env.condensation``: distribution matching, or K real
images) guide Fast's meta-generator inversion ("Condensed-sample guided model inversion", 2024):
a class-conditional discriminator on the teacher's penultimate features learns each round to
separate the condensed samples (real, 1) from the round's synthetic ones (0), and the generator
is also trained to fool it (``disc_weight`` times the non-saturating GAN loss, added to Fast's
BN-statistics, class and adversarial terms). The student trains on the condensed samples too:
memory ``condensed-pool`` (``ssdkd_env.replay.condensed``) holds them from the start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssdkd_env.common.precision import autocast_for, to_layout
from ssdkd_env.common.validation import spec
from ssdkd_env.condensation import load_condensed
from ssdkd_env.errors import UserError
from ssdkd_env.models.init import seeded
from ssdkd_env.synthesis.base import SYNTHESIZERS, SynthesisRequest, SynthesisResult
from ssdkd_env.synthesis.config import SynthesisConfig
from ssdkd_env.synthesis.synthesizer import MetaGeneratorSynthesizer

if TYPE_CHECKING:
    from ssdkd_env.context import RunContext


@dataclass
class CondensedGuidedConfig(SynthesisConfig):
    """The meta-generator's options, and the discriminator that compares condensed and synthetic samples."""

    disc_weight: float = spec(1.0, ge=0)  # weight of the generator's fool-the-discriminator term (0: off)
    disc_lr: float = spec(1e-3, ge=0)  # the discriminator's Adam learning rate (betas 0.5/0.999)
    disc_hidden: int = spec(256, ge=1)  # width of the discriminator's hidden layers
    disc_steps: int = spec(1, ge=1)  # discriminator steps per round


def final_linear(model: nn.Module) -> nn.Linear:
    """The classifier's last Linear layer: its ``head`` (every model of ``ssdkd_env.models``), else
    the last Linear module it registers."""
    head = getattr(model, "head", None)
    if isinstance(head, nn.Linear):
        return head
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"the teacher ({type(model).__name__}) has no Linear layer whose input is its features")
    return linears[-1]


class PenultimateFeatures:
    """The input of a model's final Linear layer (its penultimate features), kept by a forward
    pre-hook during the forward passes inside :meth:`capturing`."""

    def __init__(self, model: nn.Module) -> None:
        layer = final_linear(model)
        self.dim = layer.in_features
        self.active = False
        self.value: torch.Tensor | None = None
        self.handle = layer.register_forward_pre_hook(self._keep)

    def _keep(self, _module: nn.Module, inputs: tuple[torch.Tensor, ...]) -> None:
        if self.active:
            self.value = inputs[0]

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """Keep the features of the forward passes inside this block (the last one wins)."""
        self.active = True
        try:
            yield
        finally:
            self.active, self.value = False, None

    def last(self) -> torch.Tensor:
        """The features of the most recent forward pass inside :meth:`capturing`, in fp32."""
        if self.value is None:
            raise RuntimeError("no features captured: run the model inside capturing()")
        return self.value.float()

    def remove(self) -> None:
        self.handle.remove()


class ProjectionDiscriminator(nn.Module):
    """Class-conditional discriminator on feature vectors (projection discriminator, Miyato &
    Koyama, ICLR 2018): ``D(h, y) = w . phi(h) + e_y . phi(h)`` with a two-layer MLP ``phi``."""

    def __init__(self, feature_dim: int, num_classes: int, hidden: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Linear(feature_dim, hidden), nn.LeakyReLU(0.2), nn.Linear(hidden, hidden), nn.LeakyReLU(0.2)
        )
        self.out = nn.Linear(hidden, 1)
        self.embed = nn.Embedding(num_classes, hidden)

    def forward(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Logits ``[B]``: high for features that look condensed for their class."""
        h = self.body(features)
        return self.out(h).squeeze(1) + (self.embed(labels) * h).sum(1)


def discriminator_loss(
    disc: nn.Module, real: torch.Tensor, real_y: torch.Tensor, fake: torch.Tensor, fake_y: torch.Tensor
) -> torch.Tensor:
    """Binary cross-entropy with condensed features as 1 and synthetic ones as 0, each side
    averaged on its own (there are far fewer condensed samples)."""
    real_logits, fake_logits = disc(real, real_y), disc(fake, fake_y)
    return F.binary_cross_entropy_with_logits(
        real_logits, torch.ones_like(real_logits)
    ) + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))


def generator_disc_loss(disc: nn.Module, fake: torch.Tensor, fake_y: torch.Tensor) -> torch.Tensor:
    """The generator's term: make synthetic features pass as condensed (non-saturating, -log D)."""
    return F.softplus(-disc(fake, fake_y)).mean()


class CondensedGuidedSynthesizer(MetaGeneratorSynthesizer):
    """Fast's meta-generator inversion guided by a discriminator between condensed and synthetic
    teacher features. Each round: the generator's steps add ``disc_weight`` times
    :func:`generator_disc_loss` (loss ``disc``, the weighted term; absent at weight 0), then the
    discriminator takes ``disc_steps`` Adam steps on the condensed features against those of the
    round's images, each conditioned on its class (loss ``disc_d``)."""

    Config = CondensedGuidedConfig
    task_defaults_from = ("meta-generator",)

    def __init__(self, options: CondensedGuidedConfig, ctx: RunContext) -> None:
        """The condensed samples (``ctx.condensed_path``) are what the discriminator calls real; its
        weights come from ``ctx.init_rng`` after the generators'. The rest is
        :class:`MetaGeneratorSynthesizer`'s."""
        self.check_inputs(options, ctx)
        condensed = load_condensed(ctx.condensed_path, ctx.require_task("the condensed-guided synthesizer"))
        super().__init__(options, ctx)
        self.guide = options
        self.features = PenultimateFeatures(ctx.teacher)
        self.real_labels = condensed.labels.to(ctx.device)
        self.real_features = self._teacher_features(to_layout(condensed.images.to(ctx.device), ctx.channels_last))
        hidden, num_classes = options.disc_hidden, ctx.num_classes
        self.disc = seeded(lambda: ProjectionDiscriminator(self.features.dim, num_classes, hidden), ctx.init_rng)
        self.disc = self.disc.to(ctx.device)
        self.disc_optimizer = torch.optim.Adam(self.disc.parameters(), lr=options.disc_lr, betas=(0.5, 0.999))

    @classmethod
    def check_inputs(cls, options: CondensedGuidedConfig, ctx: RunContext) -> None:
        """Condensed samples are class images: a dense (segmentation) task is refused."""
        if ctx.kind.name != "classification":
            raise UserError(
                f"the condensed-guided synthesizer (csmi) needs a classification task; this one is {ctx.kind.name}"
            )

    def _teacher_features(self, images: torch.Tensor) -> torch.Tensor:
        """The teacher's penultimate features of ``images`` (fp32, without gradient)."""
        with self.features.capturing(), torch.no_grad(), autocast_for(self.device, self.precision):
            self.teacher(images)
            return self.features.last().detach()

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """Fast's round with the discriminator term, then the discriminator's update."""
        self.disc.requires_grad_(False)  # the generator's steps train the generator only
        try:
            with self.features.capturing():
                result = super().synthesize(request)
        finally:
            self.disc.requires_grad_(True)
        fake = self._teacher_features(result.images)
        for _ in range(self.guide.disc_steps):
            loss = discriminator_loss(self.disc, self.real_features, self.real_labels, fake, result.targets)
            self.disc_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.disc_optimizer.step()
        result.losses["disc_d"] = loss.detach()
        return result

    def extra_loss(
        self, images: torch.Tensor, t_logits: torch.Tensor, targets: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``disc``: the weighted fool-the-discriminator term on the features the teacher just computed."""
        if self.guide.disc_weight == 0:
            return {}
        return {"disc": self.guide.disc_weight * generator_disc_loss(self.disc, self.features.last(), targets)}

    def close(self) -> None:
        """Remove every hook this synthesizer put on the teacher."""
        super().close()
        self.features.remove()

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "disc": self.disc.state_dict(),
            "disc_optimizer": self.disc_optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.disc.load_state_dict(state["disc"])
        self.disc_optimizer.load_state_dict(state["disc_optimizer"])


SYNTHESIZERS.add("condensed-guided", CondensedGuidedSynthesizer)
