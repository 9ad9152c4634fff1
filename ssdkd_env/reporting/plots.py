"""PNG figures: sample grids and per-round curves.

Figures are drawn with matplotlib's object-oriented API (``Figure`` and ``savefig``), never
``pyplot``: importing this module selects no backend and changes no global matplotlib state.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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


GRID_MIN_TILE = 64  # a tile's shorter side in pixels at least: an 8x8 digit is drawn at 8x (nearest)
GRID_MAX_WIDTH = 1600  # pixels of tiles per row at most: large images get fewer columns
GRID_MAX_ROWS = 20


@dataclass
class SampleGrid:
    """A labelled sample grid before rendering: the RGB ``canvas`` in [0, 1] (white where nothing is
    drawn), its ``texts`` as (x, y, text, matplotlib text style) in canvas pixels, and per row the
    class and the indices of the samples drawn in it."""

    canvas: np.ndarray
    texts: list[tuple[float, float, str, dict[str, object]]]
    rows: list[tuple[int, list[int]]]
    tile: tuple[int, int]  # a tile's height and width in canvas pixels


def sample_grid(
    images: torch.Tensor,
    classes: torch.Tensor,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    per_class: int = 10,
    confidence: torch.Tensor | None = None,
    title: str | None = None,
) -> SampleGrid:
    """Lay samples out one labelled row per (teacher-predicted) class.

    Each row holds up to ``per_class`` samples of its class, the most confident first when the
    teacher's ``confidence`` (one value per sample) is given, each captioned with it. Tiles are
    upscaled by an integer factor (nearest neighbour) to at least :data:`GRID_MIN_TILE` pixels;
    only real samples are drawn, so a class with fewer samples has a shorter row, and a class
    without any says so. With more than 20 classes, the 20 with most samples are shown."""
    pixels = denormalize(images.float(), mean, std).cpu()
    height, width = pixels.shape[2:]
    scale = max(1, math.ceil(GRID_MIN_TILE / min(height, width)))
    tile_h, tile_w = height * scale, width * scale
    per_class = max(1, min(per_class, GRID_MAX_WIDTH // tile_w))
    classes = classes.flatten().cpu().long()
    counts = torch.bincount(classes[(classes >= 0) & (classes < num_classes)], minlength=num_classes)
    if num_classes <= GRID_MAX_ROWS:
        shown = list(range(num_classes))
    else:
        shown = sorted(torch.argsort(counts, descending=True, stable=True)[:GRID_MAX_ROWS].tolist())
    conf = None if confidence is None else confidence.detach().flatten().float().cpu()
    gap, label_w, caption_h, title_h = 6, 90, 16 if conf is not None else 0, 44
    row_h = tile_h + caption_h + gap
    canvas = np.ones((title_h + len(shown) * row_h + gap, max(640, label_w + per_class * (tile_w + gap) + gap), 3))
    texts: list[tuple[float, float, str, dict[str, object]]] = []
    rows: list[tuple[int, list[int]]] = []
    for r, cls in enumerate(shown):
        top, count = title_h + r * row_h, int(counts[cls])
        members = torch.nonzero(classes == cls).flatten()
        if conf is not None:
            members = members[torch.argsort(conf[members], descending=True, stable=True)]
        drawn = members[:per_class].tolist()
        rows.append((cls, drawn))
        centre = top + tile_h / 2
        texts.append((label_w - 10, centre - 8, f"class {cls}", {"fontsize": 10, "ha": "right", "weight": "bold"}))
        texts.append(
            (label_w - 10, centre + 8, f"{count} sample{'' if count == 1 else 's'}", {"fontsize": 8, "ha": "right"})
        )
        if not drawn:
            texts.append((label_w + gap, centre, "none of this class", {"ha": "left", "style": "italic"}))
        for c, index in enumerate(drawn):
            left = label_w + gap + c * (tile_w + gap)
            tile = pixels[index].repeat_interleave(scale, 1).repeat_interleave(scale, 2)
            canvas[top : top + tile_h, left : left + tile_w] = tile.permute(1, 2, 0).expand(-1, -1, 3).numpy()
            if conf is not None:
                texts.append((left + tile_w / 2, top + tile_h + caption_h / 2, f"{conf[index]:.2f}", {"fontsize": 8}))
    header = [title or "samples by the teacher's predicted class"]
    if conf is not None:
        header.append("under each tile: the teacher's confidence (mean max-softmax), the most confident first")
    if num_classes > GRID_MAX_ROWS:
        header[-1] += f"; the {len(shown)} of {num_classes} classes with most samples"
    for i, text in enumerate(header):
        texts.append((gap, 12 + 16 * i, text, {"fontsize": 10 if i == 0 else 8, "ha": "left"}))
    return SampleGrid(canvas, texts, rows, (tile_h, tile_w))


def save_sample_grid(
    path: Path,
    images: torch.Tensor,
    classes: torch.Tensor,
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    per_class: int = 10,
    confidence: torch.Tensor | None = None,
    title: str | None = None,
) -> None:
    """Write :func:`sample_grid` as a PNG, one canvas pixel to one image pixel."""
    grid = sample_grid(images, classes, num_classes, mean, std, per_class, confidence, title)
    dpi = 100
    fig = Figure(figsize=(grid.canvas.shape[1] / dpi, grid.canvas.shape[0] / dpi), dpi=dpi)
    ax = fig.add_axes((0.0, 0.0, 1.0, 1.0))
    ax.imshow(grid.canvas, interpolation="nearest", vmin=0.0, vmax=1.0)
    for x, y, text, style in grid.texts:
        ax.text(x, y, text, va="center", **{"ha": "center", **style})  # type: ignore[arg-type]
    ax.set_axis_off()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)


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
    ylabel: str = "",
) -> None:
    """Line plot of named (x, y) series (``ylim=None``: automatic y range)."""
    fig = Figure(figsize=(6.4, 4.0), dpi=110)
    ax = fig.add_subplot()
    for name, (xs, ys) in series.items():
        ax.plot(xs, ys, label=name, marker="." if len(xs) < 40 else None)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
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


def rolling_mean_band(values: Sequence[float], window: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rolling mean of ``values`` over every full window of ``window`` consecutive points (the
    window ending at point ``window``, then each later one) and the 95% CI of each window's mean
    (Student t; zero width for a window of one point)."""
    from scipy.stats import t as student_t

    data = np.asarray(values, dtype=float)
    if window < 1 or len(data) < window:
        return np.empty(0), np.empty(0), np.empty(0)
    windows = np.lib.stride_tricks.sliding_window_view(data, window)
    mean = windows.mean(axis=1)
    half = np.zeros_like(mean)
    if window > 1:
        half = student_t.ppf(0.975, window - 1) * windows.std(axis=1, ddof=1) / math.sqrt(window)
    return mean, mean - half, mean + half


def save_learning_curves(
    path: Path,
    runs: Mapping[str, Mapping[str, Sequence[float]]],
    title: str,
    window: int,
    references: Mapping[str, Mapping[str, float]] | None = None,
) -> None:
    """One panel per measure (the keys of each run's mapping), one colour per run (a training
    environment or seed): its episodes as dots, the rolling mean of each full window of ``window``
    episodes as a line (drawn at the window's last episode), and the 95% CI of that mean as a band.
    ``references`` draws labelled horizontal lines (for example a baseline's evaluation mean) per measure."""
    measures = list(dict.fromkeys(m for run in runs.values() for m in run))
    fig = Figure(figsize=(6.4 * len(measures), 4.2), dpi=110)
    axes = fig.subplots(1, len(measures), squeeze=False)[0]
    for ax, measure in zip(axes, measures, strict=True):
        for colour, (label, run) in enumerate(runs.items()):
            values = run.get(measure)
            if not values:
                continue
            ax.scatter(np.arange(1, len(values) + 1), values, s=8, color=f"C{colour}", alpha=0.35)
            mean, low, high = rolling_mean_band(values, min(window, len(values)))
            x = np.arange(len(values) - len(mean) + 1, len(values) + 1)  # each window at its last episode
            ax.plot(x, mean, color=f"C{colour}", label=f"{label}: rolling mean of {min(window, len(values))}")
            ax.fill_between(x, low, high, color=f"C{colour}", alpha=0.2)
        for style, (label, levels) in enumerate((references or {}).items()):
            if measure in levels:
                ax.axhline(levels[measure], color="k", linestyle=("--", ":", "-.")[style % 3], linewidth=1, label=label)
        ax.set_xlabel("training episode (of each environment)")
        ax.set_ylabel(measure)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower right")
    fig.suptitle(f"{title}\ndots: episodes; bands: 95% CI of the rolling mean", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
