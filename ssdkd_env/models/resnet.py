"""CIFAR-style ResNet-18/34: 3x3 stride-1 stem, no max-pool, BasicBlocks with BatchNorm."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ssdkd_env.models.base import Classifier
from ssdkd_env.models.registry import register_model


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity or 1x1-projection shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(Classifier):
    """ResNet with four stages of widths 64/128/256/512 and strides 1/2/2/2."""

    def __init__(self, blocks: Sequence[int], num_classes: int, in_channels: int) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(in_channels, 64, 3, padding=1, bias=False),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
        )
        stages: list[nn.Module] = []
        in_planes = 64
        for planes, stride, count in zip((64, 128, 256, 512), (1, 2, 2, 2), blocks, strict=True):
            layers = []
            for i in range(count):
                layers.append(BasicBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            stages.append(nn.Sequential(*layers))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(in_planes, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return torch.flatten(self.pool(self.stages(self.stem(x))), 1)


@register_model("resnet18", description="CIFAR ResNet-18 (BasicBlock [2,2,2,2]), ~11.2M params")
def resnet18(num_classes: int, in_channels: int) -> ResNet:
    """CIFAR ResNet-18."""
    return ResNet((2, 2, 2, 2), num_classes, in_channels)


@register_model("resnet34", description="CIFAR ResNet-34 (BasicBlock [3,4,6,3]), ~21.3M params")
def resnet34(num_classes: int, in_channels: int) -> ResNet:
    """CIFAR ResNet-34."""
    return ResNet((3, 4, 6, 3), num_classes, in_channels)
