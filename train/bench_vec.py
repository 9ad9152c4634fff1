#!/usr/bin/env python
"""Throughput of vector environments: environment steps (rounds) per second for N episodes at once.

    python train/bench_vec.py --task digits --regime full --n-envs 1,4,16,64 --out runs/bench_vec

For each N and each transport, a vector of N environments plays SSD-KD's fixed action for at least
--min-steps environment steps and --min-seconds (after one warm-up step per environment, which also
builds every worker); the rate counts every environment's steps, resets included. ``local`` runs
the N episodes in this process, in turn, on torch's threads; ``process`` in min(N, CPUs) worker
processes of one thread each. Writes OUT/bench_vec.json and prints a table.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ssdkd_env.common.cli import add_common_flags, make_parser, parse_seeds, run_cli
from ssdkd_env.common.io import write_json
from ssdkd_env.common.runfolder import RunFolder
from ssdkd_env.env import make_env
from ssdkd_env.env.evaluation import env_config_from_cli
from ssdkd_env.env.vector import TRANSPORTS, make_vec_env
from ssdkd_env.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    add_common_flags(p, "task", "regime", "rounds", "config", "set", "teacher", "data-root", "download", "device")
    p.add_argument("--n-envs", type=parse_seeds, default=[1, 4, 16, 64], metavar="LIST", help="vector sizes")
    p.add_argument("--transports", default="local,process", help=f"comma-separated, from {', '.join(TRANSPORTS)}")
    p.add_argument("--min-steps", type=int, default=64, help="environment steps measured per point (at least)")
    p.add_argument("--min-seconds", type=float, default=20.0, help="seconds measured per point (at least)")
    add_common_flags(p, "out", "overwrite", out=Path("runs/bench_vec"))
    return p


def measure(vec: Any, action: np.ndarray, min_steps: int, min_seconds: float) -> dict[str, float]:
    """Steps per second of ``vec`` playing ``action`` everywhere, after a warm-up step."""
    vec.seed(0)
    vec.reset()
    actions = np.repeat(action[None], vec.num_envs, axis=0)
    vec.step(actions)
    steps, start = 0, time.perf_counter()
    while steps < min_steps or time.perf_counter() - start < min_seconds:
        vec.step(actions)
        steps += vec.num_envs
    seconds = time.perf_counter() - start
    return {"steps": steps, "seconds": round(seconds, 2), "steps_per_s": steps / seconds}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    with RunFolder(args.out, ("bench_vec.json",), overwrite=args.overwrite):
        return benchmark_vectors(args)


def benchmark_vectors(args: argparse.Namespace) -> int:
    """Measure every vector size and transport and write ``bench_vec.json`` into ``args.out``."""
    transports = [t.strip() for t in args.transports.split(",") if t.strip()]
    for transport in transports:
        if transport not in TRANSPORTS:
            raise UserError(f"unknown transport '{transport}'; valid: {', '.join(TRANSPORTS)}")
    config = env_config_from_cli(args.task, "continuous", args)
    single = make_env(config, train_teacher=True)
    action = single.unwrapped.default_action()  # type: ignore[attr-defined]
    single.close()
    rows = []
    for n_envs in args.n_envs:
        for transport in transports:
            vec = make_vec_env(config, n_envs, transport)
            row = {"n_envs": n_envs, "transport": transport, "workers": len(vec.sizes)}
            row.update(measure(vec, action, args.min_steps, args.min_seconds))
            vec.close()
            rows.append(row)
            print(
                f"n_envs {n_envs:>3} {transport:>8} ({row['workers']} workers): {row['steps_per_s']:.2f} steps/s "
                f"({row['steps']} steps in {row['seconds']} s)",
                flush=True,
            )
    base = next((r["steps_per_s"] for r in rows if r["n_envs"] == 1 and r["transport"] == "local"), None)
    for row in rows:
        row["speedup_vs_one_local"] = None if base is None else row["steps_per_s"] / base
    machine = {"cpus": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()}
    write_json(args.out / "bench_vec.json", {"config": config.to_dict(), "machine": machine, "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
