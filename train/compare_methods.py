#!/usr/bin/env python
"""Run several methods over several seeds on one task and tabulate the results.

    python train/compare_methods.py --task digits --methods ssdkd,fast --seeds 0,1,2
    python train/compare_methods.py --task digits --methods ssdkd --seeds 0-4 --jobs 2 --resume
    python train/compare_methods.py --task digits --methods ssdkd --memory-fractions 0.01,0.05,0.1,0.2

Every run is a full ``train/distill.py`` run (same engine, same outputs) in OUT/<method>-s<seed>/;
OUT/results.md and OUT/results.csv hold mean ± std per method. Each method's configuration is
its defaults, then --config, --rounds and --set.

--jobs N runs N at a time, each in its own process (also at --jobs 1, so each run's peak memory is
its own), splitting the CPU threads between them;
SIGTERM or Ctrl-C stops every worker with the parent. Without --resume, an OUT that already
holds any of the asked-for runs is refused; --resume keeps finished runs whose configuration is
unchanged, continues interrupted ones from their checkpoints and re-runs those whose
configuration changed.

--memory-fractions F1,F2,... runs each method once per fraction with a replay buffer of that
share of the real training set (SSD-KD's data-scale study), as rows ``METHOD@P%`` in the
table and lines of the time-to-accuracy plot.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import statistics
import sys
import threading
import traceback
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from ssdkd_env.common.cli import add_common_flags, apply_scale, make_parser, run_cli
from ssdkd_env.common.device import resolve_device
from ssdkd_env.common.io import write_json
from ssdkd_env.common.runfolder import RunFolder
from ssdkd_env.engine import METHODS, make_config, replace_nested, with_data_root
from ssdkd_env.engine.config import EngineConfig, parse_override, read_config_file
from ssdkd_env.engine.run import STATE_FILE, RunSpec, run_distillation
from ssdkd_env.errors import UserError, unknown_name
from ssdkd_env.reporting import read_accuracy_curve, save_time_to_accuracy
from ssdkd_env.tasks import TaskSpec, get_task
from ssdkd_env.tasks.kinds import TASK_KINDS
from ssdkd_env.teachers import obtain_teacher, test_split_if_available

COLUMNS = (
    "student_acc",
    "best_student_acc",
    "acc_mean_over_run",
    "acc_variance_over_run",
    "probe_agreement",
    "wall_time_s",
    "synthetic_samples",
    "peak_rss_mb",
    "buffer_memory_mb",
)
STOP_GRACE_S = 10.0  # how long a worker may take to exit after SIGTERM before it is killed


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    add_common_flags(p, "task", "scale")
    p.add_argument("--methods", default="ssdkd,fast", help=f"comma-separated, from: {', '.join(METHODS)}")
    add_common_flags(
        p,
        "seeds",
        "teacher",
        "data-root",
        "download",
        "rounds",
        "config",
        "set",
        "device",
        "out",
        seeds="0,1,2",
        out=Path("runs/compare"),
    )
    p.add_argument("--jobs", type=int, default=1, help="runs at a time, each in its own process")
    p.add_argument(
        "--memory-fractions",
        type=_fractions,
        default=None,
        metavar="LIST",
        help="comma-separated shares of the real training set, e.g. 0.01,0.05,0.1,0.2: each method runs once per "
        "share with a replay buffer of that size (methods with a replay buffer only)",
    )
    add_common_flags(p, "resume", "no-progress")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def _fractions(text: str) -> list[float]:
    """``--memory-fractions``: shares of the training set in (0, 1] (a UserError otherwise)."""
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UserError(f"--memory-fractions expects comma-separated numbers, got '{text}'") from None
    if not values or any(not 0 < v <= 1 for v in values):
        raise UserError(f"--memory-fractions: each fraction must be in (0, 1], got '{text}'")
    return values


def memory_variants(
    configs: dict[str, EngineConfig], fractions: list[float] | None, train_size: int
) -> dict[str, EngineConfig]:
    """The runs' labels and configurations: one per method, or one per method and memory fraction."""
    if fractions is None:
        return configs
    variants = {}
    for method, config in configs.items():
        if config.memory != "replay":
            raise UserError(
                f"--memory-fractions sets the size of a replay buffer; method '{method}' keeps memory '{config.memory}'"
            )
        for fraction in fractions:
            size = max(1, round(fraction * train_size))
            variants[f"{method}@{fraction * 100:g}%"] = replace_nested(config, buffer_size=size)
    return variants


def mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def method_config(task: str, method: str, args: argparse.Namespace) -> EngineConfig:
    """``method``'s defaults, then --config, --rounds and --set (and --data-root for ``kd-real``)."""
    config = make_config(task, method)
    if args.config is not None:
        partial = read_config_file(args.config)
        if "task" in partial or "method" in partial:
            raise UserError("task and method come from --task and --methods, not from --config")
        config = config.merged_with(partial)
    changes = dict(parse_override(s) for s in args.set)
    if args.rounds is not None:
        changes["rounds"] = args.rounds
    config = replace_nested(config, **changes) if changes else config  # every value is checked here
    return with_data_root(config, args.data_root)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    apply_scale(args)
    task = get_task(args.task)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            raise unknown_name("method", m, METHODS)
    if not methods:
        raise UserError("--methods needs at least one method")
    seeds: list[int] = args.seeds
    if args.jobs < 1:
        raise UserError(f"--jobs must be >= 1, got {args.jobs}")
    configs = {method: method_config(task.name, method, args) for method in methods}
    if args.memory_fractions is not None:
        train_size = len(task.load(args.data_root, True, args.download).labels)
        configs = memory_variants(configs, args.memory_fractions, train_size)
    labels = list(configs)
    with RunFolder(args.out, (), resume=args.resume):  # one process per --out; its runs are checked next
        if not args.resume:
            existing = [f"{m}-s{s}" for m in labels for s in seeds if any_run_files(args.out / f"{m}-s{s}")]
            if existing:
                shown = ", ".join(existing[:4]) + (f" and {len(existing) - 4} more" if len(existing) > 4 else "")
                raise UserError(
                    f"{args.out} already holds runs ({shown}); add --resume to keep the finished ones and continue "
                    "the interrupted ones, or choose another --out"
                )
        return compare_methods(args, task, configs, seeds)


def compare_methods(
    args: argparse.Namespace, task: TaskSpec, configs: dict[str, EngineConfig], seeds: list[int]
) -> int:
    """Run (or keep) every run of ``configs`` x ``seeds`` in ``args.out`` and write the tables."""
    labels = list(configs)
    device = resolve_device(args.device)
    teacher, card = obtain_teacher(task, args.teacher, args.data_root, args.download, device, not args.no_progress)
    metric = TASK_KINDS.get(task.kind).metric  # what the score columns measure: accuracy, or miou for segmentation
    test_set = test_split_if_available(task, args.data_root, args.download)
    parallel = args.jobs > 1
    results: dict[str, dict[int, dict[str, Any]]] = {label: {} for label in labels}
    label_of = {(config.method, config.buffer_size): label for label, config in configs.items()}
    pending: list[tuple[EngineConfig, RunSpec]] = []
    for label, config in configs.items():
        for seed in seeds:
            out = args.out / f"{label}-s{seed}"
            finished, resume = previous_run(out, config, seed) if args.resume else (None, False)
            if finished is not None:
                results[label][seed] = finished
                continue
            progress = not args.no_progress and not parallel
            pending.append(
                (config, RunSpec(task, teacher, card, device, seed, out, test_set, resume, progress=progress))
            )
    with contextlib.closing(run_all(pending, args.jobs)) as runs:
        for summary in runs:
            label = label_of[(summary["method"], summary["config"]["buffer_size"])]
            results[label][summary["seed"]] = summary
            print(
                f"{label} seed {summary['seed']}: student_{metric}={summary['student_acc']} "
                f"time={summary['wall_time_s']}s",
                flush=True,
            )
    ordered = {m: [runs_[s] for s in seeds] for m, runs_ in results.items()}
    write_tables(args.out, task.name, card.test_acc, ordered, metric)
    curves = {m: [read_accuracy_curve(args.out / f"{m}-s{s}" / "metrics.csv") for s in seeds] for m in labels}
    save_time_to_accuracy(
        args.out / "time_to_accuracy.png",
        curves,
        f"{task.name}: test {metric} against wall time",
        f"student test {metric}",
    )
    return 0


def any_run_files(out: Path) -> bool:
    """Whether ``out`` holds a finished or interrupted run."""
    return (out / "summary.json").is_file() or (out / STATE_FILE).is_file()


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


# --------------------------------------------------------------------------------------------
# parallel runs: one spawned process per run, all of them stopped with the parent


class WorkerError(RuntimeError):
    """A run failed in its worker process with an error that is not the user's (its traceback in the message)."""


@dataclass
class _Worker:
    process: Any  # multiprocessing's SpawnProcess
    results: multiprocessing.connection.Connection  # the reading end of the worker's outcome pipe
    label: str
    outcome: tuple[str, Any] | None = None


def run_all(pending: list[tuple[EngineConfig, RunSpec]], jobs: int) -> Generator[dict[str, Any], None, None]:
    """Run every pending run, ``jobs`` at a time; yields summaries as runs finish.

    Each run gets a fresh spawned process, also with ``jobs=1`` when more than one run is pending,
    so that its peak memory (a process's high-water mark) is its own; a single run stays in this
    process. When the generator is closed early (an error, Ctrl-C, SIGTERM turned into an
    exception), every worker still running is terminated and reaped before the exception goes on;
    on Linux, workers also die if the parent is killed outright (``PR_SET_PDEATHSIG``).
    """
    if len(pending) <= 1:
        for config, spec in pending:
            yield run_distillation(config, spec)
        return
    threads = max(1, torch.get_num_threads() // jobs)
    context = multiprocessing.get_context("spawn")  # a fork after OpenMP has started can hang
    queue = list(pending)
    running: list[_Worker] = []
    try:
        while queue or running:
            while queue and len(running) < jobs:
                config, spec = queue.pop(0)
                reader, writer = context.Pipe(duplex=False)
                label = f"{config.method}-s{spec.seed}"
                process = context.Process(
                    target=_worker_main,
                    args=(writer, config, spec, threads, os.getpid()),
                    name=f"compare_methods:{label}",
                )
                running.append(_Worker(process, reader, label))  # listed before it starts: never left behind
                process.start()
                writer.close()  # the parent keeps only the reading end: EOF when the worker is gone
            waitables: list[Any] = [w.process.sentinel for w in running]
            waitables += [w.results for w in running if w.outcome is None]
            ready = set(multiprocessing.connection.wait(waitables))
            for worker in list(running):
                if worker.outcome is None and worker.results in ready:
                    worker.outcome = _receive(worker)
                if worker.process.sentinel in ready:
                    worker.process.join()
                    if worker.outcome is None:
                        worker.outcome = _receive(worker)
                    running.remove(worker)
                    worker.results.close()
                    yield _result(worker)
    finally:
        _stop(running)


def _receive(worker: _Worker) -> tuple[str, Any]:
    try:
        if worker.results.poll():
            return worker.results.recv()
    except (EOFError, OSError):
        pass
    return ("died", None)


def _result(worker: _Worker) -> dict[str, Any]:
    assert worker.outcome is not None
    status, value = worker.outcome
    if status == "ok":
        return value
    if status == "error":
        raise value
    if status == "failed":
        raise WorkerError(f"run {worker.label} failed in its worker process:\n{value}")
    raise WorkerError(f"the worker process of run {worker.label} died (exit code {worker.process.exitcode})")


def _stop(workers: list[_Worker]) -> None:
    """Terminate (SIGTERM, then SIGKILL after a grace period) and reap every worker."""
    workers = [w for w in workers if w.process.pid is not None]  # started ones
    for worker in workers:
        if worker.process.is_alive():
            worker.process.terminate()
    for worker in workers:
        worker.process.join(STOP_GRACE_S)
        if worker.process.is_alive():
            worker.process.kill()
            worker.process.join()
        worker.results.close()


def _worker_main(
    results: multiprocessing.connection.Connection, config: EngineConfig, spec: RunSpec, threads: int, parent: int
) -> None:
    """One run in a fresh worker process; its outcome goes back through ``results``."""
    die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the whole group: the parent stops the workers
    tqdm.set_lock(threading.RLock())  # not tqdm's default: a named semaphore a killed worker would leak
    torch.set_num_threads(threads)
    outcome: tuple[str, Any]
    try:
        outcome = ("ok", run_distillation(config, spec))
    except UserError as exc:
        outcome = ("error", exc)
    except Exception:
        outcome = ("failed", traceback.format_exc())
    try:
        results.send(outcome)
    except (pickle.PicklingError, TypeError, AttributeError):
        results.send(("failed", f"the outcome could not be sent back: {outcome!r}"))
    results.close()


def die_with_parent(parent: int) -> None:
    """On Linux, have the kernel SIGKILL this process when its parent dies (``PR_SET_PDEATHSIG``);
    elsewhere, nothing. A parent that died before the call is noticed at once."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent was already gone
        os._exit(1)


def _cell(row: dict[str, Any], col: str, scale: float = 1.0, digits: int = 2) -> str:
    if f"{col}_mean" not in row:
        return "n/a"
    return f"{row[f'{col}_mean'] * scale:.{digits}f} ± {row[f'{col}_std'] * scale:.{digits}f}"


def write_tables(
    out: Path, task: str, teacher_acc: float | None, results: dict[str, list[dict[str, Any]]], metric: str = "accuracy"
) -> None:
    """``results.md`` / ``.csv`` / ``.json``; the score columns are the task's ``metric`` (accuracy or miou)."""
    short = "acc" if metric == "accuracy" else metric
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
        f"Task `{task}`, teacher {metric} {teacher_acc}; mean ± std over seeds.",
        "",
        f"| method | runs | student {short} (%) | best {short} (%) | {short} mean over run (%) "
        f"| {short} variance over run (%²) "
        "| probe agreement | wall time (s) | synthetic samples | peak RSS (MiB) | memory (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['runs']} | {_cell(r, 'student_acc', 100)} | {_cell(r, 'best_student_acc', 100)} | "
            f"{_cell(r, 'acc_mean_over_run', 1, 1)} | {_cell(r, 'acc_variance_over_run', 1, 1)} | "
            f"{_cell(r, 'probe_agreement', 1, 3)} | {_cell(r, 'wall_time_s', 1, 1)} | "
            f"{_cell(r, 'synthetic_samples', 1, 0)} | {_cell(r, 'peak_rss_mb', 1, 0)} | "
            f"{_cell(r, 'buffer_memory_mb', 1, 1)} |"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    write_json(out / "results.json", {"task": task, "metric": metric, "teacher_acc": teacher_acc, "runs": results})


if __name__ == "__main__":
    sys.exit(run_cli(main))
