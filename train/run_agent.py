#!/usr/bin/env python
"""Learn a data-selection policy for data-free distillation, then compare it with fixed strategies.

    python train/run_agent.py --agent ppo --task digits
    python train/run_agent.py --agent reinforce --task mnist --data-root ../shared/datasets/mnist
    python train/run_agent.py --out runs/agent/digits-ppo-s0 --resume

The agent trains on the distillation environment for --total-steps rounds (episodes of --rounds
rounds), with checkpoints at episode ends. Then the learned policy and the --baselines (default:
SSD-KD's rule `ssdkd` and `uniform` replay) each play the same --eval-episodes fresh seeds, and the
policy is compared with each baseline by a paired test over those seeds (the difference in final
student accuracy and in return, with its 95% CI and p-value), printed at the end and written to
results.md. Outputs in --out: summary.json, results.md, learning_curve.png (per training
environment), eval_curves.png, samples.png (the memory at the end of the policy's last evaluation
episode), student.pt, env_config.yaml, tb/, checkpoint/.

`ppo` starts at SSD-KD's rule unless --hyper says otherwise (RUN_DEFAULTS; --help lists them).

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
import sys
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents import Agent, list_agents, make_agent, preferred_action_mode
from agents.common.evaluation import EvalJob, KeptEpisode, evaluate_jobs
from agents.registry import AGENTS, check_hyper
from agents.sb3 import SB3Agent
from ssdkd_env.checkpoint import card_for, save_model
from ssdkd_env.common.cli import (
    DefaultText,
    add_common_flags,
    apply_scale,
    apply_suite,
    explicit_flags,
    make_parser,
    refuse_changes_on_resume,
    run_cli,
)
from ssdkd_env.common.io import write_json, write_text
from ssdkd_env.common.runfolder import RunFolder
from ssdkd_env.engine import replace_nested
from ssdkd_env.engine.config import parse_override
from ssdkd_env.env import ACTION_FIELDS, DistillationEnv, EnvConfig, make_env
from ssdkd_env.env.evaluation import (
    confidence,
    default_total_steps,
    env_config_from_cli,
    make_env_config,
    paired_against,
)
from ssdkd_env.env.vector import TRANSPORTS, GroupedVecEnv, make_vec_env
from ssdkd_env.errors import UserError, unknown_name
from ssdkd_env.reporting import save_curves, save_learning_curves, save_sample_grid
from ssdkd_env.tasks import get_task
from ssdkd_env.tasks.kinds import TASK_KINDS

EVAL_SEED_BASE = 100_000  # evaluation episodes use seeds never seen in training
EVAL_CHUNK = 4  # evaluation seeds per job: a job's episodes do not depend on how jobs are spread over workers
ENV_CONFIG_FILE = "env_config.yaml"
# what a run writes in its folder: a folder holding any of them holds a run (ssdkd_env/common/runfolder.py)
RUN_FILES = (
    ENV_CONFIG_FILE,
    "checkpoint",
    "summary.json",
    "results.md",
    "agent",
    "tb",
    "student.pt",
    "learning_curve.png",
    "eval_curves.png",
    "samples.png",
)
# Hyper-parameters run_agent.py gives an agent unless --hyper overrides them. PPO starts at SSD-KD's
# rule with a narrow spread and a larger step (docs/notebook/2026-12-02.md, "PPO started at the rule"): from SB3's
# own start (the centre of the box, std 1) it spends its first episodes acting at random.
RUN_DEFAULTS: dict[str, dict[str, Any]] = {"ppo": {"start_at_rule": True, "initial_std": 0.3, "learning_rate": 1e-3}}
BASELINES = {"ssdkd": "the rule", "uniform": "uniform replay", "random": "random actions"}


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument("--agent", default="ppo", help=f"one of: {', '.join(list_agents())}")
    add_common_flags(p, "task", "scale")
    p.add_argument(
        "--total-steps",
        type=int,
        default=None,
        help="environment steps (rounds) to learn over (default: the regime's; "
        f"{default_total_steps('digits', None)} for digits)",
    )
    add_common_flags(p, "rounds", "regime", "suite", "instance-dir")
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
    p.add_argument(
        "--eval-episodes",
        type=int,
        default=16,
        help="evaluation episodes per policy: every policy plays the same seeds, so differences are paired by seed",
    )
    p.add_argument(
        "--baselines",
        default="ssdkd,uniform",
        help="fixed policies the learned one is compared with, comma-separated (any fixed agent, e.g. random)",
    )
    p.add_argument(
        "--eval-workers",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="evaluation episodes played at once, in worker processes of one torch thread each",
    )
    add_common_flags(p, "seed", "device")
    p.add_argument("--agent-device", default="cpu", help="device of the agent's own networks")
    add_common_flags(p, "teacher", "data-root", "download", "config", "set")
    p.add_argument(
        "--hyper",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="agent hyper-parameter, over the agent's defaults and these of run_agent.py: "
        + "; ".join(
            f"{name}: " + ", ".join(f"{k}={v}" for k, v in hyper.items()) for name, hyper in RUN_DEFAULTS.items()
        ),
    )
    p.add_argument(
        "--action",
        default=None,
        help="for --agent fixed: comma-separated numbers in [-1, 1], one per action field of the method ("
        f"ssdkd: {', '.join(f.name for f in ACTION_FIELDS)}; docs/environment.md#action lists every method's)",
    )
    add_common_flags(p, "out", "resume", "overwrite", "no-progress", out=DefaultText("runs/agent/TASK-AGENT-sSEED"))
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def agent_hyper(args: argparse.Namespace, agent: str) -> dict[str, Any]:
    """``agent``'s hyper-parameters: :data:`RUN_DEFAULTS`, then --hyper, then --action."""
    hyper = {**RUN_DEFAULTS.get(agent, {}), **dict(parse_override(s, "--hyper") for s in args.hyper)}
    if args.action is not None:
        try:
            hyper["action"] = [float(v) for v in args.action.split(",")]
        except ValueError:
            raise UserError(f"--action expects comma-separated numbers, got '{args.action}'") from None
        if not all(-1.0 <= v <= 1.0 for v in hyper["action"]):  # how many: the method's, checked by the agent
            raise UserError(f"--action needs numbers in [-1, 1], got '{args.action}'")
    check_hyper(agent, hyper)  # by name and type, before a folder is touched or a worker starts
    return hyper


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
    afresh = (
        "start it afresh with --overwrite"
        if any((out / n).exists() for n in RUN_FILES)
        else "start it without --resume"
    )
    if not progress_file.is_file():
        raise UserError(f"--resume: no checkpoint in {progress_file.parent} to continue from; {afresh}")
    if not config_file.is_file():
        raise UserError(f"--resume: {config_file} is missing; {afresh}")
    try:
        progress = json.loads(progress_file.read_text())
        if not isinstance(progress, dict):
            raise ValueError("not a mapping")
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError) as exc:
        raise UserError(f"--resume: {progress_file} is damaged ({exc}); {afresh}") from None
    saved_config = EnvConfig.load(config_file, "--resume: the saved configuration", afresh)
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
        "hyper": agent_hyper(args, agent) if given & {"hyper", "action"} else saved.hyper,
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
    apply_suite(args)
    task = get_task(args.task)
    if args.agent not in AGENTS:
        raise unknown_name("agent", args.agent, AGENTS)
    out = args.out or Path("runs") / "agent" / f"{task.name}-{args.agent}-s{args.seed}"
    if not args.resume:
        agent_hyper(args, args.agent)  # a bad --hyper or --action is refused here
    with RunFolder(out, RUN_FILES, resume=args.resume, overwrite=args.overwrite):
        return learn_and_compare(parser, args, argv, out)


def learn_and_compare(
    parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str] | None, out: Path
) -> int:
    """Learn (or continue learning), then evaluate against the baselines, in the folder ``out``
    that :func:`main` holds."""
    task = get_task(args.task)
    ckpt_dir = out / "checkpoint"
    resumed = resumed_run(args, explicit_flags(parser, argv), out) if args.resume else None
    if resumed is not None:
        config, agent_name, seed, hyper = resumed.config, resumed.agent, resumed.seed, resumed.hyper
        task = get_task(config.engine.task)
    else:
        config = env_config_from_cli(task.name, preferred_action_mode(args.agent), args, instance_set="train")
        agent_name, seed, hyper = args.agent, args.seed, agent_hyper(args, args.agent)
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

    start = time.perf_counter()
    env = make_env(config, train_teacher=True)  # trains a missing teacher; a one-line error when impossible
    base_env = env.unwrapped
    assert isinstance(base_env, DistillationEnv)
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
        config.save(out / ENV_CONFIG_FILE)  # once the run is sure to start: a folder without it holds no run
    identity = {"agent": agent_name, "seed": seed, "hyper": hyper}

    writer = SummaryWriter(str(out / "tb"))
    bar = tqdm(
        total=total_steps,
        initial=agent.num_steps,
        desc=f"{agent_name} on {task.name}",
        unit="round",
        disable=args.no_progress,
    )

    episode_ended = False  # in the vector step whose records are being counted

    def on_step(record: dict[str, Any]) -> bool:
        nonlocal episode_ended
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
                    "env_index": int(record.get("env_index", 0)),
                }
            )
            writer.add_scalar("train/episode_return", episode_reward, step)
            bar.set_postfix(ret=f"{episode_reward:.3f}", acc=f"{info.get('test_acc') or 0:.3f}")
            episode_ended = True
        # a checkpoint once every environment's record of the step is counted: its episodes are all in it
        if episode_ended and int(record.get("env_index", 0)) == n_envs - 1:
            checkpoint(agent, ckpt_dir, identity, curve, elapsed_before + time.perf_counter() - start)
            episode_ended = False
        return True

    if agent.num_steps < total_steps:
        agent.learn(total_steps, callback=on_step)
    bar.close()
    if train_env is not env:
        train_env.close()
    checkpoint(agent, ckpt_dir, identity, curve, elapsed_before + time.perf_counter() - start)
    agent.save(out / "agent")
    writer.close()
    env.close()

    baselines = [name for name in parse_baselines(args.baselines) if name != agent_name]
    if config.suite is not None:  # learnt on the suite's train split, evaluated on its held-out test split
        config = dataclasses.replace(config, instance_set="test")
    # baselines play in the continuous form, where SSD-KD's decisions are represented exactly
    baseline_config = dataclasses.replace(config, action_mode="continuous").to_dict()
    seeds = [EVAL_SEED_BASE + i for i in range(args.eval_episodes)]
    chunks = [tuple(seeds[i : i + EVAL_CHUNK]) for i in range(0, len(seeds), EVAL_CHUNK)]
    jobs = [
        EvalJob(agent_name, agent_name, config.to_dict(), chunk, out / "agent", keep_last=chunk is chunks[-1])
        for chunk in chunks
    ]
    jobs += [EvalJob(name, name, baseline_config, chunk, agent_seed=seed) for name in baselines for chunk in chunks]
    eval_bar = tqdm(
        total=(1 + len(baselines)) * len(seeds),
        desc=f"evaluating {', '.join([agent_name, *baselines])}",
        unit="episode",
        disable=args.no_progress,
    )
    outcomes = evaluate_jobs(jobs, args.eval_workers, on_done=lambda r: eval_bar.update(len(r.episodes)))
    eval_bar.close()
    evaluations = {
        name: [e for r in outcomes if r.job.label == name for e in r.episodes] for name in [agent_name, *baselines]
    }
    kept = next((r.kept for r in outcomes if r.kept is not None), None)
    if kept is not None:
        save_kept(out, kept, evaluations[agent_name][-1]["student_acc"], task, config, agent_name)
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
        "hyper": agent.hyper,
        "eval_episodes": args.eval_episodes,
        "eval_seeds": seeds,
        "policies": {
            name: {
                "student_acc": describe([e["student_acc"] for e in eps]),
                "probe_agreement": describe([e["probe_agreement"] for e in eps]),
                "return": describe([e["return"] for e in eps]),
                "episodes": eps,
            }
            for name, eps in evaluations.items()
        },
        # the learned policy minus each baseline, paired by evaluation seed
        "paired": {name: paired_against(evaluations[agent_name], evaluations[name]) for name in baselines},
        "learning_curve": curve,
        "env_config": config.to_dict(),
    }
    write_json(out / "summary.json", summary)
    lines = write_outputs(out, summary)
    print("\n".join(lines[2:]))  # the tables and what they cover, without results.md's heading
    print(f"-> {out} ({wall:.0f} s)")
    return 0


def parse_baselines(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        if name not in AGENTS:
            raise unknown_name("agent", name, AGENTS)
        if AGENTS[name].learns:
            raise UserError(f"--baselines takes fixed policies; '{name}' learns (compare saved ones with compare.py)")
    return names


def save_kept(out: Path, kept: KeptEpisode, score: float, task: Any, config: EnvConfig, agent_name: str) -> None:
    """``student.pt`` and ``samples.png`` from the end of the learned policy's last evaluation episode."""
    student_arch = config.engine.student_arch or task.student_arch
    save_model(out / "student.pt", kept.student, card_for(task, student_arch, "student", score))
    save_sample_grid(
        out / "samples.png",
        kept.images,
        kept.classes,
        task.num_classes,
        task.mean,
        task.std,
        confidence=kept.confidence,
        title=f"{agent_name}: the memory at the end of its last evaluation episode, one row per teacher class",
    )


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


def describe(values: list[float | None]) -> dict[str, float | None]:
    """Mean, std and 95% CI (:func:`confidence`) of the values that are not None."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return {"mean": None, "std": None}
    return dict(confidence(vals))


def _ci(stats: dict[str, Any], scale: float, digits: int, sign: str = "") -> str:
    """``mean [low, high]`` of a :func:`confidence` or :func:`paired_test` result, times ``scale``."""
    if stats.get("mean") is None:
        return "n/a"
    f = f"{{:{sign}.{digits}f}}"
    return (
        f"{f.format(stats['mean'] * scale)} "
        f"[{f.format(stats['ci95_low'] * scale)}, {f.format(stats['ci95_high'] * scale)}]"
    )


def _p(stats: dict[str, Any]) -> str:
    p = stats.get("p_value")
    return "n/a" if p is None or p != p else "< 0.001" if p < 0.001 else f"{p:.3f}"


def write_outputs(out: Path, summary: dict[str, Any]) -> list[str]:
    """results.md (returned as its lines), learning_curve.png and eval_curves.png."""
    agent, metric, policies = summary["agent"], summary["metric"], summary["policies"]
    seeds = summary["eval_seeds"]
    unit = "points" if metric == "accuracy" else f"{metric} points"
    lines = [
        f"# {agent} on {summary['task']}, training seed {summary['seed']}",
        "",
        f"{agent} learned for {summary['total_steps']} rounds (episodes of {summary['rounds_per_episode']} rounds, "
        f"{summary['n_envs']} at a time) in a run of {summary['wall_time_s']:.0f} s, evaluation included. "
        f"Each policy then played the same {len(seeds)} evaluation episodes (seeds {seeds[0]}-{seeds[-1]}, "
        "deterministic actions).",
        "",
        f"| policy | student {metric} (%), mean [95% CI] | probe agreement | return |",
        "|---|---|---|---|",
    ]
    for name, res in policies.items():
        role = "learned" if name == agent else BASELINES.get(name, "baseline")
        lines.append(
            f"| {name} ({role}) | {_ci(res['student_acc'], 100, 2)} | {_ci(res['probe_agreement'], 1, 3)} | "
            f"{_ci(res['return'], 1, 3)} |"
        )
    lines += [
        "",
        f"| {agent} minus | student {metric}, {unit} [95% CI] | p | return [95% CI] | p | paired episodes |",
        "|---|---|---:|---|---:|---:|",
    ]
    for name, paired in summary["paired"].items():
        acc, ret = paired.get("student_acc", {}), paired.get("return", {})
        lines.append(
            f"| {name} ({BASELINES.get(name, 'baseline')}) | {_ci(acc, 100, 2, '+')} | {_p(acc)} | "
            f"{_ci(ret, 1, 3, '+')} | {_p(ret)} | {acc.get('n', 0)} |"
        )
    lines += [
        "",
        f"Paired by evaluation seed: the CIs and p-values (t-test of the per-seed differences) cover the spread "
        f"over evaluation episodes of this one training run (seed {summary['seed']}), not over training runs; "
        "`train/compare.py --train-seeds` gives the latter.",
    ]
    write_text(out / "results.md", "\n".join(lines) + "\n")
    save_training_curves(out / "learning_curve.png", summary)
    series = {}
    shown: list[str] = []  # the y quantities drawn, for the axis label
    for name, res in policies.items():
        for key, label in (("test_acc", f"student {metric}"), ("probe_agreement", "probe agreement")):
            per_round = [[r[key] for r in ep["rounds"]] for ep in res["episodes"]]
            if per_round and all(v is not None for row in per_round for v in row):
                mean = np.mean(np.array(per_round, dtype=float), axis=0)
                series[f"{name} {label}"] = (list(range(1, len(mean) + 1)), list(mean))
                if label not in shown:
                    shown.append(label)
    title = "evaluation: per-round mean over each policy's episodes"
    save_curves(out / "eval_curves.png", series, "round", title, ylabel=" / ".join(shown))
    return lines


def curves_by_environment(summary: dict[str, Any]) -> dict[str, dict[str, list[float]]]:
    """The training episodes of each environment (seeded with the run's seed plus its index), in
    order: their returns and final student scores."""
    return_key, acc_key = "episode return", f"final student {summary['metric']}"
    runs: dict[str, dict[str, list[float]]] = {}
    for c in summary["learning_curve"]:
        index = int(c.get("env_index", 0))
        run = runs.setdefault(f"env {index} (seed {summary['seed'] + index})", {return_key: [], acc_key: []})
        run[return_key].append(float(c["episode_return"]))
        if c.get("test_acc") is not None:
            run[acc_key].append(float(c["test_acc"]))
    return runs


def save_training_curves(path: Path, summary: dict[str, Any]) -> None:
    """The learning curve of each training environment, with the evaluation means of the baselines
    for reference."""
    if not summary["learning_curve"]:
        return
    runs = curves_by_environment(summary)
    return_key, acc_key = "episode return", f"final student {summary['metric']}"
    references = {
        f"{name}: evaluation mean (deterministic)": {
            return_key: res["return"]["mean"],
            acc_key: res["student_acc"]["mean"],
        }
        for name, res in summary["policies"].items()
        if name != summary["agent"] and res["return"]["mean"] is not None
    }
    episodes = max(len(run[return_key]) for run in runs.values())
    save_learning_curves(
        path,
        runs,
        f"{summary['agent']} on {summary['task']}: training episodes (stochastic actions) per environment",
        window=max(2, min(10, episodes // 4)),
        references=references,
    )


if __name__ == "__main__":
    sys.exit(run_cli(main))
