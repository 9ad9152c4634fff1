"""The configuration sections of the synthesizers (fields of ``EngineConfig``), in a module of their own
so that what components are given (``ssdkd_env.context``) can name them without importing the synthesizers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ssdkd_env.common.validation import Validated, spec

GeneratorObjective = Literal["negative", "negative-log1p", "one-minus-js"]


@dataclass
class SynthesisConfig(Validated):
    """Generator, latent and loss settings of the inversion."""

    nz: int = spec(256, ge=1)
    ngf: int = spec(64, ge=1)
    g_steps: int = spec(2, ge=1)  # inner optimisation steps per round (Fast2: 2, Fast5: 5)
    lr_g: float = spec(5e-3, ge=0)  # generator copy learning rate (Adam, betas 0.5/0.999)
    lr_z: float = spec(1.5e-2, ge=0)  # latent learning rate
    meta_lr: float = spec(1e-2, ge=0)  # Reptile step of the meta-generator
    generators: int = spec(1, ge=1)  # meta-generators taking turns round by round (each settles on its own styles)
    bn_weight: float = spec(10.0, ge=0)
    oh_weight: float = spec(0.5, ge=0)
    adv_weight: float = spec(1.0, ge=0)
    tv_weight: float = spec(0.0, ge=0)  # total-variation image prior (DeepInversion), on the normalised images
    bn_momentum: float = spec(0.9, ge=0, le=1)  # mixing of batch BN statistics with earlier rounds'
    warmup_rounds: int = spec(5, ge=0)  # rounds without the adversarial term
    pretrain_steps: int = spec(0, ge=0)  # direct steps on each meta-generator (BN + class loss) before round 0
    pretrain_batch: int = spec(16, ge=1)  # latents per pre-training step
    augment_shift: int = spec(0, ge=0)  # random translation of the images the losses see (Fast: crop, padding 4)
    augment_flip: bool = False  # random horizontal flips of the images the losses see (natural images)
    conditional: bool = False  # class-conditional generator (a learned class embedding added to the latent)


@dataclass
class AdversarialConfig(Validated):
    """The adversarial generator and its schedule (DFAD's CIFAR settings by default)."""

    nz: int = spec(256, ge=1)
    ngf: int = spec(64, ge=1)
    lr: float = spec(1e-3, ge=0)  # Adam
    student_steps: int = spec(5, ge=1)  # student steps per generator step
    objective: GeneratorObjective = "negative"  # -D, -log(1 + D) (DFAD on segmentation), 1 - JS (PRE-DFKD)
    bn_weight: float = spec(0.0, ge=0)  # teacher BN-statistics constraint (MB-DFKD)
    oh_weight: float = spec(0.0, ge=0)  # cross-entropy to the teacher's prediction (PRE-DFKD)
    balance_weight: float = spec(0.0, ge=0)  # class balance: log K - entropy of the batch-mean prediction
    replay_ratio: float = spec(0.0, ge=0)  # replayed samples per fresh one in each student step (with a memory)


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


@dataclass
class CondensedConfig(Validated):
    """The condensed samples of csmi and the discriminator that compares them with synthetic ones."""

    path: str | None = None  # the condensed file of train/condense.py (required by csmi)
    disc_weight: float = spec(1.0, ge=0)  # weight of the generator's fool-the-discriminator term (0: off)
    disc_lr: float = spec(1e-3, ge=0)  # the discriminator's Adam learning rate (betas 0.5/0.999)
    disc_hidden: int = spec(256, ge=1)  # width of the discriminator's hidden layers
    disc_steps: int = spec(1, ge=1)  # discriminator steps per round


@dataclass
class RealDataConfig(Validated):
    """Where ``kd-real`` reads the task's training split (``train/distill.py`` fills it from
    ``--data-root``; tasks whose data ships with a package need none)."""

    data_root: str | None = None
