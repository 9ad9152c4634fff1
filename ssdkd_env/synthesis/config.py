"""The meta-generator's options, in a module of their own: the meta-generator synthesizer and those built
on it take them, and so does the probe set's inversion (``EngineConfig.probe_inversion``), which the
engine's configuration names without importing the synthesizers."""

from __future__ import annotations

from dataclasses import dataclass

from ssdkd_env.common.validation import Validated, spec


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
