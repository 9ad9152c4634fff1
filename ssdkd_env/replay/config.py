"""The memories' configuration: eviction rules and the generative memory's section of ``EngineConfig``,
in a module of their own so that a round's action and the run's context can name them without
importing the memories."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ssdkd_env.common.validation import Validated, spec

EvictionRule = Literal["lowest", "oldest", "class"]
EVICTION_RULES: tuple[EvictionRule, ...] = ("lowest", "oldest", "class")


@dataclass
class VAEConfig(Validated):
    """The VAE of PRE-DFKD's generative replay memory (memory ``"vae"``)."""

    latent: int = spec(64, ge=1)  # latent dimensions
    width: int = spec(32, ge=1)  # channels of the first encoder / last decoder layer (twice that inside)
    lr: float = spec(1e-3, ge=0)  # Adam
    train_steps: int = spec(20, ge=0)  # VAE steps per inserted batch (scaled by the share that counts)
    batch_size: int = spec(64, ge=1)  # mini-batch of each VAE step, drawn from the inserted batch
    kl_weight: float = spec(1e-5, ge=0)  # the paper's weight of the KL term
    teacher_weight: float = spec(1.0, ge=0)  # weight of L1(T(x_hat), T(x))
