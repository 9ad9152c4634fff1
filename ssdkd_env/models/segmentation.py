"""Segmentation networks: per-pixel logits ``[N, K, H, W]`` at the input's height and width.

``deeplabv3_resnet50`` (teacher) and ``deeplabv3_mobilenetv2`` (student) are the pair of the
segmentation experiments of DFAD (Fang et al. 2019) and SSD-KD (Liu et al. 2024): DeepLabV3
(Chen et al. 2017, "Rethinking Atrous Convolution for Semantic Image Segmentation") on a dilated
ResNet-50 (output stride 8) and on MobileNetV2 (Sandler et al. 2018) at output stride 16.
``unet_s`` (teacher) and ``unet_xs`` (student, half width, about 1/4 of the parameters) are small
U-Nets (Ronneberger et al. 2015) sized for a CPU: CamVid at 240x180 and 32x32 procedural tasks.

Every model takes any ``H, W >= min_input_size`` (multiples of its stride or not), contains
BatchNorm layers (the data-free inversion matches the teacher's BN statistics), returns a plain
tensor and never downloads weights. torchvision's own initialisation is replaced by PyTorch's
default one (see :func:`default_initialised`), as for every other registered model.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import mobilenet_v2
from torchvision.models.segmentation import deeplabv3_resnet50 as tv_deeplabv3_resnet50
from torchvision.models.segmentation.deeplabv3 import DeepLabHead

from ssdkd_env.models.init import seeded
from ssdkd_env.models.registry import register_model

M = TypeVar("M", bound=nn.Module)

# torchvision's mobilenet_v2().features: [0] stem conv (stride 2), [1..17] inverted residuals,
# [18] 1x1 conv to 1280 channels. The 3x3 depthwise convs of blocks 2, 4, 7 and 14 have stride 2;
# block 14 (96 -> 160 channels) is the last, so output stride 16 = block 14 at stride 1 and the
# depthwise convs after it (blocks 15-17) dilated by 2 (atrous convolution, Chen et al. 2017).
MOBILENETV2_OS16_STRIDE_BLOCK = 14
MOBILENETV2_OS16_DILATED_BLOCKS = (15, 16, 17)
MOBILENETV2_CHANNELS = 1280
# ASPP rates for output stride 16 (Chen et al. 2017, Sec. 3.3; torchvision's default 12/24/36 is for OS 8)
ASPP_RATES_OS16 = (6, 12, 18)

UNET_S_WIDTHS = (16, 32, 64, 128)
UNET_XS_WIDTHS = (8, 16, 32, 64)


def upsample_to(x: Tensor, size: Sequence[int]) -> Tensor:
    """Bilinear resize (``align_corners=False``) of ``x`` to spatial ``size``."""
    return F.interpolate(x, size=(int(size[0]), int(size[1])), mode="bilinear", align_corners=False)


def default_initialised(factory: Callable[[], M]) -> M:
    """``factory()`` initialised with PyTorch's defaults, drawn from the global RNG in module order.

    torchvision's constructors draw their own initialisation (kaiming-normal), whereas
    ``build_model(..., generator=g)`` re-initialises with PyTorch's defaults (``models/init.py``).
    Drawing those defaults from the global stream here keeps the contract of every registered model:
    ``torch.manual_seed(s); builder()`` equals a build from a generator seeded with ``s``. Inside
    ``seeded`` (the meta device) the module is returned as is; ``seeded`` initialises it.
    """
    if torch.empty(0).is_meta:
        return factory()
    stream = torch.Generator()
    stream.set_state(torch.get_rng_state())
    module = seeded(factory, stream)
    torch.set_rng_state(stream.get_state())  # the global stream advances as if it had been drawn from
    return module


def replace_stem(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """``conv`` if it takes ``in_channels`` inputs, else a fresh conv of the same shape taking ``in_channels``."""
    if conv.in_channels == in_channels:
        return conv
    return nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,  # type: ignore[arg-type]
        conv.stride,  # type: ignore[arg-type]
        conv.padding,  # type: ignore[arg-type]
        bias=conv.bias is not None,
    )


def depthwise_conv(block: nn.Module) -> nn.Conv2d:
    """The single 3x3 depthwise conv of a MobileNetV2 inverted residual block."""
    convs = [m for m in block.modules() if isinstance(m, nn.Conv2d) and m.groups > 1]
    if len(convs) != 1:
        raise ValueError(f"expected one depthwise conv in the block, found {len(convs)}")
    return convs[0]


class OutLogits(nn.Module):
    """Wraps a torchvision segmentation model (which returns a dict) to return its ``"out"`` logits."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)["out"]


class DeepLabV3MobileNetV2(nn.Module):
    """DeepLabV3 (Chen et al. 2017): MobileNetV2 features at output stride 16, ASPP head, bilinear upsampling."""

    def __init__(self, num_classes: int, in_channels: int) -> None:
        super().__init__()
        features = mobilenet_v2(weights=None).features
        stem = features[0][0]
        assert isinstance(stem, nn.Conv2d)
        features[0][0] = replace_stem(stem, in_channels)
        stride_conv = depthwise_conv(features[MOBILENETV2_OS16_STRIDE_BLOCK])
        if stride_conv.stride != (2, 2):
            raise ValueError("torchvision's MobileNetV2 layout changed: block 14 is not the last stride-2 block")
        stride_conv.stride = (1, 1)
        for index in MOBILENETV2_OS16_DILATED_BLOCKS:
            conv = depthwise_conv(features[index])
            conv.dilation = (2, 2)
            conv.padding = (2, 2)
        self.backbone = features
        self.head = DeepLabHead(MOBILENETV2_CHANNELS, num_classes, atrous_rates=ASPP_RATES_OS16)

    def forward(self, x: Tensor) -> Tensor:
        return upsample_to(self.head(self.backbone(x)), x.shape[-2:])


def conv_bn_relu(in_ch: int, out_ch: int) -> list[nn.Module]:
    """3x3 same-padding conv, BatchNorm, ReLU."""
    return [nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(inplace=True)]


def double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    """Two conv-BN-ReLU layers, the unit of every U-Net level."""
    return nn.Sequential(*conv_bn_relu(in_ch, out_ch), *conv_bn_relu(out_ch, out_ch))


class UNet(nn.Module):
    """U-Net (Ronneberger et al. 2015) with BatchNorm, ``len(widths)`` levels and total stride ``2**(levels-1)``.

    Encoder: two conv-BN-ReLU per level, 2x2 max-pool between levels. Decoder: bilinear upsampling to
    the skip's exact size (so odd sizes need no padding), concatenation with the skip, two conv-BN-ReLU
    down to the skip's width. A 1x1 conv head at the input resolution.
    """

    def __init__(self, num_classes: int, in_channels: int, widths: Sequence[int]) -> None:
        super().__init__()
        if len(widths) < 2:
            raise ValueError(f"a U-Net needs at least two levels, got widths {tuple(widths)}")
        ins = [in_channels, *widths[:-1]]
        self.down = nn.ModuleList(double_conv(i, w) for i, w in zip(ins, widths, strict=True))
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(double_conv(deep + w, w) for w, deep in zip(widths[-2::-1], widths[:0:-1], strict=True))
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x: Tensor) -> Tensor:
        skips: list[Tensor] = []
        for level, block in enumerate(self.down):
            x = block(self.pool(x) if level else x)
            skips.append(x)
        skips.pop()  # the bottleneck is x itself
        for block, skip in zip(self.up, reversed(skips), strict=True):
            x = block(torch.cat([upsample_to(x, skip.shape[-2:]), skip], dim=1))
        return self.head(x)


@register_model(
    "deeplabv3_resnet50",
    min_input_size=32,
    dense=True,
    description="DeepLabV3 on dilated ResNet-50 (output stride 8), segmentation teacher of DFAD/SSD-KD, ~39.6M params",
)
def deeplabv3_resnet50(num_classes: int, in_channels: int) -> nn.Module:
    """torchvision's DeepLabV3-ResNet-50 (no weights, no aux head) returning the upsampled logits."""

    def factory() -> nn.Module:
        model = tv_deeplabv3_resnet50(weights=None, weights_backbone=None, num_classes=num_classes, aux_loss=False)
        stem = model.backbone.conv1
        assert isinstance(stem, nn.Conv2d)
        model.backbone.conv1 = replace_stem(stem, in_channels)
        return OutLogits(model)

    return default_initialised(factory)


@register_model(
    "deeplabv3_mobilenetv2",
    min_input_size=32,
    dense=True,
    description="DeepLabV3 on MobileNetV2 (OS 16, ASPP 6/12/18), segmentation student of DFAD/SSD-KD, ~12.7M params",
)
def deeplabv3_mobilenetv2(num_classes: int, in_channels: int) -> DeepLabV3MobileNetV2:
    """DeepLabV3-MobileNetV2 student."""
    return default_initialised(lambda: DeepLabV3MobileNetV2(num_classes, in_channels))


@register_model(
    "unet_s",
    min_input_size=16,
    dense=True,
    description="small BN U-Net teacher, 4 levels of 16/32/64/128 channels, ~0.49M params",
)
def unet_s(num_classes: int, in_channels: int) -> UNet:
    """Small U-Net teacher."""
    return UNet(num_classes, in_channels, UNET_S_WIDTHS)


@register_model(
    "unet_xs",
    min_input_size=16,
    dense=True,
    description="half-width BN U-Net student (8/16/32/64), ~0.12M params",
)
def unet_xs(num_classes: int, in_channels: int) -> UNet:
    """Half-width U-Net student."""
    return UNet(num_classes, in_channels, UNET_XS_WIDTHS)
