#!/usr/bin/env python
"""Run several methods over several seeds on one task and tabulate the results.

    python train/compare_methods.py --task digits --methods ssdkd,fast --seeds 0,1,2

Every run is a full ``train/distill.py`` run (same engine, same outputs) in OUT/<method>-s<seed>/;
OUT/results.md and OUT/results.csv hold mean ± std per method. ``--jobs N`` runs N at a time in
separate processes, splitting the CPU threads between them; ``--resume`` keeps finished runs whose
configuration is unchanged and continues interrupted ones from their checkpoints.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import csv
import json
import multiprocessing
import statistics
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ssdkd_env.common.cli import run_cli
from ssdkd_env.common.device import DEVICE_CHOICES, resolve_device
from ssdkd_env.common.io import write_json
from ssdkd_env.engine import METHODS, make_config, replace_nested
from ssdkd_env.engine.config import EngineConfig, parse_override
from ssdkd_env.engine.run import STATE_FILE, RunSpec, run_distillation
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
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    p.add_argument("--resume", action="store_true", help="keep finished runs, continue interrupted ones")
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
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    overrides = dict(parse_override(s) for s in args.set)
    device = resolve_device(args.device)
    teacher, card = obtain_teacher(task, args.teacher, args.data_root, args.download, device, not args.no_progress)
    test_set = test_split_if_available(task, args.data_root, args.download)
    parallel = args.jobs > 1
    results: dict[str, dict[int, dict[str, Any]]] = {m: {} for m in methods}
    pending: list[tuple[EngineConfig, RunSpec]] = []
    for method in methods:
        config = make_config(task.name, method)
        config = replace_nested(config, **overrides) if overrides else config
        for seed in seeds:
            out = args.out / f"{method}-s{seed}"
            finished, resume = previous_run(out, config, seed) if args.resume else (None, False)
            if finished is not None:
                results[method][seed] = finished
                continue
            progress = not args.no_progress and not parallel
            pending.append(
                (config, RunSpec(task, teacher, card, device, seed, out, test_set, resume, progress=progress))
            )
    for summary in run_all(pending, args.jobs):
        results[summary["method"]][summary["seed"]] = summary
        print(
            f"{summary['method']} seed {summary['seed']}: student_acc={summary['student_acc']} "
            f"time={summary['wall_time_s']}s",
            flush=True,
        )
    ordered = {m: [runs[s] for s in seeds] for m, runs in results.items()}
    write_tables(args.out, task.name, card.test_acc, ordered)
    return 0


def previous_run(out: Path, config: EngineConfig, seed: int) -> tuple[dict[str, Any] | None, bool]:
    """What ``out`` holds of a run with this configuration and seed: its summary when it
    finished, else whether it left a checkpoint to resume. Other runs' files are ignored."""
    expected = json.loads(json.dumps({"seed": seed, **config.to_dict()}))
    config_file, summary_file = out / "config.json", out / "summary.json"
    if not config_file.is_file() or json.loads(config_file.read_text()) != expected:
        return None, False
    if summary_file.is_file():
        summary = json.loads(summary_file.read_text())
        if {"seed": summary.get("seed"), **summary.get("config", {})} == expected:
            return summary, False
    return None, (out / STATE_FILE).is_file()


def run_all(pending: list[tuple[EngineConfig, RunSpec]], jobs: int) -> Iterator[dict[str, Any]]:
    """Run every pending run, ``jobs`` at a time; yields summaries as runs finish."""
    if jobs == 1 or len(pending) <= 1:
        for config, spec in pending:
            yield run_distillation(config, spec)
        return
    threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")  # a fork after OpenMP has started can hang
    with concurrent.futures.ProcessPoolExecutor(jobs, mp_context=context, max_tasks_per_child=1) as pool:
        futures = [pool.submit(_run_in_worker, config, spec, threads) for config, spec in pending]
        for future in concurrent.futures.as_completed(futures):
            yield future.result()


def _run_in_worker(config: EngineConfig, spec: RunSpec, threads: int) -> dict[str, Any]:
    """One run in a fresh worker process (so its peak memory is its own)."""
    torch.set_num_threads(threads)
    return run_distillation(config, spec)


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
