"""Aggregate statistics of Agarwal et al. 2021 ("Deep Reinforcement Learning at the Edge of the
Statistical Precipice", NeurIPS), computed with their library ``rliable``.

Scores are plain matrices of shape (runs, tasks): ``scores[n, m]`` is run ``n`` (a training seed)
on task ``m`` (an evaluation instance). Confidence intervals are 95% percentile intervals of a
stratified bootstrap: runs are resampled with replacement within each task, tasks are kept.

``rliable`` is an optional extra (``pip install -e ".[rl]"``) and is imported only when a function
here runs. It draws its resampling indices from NumPy's global generator (its ``random_state``
argument does not reach them), so each estimate seeds that generator with ``seed`` and puts its
state back afterwards: the same scores, ``reps`` and ``seed`` give the same interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ssdkd_env.errors import UserError

# 2,000 resamples: 0.2 s for the IQM of a 5x10 matrix, where rliable's default of 50,000 takes 5.5 s;
# a probability of improvement costs one Mann-Whitney test per task and resample (10 s for 5x10)
DEFAULT_REPS = 2000
DEFAULT_SEED = 0


@dataclass(frozen=True)
class Interval:
    """A point estimate and its 95% stratified bootstrap confidence interval."""

    value: float
    ci95_low: float
    ci95_high: float

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "ci95_low": self.ci95_low, "ci95_high": self.ci95_high}


def rliable() -> tuple[ModuleType, ModuleType]:
    """``rliable.library`` and ``rliable.metrics``, or a one-line error naming the extra to install."""
    try:
        from rliable import library, metrics
    except ImportError as exc:
        raise UserError(f'the RL reporting protocol needs rliable ({exc}): pip install -e ".[rl]"') from None
    return library, metrics


def iqm(scores: np.ndarray, reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED) -> Interval:
    """Interquartile mean (the mean of the middle 50% of all runs x tasks scores; Agarwal et al.
    2021, sec. 4) with its stratified bootstrap CI."""
    library, metrics = rliable()
    matrix = score_matrix(scores)
    return bootstrap(library, {"iqm": matrix}, lambda s: np.array([metrics.aggregate_iqm(s)]), reps, seed)


def probability_of_improvement(
    x: np.ndarray, y: np.ndarray, reps: int = DEFAULT_REPS, seed: int = DEFAULT_SEED
) -> Interval:
    """P(X > Y): per task, the chance that a run of X beats a run of Y (the Mann-Whitney U over the
    product of the two counts of runs, a tie counting 1/2), averaged over tasks (Agarwal et al.
    2021, sec. 4), with its CI from resampling the runs of X and of Y independently."""
    library, metrics = rliable()
    mx, my = score_matrix(x), score_matrix(y)
    if mx.shape[1] != my.shape[1]:
        raise ValueError(f"X has {mx.shape[1]} tasks and Y {my.shape[1]}: both need the same tasks")
    return bootstrap(library, {"poi": [mx, my]}, metrics.probability_of_improvement, reps, seed)


def score_matrix(scores: np.ndarray) -> np.ndarray:
    """``scores`` as a float matrix of runs x tasks, refused unless it is 2-D, non-empty and finite."""
    matrix = np.asarray(scores, dtype=float)
    if matrix.ndim != 2 or matrix.size == 0 or not np.isfinite(matrix).all():
        raise ValueError(f"scores must be a non-empty finite runs x tasks matrix, got shape {matrix.shape}")
    return matrix


def bootstrap(
    library: ModuleType, score_dict: dict[str, Any], func: Callable[..., Any], reps: int, seed: int
) -> Interval:
    """``library.get_interval_estimates`` (rliable's) of the one entry of ``score_dict``, seeded."""
    if reps < 1:
        raise ValueError(f"reps must be at least 1, got {reps}")
    with seeded_global_numpy(seed):
        points, intervals = library.get_interval_estimates(score_dict, func, reps=reps)
    (key,) = score_dict
    low, high = np.asarray(intervals[key], dtype=float).ravel()
    return Interval(float(np.asarray(points[key]).ravel()[0]), float(low), float(high))


@contextmanager
def seeded_global_numpy(seed: int) -> Iterator[None]:
    """Seed NumPy's global generator for the duration, then restore its previous state."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)
