"""Generator inversion of the teacher, with SSD-KD's modulating function phi."""

from ssdkd_env.synthesis.bn_hooks import BNStatsLoss
from ssdkd_env.synthesis.modulation import diversity_class_probs, draw_targets, focal_cross_entropy
from ssdkd_env.synthesis.synthesizer import SynthesisConfig, SynthesisResult, Synthesizer, per_sample_kl

__all__ = [
    "BNStatsLoss",
    "SynthesisConfig",
    "SynthesisResult",
    "Synthesizer",
    "diversity_class_probs",
    "draw_targets",
    "focal_cross_entropy",
    "per_sample_kl",
]
