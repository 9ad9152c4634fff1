"""The vectorised augmentation helpers used by the distiller."""

from __future__ import annotations

import torch

from ssdkd_env.common.images import (
    random_affine,
    random_color,
    random_hflip,
    random_mixup,
    random_shrink,
    random_translate,
)


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


def test_affine_rotates_within_the_range_and_preserves_a_bar() -> None:
    x = torch.zeros(200, 1, 33, 33)
    x[:, :, 16, 6:27] = 1.0  # a horizontal bar through the centre
    out = random_affine(x, 30.0, 0.0, torch.Generator().manual_seed(0))
    ys, xs = torch.meshgrid(torch.arange(33.0), torch.arange(33.0), indexing="ij")
    w = out[:, 0]
    mass = w.sum((1, 2))
    cy, cx = (w * ys).sum((1, 2)) / mass, (w * xs).sum((1, 2)) / mass
    mu20 = (w * (xs - cx[:, None, None]) ** 2).sum((1, 2))
    mu02 = (w * (ys - cy[:, None, None]) ** 2).sum((1, 2))
    mu11 = (w * (xs - cx[:, None, None]) * (ys - cy[:, None, None])).sum((1, 2))
    angle = torch.rad2deg(0.5 * torch.atan2(2 * mu11, mu20 - mu02))
    assert float(angle.abs().max()) <= 31.0 and float(angle.std()) > 10.0  # rotated, but not past 30 degrees
    assert torch.allclose(mass, torch.full_like(mass, 21.0), rtol=0.1)  # rotation keeps the bar's area
    assert torch.allclose(torch.stack([cy, cx], 1), torch.full((200, 2), 16.0), atol=0.2)  # about the centre


def test_affine_scale_changes_size_and_identity_when_off() -> None:
    x = torch.zeros(100, 1, 33, 33)
    x[:, :, 16, 6:27] = 1.0
    out = random_affine(x, 0.0, 0.4, torch.Generator().manual_seed(0))
    length = (out[:, 0].sum(1) > 0.5).sum(1).float()  # columns the bar covers
    assert float(length.min()) < 17 and float(length.max()) > 25  # factors in [0.6, 1.4] of 21 pixels
    assert random_affine(x, 0.0, 0.0) is x


def test_geometric_augmentations_repeat_the_background_at_the_edges() -> None:
    """Normalised images have a non-zero background; padding must not paint a zero frame."""
    background = torch.full((16, 1, 12, 12), -0.42)
    gen = torch.Generator().manual_seed(0)
    assert torch.allclose(random_translate(background, 3, gen), background)
    assert torch.allclose(random_affine(background, 45.0, 0.3, gen), background, atol=1e-6)


def test_shrink_puts_a_smaller_copy_inside_the_frame_on_the_darkest_value() -> None:
    n, size = 200, 32
    x = torch.full((n, 1, size, size), 1.0)  # a bright image on a dark (-0.5) one-pixel border
    x[:, :, 0, :] = x[:, :, -1, :] = x[:, :, :, 0] = x[:, :, :, -1] = -0.5
    out = random_shrink(x, 0.5, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    assert float(out.min()) >= -0.5 - 1e-6 and float(out.max()) <= 1.0 + 1e-6  # nothing outside the range
    bright = (out[:, 0] > 0.9).float()
    side = bright.sum(1).amax(1)  # widest bright row per image
    assert float(side.min()) < 0.6 * size and float(side.max()) > 0.85 * size  # factors in [0.5, 1]
    dark_share = (out < -0.5 + 1e-5).float().mean((1, 2, 3))
    assert float(dark_share.mean()) > float((x < -0.4).float().mean()) + 0.2  # the freed area is background
    rows = bright.amax(2).nonzero()[:, 1].float()
    centres = torch.zeros(n).index_add_(0, bright.amax(2).nonzero()[:, 0], rows) / bright.amax(2).sum(1)
    assert float(centres.std()) > 1.0  # placed at varying positions
    assert random_shrink(x, 0.0) is x


def test_color_shuffles_channels_and_moves_each_by_a_bounded_gain_and_offset() -> None:
    n, strength = 600, 0.2
    x = torch.randn(1, 3, 4, 4).repeat(n, 1, 1, 1)  # one image, many recolourings
    out = random_color(x, strength, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    # each output channel is an affine map of exactly one input channel: fit it by least squares
    design = torch.stack([x[0].flatten(1), torch.ones(3, 16)], -1)  # [C_in, 16, 2]
    orders = []
    for image in out[:50]:
        fits = [torch.linalg.lstsq(design, channel.flatten().expand(3, 16)[..., None]) for channel in image]
        residuals = torch.stack(
            [(design @ fit.solution).squeeze(-1) - channel.flatten() for fit, channel in zip(fits, image, strict=True)]
        )
        source = residuals.abs().amax(-1).argmin(-1)  # [C_out]: the input channel each came from
        assert sorted(source.tolist()) == [0, 1, 2]  # a permutation
        for c_out, c_in in enumerate(source.tolist()):
            gain, offset = fits[c_out].solution[c_in].squeeze(-1)
            assert abs(float(gain) - 1) <= strength + 1e-4 and abs(float(offset)) <= strength + 1e-4
        orders.append(tuple(source.tolist()))
    assert len(set(orders)) == 6  # every order of three channels occurs
    assert torch.equal(random_color(x, 0.0), x)
