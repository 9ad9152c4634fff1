"""Knowledge distillation of the student on replayed synthetic samples, and its data-free probe."""

from ssdkd_env.distillation.distiller import Distiller, DistillerConfig, StepResult
from ssdkd_env.distillation.probe import ProbeMetrics, ProbeSet, build_probe

__all__ = ["Distiller", "DistillerConfig", "ProbeMetrics", "ProbeSet", "StepResult", "build_probe"]
