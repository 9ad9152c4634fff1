"""Discrepancy / KD losses between teacher and student outputs, by name.

Each loss returns element-wise values with the class dimension (dim 1) reduced: ``[N]`` for
classification logits, ``[N, H, W]`` for dense outputs; the task kind reduces them per sample.
``scale(T)`` is the factor the distillation loss is multiplied by (``T^2`` for the tempered KL of
Hinton et al., 2015, so gradients keep their size across temperatures).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ssdkd_env.registry import Registry


def per_sample_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(p_T || p_S) at ``temperature``, summed over the class dimension (dim 1)."""
    log_p_s = F.log_softmax(student_logits / temperature, dim=1)
    log_p_t = F.log_softmax(teacher_logits / temperature, dim=1)
    return (log_p_t.exp() * (log_p_t - log_p_s)).sum(1)


def mean_absolute_error(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Mean |z_T - z_S| over the class dimension (DFAD's MAE on logits; ``temperature`` unused)."""
    return (teacher_logits - student_logits).abs().mean(1)


def mean_squared_error(
    teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0
) -> torch.Tensor:
    """Mean (z_T - z_S)^2 over the class dimension (``temperature`` unused)."""
    return (teacher_logits - student_logits).pow(2).mean(1)


def jensen_shannon(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """JS(p_T, p_S) = (KL(p_T || m) + KL(p_S || m)) / 2 with m their average, summed over dim 1
    (natural log: between 0 and log 2). DeepInversion's adaptive term and PRE-DFKD's generator
    seek disagreement by minimising ``1 - JS``."""
    log_t, log_s = F.log_softmax(teacher_logits, dim=1), F.log_softmax(student_logits, dim=1)
    log_m = torch.logaddexp(log_t, log_s) - math.log(2.0)
    return 0.5 * ((log_t.exp() * (log_t - log_m)).sum(1) + (log_s.exp() * (log_s - log_m)).sum(1))


def focal_cross_entropy(logits: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
    """Cross-entropy weighted per sample by ``(1 - p(y|x))^gamma`` (``gamma = 0``: plain CE).

    The weight is detached, so confident samples stop pulling the generator towards even
    more confident, easier images: inversion keeps producing samples the teacher is less sure of.
    """
    ce = F.cross_entropy(logits, targets, reduction="none")
    if gamma <= 0:
        return ce.mean()
    p_true = torch.exp(-ce.detach())
    return ((1 - p_true).pow(gamma) * ce).mean()


Discrepancy = Callable[[torch.Tensor, torch.Tensor, float], torch.Tensor]
"""(teacher outputs, student outputs, temperature) -> element-wise values, class dimension reduced."""


@dataclass(frozen=True)
class KDLoss:
    """A registered discrepancy and the factor the training loss carries at temperature T."""

    name: str
    discrepancy: Discrepancy
    temperature_scaled: bool  # multiply the loss by T^2
    description: str

    def scale(self, temperature: float) -> float:
        return temperature**2 if self.temperature_scaled else 1.0


KD_LOSSES: Registry[KDLoss] = Registry("KD loss")


def register_kd_loss(loss: KDLoss) -> KDLoss:
    return KD_LOSSES.add(loss.name, loss)


register_kd_loss(KDLoss("kl", per_sample_kl, True, "KL(p_T || p_S) at temperature T, loss scaled by T^2 (Hinton)"))
register_kd_loss(KDLoss("l1", mean_absolute_error, False, "mean absolute logit difference (DFAD's MAE)"))
register_kd_loss(KDLoss("mse", mean_squared_error, False, "mean squared logit difference"))
