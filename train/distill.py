#!/usr/bin/env python
"""Distil a teacher into a student without data: SSD-KD and related methods.

    python train/distill.py --method ssdkd --task digits
    python train/distill.py --method ssdkd --task mnist --data-root ../shared/datasets/mnist

Outputs in --out: summary.json, metrics.csv, config.json, tb/ (TensorBoard), buffer_samples.png,
curves.png, student.pt and state.pt (for --resume).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ssdkd_env.common.cli import run_cli
from ssdkd_env.common.device import DEVICE_CHOICES, resolve_device
from ssdkd_env.engine import METHODS, EngineConfig, make_config, replace_nested
from ssdkd_env.engine.config import parse_override, read_config_file
from ssdkd_env.engine.run import RunSpec, load_resume_state, run_distillation
from ssdkd_env.errors import UserError
from ssdkd_env.tasks import get_task, list_tasks
from ssdkd_env.teachers import obtain_teacher, test_split_if_available


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--method", default="ssdkd", help=f"one of: {', '.join(METHODS)}")
    p.add_argument("--task", default="digits", help=f"one of: {', '.join(list_tasks())}")
    p.add_argument(
        "--teacher", default=None, help="teacher checkpoint (default: the cached teacher, trained if needed)"
    )
    p.add_argument("--data-root", default=None, help="task data folder (teacher training and real test accuracy)")
    p.add_argument("--download", action="store_true", help="download the task's data if missing")
    p.add_argument("--rounds", type=int, default=None, help="rounds (default: the task's)")
    p.add_argument("--kd-steps", type=int, default=None, help="distillation steps per round")
    p.add_argument("--buffer-size", type=int, default=None, help="replay buffer capacity")
    p.add_argument("--synth-budget", type=int, default=None, help="new synthetic samples per round")
    p.add_argument("--g-steps", type=int, default=None, help="generator steps per round")
    p.add_argument("--config", type=Path, default=None, help="JSON or YAML file with (partial) EngineConfig fields")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config field by dotted path, e.g. --set action.alpha=0.8 (repeatable)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed")
    p.add_argument("--device", default="auto", help=f"one of {', '.join(DEVICE_CHOICES)}")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/distill/TASK-METHOD-sSEED)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--checkpoint-every", type=int, default=10, help="rounds between checkpoints")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return p.parse_args(argv)


def build_config(args: argparse.Namespace) -> EngineConfig:
    config = make_config(args.task, args.method)
    if args.config is not None:
        config = config.merged_with(read_config_file(args.config))
    flags = {
        "rounds": args.rounds,
        "kd_steps": args.kd_steps,
        "buffer_size": args.buffer_size,
        "action.synth_budget": args.synth_budget,
        "synthesis.g_steps": args.g_steps,
    }
    changes = {k: v for k, v in flags.items() if v is not None}
    changes.update(dict(parse_override(s) for s in args.set))
    for key, value in changes.items():
        if isinstance(value, int) and not isinstance(value, bool) and value < 0:
            raise UserError(f"{key} must not be negative")
    config = replace_nested(config, **changes) if changes else config
    if config.rounds < 1 or config.buffer_size < 1:
        raise UserError("rounds and buffer size must be at least 1")
    if config.task != args.task or config.method != args.method:
        raise UserError("task and method come from --task and --method, not from --config")
    config.action.validate()
    return config


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    task = get_task(args.task)
    out = args.out or Path("runs") / "distill" / f"{task.name}-{args.method}-s{args.seed}"
    if args.resume:
        saved = json.loads((out / "config.json").read_text()) if (out / "config.json").is_file() else None
        load_resume_state(out)  # fails early with a one-line error when there is nothing to resume
        if saved is None:
            raise UserError(f"--resume: {out / 'config.json'} is missing")
        seed = int(saved.pop("seed"))
        config = EngineConfig.from_dict(saved)
    else:
        config, seed = build_config(args), args.seed
    device = resolve_device(args.device)
    teacher, card = obtain_teacher(task, args.teacher, args.data_root, args.download, device, not args.no_progress)
    spec = RunSpec(
        task=task,
        teacher=teacher,
        teacher_card=card,
        device=device,
        seed=seed,
        out_dir=out,
        test_set=test_split_if_available(task, args.data_root, args.download),
        resume=args.resume,
        checkpoint_every=args.checkpoint_every,
        progress=not args.no_progress,
    )
    summary = run_distillation(config, spec)
    acc = summary["student_acc"]
    acc_text = "n/a (no real test data)" if acc is None else f"{acc:.4f}"
    print(
        f"{config.method} on {task.name}: student_acc={acc_text} probe_agreement={summary['probe_agreement']:.4f} "
        f"teacher_acc={card.test_acc} samples={summary['synthetic_samples']} "
        f"time={summary['wall_time_s']:.1f}s -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
