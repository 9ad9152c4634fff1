"""PRE-DFKD's generative pseudo replay (Binici et al., AAAI 2022): a memory that stores no images.

A small convolutional VAE learns the distribution of the synthetic samples inserted into it;
replay decodes fresh latents ``z ~ N(0, I)`` and labels them with the teacher. The VAE is trained
with the paper's teacher-aware loss

    L1(x_hat, x) + teacher_weight * L1(T(x_hat), T(x)) + kl_weight * KL(q(z|x) || N(0, I))

(the KL summed over latent dimensions, everything else averaged), so that reconstructions keep
the teacher's view of a sample. The memory's footprint is the VAE and its optimiser: constant in
the number of rounds, whatever the number of samples inserted.

Mapping onto the memory interface (:class:`~ssdkd_env.replay.base.BaseMemory`):

- ``capacity`` is the run's ``buffer_size`` and ``size`` is ``min(capacity, samples inserted)``,
  so ``buffer_fill`` reads as for a replay buffer of the same capacity.
- ``replace_fraction`` sets how much a new batch counts: the share of it that a replay buffer of
  the same capacity would write (its free slots, then ``round(replace_fraction * capacity)``
  replacements) scales the batch's VAE steps, ``round(train_steps * share)``, at least one when
  any sample counts. While the memory fills, every batch gets all ``train_steps``.
- It takes no eviction rule and ignores the ``priorities``: there are no slots to evict and no
  priorities; :meth:`sample` takes no decisions (importance weights are ones) and
  :meth:`update_priorities` does nothing. Of the round's decisions it declares ``replace_fraction`` only.
- :meth:`insert` returns ``arange(counted)``: as many pseudo-slots as new samples counted (indices
  into nothing stored; only their number means something).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from ssdkd_env.common.images import predict_logits
from ssdkd_env.common.precision import autocast_for
from ssdkd_env.common.validation import Validated, spec
from ssdkd_env.models.generator import _channel_buffer
from ssdkd_env.models.init import seeded
from ssdkd_env.observation import ObsField
from ssdkd_env.replay.base import MEMORIES, BaseMemory, BufferBatch

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ssdkd_env.context import RunContext

PREVIEW_SIZE = 100  # decoded images returned by contents() (fixed latents: grids comparable over rounds)
LOGVAR_LIMIT = 10.0  # the encoder's log-variance is clamped to [-limit, limit] (no overflow in exp)


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


class ConvVAE(nn.Module):
    """Encoder: two stride-2 4x4 convolutions, then a linear map to (mu, logvar). Decoder: as the
    meta-generator's (linear, two upsample-x2 3x3 convolutions, a 3x3 convolution to C channels),
    without BatchNorm, ending in a sigmoid image in [0, 1] normalised with ``mean`` / ``std``."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        img_shape: tuple[int, int, int],
        latent: int,
        width: int,
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        super().__init__()
        channels, height, width_px = img_shape
        if height % 4 or width_px % 4:
            raise ValueError(f"VAE image height and width must be divisible by 4, got {height}x{width_px}")
        self.latent = latent
        self.init_shape = (2 * width, height // 4, width_px // 4)
        flat = 2 * width * (height // 4) * (width_px // 4)
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(flat, 2 * latent),
        )
        self.project = nn.Linear(latent, flat)
        self.decoder = nn.Sequential(
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * width, width, 3, padding=1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(width, channels, 3, padding=1),
            nn.Sigmoid(),
        )
        self.register_buffer("mean", _channel_buffer(mean, 0.0, channels, "mean"))
        self.register_buffer("std", _channel_buffer(std, 1.0, channels, "std"))

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(mu, logvar)``, each ``[B, latent]``, of normalised images ``x``."""
        mu, logvar = self.encoder(x).chunk(2, dim=1)
        return mu, logvar.clamp(-LOGVAR_LIMIT, LOGVAR_LIMIT)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised images ``[B, C, H, W]`` from latents ``[B, latent]``."""
        out = self.decoder(self.project(z).view(z.shape[0], *self.init_shape))
        return (out - self.mean) / self.std


class GenerativeReplay(BaseMemory):
    """PRE-DFKD's pseudo-replay memory: a VAE of the inserted samples (see the module doc)."""

    insert_fields = ("replace_fraction",)

    Config = VAEConfig

    def __init__(self, options: VAEConfig, ctx: RunContext) -> None:
        """A VAE of capacity ``ctx.buffer_size`` over ``ctx``'s shapes. ``ctx.teacher`` labels decoded
        samples and gives the teacher term (frozen: no gradient reaches its weights);
        ``ctx.init_rng`` draws the VAE's initial weights and the preview latents; ``ctx.device_rng``
        every draw of training (mini-batches, reparameterisation noise), on the device;
        ``ctx.precision`` is the teacher's passes'."""
        if ctx.buffer_size < 1:
            raise ValueError("capacity must be positive")
        config = options
        self.capacity, self.num_classes, self.config = ctx.buffer_size, ctx.num_classes, config
        self.teacher, self.generator, self.precision = ctx.teacher, ctx.step_rng, ctx.precision
        self.kind = ctx.kind
        self.device = ctx.device
        image_shape, mean, std = ctx.input_shape, ctx.mean, ctx.std
        self.vae = seeded(lambda: ConvVAE(image_shape, config.latent, config.width, mean, std), ctx.init_rng)
        self.vae = self.vae.to(self.device)
        self.optimizer = torch.optim.Adam(self.vae.parameters(), lr=config.lr)
        self.preview_z = torch.randn(PREVIEW_SIZE, config.latent, generator=ctx.init_rng).to(self.device)
        self.histogram = torch.zeros(ctx.num_classes, device=self.device)
        self.last_losses = torch.zeros(3, device=self.device)  # reconstruction, teacher term, KL per latent dim
        self.size = 0
        self.inserted = 0  # samples inserted so far
        self.steps = 0  # VAE steps so far

    @classmethod
    def build(cls, options: VAEConfig, ctx: RunContext) -> GenerativeReplay:
        return cls(options, ctx)

    # ----------------------------------------------------------------- writing
    def insert(
        self,
        images: torch.Tensor,
        teacher_logits: torch.Tensor,
        priorities: torch.Tensor,
        replace_fraction: float = 1.0,
    ) -> torch.Tensor:
        """Train the VAE on the new batch for as many steps as the batch counts (module doc);
        ``priorities`` are ignored. Returns ``arange`` of the samples that counted."""
        n = images.shape[0]
        counted = min(n, self.capacity - self.size + round(replace_fraction * self.capacity))
        if n == 0 or counted == 0:
            return torch.zeros(0, dtype=torch.long, device=self.device)
        share = counted / n
        steps = max(1, round(self.config.train_steps * share)) if self.config.train_steps > 0 else 0
        x = images.detach().to(self.device, torch.float32)
        t_x = teacher_logits.detach().to(self.device, torch.float32)
        for _ in range(steps):
            self._step(x, t_x)
        counts = self.kind.class_histogram(t_x, self.num_classes).float()
        self.histogram += counts * share
        self.inserted += n
        self.size = min(self.capacity, self.inserted)
        return torch.arange(counted, device=self.device)

    def _step(self, x: torch.Tensor, t_x: torch.Tensor) -> None:
        """One Adam step of the teacher-aware VAE loss on a mini-batch of ``x`` (teacher outputs ``t_x``)."""
        cfg = self.config
        draw = self.generator.device
        pick = torch.randperm(x.shape[0], generator=self.generator, device=draw)[: cfg.batch_size].to(self.device)
        xb, tb = x[pick], t_x[pick]
        mu, logvar = self.vae.encode(xb)
        eps = torch.randn(mu.shape, generator=self.generator, device=draw).to(self.device)
        x_hat = self.vae.decode(mu + eps * (0.5 * logvar).exp())
        was_training = self.teacher.training
        self.teacher.eval()
        try:
            with autocast_for(self.device, self.precision):
                t_hat = self.teacher(x_hat).float()
        finally:
            self.teacher.train(was_training)
        recon = (x_hat - xb).abs().mean()
        teacher_term = (t_hat - tb).abs().mean()
        kl = -0.5 * (1 + logvar - mu.pow(2) - logvar.exp()).sum(1).mean()
        loss = recon + cfg.teacher_weight * teacher_term + cfg.kl_weight * kl
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward(inputs=list(self.vae.parameters()))  # gradient flows through T into x_hat, never into T
        self.optimizer.step()
        self.steps += 1
        self.last_losses = torch.stack([recon, teacher_term, kl / self.vae.latent]).detach()

    def update_priorities(self, index: torch.Tensor, priorities: torch.Tensor) -> None:
        """No priorities: nothing to refresh."""

    # ----------------------------------------------------------------- reading
    def decode(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Images decoded from latents ``z`` and the teacher's outputs on them (no gradient)."""
        with torch.no_grad():
            images = self.vae.decode(z.to(self.device))
        return images, predict_logits(self.teacher, images, precision=self.precision)

    def sample(self, batch_size: int, generator: torch.Generator | None = None) -> BufferBatch:
        """``batch_size`` fresh pseudo samples from ``z ~ N(0, I)`` drawn with ``generator``, labelled
        by the teacher; every weight is 1."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty memory")
        draw = self.device if generator is None else generator.device
        z = torch.randn(batch_size, self.vae.latent, generator=generator, device=draw)
        images, logits = self.decode(z)
        index = torch.arange(batch_size, device=self.device)
        return BufferBatch(index, images, logits, torch.ones(batch_size, device=self.device))

    def class_histogram(self) -> torch.Tensor:
        """Teacher-predicted class counts of the inserted samples, each batch weighted by the share
        of it that counted (float ``[K]``)."""
        return self.histogram.clone()

    def contents(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The fixed preview latents decoded (empty before the first insert) and their teacher outputs."""
        if self.size == 0:
            return self.decode(self.preview_z[:0])
        return self.decode(self.preview_z)

    def memory_bytes(self) -> int:
        """Bytes of the VAE's parameters and buffers and of the optimiser's state (Adam's moments exist
        from the first VAE step on; from then the footprint never changes)."""
        tensors = [*self.vae.parameters(), *self.vae.buffers()]
        tensors += [v for state in self.optimizer.state.values() for v in state.values() if torch.is_tensor(v)]
        return sum(t.numel() * t.element_size() for t in tensors)

    @classmethod
    def observation_fields(cls, num_classes: int) -> list[ObsField]:
        k = num_classes
        return [
            ObsField("buffer_fill", 1, 0, 1, "samples inserted / memory capacity, capped at 1"),
            ObsField("class_share", k, 0, 1, "share per class (teacher's prediction) of the samples inserted"),
            ObsField("class_entropy", 1, 0, 1, "entropy of the class shares / log K"),
            ObsField("vae_reconstruction", 1, 0, 1, "last VAE step's L1(x_hat, x), squashed", "squash"),
            ObsField("vae_teacher", 1, 0, 1, "last VAE step's L1(T(x_hat), T(x)), squashed", "squash"),
            ObsField("vae_kl", 1, 0, 1, "last VAE step's KL per latent dimension, squashed", "squash"),
        ]

    def stats(self) -> dict[str, torch.Tensor | float]:
        total = self.histogram.sum()
        share = self.histogram / total.clamp_min(1e-12)
        nonzero = share[share > 0]
        recon, teacher_term, kl = self.last_losses.tolist()
        entropy = float(-(nonzero * nonzero.log()).sum()) / math.log(self.num_classes) if self.num_classes > 1 else 0.0
        return {
            "buffer_fill": self.size / self.capacity,
            "class_share": share,
            "class_entropy": entropy,
            "vae_reconstruction": recon,
            "vae_teacher": teacher_term,
            "vae_kl": kl,
        }

    def state_dict(self) -> dict[str, Any]:
        """The VAE, its optimiser, the histogram, the preview latents and the counters (on the CPU)."""
        return _to_cpu(
            {
                "vae": self.vae.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "histogram": self.histogram,
                "last_losses": self.last_losses,
                "preview_z": self.preview_z,
                "inserted": self.inserted,
                "steps": self.steps,
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.vae.load_state_dict(state["vae"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.histogram = state["histogram"].to(self.device).clone()
        self.last_losses = state["last_losses"].to(self.device).clone()
        self.preview_z = state["preview_z"].to(self.device).clone()
        self.inserted, self.steps = int(state["inserted"]), int(state["steps"])
        self.size = min(self.capacity, self.inserted)


def _to_cpu(value: Any) -> Any:
    """A copy of ``value`` with every tensor cloned to the CPU (later training cannot change it)."""
    if torch.is_tensor(value):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_to_cpu(v) for v in value)
    return value  # numbers, strings, None: immutable


MEMORIES.add("vae", GenerativeReplay)
