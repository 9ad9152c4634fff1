"""CIFAR Wide ResNets WRN-d-k: pre-activation blocks, widths 16/16k/32k/64k, no dropout."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from ssdkd_env.models.base import Classifier
from ssdkd_env.models.registry import register_model


class PreActBlock(nn.Module):
    """BN-ReLU-conv3x3 twice; a 1x1 projection of the activated input when shapes change."""

    def __init__(self, in_planes: int, planes: int, stride: int) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.projection: nn.Conv2d | None = None
        if stride != 1 or in_planes != planes:
            self.projection = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        act = F.relu(self.bn1(x))
        out = self.conv2(F.relu(self.bn2(self.conv1(act))))
        shortcut = x if self.projection is None else self.projection(act)
        return out + shortcut


class WideResNet(Classifier):
    """WRN-``depth``-``widen``: three groups of (depth-4)/6 blocks with strides 1/2/2."""

    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int) -> None:
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        per_group = (depth - 4) // 6
        self.stem = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        groups: list[nn.Module] = []
        in_planes = 16
        for planes, stride in ((16 * widen, 1), (32 * widen, 2), (64 * widen, 2)):
            blocks = []
            for i in range(per_group):
                blocks.append(PreActBlock(in_planes, planes, stride if i == 0 else 1))
                in_planes = planes
            groups.append(nn.Sequential(*blocks))
        self.groups = nn.Sequential(*groups)
        self.bn = nn.BatchNorm2d(in_planes)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(in_planes, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        out = F.relu(self.bn(self.groups(self.stem(x))))
        return torch.flatten(self.pool(out), 1)


@register_model("wrn16_1", description="Wide ResNet WRN-16-1, ~0.18M params")
def wrn16_1(num_classes: int, in_channels: int) -> WideResNet:
    """WRN-16-1."""
    return WideResNet(16, 1, num_classes, in_channels)


@register_model("wrn16_2", description="Wide ResNet WRN-16-2, ~0.69M params")
def wrn16_2(num_classes: int, in_channels: int) -> WideResNet:
    """WRN-16-2."""
    return WideResNet(16, 2, num_classes, in_channels)


@register_model("wrn40_1", description="Wide ResNet WRN-40-1, ~0.56M params")
def wrn40_1(num_classes: int, in_channels: int) -> WideResNet:
    """WRN-40-1."""
    return WideResNet(40, 1, num_classes, in_channels)


@register_model("wrn40_2", description="Wide ResNet WRN-40-2, ~2.2M params")
def wrn40_2(num_classes: int, in_channels: int) -> WideResNet:
    """WRN-40-2."""
    return WideResNet(40, 2, num_classes, in_channels)
