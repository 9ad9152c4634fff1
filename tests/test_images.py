"""The vectorised augmentation helpers used by the distiller."""

from __future__ import annotations

import torch

from ssdkd_env.common.images import random_hflip, random_mixup, random_translate


def _one_hot_images(n: int) -> torch.Tensor:
    """Image i is 1 at pixel i and 0 elsewhere, so any blend can be read off its pixels."""
    return torch.eye(n).view(n, 1, 1, n)


def test_translate_moves_a_pixel_within_the_shift_and_keeps_its_value() -> None:
    x = torch.zeros(64, 1, 9, 9)
    x[:, :, 4, 4] = 1.0
    out = random_translate(x, 2, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(64))  # nothing lost: the pixel stays inside
    rows, cols = out[:, 0].nonzero()[:, 1], out[:, 0].nonzero()[:, 2]
    assert (rows - 4).abs().max() <= 2 and (cols - 4).abs().max() <= 2
    assert len(set(zip(rows.tolist(), cols.tolist(), strict=True))) > 10  # shifts really vary
    assert torch.equal(random_translate(x, 0), x)


def test_hflip_flips_about_half() -> None:
    x = torch.arange(4.0).view(1, 1, 1, 4).repeat(1000, 1, 1, 1)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] == 3).float()
    assert torch.equal(out[flipped.bool()], x.flip(-1)[flipped.bool()])
    assert 0.45 < float(flipped.mean()) < 0.55


def test_mixup_blends_a_chosen_share_of_images_convexly() -> None:
    n = 2000
    x = _one_hot_images(n)
    out = random_mixup(x, 0.3, torch.Generator().manual_seed(0)).view(n, n)
    assert torch.allclose(out.sum(1), torch.ones(n))  # convex weights
    assert bool((out >= 0).all()) and bool(((out > 0).sum(1) <= 2).all())  # at most two images
    mixed = out.diagonal() < 1
    assert 0.25 < float(mixed.float().mean()) < 0.35  # close to the requested share
    assert torch.equal(out[~mixed], torch.eye(n)[~mixed])  # the rest untouched


def test_mixup_fraction_zero_is_identity() -> None:
    x = torch.randn(8, 3, 4, 4)
    assert torch.equal(random_mixup(x, 0.0, torch.Generator().manual_seed(0)), x)
