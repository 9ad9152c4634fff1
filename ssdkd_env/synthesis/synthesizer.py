"""Fast-style generator inversion with SSD-KD's modulating function.

Each round a copy of the meta-generator and fresh latents are optimised for a few steps
against the teacher (BN statistics, class targets, teacher–student disagreement); the
meta-generator then takes a first-order (Reptile) meta step towards the optimised copy.
Several meta-generators may take turns, one per round.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssdkd_env.errors import UserError
from ssdkd_env.models import Generator
from ssdkd_env.synthesis.bn_hooks import BNStatsLoss, MomentumBuffer
from ssdkd_env.synthesis.modulation import diversity_class_probs, draw_targets, focal_cross_entropy


@dataclass
class SynthesisConfig:
    """Generator, latent and loss settings of the inversion."""

    nz: int = 256
    ngf: int = 64
    g_steps: int = 2  # inner optimisation steps per round (Fast2: 2, Fast5: 5)
    lr_g: float = 5e-3  # generator copy learning rate (Adam, betas 0.5/0.999)
    lr_z: float = 1.5e-2  # latent learning rate
    meta_lr: float = 1e-2  # Reptile step of the meta-generator
    generators: int = 1  # meta-generators taking turns round by round (each settles on its own styles)
    bn_weight: float = 10.0
    oh_weight: float = 0.5
    adv_weight: float = 1.0
    tv_weight: float = 0.0  # total-variation image prior (DeepInversion), on the normalised images
    bn_momentum: float = 0.9  # mixing of batch BN statistics with earlier rounds'
    warmup_rounds: int = 5  # rounds without the adversarial term


@dataclass
class SynthesisResult:
    """What one round of inversion produced (all detached)."""

    images: torch.Tensor
    targets: torch.Tensor
    teacher_logits: torch.Tensor
    losses: dict[str, float]


def per_sample_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(p_T || p_S) per sample at ``temperature``."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)


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


class Synthesizer:
    """Inverts the teacher into batches of synthetic images, one batch per round."""

    def __init__(
        self,
        teacher: nn.Module,
        student: nn.Module | None,
        img_shape: tuple[int, int, int],
        num_classes: int,
        mean: tuple[float, ...],
        std: tuple[float, ...],
        config: SynthesisConfig,
        device: torch.device,
        rng: torch.Generator,
    ) -> None:
        self.teacher, self.student = teacher, student
        self.num_classes = num_classes
        self.config = config
        self.device = device
        self.rng = rng
        if config.generators < 1:
            raise UserError(f"synthesis.generators must be at least 1, got {config.generators}")
        self.metas = [
            Generator(config.nz, img_shape, config.ngf, "sigmoid", mean, std).to(device)
            for _ in range(config.generators)
        ]
        self.fast = copy.deepcopy(self.metas[0])
        self.meta_optimizers = [
            torch.optim.Adam(meta.parameters(), lr=config.meta_lr, betas=(0.5, 0.999)) for meta in self.metas
        ]
        self.bn_loss = BNStatsLoss(teacher, config.bn_momentum, input_channels=img_shape[0], active=False)
        # each meta-generator matches the statistics against its own momentum buffers
        self.bn_buffers: list[list[MomentumBuffer]] = [self.bn_loss.momentum_buffers for _ in self.metas]

    def synthesize(
        self, n: int, class_counts: torch.Tensor, round_index: int, diversity: float, difficulty_gamma: float
    ) -> SynthesisResult:
        """Run one round of inversion for ``n`` new samples.

        ``class_counts`` is the buffer's teacher-predicted class histogram (phi's diversity
        part draws targets against it with ``diversity`` strength); ``difficulty_gamma`` is the
        focal exponent of phi's difficulty part.
        """
        cfg = self.config
        targets = draw_targets(diversity_class_probs(class_counts, diversity), n, self.rng)
        z = torch.randn(n, cfg.nz, generator=self.rng).to(self.device).requires_grad_(True)
        turn = round_index % len(self.metas)
        self.fast.load_state_dict(self.metas[turn].state_dict())
        self.bn_loss.momentum_buffers = self.bn_buffers[turn]
        self.fast.train()
        optimizer = torch.optim.Adam(
            [{"params": self.fast.parameters()}, {"params": [z], "lr": cfg.lr_z}], lr=cfg.lr_g, betas=(0.5, 0.999)
        )
        use_adv = self.student is not None and cfg.adv_weight > 0 and round_index >= cfg.warmup_rounds
        with _frozen(self.student), self.bn_loss.observing():
            for _ in range(cfg.g_steps):
                images = self.fast(z)
                t_logits = self.teacher(images)
                loss_bn = self.bn_loss.value()
                loss_oh = focal_cross_entropy(t_logits, targets, difficulty_gamma)
                loss_adv = torch.zeros((), device=self.device)
                if use_adv:
                    assert self.student is not None
                    s_logits = self.student(images)
                    agree = (s_logits.argmax(1) == t_logits.argmax(1)).float()
                    loss_adv = -(per_sample_kl(t_logits, s_logits) * agree).mean()
                loss = cfg.bn_weight * loss_bn + cfg.oh_weight * loss_oh + cfg.adv_weight * loss_adv
                if cfg.tv_weight > 0:
                    loss = loss + cfg.tv_weight * total_variation(images)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        self.bn_loss.commit()
        self.bn_buffers[turn] = self.bn_loss.momentum_buffers
        self._meta_step(turn)
        return SynthesisResult(
            images=images.detach(),
            targets=targets,
            teacher_logits=t_logits.detach(),
            losses={"bn": float(loss_bn.detach()), "oh": float(loss_oh.detach()), "adv": float(loss_adv.detach())},
        )

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

    def state_dict(self) -> dict:
        """Generator, meta-optimiser and BN-momentum state for checkpoints."""
        return {
            "metas": [meta.state_dict() for meta in self.metas],
            "meta_optimizers": [optimizer.state_dict() for optimizer in self.meta_optimizers],
            "bn_buffers": self.bn_buffers,
        }

    def load_state_dict(self, state: dict) -> None:
        for meta, optimizer, meta_state, optimizer_state in zip(
            self.metas, self.meta_optimizers, state["metas"], state["meta_optimizers"], strict=True
        ):
            meta.load_state_dict(meta_state)
            optimizer.load_state_dict(optimizer_state)
        self.bn_buffers = [list(per_generator) for per_generator in state["bn_buffers"]]
