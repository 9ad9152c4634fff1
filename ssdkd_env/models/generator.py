"""DFAD / Fast-style image generator mapping noise vectors to teacher inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

GeneratorOutput = Literal["sigmoid", "tanh_bn"]


def generator_stages(height: int, width: int) -> int:
    """Upsampling stages for an image size: two up to 32-pixel sides (Fast's generator), one more
    per doubling beyond, so the projected map stays about 8 to 16 pixels on its shorter side."""
    return max(2, int(math.floor(math.log2(min(height, width) / 8))))


class Generator(nn.Module):
    """z -> Linear -> (2*ngf, H/2^s, W/2^s) -> s (upsample x2, conv3x3, BN, LeakyReLU) -> conv3x3 C.

    ``s`` is :func:`generator_stages` of the image size (2 up to 32x32: Fast's generator); the
    last stage has ``ngf`` channels, the others ``2*ngf``. A size that is not a multiple of
    ``2^s`` (CamVid's 180 rows) is reached by a final bilinear resize.

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
        if min(height, width) < 4:
            raise ValueError(f"generator images must be at least 4x4, got {height}x{width}")
        if output not in ("sigmoid", "tanh_bn"):
            raise ValueError(f"generator output must be 'sigmoid' or 'tanh_bn', got {output!r}")
        if output == "tanh_bn" and (mean is not None or std is not None):
            raise ValueError("mean/std apply only to the 'sigmoid' generator output")
        self.nz = nz
        self.img_shape = (channels, height, width)
        stages = generator_stages(height, width)
        self.init_shape = (2 * ngf, math.ceil(height / 2**stages), math.ceil(width / 2**stages))
        self.project = nn.Linear(nz, 2 * ngf * self.init_shape[1] * self.init_shape[2])
        self.class_embedding = nn.Embedding(num_classes, self.project.out_features) if num_classes > 0 else None
        layers: list[nn.Module] = [nn.BatchNorm2d(2 * ngf)]
        for stage in range(stages):
            width_out = ngf if stage == stages - 1 else 2 * ngf
            layers += [
                nn.Upsample(scale_factor=2),
                nn.Conv2d(2 * ngf, width_out, 3, padding=1, bias=False),
                nn.BatchNorm2d(width_out),
                nn.LeakyReLU(0.2, inplace=True),
            ]
        self.body = nn.Sequential(*layers, nn.Conv2d(ngf, channels, 3, padding=1))
        self.resize = self.init_shape[1] * 2**stages != height or self.init_shape[2] * 2**stages != width
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
        out = self.body(out.view(z.shape[0], *self.init_shape))
        if self.resize:
            out = F.interpolate(out, size=self.img_shape[1:], mode="bilinear", align_corners=False)
        out = self.activation(out)
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
