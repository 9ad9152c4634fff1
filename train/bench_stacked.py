#!/usr/bin/env python
"""KD steps per second of N episodes' students stacked with torch.func against N separate students.

    python train/bench_stacked.py --task cifar10-16 --episodes 1,4,16,64 --device cuda --out runs/bench_stacked

For each N, N students of the task's student architecture (different initialisations) take --steps
KD steps each on random replay batches of the task's shape, once as N separate ``Distiller`` steps
in turn and once as one ``StackedStudents`` step, from the same state and on the same batches
(after --warmup steps of each, not timed). Reported: KD steps/s of both (every student's steps
counted), their ratio, the largest relative difference between the two runs' weights at the end
(over all of a student's weights), and on CUDA the peak memory of each. Beside that difference stands
a float32 noise floor: the same separate steps from weights perturbed by one part in 10^7. Writes
OUT/bench_stacked.json and prints a table.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ssdkd_env.common.cli import add_common_flags, make_parser, parse_seeds, run_cli
from ssdkd_env.common.device import resolve_device
from ssdkd_env.common.io import write_json
from ssdkd_env.common.runfolder import RunFolder
from ssdkd_env.distillation import Distiller, DistillerConfig
from ssdkd_env.distillation.stacked import StackedStudents
from ssdkd_env.errors import UserError
from ssdkd_env.models.registry import build_model
from ssdkd_env.replay import BufferBatch
from ssdkd_env.tasks import get_task


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    add_common_flags(p, "task", "device", task="cifar10-16")
    p.add_argument("--episodes", type=parse_seeds, default=[1, 4, 16, 64], metavar="LIST", help="values of N")
    p.add_argument("--batch-size", type=int, default=64, help="KD batch of each student")
    p.add_argument("--steps", type=int, default=20, help="timed KD steps of each student")
    p.add_argument("--warmup", type=int, default=2, help="untimed KD steps of each student first")
    add_common_flags(p, "out", "overwrite", out=Path("runs/bench_stacked"))
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.batch_size < 2 or args.steps < 1 or args.warmup < 0 or min(args.episodes) < 1:
        raise UserError("--batch-size must be at least 2, --steps at least 1, --warmup and --episodes positive")
    with RunFolder(args.out, ("bench_stacked.json",), overwrite=args.overwrite):
        return benchmark(args)


def random_batches(
    n: int, batch: int, shape: tuple[int, ...], classes: int, device: torch.device, seed: int
) -> list[BufferBatch]:
    """N replay batches of the task's shape with random images, teacher logits and weights."""
    g = torch.Generator().manual_seed(seed)
    return [
        BufferBatch(
            index=torch.arange(batch),
            images=torch.randn(batch, *shape, generator=g).to(device),
            teacher_logits=(3 * torch.randn(batch, classes, generator=g)).to(device),
            weights=(torch.rand(batch, generator=g) + 0.5).to(device),
        )
        for _ in range(n)
    ]


def separate_step(distillers: list[Distiller]) -> Callable[[list[BufferBatch]], object]:
    """One KD step of each distiller in turn, on its own batch."""

    def step(batches: list[BufferBatch]) -> object:
        return [d.step(batch) for d, batch in zip(distillers, batches, strict=True)]

    return step


def weight_difference(runs: list[Distiller], others: list[Distiller]) -> float:
    """The largest relative difference between two runs of one student: |w - w'| / |w| over all its weights."""
    gaps = []
    for a, b in zip(runs, others, strict=True):
        w = torch.cat([p.detach().flatten().double() for p in a.student.parameters()])
        v = torch.cat([p.detach().flatten().double() for p in b.student.parameters()])
        gaps.append(float((v - w).norm() / w.norm()))
    return max(gaps)


def timed(device: torch.device, step: Callable[[list[BufferBatch]], object], steps: list[list[BufferBatch]]) -> float:
    """Seconds ``step`` takes over ``steps``, synchronised on CUDA."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    for batches in steps:
        step(batches)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def benchmark(args: argparse.Namespace) -> int:
    """Measure every N and write ``bench_stacked.json`` into ``args.out``."""
    task = get_task(args.task)
    device = resolve_device(args.device)
    total = args.warmup + args.steps
    config = DistillerConfig(batch_size=args.batch_size)
    rows: list[dict[str, Any]] = []
    for n in args.episodes:
        students = [
            build_model(task.student_arch, task.num_classes, task.input_shape[0], torch.Generator().manual_seed(i))
            for i in range(n)
        ]
        separate, perturbed, to_stack = (
            [Distiller(copy.deepcopy(s).to(device), config, total_steps=total, device=device) for s in students]
            for _ in range(3)
        )
        stacked = StackedStudents(to_stack)
        with torch.no_grad():
            for p in (p for d in perturbed for p in d.student.parameters()):
                p.mul_(1 + 1e-7 * torch.randn(p.shape, generator=torch.Generator().manual_seed(n)).to(device))
        steps = [
            random_batches(n, args.batch_size, task.input_shape, task.num_classes, device, seed=k) for k in range(total)
        ]
        row: dict[str, Any] = {"episodes": n}
        for label, step in (("separate", separate_step(separate)), ("stacked", stacked.step)):
            for batches in steps[: args.warmup]:
                step(batches)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            seconds = timed(device, step, steps[args.warmup :])
            row[f"{label}_steps_per_s"] = round(n * args.steps / seconds, 2)
            if device.type == "cuda":
                row[f"{label}_peak_mib"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
        stacked.write_back()
        floor = separate_step(perturbed)
        for batches in steps:
            floor(batches)
        row["speedup"] = round(row["stacked_steps_per_s"] / row["separate_steps_per_s"], 2)
        row["max_relative_weight_difference"] = weight_difference(separate, stacked.distillers)
        row["noise_floor"] = weight_difference(separate, perturbed)
        rows.append(row)
        print(
            f"N={n:4d}  separate {row['separate_steps_per_s']:9.1f}/s  stacked {row['stacked_steps_per_s']:9.1f}/s  "
            f"x{row['speedup']:.2f}  weights differ by {row['max_relative_weight_difference']:.1e} "
            f"(a 1e-7 perturbation: {row['noise_floor']:.1e})"
        )
    write_json(
        args.out / "bench_stacked.json",
        {
            "task": task.name,
            "student": task.student_arch,
            "device": str(device),
            "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "batch_size": args.batch_size,
            "steps": args.steps,
            "rows": rows,
        },
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
