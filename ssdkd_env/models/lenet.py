"""LeNet-5 and LeNet-5-half as used by DFAD for MNIST (no BatchNorm, exactly 32x32 input)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ssdkd_env.models.base import Classifier
from ssdkd_env.models.registry import register_model


class LeNet5(Classifier):
    """conv5x5 c1 -> pool -> conv5x5 c2 -> pool -> conv5x5 c3 -> fc hidden -> head.

    Every conv and the hidden FC are followed by ReLU; on 32x32 inputs the third conv
    produces a 1x1 map, so the flattened feature has exactly ``c3`` values.
    """

    plain_chain = True

    def __init__(
        self,
        num_classes: int,
        in_channels: int,
        widths: tuple[int, int, int] = (6, 16, 120),
        hidden: int = 84,
    ) -> None:
        super().__init__()
        c1, c2, c3 = widths
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, c1, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c1, c2, 5),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(2),
            nn.Conv2d(c2, c3, 5),
            nn.ReLU(inplace=True),
        )
        self.fc = nn.Sequential(nn.Linear(c3, hidden), nn.ReLU(inplace=True))
        self.head = nn.Linear(hidden, num_classes)

    def forward_features(self, x: Tensor) -> Tensor:
        return self.fc(torch.flatten(self.features(x), 1))


@register_model("lenet5", fixed_input_size=32, description="LeNet-5 (6/16/120/84), 32x32 input only")
def lenet5(num_classes: int, in_channels: int) -> LeNet5:
    """DFAD LeNet-5 teacher."""
    return LeNet5(num_classes, in_channels)


@register_model("lenet5_half", fixed_input_size=32, description="LeNet-5-half (3/8/60/42), 32x32 input only")
def lenet5_half(num_classes: int, in_channels: int) -> LeNet5:
    """DFAD LeNet-5-half student."""
    return LeNet5(num_classes, in_channels, widths=(3, 8, 60), hidden=42)
