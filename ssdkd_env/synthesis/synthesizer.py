"""Fast-style generator inversion with SSD-KD's modulating function (synthesizer ``meta-generator``).

Each round a copy of the meta-generator and fresh latents are optimised for a few steps
against the teacher (BN statistics, class targets, teacher–student disagreement); the
meta-generator then takes a first-order (Reptile) meta step towards the optimised copy
(Fang et al., "Up to 100x Faster Data-free Knowledge Distillation", AAAI 2022). Several
meta-generators may take turns, one per round. SSD-KD's phi (Liu et al., CVPR 2024) draws the
target classes (diversity) and focal-weights the class loss (difficulty).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch
import torch.nn as nn

from ssdkd_env.common.images import random_hflip, random_translate
from ssdkd_env.common.precision import autocast_for, module_layout, to_layout
from ssdkd_env.losses import per_sample_kl
from ssdkd_env.models import Generator
from ssdkd_env.models.init import seeded
from ssdkd_env.synthesis.base import SYNTHESIZERS, BaseSynthesizer, SynthesisRequest, SynthesisResult
from ssdkd_env.synthesis.bn_hooks import BNStatsLoss, MomentumBuffer
from ssdkd_env.synthesis.config import SynthesisConfig
from ssdkd_env.synthesis.modulation import diversity_class_probs, draw_targets

if TYPE_CHECKING:
    from ssdkd_env.context import RunContext


def total_variation(images: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (a smoothness prior)."""
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().mean()
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().mean()
    return dx + dy


@contextlib.contextmanager
def _frozen(model: nn.Module | None) -> Iterator[None]:
    """Eval mode and no parameter gradients for ``model`` (inputs still get gradients)."""
    if model is None:
        yield
        return
    was_training = model.training
    model.eval().requires_grad_(False)
    try:
        yield
    finally:
        model.requires_grad_(True).train(was_training)


class MetaGeneratorSynthesizer(BaseSynthesizer):
    """Inverts the teacher into batches of synthetic images, one batch per round."""

    action_fields = ("diversity", "difficulty")

    Config = SynthesisConfig

    def __init__(self, options: SynthesisConfig, ctx: RunContext) -> None:
        """Generators over ``ctx``'s shapes: ``ctx.rng`` draws targets and latents, ``ctx.init_rng`` the
        generators' initial weights, ``ctx.device_rng`` the augmentation of every step. Forward passes
        run at ``ctx.precision``, the losses in fp32; ``ctx.kind`` reads the teacher's outputs (its class
        loss is phi's). Without ``ctx.student`` there is no adversarial term (the probe's inversion)."""
        config = options
        self.teacher, self.student = ctx.teacher, ctx.student
        self.kind = ctx.kind
        self.num_classes = ctx.num_classes
        self.config = config
        self.device = ctx.device
        self.rng = ctx.rng
        self.device_rng = ctx.step_rng
        self.precision, self.channels_last = ctx.precision, ctx.channels_last
        labels = ctx.num_classes if config.conditional else 0
        img_shape, mean, std = ctx.input_shape, ctx.mean, ctx.std
        self.metas = [
            module_layout(
                seeded(
                    lambda: Generator(config.nz, img_shape, config.ngf, "sigmoid", mean, std, labels), ctx.init_rng
                ).to(ctx.device),
                ctx.channels_last,
            )
            for _ in range(config.generators)
        ]
        self.fast = copy.deepcopy(self.metas[0])
        self.meta_optimizers = [
            torch.optim.Adam(meta.parameters(), lr=config.meta_lr, betas=(0.5, 0.999)) for meta in self.metas
        ]
        self.bn_loss = BNStatsLoss(ctx.teacher, config.bn_momentum, input_channels=img_shape[0], active=False)
        # each meta-generator matches the statistics against its own momentum buffers
        self.bn_buffers: list[list[MomentumBuffer]] = [self.bn_loss.momentum_buffers for _ in self.metas]
        self.pretrain_bn_losses: list[list[float]] = []  # each generator's BN loss, step by step, in pre-training

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """Run one round of inversion for ``request.n`` new samples.

        Targets are drawn against the memory's class histogram with phi's ``diversity``
        strength; ``difficulty`` is the focal exponent of the class loss.
        """
        cfg = self.config
        if not self.pretrained:
            self.pretrain(request)
        n, round_index, difficulty_gamma = request.n, request.round_index, request.difficulty
        targets = draw_targets(diversity_class_probs(request.class_counts, request.diversity), n, self.rng)
        z = torch.randn(n, cfg.nz, generator=self.rng).to(self.device).requires_grad_(True)
        turn = round_index % len(self.metas)
        self.fast.load_state_dict(self.metas[turn].state_dict())
        self.bn_loss.momentum_buffers = self.bn_buffers[turn]
        self.fast.train()
        groups: list[dict[str, Any]] = [{"params": self.fast.parameters()}, {"params": [z], "lr": cfg.lr_z}]
        optimizer = torch.optim.Adam(groups, lr=cfg.lr_g, betas=(0.5, 0.999))
        use_adv = cfg.adv_weight > 0 and round_index >= cfg.warmup_rounds
        student = self.student if use_adv else None
        with _frozen(self.student), self.bn_loss.observing():
            for _ in range(cfg.g_steps):
                with autocast_for(self.device, self.precision):
                    images, seen = self._generate(self.fast, z, targets)
                    t_logits = self.teacher(seen).float()
                    s_logits = None if student is None else student(seen).float()
                loss_bn = self.bn_loss.value()
                loss_oh = self.kind.target_loss(t_logits, targets, difficulty_gamma)
                loss_adv = torch.zeros((), device=self.device)
                if s_logits is not None:
                    agree = (s_logits.argmax(1) == t_logits.argmax(1)).float()
                    loss_adv = -(per_sample_kl(t_logits, s_logits) * agree).mean()
                loss = self._inversion_loss(loss_bn, loss_oh, images, cfg.adv_weight * loss_adv)
                extra = self.extra_loss(seen, t_logits, targets)
                for term in extra.values():
                    loss = loss + term
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.bn_loss.commit()
        self.bn_buffers[turn] = self.bn_loss.momentum_buffers
        self._meta_step(turn)
        if seen is not images:  # the memory keeps the unaugmented images, labelled as they are
            with torch.no_grad(), autocast_for(self.device, self.precision):
                t_logits = self.teacher(images).float()
        return SynthesisResult(
            images=images.detach(),
            targets=targets,
            teacher_logits=t_logits.detach(),
            losses={
                "bn": loss_bn.detach(),
                "oh": loss_oh.detach(),
                "adv": loss_adv.detach(),
                **{name: term.detach() for name, term in extra.items()},
            },
        )

    def pretrain(self, request: SynthesisRequest) -> None:
        """Train each meta-generator directly for ``pretrain_steps`` steps on the BN-statistics and class
        losses, with fresh latents and targets every step, before the first round.

        Reptile's meta step moves a generator only a little each round: at 240x180 the 80 generator steps
        of a CPU-scale run left the BN loss still falling and the images far from real frames
        (docs/notebook/2026-12-02.md, "CamVid"). A direct warm-up, as generator-based inversion trains its generator
        (DeepInversion's statistics prior on a generator, Fang et al.'s CMI), starts round 0 from a
        generator that already matches the teacher's statistics. The statistics are the batch's own
        (no momentum); nothing is committed, so the rounds' momentum buffers start fresh. Measured on
        CamVid it lowers the BN loss but not the student's mIoU, so no task turns it on (docs/notebook/2026-12-02.md).
        """
        cfg = self.config
        probs = diversity_class_probs(request.class_counts, request.diversity)
        with self.bn_loss.observing():
            for meta in self.metas:
                optimizer = torch.optim.Adam(meta.parameters(), lr=cfg.lr_g, betas=(0.5, 0.999))
                meta.train()
                bn_losses = []
                for _ in range(cfg.pretrain_steps):
                    targets = draw_targets(probs, cfg.pretrain_batch, self.rng)
                    z = torch.randn(cfg.pretrain_batch, cfg.nz, generator=self.rng).to(self.device)
                    with autocast_for(self.device, self.precision):
                        images, seen = self._generate(meta, z, targets)
                        t_logits = self.teacher(seen).float()
                    loss_bn = self.bn_loss.value()
                    loss = self._inversion_loss(loss_bn, self.kind.target_loss(t_logits, targets, 0.0), images)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    bn_losses.append(loss_bn.detach())
                self.pretrain_bn_losses.append(torch.stack(bn_losses).tolist())

    @property
    def pretrained(self) -> bool:
        """Whether the warm-up has nothing left to do (no steps asked for, or done)."""
        return self.config.pretrain_steps == 0 or bool(self.pretrain_bn_losses)

    def _inversion_loss(
        self,
        loss_bn: torch.Tensor,
        loss_oh: torch.Tensor,
        images: torch.Tensor,
        adversarial: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The weighted BN-statistics and class losses, the weighted ``adversarial`` term when given, then
        the total-variation prior when it is on."""
        cfg = self.config
        loss = cfg.bn_weight * loss_bn + cfg.oh_weight * loss_oh
        loss = loss if adversarial is None else loss + adversarial
        return loss + cfg.tv_weight * total_variation(images.float()) if cfg.tv_weight > 0 else loss

    def extra_loss(
        self, images: torch.Tensor, t_logits: torch.Tensor, targets: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Named terms added, as they are, to the generator's loss at every step (none here): the
        hook for a subclass's extra guidance, given the images the teacher saw, its logits and the
        target classes. The round reports each term's last value as a loss of that name."""
        return {}

    def _generate(
        self, generator: nn.Module, z: torch.Tensor, targets: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``generator``'s images for latents ``z`` (conditioned on ``targets`` when the config says so),
        and the augmented view of them that the losses see, both in the models' memory layout."""
        images = to_layout(generator(z, targets if self.config.conditional else None), self.channels_last)
        return images, to_layout(self._augment(images), self.channels_last)

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        """Random shifts and flips (differentiable), so that the generator cannot satisfy the
        teacher with pixel patterns that only work at one position (Fang et al., Fast)."""
        seen = random_translate(images, self.config.augment_shift, self.device_rng)
        return random_hflip(seen, self.device_rng) if self.config.augment_flip else seen

    def close(self) -> None:
        """Remove the hooks this synthesizer put on the teacher."""
        self.bn_loss.remove()

    def _meta_step(self, turn: int) -> None:
        """First-order meta update: move the meta-generator of this turn towards the optimised copy."""
        optimizer = self.meta_optimizers[turn]
        optimizer.zero_grad(set_to_none=True)
        for meta_p, fast_p in zip(self.metas[turn].parameters(), self.fast.parameters(), strict=True):
            meta_p.grad = meta_p.detach() - fast_p.detach()
        optimizer.step()

    def report(self) -> dict[str, Any]:
        """The pre-training's steps, images, and BN loss at its first and last step per generator (if it ran)."""
        if not self.pretrain_bn_losses:
            return {}
        return {
            "pretrain_steps": self.config.pretrain_steps,
            # images the warm-up generated to train the generators (none reach the student or the memory)
            "pretrain_images": self.config.pretrain_steps * self.config.pretrain_batch * len(self.metas),
            "pretrain_bn_loss_first": [round(losses[0], 4) for losses in self.pretrain_bn_losses],
            "pretrain_bn_loss_last": [round(losses[-1], 4) for losses in self.pretrain_bn_losses],
        }

    def state_dict(self) -> dict[str, Any]:
        """Generator, meta-optimiser and BN-momentum state for checkpoints."""
        return {
            "metas": [meta.state_dict() for meta in self.metas],
            "meta_optimizers": [optimizer.state_dict() for optimizer in self.meta_optimizers],
            "bn_buffers": self.bn_buffers,
            "pretrain_bn_losses": self.pretrain_bn_losses,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for meta, optimizer, meta_state, optimizer_state in zip(
            self.metas, self.meta_optimizers, state["metas"], state["meta_optimizers"], strict=True
        ):
            meta.load_state_dict(meta_state)
            optimizer.load_state_dict(optimizer_state)
        self.bn_buffers = [list(per_generator) for per_generator in state["bn_buffers"]]
        self.pretrain_bn_losses = state.get("pretrain_bn_losses", [])


SYNTHESIZERS.add("meta-generator", MetaGeneratorSynthesizer)
