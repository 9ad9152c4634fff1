"""Run outputs: figures, per-round logs, memory readings."""

from ssdkd_env.reporting.plots import (
    denormalize,
    read_accuracy_curve,
    sample_confidence,
    save_curves,
    save_sample_diagnostics,
    save_sample_grid,
    save_segmentation_grid,
    save_time_to_accuracy,
)
from ssdkd_env.reporting.runlog import RunLog, peak_memory_mb

__all__ = [
    "RunLog",
    "denormalize",
    "peak_memory_mb",
    "read_accuracy_curve",
    "sample_confidence",
    "save_curves",
    "save_sample_diagnostics",
    "save_sample_grid",
    "save_segmentation_grid",
    "save_time_to_accuracy",
]
