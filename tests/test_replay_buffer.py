"""The replay buffer: priority sampling, importance weights, eviction rules and statistics."""

from __future__ import annotations

import math
import random

import pytest
import torch

from ssdkd_env.replay import ReplayBuffer


def filled_buffer(priorities: list[float], classes: list[int], num_classes: int = 4) -> ReplayBuffer:
    n = len(priorities)
    buf = ReplayBuffer(n, (1, 2, 2), num_classes)
    logits = torch.full((n, num_classes), -5.0)
    logits[torch.arange(n), torch.tensor(classes)] = 5.0
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2)
    buf.insert(images, logits, torch.tensor(priorities))
    return buf


@pytest.mark.parametrize("alpha", [0.0, 0.6, 1.0, 2.0])
def test_sampling_frequencies_follow_priority_power(alpha: float) -> None:
    priorities = [0.1, 0.5, 1.0, 2.0, 4.0]
    buf = filled_buffer(priorities, [0, 1, 2, 3, 0])
    draws = 200_000
    gen = torch.Generator().manual_seed(1)
    batch = buf.sample(draws, alpha=alpha, beta=0.0, generator=gen)
    observed = torch.bincount(batch.index, minlength=5).float()
    expected_p = torch.tensor(priorities).pow(alpha)
    expected = expected_p / expected_p.sum() * draws
    chi2 = float(((observed - expected) ** 2 / expected).sum())
    # 4 degrees of freedom: the 99.9% quantile of chi-square is 18.47
    assert chi2 < 18.47, (observed, expected)
    if alpha > 0:  # and a wrong exponent would be detected
        wrong = torch.tensor(priorities).pow(alpha + 0.5)
        wrong = wrong / wrong.sum() * draws
        assert float(((observed - wrong) ** 2 / wrong).sum()) > 100


def test_importance_weights_match_formula() -> None:
    priorities = [0.2, 1.0, 3.0, 0.7]
    buf = filled_buffer(priorities, [0, 1, 2, 3])
    alpha, beta = 0.7, 0.5
    batch = buf.sample(64, alpha=alpha, beta=beta, generator=torch.Generator().manual_seed(0))
    p = torch.tensor(priorities).pow(alpha)
    probs = p / p.sum()
    n = len(priorities)
    raw = (n * probs).pow(-beta)
    expected = raw[batch.index] / raw.max()
    assert torch.allclose(batch.weights, expected, rtol=1e-5)
    assert float(batch.weights.max()) <= 1.0 + 1e-6
    # the rarest slot (slot 0) is drawn and gets the largest possible weight, exactly 1
    assert bool((batch.index == 0).any()), batch.index
    assert torch.allclose(batch.weights[batch.index == 0], torch.tensor(1.0))


def test_samples_carry_their_images_and_logits() -> None:
    buf = filled_buffer([1.0, 2.0, 3.0], [2, 0, 1])
    batch = buf.sample(10, generator=torch.Generator().manual_seed(0))
    assert torch.equal(batch.images[:, 0, 0, 0], batch.index.float())
    assert torch.equal(batch.teacher_logits.argmax(1), torch.tensor([2, 0, 1])[batch.index])


def test_insert_fills_free_slots_then_replaces_only_the_fraction() -> None:
    buf = ReplayBuffer(10, (1, 2, 2), 3)
    logits = torch.zeros(6, 3)
    slots = buf.insert(torch.zeros(6, 1, 2, 2), logits, torch.ones(6))
    assert slots.tolist() == list(range(6)) and buf.size == 6
    # 4 free slots, then at most round(0.2 * 10) = 2 replacements: 6 of the 8 new samples land
    slots = buf.insert(torch.ones(8, 1, 2, 2), torch.zeros(8, 3), torch.ones(8) * 5, replace_fraction=0.2)
    assert slots.numel() == 6 and buf.size == 10
    assert int((buf.images[:, 0, 0, 0] == 1).sum()) == 6


def test_lowest_rule_evicts_lowest_priorities() -> None:
    buf = filled_buffer([5.0, 0.1, 3.0, 0.2, 4.0, 0.3], [0, 0, 1, 1, 2, 2])
    assert buf.eviction_order("lowest")[:3].tolist() == [1, 3, 5]
    buf.insert(torch.full((3, 1, 2, 2), 9.0), torch.zeros(3, 4), torch.ones(3), replace_fraction=0.5)
    assert sorted(torch.nonzero(buf.images[:, 0, 0, 0] == 9).flatten().tolist()) == [1, 3, 5]


def test_oldest_rule_evicts_earliest_rounds() -> None:
    buf = ReplayBuffer(4, (1, 2, 2), 2)
    for r in range(4):
        buf.insert(torch.full((1, 1, 2, 2), float(r)), torch.zeros(1, 2), torch.tensor([10.0 - r]))
        buf.end_round()
    assert buf.eviction_order("oldest").tolist() == [0, 1, 2, 3]
    buf.insert(torch.full((2, 1, 2, 2), 7.0), torch.zeros(2, 2), torch.ones(2), replace_fraction=0.5, eviction="oldest")
    assert buf.images[:2, 0, 0, 0].tolist() == [7.0, 7.0] and buf.images[2:, 0, 0, 0].tolist() == [2.0, 3.0]


def test_class_rule_levels_the_most_over_represented_class() -> None:
    # class 0 has 5 samples, class 1 has 3, class 2 has 1
    classes = [0, 0, 0, 0, 0, 1, 1, 1, 2]
    priorities = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.05]
    buf = filled_buffer(priorities, classes, num_classes=3)
    order = buf.eviction_order("class").tolist()
    # Greedy levelling, worked out by hand. Counts before each eviction, and the choice:
    #   [5, 3, 1] class 0 alone is largest: its lowest priority, slot 1 (0.1)
    #   [4, 3, 1] class 0: slot 3 (0.3)
    #   [3, 3, 1] tie 0/1: the lower next priority goes first, class 1's slot 5 (0.2) before class 0's slot 0 (0.5)
    #   [3, 2, 1] class 0: slot 0 (0.5)
    #   [2, 2, 1] tie 0/1: class 1's slot 7 (0.4) before class 0's slot 4 (0.7)
    #   [2, 1, 1] class 0: slot 4 (0.7)
    #   [1, 1, 1] three-way tie, by priority: slot 8 (0.05), slot 6 (0.8), slot 2 (0.9)
    assert order == [1, 3, 5, 0, 7, 4, 8, 6, 2]


def greedy_class_order(priorities: list[float], classes: list[int]) -> list[int]:
    """The documented ``class`` rule, one eviction at a time: from the class with the most samples left,
    its lowest-priority slot; ties (between classes or priorities) go to the lower (priority, slot)."""

    def rank(i: int) -> tuple[float, int]:
        return priorities[i], i

    left: dict[int, list[int]] = {}  # each class's slots, next to evict first
    for i in sorted(range(len(priorities)), key=rank):
        left.setdefault(classes[i], []).append(i)
    order = []
    while any(left.values()):
        most = max(len(v) for v in left.values())
        slot = min((v[0] for v in left.values() if len(v) == most), key=rank)
        order.append(slot)
        left[classes[slot]].remove(slot)
    return order


def test_greedy_reference_reproduces_the_hand_worked_order() -> None:
    classes = [0, 0, 0, 0, 0, 1, 1, 1, 2]
    priorities = [0.5, 0.1, 0.9, 0.3, 0.7, 0.2, 0.8, 0.4, 0.05]
    assert greedy_class_order(priorities, classes) == [1, 3, 5, 0, 7, 4, 8, 6, 2]


@pytest.mark.parametrize("seed", range(40))
def test_class_rule_matches_the_greedy_reference(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randint(1, 24)
    priorities = [rng.choice([0.05, 0.1, 0.5, 1.0, 2.0]) for _ in range(n)]  # few values: many ties
    classes = [rng.randrange(4) for _ in range(n)]
    buf = filled_buffer(priorities, classes, num_classes=4)
    assert buf.eviction_order("class").tolist() == greedy_class_order(priorities, classes)


def test_stats_match_plain_computation() -> None:
    priorities = [0.5, 1.5, 2.0, 0.25, 1.0]
    classes = [0, 2, 2, 1, 2]
    buf = filled_buffer(priorities, classes, num_classes=4)
    buf.end_round()
    buf.end_round()
    stats = buf.stats()
    n = len(classes)
    share = [classes.count(c) / n for c in range(4)]
    assert torch.allclose(stats["class_share"], torch.tensor(share))
    for c in range(4):
        members = [p for p, k in zip(priorities, classes, strict=True) if k == c]
        expect = sum(members) / len(members) if members else 0.0
        assert stats["class_priority"][c].item() == pytest.approx(expect)
    mean = sum(priorities) / n
    assert stats["priority_mean"] == pytest.approx(mean)
    assert stats["priority_std"] == pytest.approx(math.sqrt(sum((p - mean) ** 2 for p in priorities) / n))
    assert stats["priority_max"] == pytest.approx(2.0)
    assert stats["age_mean"] == pytest.approx(2.0)
    entropy = -sum(s * math.log(s) for s in share if s > 0) / math.log(4)
    assert stats["class_entropy"] == pytest.approx(entropy)
    confidence = torch.softmax(torch.tensor([5.0, -5.0, -5.0, -5.0]), 0).max().item()
    assert stats["teacher_confidence"] == pytest.approx(confidence)
    assert stats["buffer_fill"] == 1.0


def test_priority_refresh_and_floor() -> None:
    buf = filled_buffer([1.0, 1.0], [0, 1])
    buf.update_priorities(torch.tensor([1]), torch.tensor([0.0]))
    assert buf.priorities.tolist() == pytest.approx([1.0, buf.min_priority])


def test_state_round_trip() -> None:
    buf = filled_buffer([0.3, 0.6, 0.9], [0, 1, 2])
    other = ReplayBuffer(3, (1, 2, 2), 4)
    other.load_state_dict(buf.state_dict())
    assert other.size == 3 and torch.equal(other.priorities, buf.priorities) and torch.equal(other.images, buf.images)


def test_non_finite_priorities_are_refused() -> None:
    buf = ReplayBuffer(4, (1, 2, 2), 2)
    with pytest.raises(FloatingPointError):
        buf.insert(torch.zeros(2, 1, 2, 2), torch.zeros(2, 2), torch.tensor([1.0, float("nan")]))
    assert buf.size == 0
