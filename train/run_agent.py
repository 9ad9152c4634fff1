#!/usr/bin/env python
"""Learn a data-selection policy for data-free distillation, then compare it with fixed strategies.

    python train/run_agent.py --agent ppo --task digits
    python train/run_agent.py --agent reinforce --task mnist --data-root ../shared/datasets/mnist
    python train/run_agent.py --agent ppo --task digits --out runs/agent/ppo --resume

The agent trains on the distillation environment for --total-steps rounds (episodes of --rounds
rounds), with checkpoints at episode ends; then the learned policy is evaluated on fresh seeds
beside the `ssdkd` and `random` baselines. Outputs in --out: summary.json, results.md,
learning_curve.png, eval_curves.png, samples.png, student.pt, tb/, checkpoint/.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from agents import Agent, list_agents, make_agent, preferred_action_mode
from agents.registry import AGENTS
from ssdkd_env.checkpoint import card_for, save_model
from ssdkd_env.common.cli import run_cli
from ssdkd_env.common.io import write_json
from ssdkd_env.engine.config import parse_override
from ssdkd_env.env import DistillationEnv
from ssdkd_env.env.evaluation import env_config_from_cli, episode_defaults, run_episode
from ssdkd_env.errors import UserError, unknown_name
from ssdkd_env.reporting import save_curves
from ssdkd_env.tasks import get_task, list_tasks

EVAL_SEED_BASE = 100_000  # evaluation episodes use seeds never seen in training


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--agent", default="ppo", help=f"one of: {', '.join(list_agents())}")
    p.add_argument("--task", default="digits", help=f"one of: {', '.join(list_tasks())}")
    p.add_argument("--total-steps", type=int, default=None, help="environment steps (rounds) to learn over")
    p.add_argument("--rounds", type=int, default=None, help="rounds per episode")
    p.add_argument("--eval-episodes", type=int, default=3, help="evaluation episodes per policy")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="device of the environment (distillation)")
    p.add_argument("--agent-device", default="cpu", help="device of the agent's own networks")
    p.add_argument("--teacher", default=None, help="teacher checkpoint")
    p.add_argument("--data-root", default=None, help="task data folder (teacher training, real test accuracy)")
    p.add_argument("--download", action="store_true", help="download the task's data if missing")
    p.add_argument("--config", type=Path, default=None, help="EnvConfig as YAML/JSON (engine, reward, costs, ...)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="engine override (dotted path)")
    p.add_argument("--hyper", action="append", default=[], metavar="KEY=VALUE", help="agent hyper-parameter")
    p.add_argument("--action", default=None, help="for --agent fixed: six comma-separated numbers in [-1, 1]")
    p.add_argument("--out", type=Path, default=None, help="output folder (default runs/agent/TASK-AGENT-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--no-progress", action="store_true")
    return p.parse_args(argv)


def agent_hyper(args: argparse.Namespace) -> dict[str, Any]:
    hyper = dict(parse_override(s) for s in args.hyper)
    if args.action is not None:
        try:
            hyper["action"] = [float(v) for v in args.action.split(",")]
        except ValueError:
            raise UserError(f"--action expects comma-separated numbers, got '{args.action}'") from None
        if len(hyper["action"]) != 6 or not all(-1.0 <= v <= 1.0 for v in hyper["action"]):
            raise UserError("--action needs six numbers in [-1, 1]")
    return hyper


def describe(values: list[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    task = get_task(args.task)
    if args.agent not in AGENTS:
        raise unknown_name("agent", args.agent, AGENTS)
    out = args.out or Path("runs") / "agent" / f"{task.name}-{args.agent}-s{args.seed}"
    ckpt_dir = out / "checkpoint"
    if args.resume and not (ckpt_dir / "progress.json").is_file():
        raise UserError(f"--resume: no checkpoint in {ckpt_dir}; start the run without --resume")
    total_steps = args.total_steps if args.total_steps is not None else episode_defaults(task.name)["total_steps"]
    if total_steps < 1 or args.eval_episodes < 1:
        raise UserError("--total-steps and --eval-episodes must be at least 1")

    start = time.perf_counter()
    config = env_config_from_cli(task.name, preferred_action_mode(args.agent), args)
    env = DistillationEnv(config)  # loads (or trains) the teacher; one-line error when impossible
    out.mkdir(parents=True, exist_ok=True)
    config.save(out / "env_config.yaml")
    hyper = agent_hyper(args)
    curve: list[dict[str, Any]] = []
    elapsed_before = 0.0
    if args.resume:
        progress = json.loads((ckpt_dir / "progress.json").read_text())
        agent = AGENTS[args.agent].load(ckpt_dir / "agent", env, device=args.agent_device)
        curve, elapsed_before = progress["curve"], float(progress["wall_time_s"])
    else:
        agent = make_agent(args.agent, env, seed=args.seed, device=args.agent_device, **hyper)

    writer = SummaryWriter(str(out / "tb"))
    bar = tqdm(
        total=total_steps,
        initial=agent.num_steps,
        desc=f"{args.agent} on {task.name}",
        unit="round",
        disable=args.no_progress,
    )
    episode_reward = 0.0

    def on_step(record: dict[str, Any]) -> bool:
        nonlocal episode_reward
        step = int(record["step"])
        episode_reward += float(record["reward"])
        info = record  # the env info, flattened with the step keys
        writer.add_scalar("env/reward", float(record["reward"]), step)
        for key in ("probe_agreement", "probe_kl", "test_acc", "kd_loss"):
            if info.get(key) is not None:
                writer.add_scalar(f"env/{key}", float(info[key]), step)
        for key, value in (record.get("losses") or {}).items():
            writer.add_scalar(f"agent/{key}", float(value), step)
        bar.update(1)
        if record.get("done"):
            curve.append(
                {
                    "step": step,
                    "episode_return": episode_reward,
                    "test_acc": info.get("test_acc"),
                    "probe_agreement": info.get("probe_agreement"),
                }
            )
            writer.add_scalar("train/episode_return", episode_reward, step)
            bar.set_postfix(ret=f"{episode_reward:.3f}", acc=f"{info.get('test_acc') or 0:.3f}")
            episode_reward = 0.0
            checkpoint(agent, ckpt_dir, curve, elapsed_before + time.perf_counter() - start)
        return True

    if agent.num_steps < total_steps:
        agent.learn(total_steps, callback=on_step)
    bar.close()
    checkpoint(agent, ckpt_dir, curve, elapsed_before + time.perf_counter() - start)
    agent.save(out / "agent")

    evaluations: dict[str, list[dict[str, Any]]] = {
        args.agent: [run_episode(env, agent, EVAL_SEED_BASE + i) for i in range(args.eval_episodes)]
    }
    # the learned policy's last evaluation episode: its student and buffer samples
    assert env.engine is not None
    student_arch = env.engine.config.student_arch or task.student_arch
    save_model(
        out / "student.pt",
        env.engine.delivered_student,
        card_for(task, student_arch, "student", env.engine.test_accuracy()),
    )
    frame = env_frame(env)
    if frame is not None:
        plt.imsave(out / "samples.png", frame)
    # baselines play in the continuous form, where SSD-KD's decisions are represented exactly
    baseline_env = env
    if config.action_mode != "continuous":
        baseline_env = DistillationEnv(dataclasses.replace(config, action_mode="continuous"))
    for baseline in ("ssdkd", "random"):
        if baseline != args.agent:
            policy = make_agent(baseline, baseline_env, seed=args.seed)
            evaluations[baseline] = [
                run_episode(baseline_env, policy, EVAL_SEED_BASE + i) for i in range(args.eval_episodes)
            ]
    writer.close()
    wall = elapsed_before + time.perf_counter() - start
    summary = {
        "agent": args.agent,
        "task": task.name,
        "total_steps": agent.num_steps,
        "wall_time_s": round(wall, 2),
        "rounds_per_episode": config.engine.rounds,
        "seed": args.seed,
        "eval_episodes": args.eval_episodes,
        "policies": {
            name: {
                "student_acc": describe([e["student_acc"] for e in eps]),
                "probe_agreement": describe([e["probe_agreement"] for e in eps]),
                "return": describe([e["return"] for e in eps]),
                "episodes": eps,
            }
            for name, eps in evaluations.items()
        },
        "learning_curve": curve,
        "env_config": config.to_dict(),
    }
    write_json(out / "summary.json", summary)
    write_outputs(out, summary)
    best = summary["policies"][args.agent]
    print(
        f"{args.agent} on {task.name}: student_acc={fmt(best['student_acc'])} "
        f"probe_agreement={fmt(best['probe_agreement'])} in {wall:.0f}s -> {out}"
    )
    return 0


def env_frame(env: DistillationEnv) -> np.ndarray | None:
    previous, env.render_mode = env.render_mode, "rgb_array"
    try:
        return env.render()
    finally:
        env.render_mode = previous


def checkpoint(agent: Agent, ckpt_dir: Path, curve: list[dict[str, Any]], wall: float) -> None:
    """Agent first, then the progress file that points at it: a kill between them loses nothing done."""
    agent.save(ckpt_dir / "agent")
    write_json(ckpt_dir / "progress.json", {"num_steps": agent.num_steps, "curve": curve, "wall_time_s": wall})


def fmt(stats: dict[str, float | None]) -> str:
    return "n/a" if stats["mean"] is None else f"{stats['mean']:.4f} ± {stats['std']:.4f}"


def write_outputs(out: Path, summary: dict[str, Any]) -> None:
    lines = ["| policy | student acc | probe agreement | return |", "|---|---:|---:|---:|"]
    for name, res in summary["policies"].items():
        lines.append(f"| {name} | {fmt(res['student_acc'])} | {fmt(res['probe_agreement'])} | {fmt(res['return'])} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    curve = summary["learning_curve"]
    if curve:
        series = {"episode return": ([c["step"] for c in curve], [c["episode_return"] for c in curve])}
        accs = [(c["step"], c["test_acc"]) for c in curve if c.get("test_acc") is not None]
        if accs:
            series["final test accuracy"] = ([a[0] for a in accs], [a[1] for a in accs])
        save_curves(out / "learning_curve.png", series, "environment step", f"{summary['agent']}: learning", ylim=None)
    series = {}
    for name, res in summary["policies"].items():
        for key, label in (("test_acc", "accuracy"), ("probe_agreement", "agreement")):
            per_round = [[r[key] for r in ep["rounds"]] for ep in res["episodes"]]
            if per_round and all(v is not None for row in per_round for v in row):
                mean = np.mean(np.array(per_round, dtype=float), axis=0)
                series[f"{name} {label}"] = (list(range(1, len(mean) + 1)), list(mean))
    save_curves(out / "eval_curves.png", series, "round", "evaluation: mean over episodes")


if __name__ == "__main__":
    sys.exit(run_cli(main))
