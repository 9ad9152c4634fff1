"""Task kinds: what a model's output means, so the rest of the engine need not assume ``[N, K]`` logits.

A task kind turns teacher and student outputs into the quantities the engine uses: per-sample
reductions of element-wise discrepancies, agreement, a class histogram of a set of samples, one
representative class per sample (for sample grids and class-aware eviction), the inversion's
class loss for drawn target classes, and the real-data score of a model. Classification reads
logits ``[N, K]``; segmentation reads per-pixel logits ``[N, K, H, W]``, where a sample's classes
are counted by their share of its pixels.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn as nn
import torch.nn.functional as F

from ssdkd_env.common.images import predict_logits
from ssdkd_env.losses import focal_cross_entropy
from ssdkd_env.registry import Registry
from ssdkd_env.tasks.data import IGNORE_INDEX


class TaskKind(ABC):
    """How outputs of shape ``[N, K, ...]`` (class dimension 1) are read."""

    name: str
    metric: str  # the name of the primary real-data score (``score``'s first key)
    dense: bool = False  # outputs per pixel (models must be registered with ``dense=True``)

    def per_sample(self, values: torch.Tensor) -> torch.Tensor:
        """Reduce element-wise values ``[N, ...]`` (class dimension already reduced) to ``[N]``."""
        if values.dim() == 1:
            return values
        return values.reshape(values.shape[0], -1).mean(1)

    def output_shape(self, num_classes: int, input_shape: tuple[int, int, int]) -> tuple[int, ...]:
        """The teacher's output per sample for inputs of ``input_shape`` (C, H, W)."""
        return (num_classes,)

    @abstractmethod
    def agreement(self, student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
        """Per-sample share ``[N]`` of predictions on which student and teacher agree."""

    @abstractmethod
    def class_histogram(self, teacher_out: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Counts ``[K]`` of the teacher's predicted classes over a set of samples (in samples:
        a dense sample adds its pixel shares, which sum to one)."""

    @abstractmethod
    def class_mean(self, teacher_out: torch.Tensor, values: torch.Tensor, num_classes: int) -> torch.Tensor:
        """Mean ``[K]`` of per-sample ``values`` ``[N]`` over the samples of each predicted class
        (dense samples weighted by their pixel share of the class; 0 for an empty class)."""

    def class_statistics(
        self, teacher_out: torch.Tensor, values: torch.Tensor, num_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``class_histogram`` and ``class_mean`` together, reading the outputs once where a
        kind can (dense outputs)."""
        return self.class_histogram(teacher_out, num_classes), self.class_mean(teacher_out, values, num_classes)

    @abstractmethod
    def predicted_classes(self, teacher_out: torch.Tensor) -> torch.Tensor:
        """One representative class ``[N]`` per sample."""

    @abstractmethod
    def target_loss(self, teacher_out: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
        """The inversion's class loss towards target classes ``[N]`` (one per sample, drawn by
        SSD-KD's diversity), focal-weighted with exponent ``gamma`` (its difficulty)."""

    @abstractmethod
    def score(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        """Real-data scores of ``model`` on normalised images ``x``; the first is ``metric``."""

    def confidence(self, teacher_out: torch.Tensor) -> torch.Tensor:
        """Per-sample teacher confidence ``[N]``: mean max-softmax over the sample's predictions."""
        return self.per_sample(teacher_out.softmax(1).amax(1))


TASK_KINDS: Registry[TaskKind] = Registry("task kind")


class Classification(TaskKind):
    """One class per image: outputs are logits ``[N, K]``."""

    name = "classification"
    metric = "accuracy"

    def agreement(self, student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
        return (student_out.argmax(1) == teacher_out.argmax(1)).float()

    def class_histogram(self, teacher_out: torch.Tensor, num_classes: int) -> torch.Tensor:
        return torch.bincount(teacher_out.argmax(1), minlength=num_classes)

    def class_mean(self, teacher_out: torch.Tensor, values: torch.Tensor, num_classes: int) -> torch.Tensor:
        classes = teacher_out.argmax(1)
        counts = torch.bincount(classes, minlength=num_classes).float()
        sums = torch.zeros(num_classes, device=values.device).index_add_(0, classes, values.float())
        return sums / counts.clamp_min(1)

    def predicted_classes(self, teacher_out: torch.Tensor) -> torch.Tensor:
        return teacher_out.argmax(1)

    def target_loss(self, teacher_out: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
        """Focal cross-entropy to the targets (SSD-KD's phi; plain CE at ``gamma = 0``)."""
        return focal_cross_entropy(teacher_out, targets, gamma)

    def score(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        pred = predict_logits(model, x).argmax(1)
        return {"accuracy": float((pred == labels.to(pred.device)).float().mean())}


def pixel_class_shares(outputs: torch.Tensor) -> torch.Tensor:
    """Share ``[N, K]`` of each sample's pixels predicted as each class (rows sum to one)."""
    n, k = outputs.shape[:2]
    pred = outputs.argmax(1).reshape(n, math.prod(outputs.shape[2:]))
    offsets = torch.arange(n, device=outputs.device)[:, None] * k
    counts = torch.bincount((pred + offsets).flatten(), minlength=n * k).view(n, k)
    return counts.float() / pred.shape[1]


def confusion_matrix(pred: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """``[K, K]`` counts of (label, prediction) pairs over the labelled pixels."""
    valid = labels != IGNORE_INDEX
    index = labels[valid] * num_classes + pred[valid]
    return torch.bincount(index, minlength=num_classes * num_classes).view(num_classes, num_classes)


def segmentation_scores(confusion: torch.Tensor) -> dict[str, float]:
    """mIoU (mean over the classes present in labels or predictions) and pixel accuracy."""
    confusion = confusion.double()
    tp = confusion.diag()
    union = confusion.sum(0) + confusion.sum(1) - tp
    present = union > 0
    miou = float((tp[present] / union[present]).mean()) if bool(present.any()) else 0.0
    total = confusion.sum()
    return {"miou": miou, "pixel_acc": float(tp.sum() / total) if total > 0 else 0.0}


class Segmentation(TaskKind):
    """One class per pixel: outputs are logits ``[N, K, H, W]``, labels ``[N, H, W]`` with
    :data:`IGNORE_INDEX` on unlabelled pixels."""

    name = "segmentation"
    metric = "miou"
    dense = True
    target_share = 0.3  # the share of an image the target class should cover (in the teacher's soft prediction)
    eval_batch = 16  # images per forward pass when scoring (dense outputs are large)

    def output_shape(self, num_classes: int, input_shape: tuple[int, int, int]) -> tuple[int, ...]:
        return (num_classes, input_shape[1], input_shape[2])

    def agreement(self, student_out: torch.Tensor, teacher_out: torch.Tensor) -> torch.Tensor:
        return self.per_sample((student_out.argmax(1) == teacher_out.argmax(1)).float())

    def class_histogram(self, teacher_out: torch.Tensor, num_classes: int) -> torch.Tensor:
        return pixel_class_shares(teacher_out).sum(0)

    def class_mean(self, teacher_out: torch.Tensor, values: torch.Tensor, num_classes: int) -> torch.Tensor:
        return self.class_statistics(teacher_out, values, num_classes)[1]

    def class_statistics(
        self, teacher_out: torch.Tensor, values: torch.Tensor, num_classes: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        shares = pixel_class_shares(teacher_out)
        histogram = shares.sum(0)
        return histogram, (shares * values.float()[:, None]).sum(0) / histogram.clamp_min(1e-6)

    def predicted_classes(self, teacher_out: torch.Tensor) -> torch.Tensor:
        """The class covering most of each sample's pixels."""
        return pixel_class_shares(teacher_out).argmax(1)

    def target_loss(self, teacher_out: torch.Tensor, targets: torch.Tensor, gamma: float) -> torch.Tensor:
        """Two terms. *Confidence*: focal cross-entropy of every pixel to the teacher's own
        prediction there (a dense form of the one-hot loss of DAFL, Chen et al. 2019), so
        regions look like some class; ``gamma`` focal-weights it by pixel. *Presence*: the
        image's target class must cover at least ``target_share`` of it in the teacher's soft
        prediction, ``-log(min(mean_px p_T(y|x), s) / s)``; above that share it pulls no more,
        so one class does not take over the whole image."""
        confidence = focal_cross_entropy(teacher_out, teacher_out.detach().argmax(1), gamma)
        probs = F.softmax(teacher_out, dim=1)
        cover = probs.gather(1, targets.view(-1, 1, 1, 1).expand(-1, 1, *probs.shape[2:])).flatten(1).mean(1)
        presence = -(cover.clamp(1e-6, self.target_share) / self.target_share).log().mean()
        return confidence + presence

    @torch.no_grad()
    def score(self, model: nn.Module, x: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        num_classes = 0
        confusion: torch.Tensor | None = None
        for i in range(0, x.shape[0], self.eval_batch):
            out = predict_logits(model, x[i : i + self.eval_batch])
            num_classes = out.shape[1]
            batch = confusion_matrix(out.argmax(1), labels[i : i + self.eval_batch].to(out.device), num_classes)
            confusion = batch if confusion is None else confusion + batch
        if confusion is None:
            return {"miou": 0.0, "pixel_acc": 0.0}
        return segmentation_scores(confusion)


TASK_KINDS.add("classification", Classification())
TASK_KINDS.add("segmentation", Segmentation())
