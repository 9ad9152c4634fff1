"""Vectorised image helpers: normalisation, augmentation and batched evaluation."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssdkd_env.common.precision import Precision, autocast_for


def normalize_uint8(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 [N, C, H, W] -> float32 normalised with per-channel mean and std."""
    x = images.float().div_(255.0)
    m = torch.tensor(mean, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def _draw_device(generator: torch.Generator | None) -> torch.device:
    """Where random numbers are drawn: on ``generator``'s device (a CUDA generator keeps the draws,
    and the copies they would need, off the host), on the CPU without one."""
    return torch.device("cpu") if generator is None else generator.device


def random_translate(x: torch.Tensor, max_shift: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shift each image by up to ``max_shift`` pixels in x and y, in one gather.

    Uncovered pixels repeat the edge (a zero pad would be the mean colour of normalised images)."""
    if max_shift <= 0:
        return x
    b, c, h, w = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    span = 2 * max_shift + 1
    draw = _draw_device(generator)
    oy = torch.randint(span, (b,), generator=generator, device=draw).to(x.device)
    ox = torch.randint(span, (b,), generator=generator, device=draw).to(x.device)
    rows = (oy[:, None] + torch.arange(h, device=x.device))[:, :, None]  # [B, H, 1]
    cols = (ox[:, None] + torch.arange(w, device=x.device))[:, None, :]  # [B, 1, W]
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_hflip(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Flip a random half of the images horizontally."""
    flip = (torch.rand(x.shape[0], generator=generator, device=_draw_device(generator)) < 0.5).to(x.device)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)


def random_affine(
    x: torch.Tensor, degrees: float, scale: float, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Rotate each image by up to ``degrees`` and rescale it by a factor in ``[1 - scale, 1 + scale]``
    about its centre (bilinear; uncovered pixels repeat the edge), all in one ``grid_sample``."""
    if degrees <= 0 and scale <= 0:
        return x
    b, draw = x.shape[0], _draw_device(generator)
    angle = (torch.rand(b, generator=generator, device=draw) * 2 - 1) * degrees * torch.pi / 180
    factor = 1 + (torch.rand(b, generator=generator, device=draw) * 2 - 1) * scale
    cos, sin = torch.cos(angle) / factor, torch.sin(angle) / factor  # output -> input coordinates
    zero = torch.zeros(b, device=draw)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1), torch.stack([sin, cos, zero], 1)], 1)
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_shrink(x: torch.Tensor, min_scale: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Shrink each image by a factor in ``[min_scale, 1]`` and place it at a random position on a
    background of its own darkest value (an object on an empty background), in one ``grid_sample``."""
    if min_scale <= 0 or min_scale >= 1:
        return x
    b, draw = x.shape[0], _draw_device(generator)
    factor = min_scale + torch.rand(b, generator=generator, device=draw) * (1 - min_scale)
    centre = (torch.rand(b, 2, generator=generator, device=draw) * 2 - 1) * (1 - factor)[:, None]  # inside the frame
    zero = torch.zeros(b, device=draw)
    inv = 1 / factor
    theta = torch.stack(
        [torch.stack([inv, zero, -centre[:, 0] * inv], 1), torch.stack([zero, inv, -centre[:, 1] * inv], 1)], 1
    )
    grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
    background = x.amin(dim=(1, 2, 3), keepdim=True)
    return F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + background


def random_mixup(x: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Blend a random ``fraction`` of the images with another image of the batch.

    Each chosen image becomes ``lam * x_i + (1 - lam) * x_j`` with ``lam ~ U(0, 1)`` and ``j`` a
    random permutation; the caller relabels the result (with the teacher, in data-free KD).
    """
    if fraction <= 0:
        return x
    b, draw = x.shape[0], _draw_device(generator)
    partner = torch.randperm(b, generator=generator, device=draw).to(x.device)
    lam = torch.rand(b, generator=generator, device=draw).to(x.device)
    chosen = (torch.rand(b, generator=generator, device=draw) < fraction).to(x.device)
    lam = torch.where(chosen, lam, torch.ones_like(lam)).view(b, 1, 1, 1)
    return lam * x + (1 - lam) * x[partner]


def random_color(x: torch.Tensor, strength: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Recolour each image: its channels in a random order, then each channel scaled by a gain in
    ``[1 - strength, 1 + strength]`` and moved by an offset in ``[-strength, strength]`` (in the
    units of the normalised image), all drawn per image, in one gather and one fused multiply-add.

    Meant for tasks whose classes do not depend on colour (the caller relabels the result): a
    generator that settles on one palette then still shows the student every colour."""
    if strength <= 0:
        return x
    b, c = x.shape[:2]
    draw = _draw_device(generator)
    order = torch.rand(b, c, generator=generator, device=draw).argsort(dim=1).to(x.device)
    shuffled = x.gather(1, order[:, :, None, None].expand_as(x))
    gain = 1 + (torch.rand(b, c, 1, 1, generator=generator, device=draw) * 2 - 1) * strength
    offset = (torch.rand(b, c, 1, 1, generator=generator, device=draw) * 2 - 1) * strength
    return torch.addcmul(offset.to(x.device, x.dtype), shuffled, gain.to(x.device, x.dtype))


@torch.no_grad()
def predict_logits(
    model: nn.Module, x: torch.Tensor, batch_size: int = 1024, precision: Precision = "fp32"
) -> torch.Tensor:
    """Logits of ``model`` on ``x`` in eval mode, batched, as fp32 (forward passes at ``precision``);
    restores the previous mode."""
    was_training = model.training
    model.eval()
    with autocast_for(x.device, precision):
        out = torch.cat([model(x[i : i + batch_size]) for i in range(0, x.shape[0], batch_size)])
    model.train(was_training)
    return out.float()


def accuracy(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, batch_size: int = 1024) -> float:
    """Top-1 accuracy of ``model`` on normalised images ``x`` as a fraction."""
    pred = predict_logits(model, x, batch_size).argmax(1)
    return float((pred == labels.to(pred.device)).float().mean())
