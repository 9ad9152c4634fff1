"""Condensed samples: the data owner's few images per class, and the file that carries them.

Distribution matching (Zhao & Bilen, "Dataset Condensation with Distribution Matching", WACV
2023): K synthetic images per class start as K random real images of that class and are
optimised so that, under a freshly drawn, randomly initialised ConvNet embedding at every
iteration, their mean embedding per class matches the mean embedding of a real batch of the
same class. The pixels are optimised with Adam and a cosine-decayed learning rate (the paper
uses SGD for 20,000 iterations; Adam gets most of the way in a few hundred, which a CPU can
afford). :func:`pick_real` instead takes K random real images per class (the few-shot case).

A condensed file (``torch.save`` of a dict) holds ``images`` (float32 ``[N, C, H, W]``,
normalised with the task's mean and std, as the engine's memories hold images), ``labels``
(int64 ``[N]``), ``task``, ``per_class``, ``method`` (``"distribution-matching"`` or ``"real"``)
and ``loss`` (the distribution-matching loss of the images, measured by :func:`evaluation_loss`).
Condensed-sample guided model inversion (``csmi``) reads it with :func:`load_condensed`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn as nn
from tqdm import tqdm

from ssdkd_env.common.images import normalize_uint8
from ssdkd_env.common.io import load_data_file, save_torch
from ssdkd_env.errors import UserError
from ssdkd_env.models.init import seeded
from ssdkd_env.tasks import LabeledImages, TaskSpec

EVAL_NETS = 10  # random embeddings that measure a condensed set's final loss
EVAL_WIDTH = 128  # their channels (DM's ConvNet width), whatever width the optimisation used
EVAL_BATCH = 256  # real images per class in each of their batches
EVAL_SEED_OFFSET = 104729  # the final measure draws from its own stream, whatever the steps before it
FILE_KEYS = ("images", "labels", "task", "per_class", "method", "loss")


@dataclass
class CondenseRun:
    """Inputs of one condensation: K images per class of ``task``'s training split."""

    task: TaskSpec
    per_class: int
    steps: int = 300  # distribution-matching iterations (one random embedding each)
    lr: float = 0.05  # Adam's initial learning rate on the normalised pixels (cosine decay to 0)
    batch_real: int = 64  # real images per class in each iteration's batch
    width: int = 128  # channels of the random ConvNet embeddings
    seed: int = 0
    device: torch.device = torch.device("cpu")
    progress: bool = True


@dataclass
class CondensedSet:
    """K images per class (normalised float32), their labels and their distribution-matching loss."""

    images: torch.Tensor
    labels: torch.Tensor
    task: str
    per_class: int
    method: str
    loss: float

    def save(self, path: Path) -> None:
        """Write the condensed file (atomically)."""
        save_torch(path, {key: getattr(self, key) for key in FILE_KEYS})


def embedding_net(in_channels: int, side: int, width: int, generator: torch.Generator) -> nn.Module:
    """A randomly initialised ConvNet embedding (DM's ConvNet without its classifier): blocks of
    conv3x3, instance norm, ReLU and 2x2 average pooling, flattened. Three blocks for 32x32 inputs,
    as DM; fewer for smaller ones, so that the last map stays at least 4x4 (instance norm over
    fewer positions leaves the features little to say)."""
    depth = max(1, min(3, side.bit_length() - 3))

    def build() -> nn.Module:
        layers: list[nn.Module] = []
        channels = in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.GroupNorm(width, width), nn.ReLU(), nn.AvgPool2d(2)]
            channels = width
        return nn.Sequential(*layers, nn.Flatten())

    return seeded(build, generator).requires_grad_(False)


def class_means(embeddings: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean embedding per class ``[num_classes, D]`` (zero for a class without samples)."""
    sums = torch.zeros(num_classes, embeddings.shape[1], device=embeddings.device).index_add_(0, labels, embeddings)
    counts = torch.bincount(labels, minlength=num_classes).clamp_min(1)
    return sums / counts[:, None]


def dm_loss(
    net: nn.Module,
    syn_x: torch.Tensor,
    syn_y: torch.Tensor,
    real_x: torch.Tensor,
    real_y: torch.Tensor,
    num_classes: int,
) -> torch.Tensor:
    """Sum over classes of the squared distance between the real and synthetic mean embeddings
    under ``net`` (DM's objective; ``real_x`` normalised, without gradient)."""
    with torch.no_grad():
        real = class_means(net(real_x), real_y, num_classes)
    return (real - class_means(net(syn_x), syn_y, num_classes)).pow(2).sum()


class RealBatches:
    """The task's real training images by class, and random per-class batches of them."""

    def __init__(self, real: LabeledImages, task: TaskSpec, device: torch.device) -> None:
        self.task, self.device = task, device
        self.images = real.images.to(device)
        self.labels = real.labels.to(device)
        self.by_class = [torch.nonzero(real.labels == c).flatten() for c in range(task.num_classes)]

    def check_per_class(self, per_class: int) -> None:
        """A one-line error when some class has fewer than ``per_class`` images."""
        fewest = min(range(self.task.num_classes), key=lambda c: self.by_class[c].numel())
        if self.by_class[fewest].numel() < per_class:
            raise UserError(
                f"--per-class {per_class}: class {fewest} of task '{self.task.name}' has only "
                f"{self.by_class[fewest].numel()} training images"
            )

    def draw(self, per_class: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Up to ``per_class`` random images of every class (normalised) and their labels."""
        index = torch.cat([idx[torch.randperm(idx.numel(), generator=generator)[:per_class]] for idx in self.by_class])
        index = index.to(self.device)
        return normalize_uint8(self.images[index], self.task.mean, self.task.std), self.labels[index]


def evaluation_loss(images: torch.Tensor, labels: torch.Tensor, batches: RealBatches, seed: int) -> float:
    """The distribution-matching loss of ``images``, averaged over ``EVAL_NETS`` random embeddings
    and real batches drawn from a stream of ``seed`` of their own (the same for any set of images)."""
    task = batches.task
    generator = torch.Generator().manual_seed(seed + EVAL_SEED_OFFSET)
    channels, side = task.input_shape[0], min(task.input_shape[1:])
    total = 0.0
    with torch.no_grad():
        for _ in range(EVAL_NETS):
            net = embedding_net(channels, side, EVAL_WIDTH, generator).to(batches.device)
            real_x, real_y = batches.draw(EVAL_BATCH, generator)
            total += float(dm_loss(net, images, labels, real_x, real_y, task.num_classes))
    return total / EVAL_NETS


def pick_real(real: LabeledImages, run: CondenseRun) -> CondensedSet:
    """K random real training images per class (the few-shot case), in the condensed format."""
    batches = RealBatches(real, run.task, run.device)
    batches.check_per_class(run.per_class)
    images, labels = batches.draw(run.per_class, torch.Generator().manual_seed(run.seed))
    loss = evaluation_loss(images, labels, batches, run.seed)
    return CondensedSet(images.cpu(), labels.cpu(), run.task.name, run.per_class, "real", loss)


def condense(real: LabeledImages, run: CondenseRun) -> CondensedSet:
    """K images per class by distribution matching, initialised from K random real images per class.

    Every iteration draws a fresh random embedding and a real batch of ``batch_real`` images per
    class from the run's seeded generator; the pixels stay within the valid image range.
    """
    task, device = run.task, run.device
    batches = RealBatches(real, task, device)
    batches.check_per_class(run.per_class)
    generator = torch.Generator().manual_seed(run.seed)
    init, labels = batches.draw(run.per_class, generator)
    images = init.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([images], lr=run.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, run.steps)
    mean = torch.tensor(task.mean, device=device).view(1, -1, 1, 1)
    std = torch.tensor(task.std, device=device).view(1, -1, 1, 1)
    low, high = -mean / std, (1 - mean) / std  # pixel values 0 and 1, normalised
    side = min(task.input_shape[1:])
    bar = tqdm(range(run.steps), desc=f"condense {task.name} K={run.per_class}", disable=not run.progress)
    for _ in bar:
        net = embedding_net(task.input_shape[0], side, run.width, generator).to(device)
        real_x, real_y = batches.draw(run.batch_real, generator)
        loss = dm_loss(net, images, labels, real_x, real_y, task.num_classes)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        with torch.no_grad():
            images.copy_(torch.maximum(torch.minimum(images, high), low))
        bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    final = images.detach()
    loss_value = evaluation_loss(final, labels, batches, run.seed)
    return CondensedSet(final.cpu(), labels.cpu(), task.name, run.per_class, "distribution-matching", loss_value)


def load_condensed(path: str | Path | None, task: TaskSpec) -> CondensedSet:
    """Read a condensed file for ``task``; a one-line :class:`UserError` when it is missing, is not
    a condensed file, or does not match the task's name, image shape or classes."""
    if path is None:
        raise UserError(
            "this method needs condensed samples: make them with train/condense.py and set condensed_path=FILE"
        )
    file = Path(path)
    if not file.is_file():
        raise UserError(f"condensed_path {file} does not exist (make it with train/condense.py)")
    data = load_data_file(file, "condensed-sample file", "make it again with train/condense.py")
    missing = [key for key in FILE_KEYS if not isinstance(data, dict) or key not in data]
    if missing:
        raise UserError(f"condensed_path {file} is not a condensed-sample file (missing {', '.join(missing)})")
    images, labels = data["images"], data["labels"]
    if data["task"] != task.name:
        raise UserError(
            f"condensed_path {file} holds samples of task '{data['task']}', but this run's task is '{task.name}'"
        )
    if not (isinstance(images, torch.Tensor) and images.is_floating_point() and images.shape[1:] == task.input_shape):
        shape = tuple(images.shape[1:]) if isinstance(images, torch.Tensor) else type(images).__name__
        raise UserError(
            f"condensed_path {file} holds images of shape {shape}, but task '{task.name}' takes float images of "
            f"shape {task.input_shape}"
        )
    if not (isinstance(labels, torch.Tensor) and labels.shape == (images.shape[0],)):
        raise UserError(f"condensed_path {file} needs one label per image")
    if images.shape[0] == 0 or int(labels.min()) < 0 or int(labels.max()) >= task.num_classes:
        raise UserError(f"condensed_path {file} has labels outside task '{task.name}''s {task.num_classes} classes")
    return CondensedSet(
        images.float(), labels.long(), task.name, int(data["per_class"]), str(data["method"]), float(data["loss"])
    )
