"""PNG figures: sample grids and per-round curves.

Figures are drawn with matplotlib's object-oriented API (``Figure`` and ``savefig``), never
``pyplot``: importing this module selects no backend and changes no global matplotlib state.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torchvision.utils import save_image


def denormalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Undo per-channel normalisation and clamp to [0, 1]."""
    m = torch.tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.tensor(std, device=images.device).view(1, -1, 1, 1)
    return (images * s + m).clamp(0, 1)


def class_sorted_grid(
    images: torch.Tensor, classes: torch.Tensor, num_classes: int, per_class: int = 10
) -> tuple[torch.Tensor, int]:
    """Up to ``per_class`` images of each class, one row per class (blank where a class is short)."""
    rows = min(num_classes, 20)
    grid = torch.zeros((rows * per_class, *images.shape[1:]), device=images.device)
    order = torch.argsort(classes, stable=True)
    sorted_classes = classes[order]
    counts = torch.bincount(classes, minlength=num_classes)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(len(order), device=images.device) - starts[sorted_classes]
    keep = (rank < per_class) & (sorted_classes < rows)
    grid[sorted_classes[keep] * per_class + rank[keep]] = images[order[keep]]
    return grid, per_class


def save_sample_grid(
    path: Path,
    images: torch.Tensor,
    classes: torch.Tensor,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    per_class: int = 10,
) -> None:
    """Write a PNG of samples, one row per (teacher-predicted) class."""
    grid, nrow = class_sorted_grid(images, classes, num_classes, per_class)
    upscale = max(1, 32 // images.shape[-1])
    pixels = denormalize(grid, mean, std).cpu()
    if upscale > 1:
        pixels = torch.nn.functional.interpolate(pixels, scale_factor=upscale, mode="nearest")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(pixels, str(path), nrow=nrow, padding=2, pad_value=1.0)


def colour_masks(masks: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Class maps ``[N, H, W]`` as RGB images ``[N, 3, H, W]`` in [0, 1] (matplotlib's tab20
    colours; black for an ignored or out-of-range pixel)."""
    from matplotlib import colormaps

    palette = torch.tensor([colormaps["tab20"](i % 20)[:3] for i in range(num_classes)], dtype=torch.float32)
    palette = torch.cat([palette, torch.zeros(1, 3)])  # the last entry: no class
    index = torch.where((masks >= 0) & (masks < num_classes), masks, torch.full_like(masks, num_classes))
    return palette[index.cpu()].permute(0, 3, 1, 2)


def save_segmentation_grid(
    path: Path,
    images: torch.Tensor,
    masks: Mapping[str, torch.Tensor],
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
) -> None:
    """Write a PNG with one row per image: the input, then each named class map ``[N, H, W]``
    (for example the ground truth, the teacher's and the student's predictions) in that order.
    Small images are upscaled (nearest) so that a 32-pixel side shows at least 96 pixels."""
    columns = [denormalize(images.float(), mean, std).cpu()]
    columns += [colour_masks(m.cpu(), num_classes) for m in masks.values()]
    tiles = torch.stack(columns, 1).flatten(0, 1)  # row-major: image, mask, mask, ...
    upscale = max(1, 96 // min(images.shape[-2:]))
    if upscale > 1:
        tiles = torch.nn.functional.interpolate(tiles, scale_factor=upscale, mode="nearest")
    path.parent.mkdir(parents=True, exist_ok=True)
    save_image(tiles, str(path), nrow=len(columns), padding=2, pad_value=1.0)


def save_curves(
    path: Path,
    series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str,
    title: str,
    ylim: tuple[float, float] | None = (0.0, 1.02),
) -> None:
    """Line plot of named (x, y) series (``ylim=None``: automatic y range)."""
    fig = Figure(figsize=(6.4, 4.0), dpi=110)
    ax = fig.add_subplot()
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, label=name, marker="." if len(xs) < 40 else None)
    ax.set_xlabel(xlabel)
    if ylim is not None:
        ax.set_ylim(*ylim)
    _finish(fig, ax, title, path)


def _finish(fig: Figure, ax: Axes, title: str, path: Path) -> None:
    """Grid, title and legend, then write ``fig`` to ``path`` (creating its folder)."""
    ax.grid(alpha=0.3)
    ax.set_title(title)
    ax.legend(loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def sample_confidence(teacher_outputs: torch.Tensor) -> torch.Tensor:
    """The teacher's confidence in each sample, max_c p_T(c | x) (averaged over pixels for dense
    outputs): SSD-KD's measure of a sample's difficulty is one minus it."""
    confidence = torch.softmax(teacher_outputs.float(), dim=1).amax(1)
    return confidence.flatten(1).mean(1) if confidence.dim() > 1 else confidence


def save_sample_diagnostics(
    path: Path, confidence: torch.Tensor, classes: torch.Tensor, num_classes: int, title: str
) -> None:
    """SSD-KD's Figures 2 and 4 for one set of samples: a histogram of the teacher's confidence
    (difficulty) and each class's share of the samples (diversity)."""
    fig = Figure(figsize=(9.6, 3.6), dpi=110)
    left, right = fig.subplots(1, 2)
    left.hist(confidence.detach().cpu().numpy(), bins=20, range=(0.0, 1.0), color="C0")
    left.set_xlabel("teacher confidence max p_T(c|x)")
    left.set_ylabel("samples")
    shares = torch.bincount(classes.flatten().cpu(), minlength=num_classes)[:num_classes].float()
    shares = shares / shares.sum().clamp_min(1)
    right.bar(range(num_classes), shares.numpy(), color="C1")
    right.axhline(1 / num_classes, color="k", linestyle="--", linewidth=1)
    right.set_xlabel("teacher-predicted class")
    right.set_ylabel("share of samples (dashed: uniform)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)


def read_accuracy_curve(metrics_csv: Path) -> tuple[list[float], list[float]]:
    """(wall time in s, test accuracy) of the rounds of a run's ``metrics.csv`` that measured it."""
    times, accs = [], []
    with open(metrics_csv, newline="") as fh:
        for row in csv.DictReader(fh):
            if row.get("test_acc") not in (None, ""):
                times.append(float(row["wall_time_s"]))
                accs.append(float(row["test_acc"]))
    return times, accs


def save_time_to_accuracy(
    path: Path,
    curves: Mapping[str, Sequence[tuple[Sequence[float], Sequence[float]]]],
    title: str,
    ylabel: str = "student test accuracy",
) -> None:
    """Test accuracy (or the task's metric) against wall time (minutes): one colour per method,
    one line per seed."""
    fig = Figure(figsize=(6.4, 4.0), dpi=110)
    ax = fig.add_subplot()
    for colour, (method, runs) in enumerate(curves.items()):
        for i, (times, accs) in enumerate(runs):
            minutes = [t / 60 for t in times]
            ax.plot(minutes, accs, color=f"C{colour}", alpha=0.8, label=method if i == 0 else None)
    ax.set_xlabel("wall time (min)")
    ax.set_ylabel(ylabel)
    _finish(fig, ax, title, path)
