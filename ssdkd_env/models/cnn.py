"""Small BatchNorm CNNs for tiny images (8x8 sklearn digits), usable on any input >= 8x8.

``cnn`` (teacher): conv3x3 32 -> conv3x3 64 -> maxpool2 -> conv3x3 128 -> GAP -> linear.
``cnn_half`` (student): the same with half the width (16/32/64), about 4x fewer parameters.
Each conv is followed by BatchNorm and ReLU.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ssdkd_env.models.base import Classifier
from ssdkd_env.models.registry import register_model


def conv_bn_relu(in_ch: int, out_ch: int) -> list[nn.Module]:
    """3x3 same-padding conv, BatchNorm, ReLU."""
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


class SmallCNN(Classifier):
    """Three conv-BN-ReLU layers of widths ``w, 2w, 4w`` with one 2x2 max-pool."""

    plain_chain = True

    def __init__(self, num_classes: int, in_channels: int, width: int) -> None:
        super().__init__()
        self.features = nn.Sequential(
            *conv_bn_relu(in_channels, width),
            *conv_bn_relu(width, 2 * width),
            nn.MaxPool2d(2),
            *conv_bn_relu(2 * width, 4 * width),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(4 * width, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


@register_model("cnn", description="small BN CNN teacher for 8x8 digits (32/64/128), ~94k params")
def cnn(num_classes: int, in_channels: int) -> SmallCNN:
    """Small CNN teacher."""
    return SmallCNN(num_classes, in_channels, width=32)


@register_model("cnn_half", description="half-width BN CNN student (16/32/64), ~24k params")
def cnn_half(num_classes: int, in_channels: int) -> SmallCNN:
    """Half-width CNN student."""
    return SmallCNN(num_classes, in_channels, width=16)
