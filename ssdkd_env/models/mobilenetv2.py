"""MobileNetV2 (width 1.0) adapted to 32x32 inputs.

Compared with the ImageNet network, the stem convolution and the second stage
(24 channels) use stride 1, so the total downsampling is 8x instead of 32x
(32x32 -> 4x4, 8x8 -> 1x1).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ssdkd_env.models.base import Classifier
from ssdkd_env.models.registry import register_model

# (expansion t, output channels c, repeats n, first stride s)
CIFAR_SETTINGS: tuple[tuple[int, int, int, int], ...] = (
    (1, 16, 1, 1),
    (6, 24, 2, 1),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
STEM_CHANNELS = 32
LAST_CHANNELS = 1280


def conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    """Conv (same padding, no bias) followed by BatchNorm."""
    return [
        nn.Conv2d(in_ch, out_ch, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_ch),
    ]


class InvertedResidual(nn.Module):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection, residual when shapes match."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, expansion: int) -> None:
        super().__init__()
        hidden = in_ch * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers += [*conv_bn(in_ch, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [*conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True)]
        layers += conv_bn(hidden, out_ch, 1)
        self.block = nn.Sequential(*layers)
        self.residual = stride == 1 and in_ch == out_ch

    def forward(self, x: Tensor) -> Tensor:
        out = self.block(x)
        return x + out if self.residual else out


class MobileNetV2(Classifier):
    """CIFAR MobileNetV2 with a 1280-d global-average-pooled feature vector."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [*conv_bn(in_channels, STEM_CHANNELS, 3), nn.ReLU6(inplace=True)]
        channels = STEM_CHANNELS
        for expansion, out_ch, repeats, stride in CIFAR_SETTINGS:
            for i in range(repeats):
                layers.append(InvertedResidual(channels, out_ch, stride if i == 0 else 1, expansion))
                channels = out_ch
        layers += [*conv_bn(channels, LAST_CHANNELS, 1), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(LAST_CHANNELS, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


@register_model("mobilenetv2", description="MobileNetV2 (CIFAR strides), ~2.2M params")
def mobilenetv2(num_classes: int, in_channels: int) -> MobileNetV2:
    """CIFAR MobileNetV2."""
    return MobileNetV2(num_classes, in_channels)
