"""Synthesizers: the registered interface, Fast-style generator inversion with SSD-KD's phi, and
DFAD's adversarial generator, DeepInversion's pixel optimisation, and the real training images of
the with-data reference (``kd-real``)."""

from ssdkd_env.synthesis.adversarial import AdversarialGenerator
from ssdkd_env.synthesis.base import SYNTHESIZERS, BaseSynthesizer, SynthesisRequest, SynthesisResult
from ssdkd_env.synthesis.bn_hooks import BNStatsLoss
from ssdkd_env.synthesis.condensed import CondensedGuidedSynthesizer
from ssdkd_env.synthesis.config import (
    AdversarialConfig,
    CondensedConfig,
    PixelInversionConfig,
    RealDataConfig,
    SynthesisConfig,
)
from ssdkd_env.synthesis.modulation import diversity_class_probs, draw_targets, focal_cross_entropy
from ssdkd_env.synthesis.pixel import PixelInversion
from ssdkd_env.synthesis.real import RealImageSampler
from ssdkd_env.synthesis.synthesizer import MetaGeneratorSynthesizer

__all__ = [
    "SYNTHESIZERS",
    "AdversarialConfig",
    "AdversarialGenerator",
    "BNStatsLoss",
    "BaseSynthesizer",
    "CondensedConfig",
    "CondensedGuidedSynthesizer",
    "MetaGeneratorSynthesizer",
    "PixelInversion",
    "PixelInversionConfig",
    "RealDataConfig",
    "RealImageSampler",
    "SynthesisConfig",
    "SynthesisRequest",
    "SynthesisResult",
    "diversity_class_probs",
    "draw_targets",
    "focal_cross_entropy",
]
