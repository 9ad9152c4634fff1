"""Per-round metrics to CSV and TensorBoard, and process memory readings."""

from __future__ import annotations

import csv
import resource
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter


def peak_memory_mb(device: torch.device) -> dict[str, float]:
    """Peak resident memory of this process, and peak CUDA allocation when on a GPU (MiB)."""
    out = {"peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if device.type == "cuda":
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out


class RunLog:
    """Appends one row per round to ``metrics.csv`` and mirrors numbers to TensorBoard."""

    def __init__(self, out_dir: Path, prefix: str, resume: bool = False) -> None:
        self.path = out_dir / "metrics.csv"
        self.rows: list[dict[str, Any]] = []
        if resume and self.path.is_file():
            with open(self.path, newline="") as fh:
                self.rows = [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(fh)]
        self.prefix = prefix
        self.writer = SummaryWriter(str(out_dir / "tb"))

    def truncate(self, rounds: int) -> None:
        """Forget rows after ``rounds`` (work done after the last checkpoint is redone on resume)."""
        self.rows = [r for r in self.rows if int(r["round"]) <= rounds]
        self._rewrite()

    def append(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        step = int(row["round"])
        for key, value in row.items():
            if key != "round" and isinstance(value, int | float) and value is not None:
                self.writer.add_scalar(f"{self.prefix}/{key}", value, step)
        self._rewrite()

    def _rewrite(self) -> None:
        if not self.rows:
            return
        fields = list(self.rows[-1])
        tmp = self.path.with_suffix(".csv.tmp")
        with open(tmp, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
            writer.writeheader()
            writer.writerows(self.rows)
        tmp.replace(self.path)

    def column(self, key: str) -> tuple[list[float], list[float]]:
        """(round, value) pairs where ``key`` has a value."""
        pts = [(float(r["round"]), float(r[key])) for r in self.rows if r.get(key) not in (None, "")]
        return [p[0] for p in pts], [p[1] for p in pts]

    def close(self) -> None:
        self.writer.close()


def _parse(value: str) -> Any:
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        try:
            return float(value)
        except ValueError:
            return value
