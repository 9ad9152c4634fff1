#!/usr/bin/env python
"""Learn a data-selection policy for data-free distillation, then compare it with fixed strategies.

    python train/run_agent.py --agent ppo --task digits
    python train/run_agent.py --agent reinforce --task mnist --data-root ../shared/datasets/mnist
    python train/run_agent.py --out runs/agent/digits-ppo-s0 --resume

The agent trains on the distillation environment for --total-steps rounds (episodes of --rounds
rounds), with checkpoints at episode ends; then the learned policy is evaluated on fresh seeds
beside the `ssdkd` and `random` baselines. Outputs in --out: summary.json, results.md,
learning_curve.png, eval_curves.png, samples.png, student.pt, env_config.yaml, tb/, checkpoint/.

With --resume the run continues with the environment configuration saved in --out/env_config.yaml
and the agent, seed and hyper-parameters saved in --out/checkpoint/; --agent, --task, --seed,
--config, --regime, --rounds, --set, --teacher, --data-root, --download, --hyper and --action may
be repeated as they were, and are refused when they would change them. --total-steps (to train
further), --eval-episodes, --device, --agent-device and where episodes run (--n-envs, --transport,
--workers, --ray-address) may differ.

With --n-envs N (SB3 agents), N episodes are played at once, each environment seeded with
--seed + its index; --transport process puts them in worker processes (one torch thread each)
and --ray-address on a Ray cluster.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from matplotlib.image import imsave
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents import Agent, list_agents, make_agent, preferred_action_mode
from agents.registry import AGENTS
from agents.sb3 import SB3Agent
from ssdkd_env.checkpoint import card_for, save_model
from ssdkd_env.common.cli import (
    DefaultText,
    add_common_flags,
    apply_scale,
    explicit_flags,
    make_parser,
    refuse_changes_on_resume,
    run_cli,
)
from ssdkd_env.common.io import prepare_out_dir, write_json
from ssdkd_env.engine import replace_nested
from ssdkd_env.engine.config import parse_override
from ssdkd_env.env import ACTION_FIELDS, DistillationEnv, EnvConfig, make_env
from ssdkd_env.env.evaluation import default_total_steps, env_config_from_cli, make_env_config, run_episode
from ssdkd_env.env.vector import TRANSPORTS, GroupedVecEnv, make_vec_env
from ssdkd_env.errors import UserError, unknown_name
from ssdkd_env.reporting import save_curves
from ssdkd_env.tasks import get_task
from ssdkd_env.tasks.kinds import TASK_KINDS

EVAL_SEED_BASE = 100_000  # evaluation episodes use seeds never seen in training
ENV_CONFIG_FILE = "env_config.yaml"


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument("--agent", default="ppo", help=f"one of: {', '.join(list_agents())}")
    add_common_flags(p, "task", "scale")
    p.add_argument("--total-steps", type=int, default=None, help="environment steps (rounds) to learn over")
    add_common_flags(p, "rounds", "regime")
    p.add_argument(
        "--n-envs",
        type=int,
        default=None,
        help="episodes played at once while learning (SB3 agents; see --transport); default: 2 for SB3 agents on a "
        "machine with 2 or more cores, else 1",
    )
    p.add_argument(
        "--transport",
        choices=TRANSPORTS,
        default=None,
        help="where the --n-envs episodes run: local (this process, in turn), process (worker processes; the default "
        "when --n-envs > 1) or ray (Ray actors; the default with --ray-address)",
    )
    p.add_argument(
        "--workers", type=int, default=None, help="worker processes or actors (default: min(--n-envs, CPUs))"
    )
    p.add_argument(
        "--ray-address",
        default=None,
        metavar="ADDR",
        help="run the episodes on this Ray cluster ('auto', or ray://HEAD:10001); without it --transport ray starts "
        "a local Ray instance",
    )
    p.add_argument("--eval-episodes", type=int, default=3, help="evaluation episodes per policy")
    add_common_flags(p, "seed", "device")
    p.add_argument("--agent-device", default="cpu", help="device of the agent's own networks")
    add_common_flags(p, "teacher", "data-root", "download", "config", "set")
    p.add_argument("--hyper", action="append", default=[], metavar="KEY=VALUE", help="agent hyper-parameter")
    p.add_argument(
        "--action",
        default=None,
        help=f"for --agent fixed: {len(ACTION_FIELDS)} comma-separated numbers in [-1, 1], one per action field "
        f"({', '.join(f.name for f in ACTION_FIELDS)})",
    )
    add_common_flags(p, "out", "resume", "no-progress", out=DefaultText("runs/agent/TASK-AGENT-sSEED"))
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def agent_hyper(args: argparse.Namespace) -> dict[str, Any]:
    hyper = dict(parse_override(s) for s in args.hyper)
    if args.action is not None:
        try:
            hyper["action"] = [float(v) for v in args.action.split(",")]
        except ValueError:
            raise UserError(f"--action expects comma-separated numbers, got '{args.action}'") from None
        if len(hyper["action"]) != len(ACTION_FIELDS) or not all(-1.0 <= v <= 1.0 for v in hyper["action"]):
            raise UserError(f"--action needs {len(ACTION_FIELDS)} numbers in [-1, 1], got '{args.action}'")
    return hyper


def describe(values: list[float | None]) -> dict[str, float | None]:
    vals = [v for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None}
    return {"mean": statistics.fmean(vals), "std": statistics.stdev(vals) if len(vals) > 1 else 0.0}


@dataclasses.dataclass
class Resumed:
    """What a --resume continues: the saved configuration, agent, seed and learning progress."""

    config: EnvConfig
    agent: str
    seed: int
    hyper: dict[str, Any]
    progress: dict[str, Any]


def requested_env_config(saved: EnvConfig, args: argparse.Namespace, given: set[str], agent: str) -> EnvConfig:
    """The environment configuration the flags of a --resume ask for: the saved one with the
    given flags applied (with --config, that file in place of the saved configuration)."""
    task = args.task if "task" in given else saved.engine.task
    mode = preferred_action_mode(agent) if "agent" in given else saved.action_mode
    overrides = dict(parse_override(s) for s in args.set)
    if args.config is not None or "regime" in given:
        return make_env_config(
            task,
            mode,
            rounds=args.rounds,
            regime=args.regime,
            config_file=args.config,
            engine_overrides=overrides,
            teacher=args.teacher if "teacher" in given else saved.teacher,
            data_root=args.data_root if "data_root" in given else saved.data_root,
            download=args.download or saved.download,
            device=saved.device,
        )
    changes = {**overrides, **({"rounds": args.rounds} if args.rounds is not None else {})}
    if task != saved.engine.task:
        changes["task"] = task
    data = saved.to_dict()
    data["engine"] = (replace_nested(saved.engine, **changes) if changes else saved.engine).to_dict()
    data.update({dest: getattr(args, dest) for dest in ("teacher", "data_root", "download") if dest in given})
    data["action_mode"] = mode
    return EnvConfig.from_dict(data)


def resumed_run(args: argparse.Namespace, given: set[str], out: Path) -> Resumed:
    """Read what ``out`` holds to continue; flags that would change it are refused in one line."""
    progress_file, config_file = out / "checkpoint" / "progress.json", out / ENV_CONFIG_FILE
    if not progress_file.is_file():
        raise UserError(f"--resume: no checkpoint in {progress_file.parent}; start the run without --resume")
    if not config_file.is_file():
        raise UserError(f"--resume: {config_file} is missing; start the run afresh without --resume")
    try:
        progress = json.loads(progress_file.read_text())
    except json.JSONDecodeError as exc:
        raise UserError(f"--resume: {progress_file} is unreadable ({exc}); start the run afresh") from None
    saved_config = EnvConfig.load(config_file)
    saved = Resumed(
        config=saved_config,
        agent=str(progress.get("agent", args.agent)),  # checkpoints of earlier versions do not name their agent
        seed=int(progress.get("seed", args.seed)),
        hyper=dict(progress.get("hyper", {})),
        progress=progress,
    )
    if saved.agent not in AGENTS:
        raise unknown_name("agent", saved.agent, AGENTS)
    agent = args.agent if "agent" in given else saved.agent
    requested = {
        "agent": agent,
        "seed": args.seed if "seed" in given else saved.seed,
        "hyper": agent_hyper(args) if given & {"hyper", "action"} else saved.hyper,
        "env": requested_env_config(saved_config, args, given, agent).to_dict(),
    }
    refuse_changes_on_resume(
        {"agent": saved.agent, "seed": saved.seed, "hyper": saved.hyper, "env": saved_config.to_dict()},
        requested,
        config_file,
    )
    if "device" in given:  # where it runs may change, what it runs may not
        saved.config = dataclasses.replace(saved.config, device=args.device)
    return saved


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_scale(args)
    task = get_task(args.task)
    if args.agent not in AGENTS:
        raise unknown_name("agent", args.agent, AGENTS)
    out = args.out or Path("runs") / "agent" / f"{task.name}-{args.agent}-s{args.seed}"
    ckpt_dir = out / "checkpoint"
    resumed = resumed_run(args, explicit_flags(parser, argv), out) if args.resume else None
    if resumed is not None:
        config, agent_name, seed, hyper = resumed.config, resumed.agent, resumed.seed, resumed.hyper
        task = get_task(config.engine.task)
    else:
        config = env_config_from_cli(task.name, preferred_action_mode(args.agent), args)
        agent_name, seed, hyper = args.agent, args.seed, agent_hyper(args)
    total_steps = args.total_steps if args.total_steps is not None else default_total_steps(task.name, args.regime)
    sb3 = issubclass(AGENTS[agent_name], SB3Agent)
    n_envs = args.n_envs if args.n_envs is not None else (2 if sb3 and (os.cpu_count() or 1) >= 2 else 1)
    if total_steps < 1 or args.eval_episodes < 1 or n_envs < 1:
        raise UserError("--total-steps, --eval-episodes and --n-envs must be at least 1")
    transport = args.transport or ("ray" if args.ray_address else "process" if n_envs > 1 else "local")
    vectorised = n_envs > 1 or transport != "local"
    if vectorised and not sb3:
        raise UserError(
            f"agent '{agent_name}' plays one episode at a time; --n-envs, --transport and --ray-address need an "
            f"SB3 agent ({', '.join(n for n in AGENTS if issubclass(AGENTS[n], SB3Agent))})"
        )
    prepare_out_dir(out)

    start = time.perf_counter()
    env = make_env(config, train_teacher=True)  # trains a missing teacher; a one-line error when impossible
    base_env = env.unwrapped
    assert isinstance(base_env, DistillationEnv)
    if resumed is None:
        config.save(out / ENV_CONFIG_FILE)
    curve: list[dict[str, Any]] = []
    elapsed_before = 0.0
    train_env: gym.Env | GroupedVecEnv = env
    if vectorised:
        train_env = make_vec_env(
            config, n_envs, transport, n_workers=args.workers, ray_address=args.ray_address, seed=seed
        )
    if resumed is not None:
        agent = AGENTS[agent_name].load(ckpt_dir / "agent", train_env, device=args.agent_device)
        curve, elapsed_before = resumed.progress["curve"], float(resumed.progress["wall_time_s"])
    else:
        agent = make_agent(agent_name, train_env, seed=seed, device=args.agent_device, **hyper)
    identity = {"agent": agent_name, "seed": seed, "hyper": hyper}

    writer = SummaryWriter(str(out / "tb"))
    bar = tqdm(
        total=total_steps,
        initial=agent.num_steps,
        desc=f"{agent_name} on {task.name}",
        unit="round",
        disable=args.no_progress,
    )

    def on_step(record: dict[str, Any]) -> bool:
        step = int(record["step"])
        info = record  # the env info, flattened with the step keys
        writer.add_scalar("env/reward", float(record["reward"]), step)
        for key in ("probe_agreement", "probe_kl", "test_acc", "kd_loss"):
            if info.get(key) is not None:
                writer.add_scalar(f"env/{key}", float(info[key]), step)
        for key, value in (record.get("losses") or {}).items():
            writer.add_scalar(f"agent/{key}", float(value), step)
        bar.update(1)
        if record.get("done"):
            episode_reward = float(record["episode_return"])
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
            checkpoint(agent, ckpt_dir, identity, curve, elapsed_before + time.perf_counter() - start)
        return True

    if agent.num_steps < total_steps:
        agent.learn(total_steps, callback=on_step)
    bar.close()
    if train_env is not env:
        train_env.close()
    checkpoint(agent, ckpt_dir, identity, curve, elapsed_before + time.perf_counter() - start)
    agent.save(out / "agent")

    baselines = [name for name in ("ssdkd", "random") if name != agent_name]
    eval_bar = tqdm(
        total=(1 + len(baselines)) * args.eval_episodes * config.engine.rounds,
        desc=f"evaluating {', '.join([agent_name, *baselines])}",
        unit="round",
        disable=args.no_progress,
    )

    def evaluate(policy_env: gym.Env, policy: Any, name: str) -> list[dict[str, Any]]:
        """``args.eval_episodes`` episodes of ``policy`` on the fresh evaluation seeds."""
        eval_bar.set_postfix(policy=name)
        return [
            run_episode(policy_env, policy, EVAL_SEED_BASE + i, on_round=lambda: eval_bar.update(1))
            for i in range(args.eval_episodes)
        ]

    evaluations: dict[str, list[dict[str, Any]]] = {agent_name: evaluate(env, agent, agent_name)}
    # the learned policy's last evaluation episode: its student and buffer samples
    engine = base_env.engine
    assert engine is not None
    student_arch = engine.config.student_arch or task.student_arch
    save_model(
        out / "student.pt",
        engine.delivered_student,
        card_for(task, student_arch, "student", engine.test_accuracy()),
    )
    frame = env_frame(base_env)
    if frame is not None:
        imsave(out / "samples.png", frame)
    # baselines play in the continuous form, where SSD-KD's decisions are represented exactly
    baseline_env = env
    if config.action_mode != "continuous":
        baseline_env = make_env(dataclasses.replace(config, action_mode="continuous"))
    for baseline in baselines:
        evaluations[baseline] = evaluate(baseline_env, make_agent(baseline, baseline_env, seed=seed), baseline)
    eval_bar.close()
    writer.close()
    wall = elapsed_before + time.perf_counter() - start
    summary = {
        "agent": agent_name,
        "task": task.name,
        "metric": TASK_KINDS.get(task.kind).metric,  # what student_acc measures: accuracy, or miou
        "total_steps": agent.num_steps,
        "wall_time_s": round(wall, 2),
        "rounds_per_episode": config.engine.rounds,
        "n_envs": n_envs,
        "transport": transport,
        "seed": seed,
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
    best = summary["policies"][agent_name]
    print(
        f"{agent_name} on {task.name}: student_{summary['metric']}={fmt(best['student_acc'])} "
        f"probe_agreement={fmt(best['probe_agreement'])} in {wall:.0f}s -> {out}"
    )
    return 0


def env_frame(env: DistillationEnv) -> np.ndarray | None:
    previous, env.render_mode = env.render_mode, "rgb_array"
    try:
        return env.render()
    finally:
        env.render_mode = previous


def checkpoint(
    agent: Agent, ckpt_dir: Path, identity: dict[str, Any], curve: list[dict[str, Any]], wall: float
) -> None:
    """Agent first, then the progress file that points at it: a kill between them loses nothing done.

    ``identity`` (agent name, seed, hyper-parameters asked for) is what --resume restores."""
    agent.save(ckpt_dir / "agent")
    write_json(
        ckpt_dir / "progress.json",
        {**identity, "num_steps": agent.num_steps, "curve": curve, "wall_time_s": wall},
    )


def fmt(stats: dict[str, float | None]) -> str:
    return "n/a" if stats["mean"] is None else f"{stats['mean']:.4f} ± {stats['std']:.4f}"


def write_outputs(out: Path, summary: dict[str, Any]) -> None:
    metric = "acc" if summary["metric"] == "accuracy" else summary["metric"]
    lines = [f"| policy | student {metric} | probe agreement | return |", "|---|---:|---:|---:|"]
    for name, res in summary["policies"].items():
        lines.append(f"| {name} | {fmt(res['student_acc'])} | {fmt(res['probe_agreement'])} | {fmt(res['return'])} |")
    (out / "results.md").write_text("\n".join(lines) + "\n")
    curve = summary["learning_curve"]
    if curve:
        series = {"episode return": ([c["step"] for c in curve], [c["episode_return"] for c in curve])}
        accs = [(c["step"], c["test_acc"]) for c in curve if c.get("test_acc") is not None]
        if accs:
            series[f"final test {summary['metric']}"] = ([a[0] for a in accs], [a[1] for a in accs])
        save_curves(out / "learning_curve.png", series, "environment step", f"{summary['agent']}: learning", ylim=None)
    series = {}
    for name, res in summary["policies"].items():
        for key, label in (("test_acc", summary["metric"]), ("probe_agreement", "agreement")):
            per_round = [[r[key] for r in ep["rounds"]] for ep in res["episodes"]]
            if per_round and all(v is not None for row in per_round for v in row):
                mean = np.mean(np.array(per_round, dtype=float), axis=0)
                series[f"{name} {label}"] = (list(range(1, len(mean) + 1)), list(mean))
    save_curves(out / "eval_curves.png", series, "round", "evaluation: mean over episodes")


if __name__ == "__main__":
    sys.exit(run_cli(main))
