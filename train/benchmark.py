#!/usr/bin/env python
"""Speed of one SSD-KD round, phase by phase, with random weights (accuracy is not measured).

    python train/benchmark.py --bench digits --threads 2
    python train/benchmark.py --bench cifar10-r34-r18 --device cuda --scaling

Times warm-up and measured rounds of a named configuration in the environment and reports the
median split of a round (synthesis, memory work, distillation, measurement, round-loop other,
environment overhead), inversion and distillation images/s, peak memory, FLOPs per round and
the achieved fraction of the device's peak, and the projected wall time of the configuration's
full schedule. --scaling adds memory work per round at 1k-100k buffered samples for 10 and 100
classes. The method is described in ssdkd_env/benchmarking/harness.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ssdkd_env.benchmarking import BENCH_CONFIGS, format_report, get_bench_config, run_benchmark
from ssdkd_env.benchmarking.configs import BenchConfig
from ssdkd_env.common.cli import DefaultText, add_common_flags, make_parser, run_cli
from ssdkd_env.common.device import resolve_device
from ssdkd_env.common.io import write_json
from ssdkd_env.common.runfolder import RunFolder, prepare_out_file
from ssdkd_env.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    configs = "; ".join(f"{name}: {BENCH_CONFIGS.get(name).description}" for name in BENCH_CONFIGS)
    p.add_argument("--bench", required=True, metavar="NAME", help=f"benchmark configuration ({configs})")
    add_common_flags(p, "device")
    p.add_argument(
        "--rounds", type=int, default=None, metavar="R", help="measured rounds (default: the configuration's)"
    )
    p.add_argument(
        "--warmup",
        type=int,
        default=None,
        metavar="N",
        help="untimed rounds before the measured ones, at least 1: the first runs under the FLOP counter "
        "(default: the configuration's)",
    )
    p.add_argument(
        "--kd-steps",
        type=int,
        default=None,
        metavar="N",
        help="KD steps per measured round; the projection scales to the schedule's (default: the configuration's)",
    )
    p.add_argument(
        "--threads", type=int, default=None, metavar="N", help="CPU threads for torch (default: torch's choice)"
    )
    p.add_argument("--scaling", action="store_true", help="add the memory-work table for 1k-100k samples")
    add_common_flags(p, "out", "overwrite", "no-progress", out=DefaultText("runs/benchmark/<bench>"))
    p.add_argument(
        "--json",
        type=Path,
        default=None,
        metavar="FILE",
        help="result file, instead of OUT/benchmark.json (then nothing is written in --out)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    bench = get_bench_config(args.bench)
    device = resolve_device(args.device)
    for flag, value, least in (("--rounds", args.rounds, 1), ("--warmup", args.warmup, 1)):
        if value is not None and value < least:
            raise UserError(f"{flag} must be >= {least}, got {value}")
    for flag, value in (("--kd-steps", args.kd_steps), ("--threads", args.threads)):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be >= 1, got {value}")
    if args.json is not None:  # the one output: checked (and an existing one refused) before measuring
        if args.json.exists() and not args.json.is_dir() and not args.overwrite:
            raise UserError(f"--json {args.json} exists; replace it with --overwrite, or choose another --json")
        return benchmark(args, bench, device, prepare_out_file(args.json, "--json"))
    out = args.out or Path("runs/benchmark") / bench.name
    with RunFolder(out, ("benchmark.json",), overwrite=args.overwrite):
        return benchmark(args, bench, device, out / "benchmark.json")


def benchmark(args: argparse.Namespace, bench: BenchConfig, device: torch.device, json_path: Path) -> int:
    """Measure ``bench`` and write the report to ``json_path``."""
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    def progress(message: str) -> None:
        if not args.no_progress:
            print(f"[{bench.name}] {message}", file=sys.stderr)

    result = run_benchmark(
        bench,
        device,
        warmup=args.warmup,
        rounds=args.rounds,
        kd_steps=args.kd_steps,
        scaling=args.scaling,
        progress=progress,
    )
    print(format_report(result))
    write_json(json_path, result)
    print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
