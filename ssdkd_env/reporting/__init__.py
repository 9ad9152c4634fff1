"""Run outputs: figures, per-round logs, memory readings."""

from ssdkd_env.reporting.plots import (
    SampleGrid,
    denormalize,
    read_accuracy_curve,
    rolling_mean_band,
    sample_confidence,
    sample_grid,
    save_curves,
    save_learning_curves,
    save_sample_diagnostics,
    save_sample_grid,
    save_segmentation_grid,
    save_time_to_accuracy,
)
from ssdkd_env.reporting.runlog import RunLog, peak_memory_mb

__all__ = [
    "RunLog",
    "SampleGrid",
    "denormalize",
    "peak_memory_mb",
    "read_accuracy_curve",
    "rolling_mean_band",
    "sample_confidence",
    "sample_grid",
    "save_curves",
    "save_learning_curves",
    "save_sample_diagnostics",
    "save_sample_grid",
    "save_segmentation_grid",
    "save_time_to_accuracy",
]
