"""Synthesizers: the registered interface, Fast-style generator inversion with SSD-KD's phi, and
DFAD's adversarial generator, DeepInversion's pixel optimisation, and the real training images of
the with-data reference (``kd-real``)."""

from ssdkd_env.synthesis.adversarial import AdversarialGenerator, AdversarialGeneratorConfig
from ssdkd_env.synthesis.base import SYNTHESIZERS, BaseSynthesizer, SynthesisRequest, SynthesisResult
from ssdkd_env.synthesis.bn_hooks import BNStatsLoss
from ssdkd_env.synthesis.condensed import CondensedGuidedConfig, CondensedGuidedSynthesizer
from ssdkd_env.synthesis.config import SynthesisConfig
from ssdkd_env.synthesis.modulation import diversity_class_probs, draw_targets, focal_cross_entropy
from ssdkd_env.synthesis.pixel import PixelInversion, PixelInversionConfig
from ssdkd_env.synthesis.real import RealDataConfig, RealImageSampler
from ssdkd_env.synthesis.synthesizer import MetaGeneratorSynthesizer

__all__ = [
    "SYNTHESIZERS",
    "AdversarialGenerator",
    "AdversarialGeneratorConfig",
    "BNStatsLoss",
    "BaseSynthesizer",
    "CondensedGuidedConfig",
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
