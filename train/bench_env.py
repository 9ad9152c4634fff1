#!/usr/bin/env python
"""Benchmarks of the environment: its overhead over train/distill.py, and how meaningful its
data-free reward is.

    python train/bench_env.py --task digits --episodes 24 --out runs/bench_env

1. Overhead: the same fixed-action run through ``run_distillation`` (what train/distill.py
   does) and through ``DistillationEnv`` episodes, alternated in one process, ``--repeats`` times.
2. Reward validity: ``--episodes`` episodes with uniformly random actions; the Spearman
   correlation between each episode's return under ``reward="probe"`` and its final real
   test accuracy.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch
from scipy.stats import spearmanr
from tqdm import tqdm

from ssdkd_env.common.cli import add_common_flags, apply_scale, make_parser, run_cli
from ssdkd_env.common.device import resolve_device
from ssdkd_env.common.io import write_json
from ssdkd_env.common.runfolder import RunFolder
from ssdkd_env.engine import make_config
from ssdkd_env.engine.run import RunSpec, run_distillation
from ssdkd_env.env import DistillationEnv, EnvConfig
from ssdkd_env.tasks import get_task
from ssdkd_env.teachers import obtain_teacher, test_split_if_available


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    add_common_flags(p, "task", "scale", "teacher", "data-root", "download", "rounds")
    p.add_argument("--repeats", type=int, default=3, help="overhead: alternated runs of each kind")
    p.add_argument("--episodes", type=int, default=24, help="reward validity: random-action episodes")
    p.add_argument("--episode-rounds", type=int, default=40, help="rounds per random-action episode")
    add_common_flags(p, "device", "out", "overwrite", "no-progress", out=Path("runs/bench_env"))
    p.add_argument("--skip-overhead", action="store_true", help="skip the overhead benchmark")
    p.add_argument("--skip-correlation", action="store_true", help="skip the reward-validity benchmark")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with RunFolder(args.out, ("bench_env.json",), overwrite=args.overwrite):
        return benchmark_env(args)


def benchmark_env(args: argparse.Namespace) -> int:
    """Run the environment benchmarks and write ``bench_env.json`` into ``args.out``."""
    apply_scale(args)
    task = get_task(args.task)
    device = resolve_device(args.device)
    teacher, card = obtain_teacher(
        task, args.teacher, args.data_root, args.download, device, progress=not args.no_progress
    )
    test_set = test_split_if_available(task, args.data_root, args.download)
    overrides = {} if args.rounds is None else {"rounds": args.rounds}
    config = make_config(task.name, "ssdkd", **overrides)
    env_config = EnvConfig(
        engine=config, teacher=args.teacher, data_root=args.data_root, download=args.download, device=args.device
    )
    results: dict = {
        "task": task.name,
        "device": str(device),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }

    if not args.skip_overhead:
        env = DistillationEnv(env_config, teacher_model=teacher)
        _ = env.probe  # built once per environment, outside the timed episodes
        distill_times, env_times = [], []
        for rep in tqdm(range(args.repeats), desc="overhead", disable=args.no_progress):
            start = time.perf_counter()
            spec = RunSpec(
                task, teacher, card, device, rep, args.out / "distill_runs" / f"s{rep}", test_set, progress=False
            )
            summary = run_distillation(config, spec)
            distill_times.append(time.perf_counter() - start)
            start = time.perf_counter()
            env.reset(seed=rep)
            done, action = False, env.default_action()
            while not done:
                _, _, terminated, truncated, info = env.step(action)
                done = terminated or truncated
            env_times.append(time.perf_counter() - start)
            print(
                f"repeat {rep}: distill.py {distill_times[-1]:.1f}s (acc {summary['student_acc']:.4f}), "
                f"env {env_times[-1]:.1f}s (acc {info['test_acc']:.4f})"
            )
        results["overhead"] = {
            "rounds": config.rounds,
            "distill_s": distill_times,
            "env_s": env_times,
            "median_ratio_env_over_distill": statistics.median(
                e / d for e, d in zip(env_times, distill_times, strict=True)
            ),
        }

    if not args.skip_correlation:
        env = DistillationEnv(env_config, teacher_model=teacher)
        rng = np.random.default_rng(0)
        returns, accuracies, final_probe = [], [], []
        for ep in tqdm(range(args.episodes), desc="random episodes", disable=args.no_progress):
            env.reset(seed=1000 + ep, options={"rounds": args.episode_rounds})
            done, total = False, 0.0
            while not done:
                action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
                _, reward, terminated, truncated, info = env.step(action)
                total += reward
                done = terminated or truncated
            assert env.engine is not None
            returns.append(total)
            accuracies.append(float(env.engine.test_accuracy() or 0.0))
            final_probe.append(info["probe_agreement"])
        rho, p_value = spearmanr(returns, accuracies)
        results["reward_validity"] = {
            "episodes": args.episodes,
            "rounds_per_episode": args.episode_rounds,
            "spearman_return_vs_test_acc": float(rho),
            "p_value": float(p_value),
            "returns": returns,
            "test_acc": accuracies,
            "final_probe_agreement": final_probe,
        }
        print(
            f"Spearman(return, test acc) = {rho:.3f} (p = {p_value:.2g}) over {args.episodes} episodes; "
            f"test acc {min(accuracies):.3f}..{max(accuracies):.3f}"
        )
    write_json(args.out / "bench_env.json", results)
    if "overhead" in results:
        print(f"env / distill.py wall time (median ratio): {results['overhead']['median_ratio_env_over_distill']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
