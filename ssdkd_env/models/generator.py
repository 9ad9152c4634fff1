"""DFAD / Fast-style image generator mapping noise vectors to teacher inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch
from torch import Tensor, nn

GeneratorOutput = Literal["sigmoid", "tanh_bn"]


class Generator(nn.Module):
    """z -> Linear -> (2*ngf, H/4, W/4) -> two (upsample x2, conv3x3, BN, LeakyReLU) -> conv3x3 C.

    The output head is either

    * ``"sigmoid"``: an image in [0, 1] normalised with the buffers ``mean`` / ``std``
      (default 0 / 1), i.e. a sample in the teacher's normalised input space; or
    * ``"tanh_bn"``: Tanh then ``BatchNorm2d(C, affine=False)`` as in DFAD.

    With ``num_classes > 0`` the generator is class-conditional: a learned embedding of the target
    class is added to the projected noise (as in GDFQ, Xu et al., ECCV 2020), so that what the
    meta-generator learns about a class carries over to fresh latents in later rounds.
    """

    # buffers of the "sigmoid" output (registered in __init__; declared here for the type checker)
    mean: Tensor
    std: Tensor

    def __init__(
        self,
        nz: int,
        img_shape: tuple[int, int, int],
        ngf: int = 64,
        output: GeneratorOutput = "sigmoid",
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
        num_classes: int = 0,
    ) -> None:
        super().__init__()
        channels, height, width = img_shape
        if height % 4 or width % 4:
            raise ValueError(f"generator image height and width must be divisible by 4, got {height}x{width}")
        if output not in ("sigmoid", "tanh_bn"):
            raise ValueError(f"generator output must be 'sigmoid' or 'tanh_bn', got {output!r}")
        if output == "tanh_bn" and (mean is not None or std is not None):
            raise ValueError("mean/std apply only to the 'sigmoid' generator output")
        self.nz = nz
        self.img_shape = (channels, height, width)
        self.init_shape = (2 * ngf, height // 4, width // 4)
        self.project = nn.Linear(nz, 2 * ngf * (height // 4) * (width // 4))
        self.class_embedding = nn.Embedding(num_classes, self.project.out_features) if num_classes > 0 else None
        self.body = nn.Sequential(
            nn.BatchNorm2d(2 * ngf),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, 2 * ngf, 3, padding=1, bias=False),
            nn.BatchNorm2d(2 * ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Upsample(scale_factor=2),
            nn.Conv2d(2 * ngf, ngf, 3, padding=1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, channels, 3, padding=1),
        )
        self.output = output
        if output == "sigmoid":
            if std is not None and any(s <= 0 for s in std):
                raise ValueError("generator std must be positive")
            self.register_buffer("mean", _channel_buffer(mean, 0.0, channels, "mean"))
            self.register_buffer("std", _channel_buffer(std, 1.0, channels, "std"))
            self.activation: nn.Module = nn.Sigmoid()
        else:
            self.activation = nn.Sequential(nn.Tanh(), nn.BatchNorm2d(channels, affine=False))

    def forward(self, z: Tensor, labels: Tensor | None = None) -> Tensor:
        """Images of shape ``[B, *img_shape]`` from noise of shape ``[B, nz]`` (and, for a
        class-conditional generator, the target classes ``[B]``)."""
        out = self.project(z)
        if self.class_embedding is not None:
            if labels is None:
                raise ValueError("a class-conditional generator needs the target labels")
            out = out + self.class_embedding(labels)
        out = out.view(z.shape[0], *self.init_shape)
        out = self.activation(self.body(out))
        if self.output == "sigmoid":
            out = (out - self.mean) / self.std
        return out


def _channel_buffer(values: Sequence[float] | None, default: float, channels: int, what: str) -> Tensor:
    """Per-channel statistics as a ``(1, C, 1, 1)`` CPU tensor (a constant, also when built on the meta device)."""
    if values is None:
        values = [default] * channels
    if len(values) != channels:
        raise ValueError(f"generator {what} needs {channels} values, got {len(values)}")
    return torch.tensor(list(values), dtype=torch.float32, device="cpu").view(1, channels, 1, 1)
