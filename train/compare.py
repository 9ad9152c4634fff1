#!/usr/bin/env python
"""Evaluate policies (fixed ones and saved learned ones) over seeds and tabulate them.

    python train/compare.py --agents ssdkd,uniform,random,ppo=runs/agent/digits-ppo-s0/agent --task digits
    python train/compare.py --agents ssdkd,random --task digits --seeds 200000-200009

Each policy plays one episode per seed of --seeds (by default five evaluation seeds that
run_agent.py never trains on); the table gives mean, std and 95% confidence interval (Student t)
of the final student accuracy (when real test data exists), the probe agreement and the return.
Writes OUT/compare.csv, OUT/compare.md, OUT/compare.json and OUT/compare.png.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from pathlib import Path
from typing import Any

import gymnasium as gym
from matplotlib.figure import Figure
from scipy.stats import t as student_t
from tqdm import tqdm

from agents import Agent, make_agent, preferred_action_mode
from agents.registry import AGENTS
from ssdkd_env.common.cli import add_common_flags, apply_scale, make_parser, run_cli
from ssdkd_env.common.io import prepare_out_dir, write_json
from ssdkd_env.env import make_env
from ssdkd_env.env.evaluation import env_config_from_cli, run_episode
from ssdkd_env.errors import UserError, unknown_name
from ssdkd_env.tasks import get_task

METRICS = ("student_acc", "probe_agreement", "return")


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument("--agents", default="ssdkd,uniform,random", help="NAME or NAME=SAVED_AGENT_PATH, comma-separated")
    add_common_flags(
        p,
        "task",
        "scale",
        "seeds",
        "rounds",
        "config",
        "set",
        "teacher",
        "data-root",
        "download",
        "device",
        "out",
        "no-progress",
        seeds="200000-200004",
        out=Path("runs/compare_agents"),
    )
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def confidence(values: list[float]) -> dict[str, float]:
    n = len(values)
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if n > 1 else 0.0
    half = student_t.ppf(0.975, n - 1) * std / math.sqrt(n) if n > 1 else 0.0
    return {"mean": mean, "std": std, "ci95_low": mean - half, "ci95_high": mean + half, "n": n}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    apply_scale(args)
    task = get_task(args.task)
    seeds: list[int] = args.seeds
    specs = []
    for item in [s.strip() for s in args.agents.split(",") if s.strip()]:
        name, _, path = item.partition("=")
        if name not in AGENTS:
            raise unknown_name("agent", name, AGENTS)
        if path and not Path(path).exists():
            raise UserError(f"saved agent {path} does not exist")
        if not path and AGENTS[name].learns:
            raise UserError(f"'{name}' learns: give its saved policy as {name}=PATH (from run_agent.py)")
        specs.append((item, name, Path(path) if path else None))
    if not specs:
        raise UserError("--agents needs at least one policy")
    prepare_out_dir(args.out)
    envs: dict[str, gym.Env] = {}
    results: dict[str, dict[str, Any]] = {}
    for label, name, path in specs:
        mode = preferred_action_mode(name)
        if mode not in envs:
            envs[mode] = make_env(env_config_from_cli(task.name, mode, args), train_teacher=True)
        env = envs[mode]
        policy: Agent = AGENTS[name].load(path, env) if path else make_agent(name, env, seed=0)
        episodes = [
            run_episode(env, policy, seed)
            for seed in tqdm(seeds, desc=label, unit="episode", disable=args.no_progress, leave=False)
        ]
        results[label] = {"episodes": episodes}
        for metric in METRICS:
            values = [float(e[metric]) for e in episodes if e[metric] is not None]
            if values:
                results[label][metric] = confidence(values)
        print(f"{label}: " + ", ".join(f"{m}={results[label][m]['mean']:.4f}" for m in METRICS if m in results[label]))
    write_json(args.out / "compare.json", {"task": task.name, "seeds": seeds, "results": results})
    write_tables(args.out, results)
    return 0


def write_tables(out: Path, results: dict[str, dict[str, Any]]) -> None:
    rows = []
    for label, res in results.items():
        for metric in METRICS:
            if metric in res:
                rows.append({"policy": label, "metric": metric, **res[metric]})
    with open(out / "compare.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=["policy", "metric", "n", "mean", "std", "ci95_low", "ci95_high"])
        writer.writeheader()
        writer.writerows(rows)
    lines = ["| policy | metric | n | mean | std | 95% CI |", "|---|---|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['policy']} | {r['metric']} | {r['n']} | {r['mean']:.4f} | {r['std']:.4f} | "
            f"[{r['ci95_low']:.4f}, {r['ci95_high']:.4f}] |"
        )
    (out / "compare.md").write_text("\n".join(lines) + "\n")
    metric = "student_acc" if any("student_acc" in r for r in results.values()) else "probe_agreement"
    labels = [label for label in results if metric in results[label]]
    means = [results[label][metric]["mean"] for label in labels]
    errors = [results[label][metric]["mean"] - results[label][metric]["ci95_low"] for label in labels]
    fig = Figure(figsize=(6.4, 4.0), dpi=110)
    ax = fig.add_subplot()
    ax.bar(range(len(labels)), means, yerr=errors, capsize=4)
    ax.set_xticks(range(len(labels)), labels, rotation=20)
    ax.set_ylabel(f"{metric} (mean, 95% CI)")
    low = min(m - e for m, e in zip(means, errors, strict=True)) if means else 0.0
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    fig.tight_layout()
    fig.savefig(out / "compare.png")


if __name__ == "__main__":
    sys.exit(run_cli(main))
