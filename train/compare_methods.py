#!/usr/bin/env python
"""Run several methods over several seeds on one task and tabulate the results.

    python train/compare_methods.py --task digits --methods ssdkd,fast --seeds 0,1,2

Every run is a full ``train/distill.py`` run (same engine, same outputs) in OUT/<method>-s<seed>/;
OUT/results.md and OUT/results.csv hold mean ± std per method.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
from pathlib import Path
from typing import Any

from ssdkd_env.common.cli import run_cli
from ssdkd_env.common.device import DEVICE_CHOICES, resolve_device
from ssdkd_env.common.io import write_json
from ssdkd_env.engine import METHODS, make_config, replace_nested
from ssdkd_env.engine.config import parse_override
from ssdkd_env.engine.run import RunSpec, run_distillation
from ssdkd_env.errors import UserError, unknown_name
from ssdkd_env.tasks import get_task, list_tasks
from ssdkd_env.teachers import obtain_teacher, test_split_if_available

COLUMNS = ("student_acc", "best_student_acc", "probe_agreement", "wall_time_s", "synthetic_samples", "peak_rss_mb")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--task", default="digits", help=f"one of: {', '.join(list_tasks())}")
    p.add_argument("--methods", default="ssdkd,fast", help=f"comma-separated, from: {', '.join(METHODS)}")
    p.add_argument("--seeds", default="0,1,2", help="comma-separated seeds")
    p.add_argument("--teacher", default=None, help="teacher checkpoint (default: the cached teacher)")
    p.add_argument("--data-root", default=None, help="task data folder")
    p.add_argument("--download", action="store_true", help="download the task's data if missing")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="config override for every run")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}")
    p.add_argument("--out", type=Path, default=Path("runs/compare"), help="output folder")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    return p.parse_args(argv)


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    task = get_task(args.task)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            raise unknown_name("method", m, METHODS)
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds expects comma-separated integers, got '{args.seeds}'") from None
    overrides = dict(parse_override(s) for s in args.set)
    device = resolve_device(args.device)
    teacher, card = obtain_teacher(task, args.teacher, args.data_root, args.download, device, not args.no_progress)
    test_set = test_split_if_available(task, args.data_root, args.download)
    results: dict[str, list[dict[str, Any]]] = {}
    for method in methods:
        config = make_config(task.name, method)
        config = replace_nested(config, **overrides) if overrides else config
        for seed in seeds:
            spec = RunSpec(
                task,
                teacher,
                card,
                device,
                seed,
                args.out / f"{method}-s{seed}",
                test_set,
                progress=not args.no_progress,
            )
            summary = run_distillation(config, spec)
            results.setdefault(method, []).append(summary)
            print(f"{method} seed {seed}: student_acc={summary['student_acc']} time={summary['wall_time_s']}s")
    write_tables(args.out, task.name, card.test_acc, results)
    return 0


def _cell(row: dict[str, Any], col: str, scale: float = 1.0, digits: int = 2) -> str:
    if f"{col}_mean" not in row:
        return "n/a"
    return f"{row[f'{col}_mean'] * scale:.{digits}f} ± {row[f'{col}_std'] * scale:.{digits}f}"


def write_tables(out: Path, task: str, teacher_acc: float | None, results: dict[str, list[dict[str, Any]]]) -> None:
    rows = []
    for method, runs in results.items():
        row: dict[str, Any] = {"method": method, "runs": len(runs)}
        for col in COLUMNS:
            values = [float(r[col]) for r in runs if r.get(col) is not None]
            if values:
                row[f"{col}_mean"], row[f"{col}_std"] = mean_std(values)
        rows.append(row)
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=sorted({k for r in rows for k in r}, key=lambda k: (k != "method", k)))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"Task `{task}`, teacher accuracy {teacher_acc}; mean ± std over seeds.",
        "",
        "| method | runs | student acc (%) | best acc (%) | probe agreement | wall time (s) | synthetic samples "
        "| peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['runs']} | {_cell(r, 'student_acc', 100)} | {_cell(r, 'best_student_acc', 100)} | "
            f"{_cell(r, 'probe_agreement', 1, 3)} | {_cell(r, 'wall_time_s', 1, 1)} | "
            f"{_cell(r, 'synthetic_samples', 1, 0)} | {_cell(r, 'peak_rss_mb', 1, 0)} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    write_json(out / "results.json", {"task": task, "teacher_acc": teacher_acc, "runs": results})


if __name__ == "__main__":
    sys.exit(run_cli(main))
