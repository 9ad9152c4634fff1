"""CIFAR VGG-8/11 with BatchNorm.

Each name counts weight layers: convolutions (3x3, BN, ReLU) grouped into five stages,
then a compact classifier of two hidden 512-unit FC layers plus the linear ``head``:

* VGG-8:  5 convs  ``[64, M, 128, M, 256, M, 512, M, 512]`` + 3 FC.
* VGG-11: 8 convs  ``[64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512]`` + 3 FC.

Max-pools use ``ceil_mode`` so a 1x1 map stays 1x1, and an adaptive average pool precedes
the classifier, so any input from 8x8 up works.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from ssdkd_env.models.base import Classifier
from ssdkd_env.models.registry import register_model

HIDDEN = 512

VGG8_STAGES: tuple[tuple[int, ...], ...] = ((64,), (128,), (256,), (512,), (512,))
VGG11_STAGES: tuple[tuple[int, ...], ...] = ((64,), (128,), (256, 256), (512, 512), (512, 512))


class VGG(Classifier):
    """Conv stages separated by 2x2 max-pools, global average pool, 3-layer FC classifier."""

    plain_chain = True

    def __init__(self, stages: Sequence[Sequence[int]], num_classes: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for index, stage in enumerate(stages):
            if index > 0:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
            for width in stage:
                layers += [
                    nn.Conv2d(channels, width, 3, padding=1, bias=False),
                    nn.BatchNorm2d(width),
                    nn.ReLU(inplace=True),
                ]
                channels = width
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(channels, HIDDEN),
            nn.ReLU(inplace=True),
            nn.Linear(HIDDEN, HIDDEN),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Linear(HIDDEN, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


@register_model("vgg8", description="CIFAR VGG-8 with BN (5 conv + 3 FC), ~4.4M params")
def vgg8(num_classes: int, in_channels: int) -> VGG:
    """VGG-8 with BatchNorm."""
    return VGG(VGG8_STAGES, num_classes, in_channels)


@register_model("vgg11", description="CIFAR VGG-11 with BN (8 conv + 3 FC), ~9.8M params")
def vgg11(num_classes: int, in_channels: int) -> VGG:
    """VGG-11 with BatchNorm."""
    return VGG(VGG11_STAGES, num_classes, in_channels)
