"""Inversion losses and the modulating function phi."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from ssdkd_env.context import RunContext
from ssdkd_env.errors import UserError
from ssdkd_env.synthesis import (
    BNStatsLoss,
    MetaGeneratorSynthesizer,
    SynthesisConfig,
    SynthesisRequest,
    diversity_class_probs,
    draw_targets,
    focal_cross_entropy,
)
from ssdkd_env.synthesis.synthesizer import total_variation


def bn_model() -> tuple[nn.Module, nn.BatchNorm2d]:
    bn = nn.BatchNorm2d(3)
    model = nn.Sequential(bn, nn.Flatten(), nn.Linear(3 * 4 * 4, 5)).eval()
    return model, bn


def test_bn_loss_is_zero_when_batch_statistics_equal_running_ones() -> None:
    model, bn = bn_model()
    x = torch.randn(16, 3, 4, 4) * 2 + 1
    bn.running_mean.copy_(x.mean((0, 2, 3)))
    bn.running_var.copy_(x.var((0, 2, 3), unbiased=False))
    loss = BNStatsLoss(model)
    model(x)
    assert float(loss.value()) < 1e-5
    model(torch.randn(16, 3, 4, 4))
    assert float(loss.value()) > 0.5


def test_bn_loss_has_gradient_towards_the_running_statistics() -> None:
    model, bn = bn_model()
    x = torch.randn(8, 3, 4, 4, requires_grad=True)
    loss = BNStatsLoss(model)
    opt = torch.optim.Adam([x], lr=0.05)
    first = None
    for _ in range(100):
        model(x)
        value = loss.value()
        first = first if first is not None else float(value.detach())
        opt.zero_grad()
        value.backward()
        opt.step()
    assert float(value.detach()) < 0.2 * first


def test_bn_momentum_mixes_earlier_rounds() -> None:
    model, _ = bn_model()
    loss = BNStatsLoss(model, momentum=0.9)
    model(torch.randn(8, 3, 4, 4) + 3)
    loss.commit()
    model(torch.randn(8, 3, 4, 4))  # a batch at the running stats; the mixed mean still remembers +3
    assert float(loss.value()) > 2.0


def test_inactive_bn_loss_observes_only_inside_observing() -> None:
    model, _ = bn_model()
    loss = BNStatsLoss(model, active=False)
    model(torch.randn(8, 3, 4, 4) + 3)  # e.g. a relabelling pass: not observed
    assert loss.matchers[0].batch_mean is None and float(loss.value()) == 0.0
    with loss.observing():
        model(torch.randn(8, 3, 4, 4) + 3)
    observed = loss.matchers[0].batch_mean
    assert observed is not None and float(loss.value()) > 2.0
    model(torch.randn(8, 3, 4, 4))  # inactive again: the observed statistics stay
    assert loss.matchers[0].batch_mean is observed and not loss.active


def bare_context(teacher: nn.Module, rng: torch.Generator, init_rng: torch.Generator) -> RunContext:
    """A context of 8x8 one-channel images of 5 classes, with no task and no student."""
    return RunContext(teacher, (1, 8, 8), 5, (0.0,), (1.0,), rng, init_rng)


def test_synthesizer_statistics_ignore_teacher_passes_between_rounds() -> None:
    teacher = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    config = SynthesisConfig(nz=8, ngf=4, g_steps=1)
    synth = MetaGeneratorSynthesizer(config, bare_context(teacher, torch.Generator(), torch.Generator()))
    synth.synthesize(SynthesisRequest(6, torch.zeros(5), 0))
    last_batch = synth.bn_loss.matchers[0].batch_mean
    teacher(torch.randn(32, 1, 8, 8) * 5)  # the distiller relabelling a batch
    assert synth.bn_loss.matchers[0].batch_mean is last_batch


def test_teacher_without_bn_matches_the_normalised_input_statistics() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(3 * 4 * 4, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = BNStatsLoss(model, input_channels=3)
    assert len(caught) == 1 and "input" in str(caught[0].message)
    x = torch.randn(64, 3, 4, 4)
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), unbiased=False, keepdim=True)
    model(x)
    assert loss.uses_input_prior and float(loss.value()) < 1e-5
    model(x * 2 + 1)
    assert float(loss.value()) > 1.0


def test_teacher_without_bn_warns_once_and_gives_zero() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loss = BNStatsLoss(model)
    assert len(caught) == 1 and "BatchNorm" in str(caught[0].message)
    assert not loss.enabled and float(loss.value()) == 0.0


def test_diversity_favours_under_represented_classes() -> None:
    counts = torch.tensor([50, 30, 20, 0])
    probs = diversity_class_probs(counts, strength=1.0)
    assert torch.all(probs[1:] > probs[:-1])
    assert probs.sum().item() == pytest.approx(1.0)
    assert torch.allclose(diversity_class_probs(counts, 0.0), torch.full((4,), 0.25))
    assert torch.allclose(diversity_class_probs(torch.zeros(4), 2.0), torch.full((4,), 0.25))
    stronger = diversity_class_probs(counts, strength=3.0)
    assert stronger[3] > probs[3]


def test_draw_targets_matches_probabilities() -> None:
    probs = torch.tensor([0.5, 0.25, 0.125, 0.125])
    targets = draw_targets(probs, 64, torch.Generator().manual_seed(0))
    assert torch.bincount(targets, minlength=4).tolist() == [32, 16, 8, 8]
    odd = draw_targets(torch.tensor([0.3, 0.3, 0.4]), 7, torch.Generator().manual_seed(0))
    counts = torch.bincount(odd, minlength=3)
    assert counts.sum() == 7 and torch.all((counts - torch.tensor([2.1, 2.1, 2.8])).abs() < 1)


def test_focal_weighting() -> None:
    logits = torch.tensor([[4.0, 0.0], [0.2, 0.0]])
    targets = torch.tensor([0, 0])
    assert focal_cross_entropy(logits, targets, 0.0).item() == pytest.approx(F.cross_entropy(logits, targets).item())
    focal = focal_cross_entropy(logits, targets, 2.0)
    ce = F.cross_entropy(logits, targets, reduction="none")
    p = torch.exp(-ce)
    assert focal.item() == pytest.approx(((1 - p) ** 2 * ce).mean().item())
    # the confident sample is down-weighted far more than the unsure one
    assert (1 - p[0]) ** 2 < 0.01 < (1 - p[1]) ** 2


def test_total_variation_is_zero_for_flat_images_and_counts_edges() -> None:
    assert float(total_variation(torch.full((2, 1, 5, 5), 0.7))) == 0.0
    checker = (torch.arange(6).view(6, 1) + torch.arange(6).view(1, 6)) % 2
    assert float(total_variation(checker.float().view(1, 1, 6, 6))) == 2.0  # every neighbour differs by 1


def test_meta_generators_take_turns() -> None:
    """With ``generators = 3`` round r moves meta-generator r % 3 and leaves the others as they were."""
    teacher = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4 * 6 * 6, 5)).eval()
    config = SynthesisConfig(nz=8, ngf=4, g_steps=1, generators=3)
    synth = MetaGeneratorSynthesizer(config, bare_context(teacher, torch.Generator(), torch.Generator()))
    assert len(synth.metas) == 3
    round0_mean: torch.Tensor | None = None
    for round_index in range(4):
        before = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in synth.metas]
        stats_before = [buffers[0][0] for buffers in synth.bn_buffers]
        synth.synthesize(SynthesisRequest(6, torch.zeros(5), round_index))
        after = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in synth.metas]
        moved = [not torch.equal(b, a) for b, a in zip(before, after, strict=True)]
        assert moved == [i == round_index % 3 for i in range(3)]
        # and only that generator's BN-momentum buffer took in the round's statistics
        stats_moved = [b is not a[0][0] for b, a in zip(stats_before, synth.bn_buffers, strict=True)]
        assert stats_moved == moved
        if round_index == 0:
            round0_mean = synth.bn_buffers[0][0][0]
    # round 3 mixed generator 0's buffer with its own round-0 statistics, not with round 2's
    last_batch = synth.bn_loss.matchers[0].batch_mean
    assert round0_mean is not None and last_batch is not None
    expected = config.bn_momentum * round0_mean + (1 - config.bn_momentum) * last_batch
    assert torch.allclose(synth.bn_buffers[0][0][0], expected)
    with pytest.raises(UserError, match="generators=0: must be >= 1"):
        SynthesisConfig(generators=0)


def test_pretraining_lowers_the_bn_loss_once_before_the_first_round_and_survives_a_checkpoint() -> None:
    """``pretrain_steps`` train every meta-generator directly before round 0 (its BN loss falls), only once,
    without touching the rounds' momentum buffers; a restored synthesizer does not train again."""
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.BatchNorm2d(1), nn.Flatten(), nn.Linear(8 * 8, 5)).eval()
    with torch.no_grad():  # bright, flat images: statistics a random generator (sigmoid output) misses at its start
        teacher[0].running_mean.fill_(0.8)
        teacher[0].running_var.fill_(0.01)
    teacher.requires_grad_(False)

    def build(steps: int) -> MetaGeneratorSynthesizer:
        config = SynthesisConfig(nz=8, ngf=4, g_steps=1, generators=2, pretrain_steps=steps, lr_g=0.05)
        return MetaGeneratorSynthesizer(
            config, bare_context(teacher, torch.Generator().manual_seed(1), torch.Generator().manual_seed(1))
        )

    synth = build(60)
    assert not synth.pretrained and synth.pretrain_bn_losses == []
    before = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in synth.metas]
    synth.synthesize(SynthesisRequest(6, torch.zeros(5), 0))
    assert synth.pretrained and [len(losses) for losses in synth.pretrain_bn_losses] == [60, 60]
    for losses in synth.pretrain_bn_losses:
        assert losses[-1] < 0.5 * losses[0]
    # both generators were trained, though round 0 is generator 0's turn
    after = [torch.cat([p.detach().flatten() for p in m.parameters()]) for m in synth.metas]
    assert all(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    assert synth.bn_buffers[1][0] == (None, None)  # generator 1 has had no round: its momentum starts fresh
    # no second pre-training: a later round never calls the warm-up, and its record is unchanged
    losses = list(synth.pretrain_bn_losses)
    synth.pretrain = lambda request: pytest.fail("pre-trained twice")  # type: ignore[method-assign]
    synth.synthesize(SynthesisRequest(6, torch.zeros(5), 1))
    assert synth.pretrain_bn_losses == losses
    restored = build(60)
    restored.load_state_dict(synth.state_dict())
    restored.pretrain = lambda request: pytest.fail("pre-trained after a restore")  # type: ignore[method-assign]
    assert restored.pretrained and restored.report() == synth.report()
    restored.synthesize(SynthesisRequest(6, torch.zeros(5), 2))
    assert restored.pretrain_bn_losses == losses
    assert restored.report()["pretrain_steps"] == 60 and len(restored.report()["pretrain_bn_loss_last"]) == 2
    assert build(0).pretrained and build(0).report() == {}  # nothing to do without steps
