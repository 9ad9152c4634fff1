"""Run outputs: figures, per-round logs, memory readings."""

from ssdkd_env.reporting.plots import denormalize, save_curves, save_sample_grid
from ssdkd_env.reporting.runlog import RunLog, peak_memory_mb

__all__ = ["RunLog", "denormalize", "peak_memory_mb", "save_curves", "save_sample_grid"]
