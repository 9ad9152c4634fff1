"""What is decided each round: the sampling and memory-update choices a round loop follows."""

from __future__ import annotations

from dataclasses import dataclass

from ssdkd_env.common.validation import Validated, spec
from ssdkd_env.replay.config import EvictionRule


@dataclass
class RoundAction(Validated):
    """The sampling and memory-update decisions of one round (what an RL agent controls)."""

    alpha: float = spec(0.6, ge=0)  # priority exponent: P(i) ~ p_i^alpha (0 = uniform replay)
    beta: float = spec(0.4, ge=0)  # importance-weight exponent: w_i = (N P(i))^-beta
    diversity: float = spec(1.0, ge=0)  # phi: strength of drawing targets against the memory's class histogram
    difficulty: float = spec(2.0, ge=0)  # phi: focal exponent gamma of (1 - p_T(y|x))^gamma
    replace_fraction: float = spec(0.1, ge=0, le=1)  # share of the memory's slots replaced by new samples per round
    eviction: EvictionRule = "lowest"  # which slots the new samples replace
    synth_budget: int = spec(200, ge=1)  # new synthetic samples per round
