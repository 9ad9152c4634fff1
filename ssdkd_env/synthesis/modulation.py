"""SSD-KD's modulating function phi: diversity of target classes and difficulty of samples."""

from __future__ import annotations

import torch

from ssdkd_env.losses import focal_cross_entropy

__all__ = ["diversity_class_probs", "draw_targets", "focal_cross_entropy"]


def diversity_class_probs(class_counts: torch.Tensor, strength: float) -> torch.Tensor:
    """Probabilities of target classes for new samples, favouring classes the buffer lacks.

    ``q_c`` is proportional to ``(share_c + 1/K)^-strength`` where ``share_c`` is the share of
    the buffer the teacher assigns to class ``c``: ``strength = 0`` (or an empty buffer) gives the
    uniform distribution; larger values push harder towards under-represented classes.
    """
    k = class_counts.numel()
    total = class_counts.sum()
    if strength <= 0 or total <= 0:
        return torch.full((k,), 1.0 / k, device=class_counts.device)
    share = class_counts.float() / total
    weights = (share + 1.0 / k).pow(-strength)
    return weights / weights.sum()


def draw_targets(probs: torch.Tensor, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Draw ``n`` target classes: a stratified draw (rounded expected counts, rest at random)."""
    expected = probs.cpu() * n
    counts = expected.floor().long()
    rest = n - int(counts.sum())
    if rest > 0:
        extra = torch.multinomial(expected - counts, rest, replacement=False, generator=generator)
        counts[extra] += 1
    targets = torch.repeat_interleave(torch.arange(probs.numel()), counts)
    return targets[torch.randperm(n, generator=generator)].to(probs.device)
