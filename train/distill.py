#!/usr/bin/env python
"""Distil a teacher into a student without data: SSD-KD and related methods.

    python train/distill.py --method ssdkd --task digits
    python train/distill.py --method ssdkd --task mnist --data-root ../shared/datasets/mnist

Outputs in --out: summary.json, metrics.csv, config.json, tb/ (TensorBoard), buffer_samples.png,
curves.png, student.pt and state.pt (for --resume).

With --resume the run continues with the configuration and seed saved in --out/config.json;
--method, --task, --seed, --config, --rounds, --kd-steps, --buffer-size, --synth-budget,
--g-steps and --set may be repeated as they were, and are refused when they would change it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ssdkd_env.common.cli import (
    DefaultText,
    add_common_flags,
    apply_scale,
    explicit_flags,
    make_parser,
    refuse_changes_on_resume,
    run_cli,
)
from ssdkd_env.common.device import resolve_device
from ssdkd_env.common.runfolder import RunFolder
from ssdkd_env.engine import METHODS, EngineConfig, make_config, replace_nested, with_data_root
from ssdkd_env.engine.config import parse_override, read_config_file
from ssdkd_env.engine.run import RUN_FILES, RunSpec, load_resume_state, run_distillation
from ssdkd_env.errors import UserError
from ssdkd_env.tasks import get_task
from ssdkd_env.teachers import obtain_teacher, test_split_if_available

# flags that set the run's configuration (with --task, --method and --seed): refused on --resume when they change it
CONFIG_FLAGS = {
    "rounds": "rounds",
    "kd_steps": "kd_steps",
    "buffer_size": "buffer_size",
    "synth_budget": "action.synth_budget",
    "g_steps": "meta-generator.g_steps",
}


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument("--method", default="ssdkd", help=f"one of: {', '.join(METHODS)}")
    add_common_flags(p, "task", "scale", "teacher", "data-root", "download", "rounds")
    p.add_argument("--kd-steps", type=int, default=None, help="distillation steps per round")
    p.add_argument("--buffer-size", type=int, default=None, help="replay buffer capacity")
    p.add_argument("--synth-budget", type=int, default=None, help="new synthetic samples per round")
    p.add_argument("--g-steps", type=int, default=None, help="generator steps per round")
    add_common_flags(
        p,
        "config",
        "set",
        "seed",
        "device",
        "out",
        "resume",
        "overwrite",
        out=DefaultText("runs/distill/TASK-METHOD-sSEED"),
    )
    p.add_argument(
        "--checkpoint-every", type=int, default=10, metavar="N", help="rounds between checkpoints (at least 1)"
    )
    add_common_flags(p, "no-progress")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def build_config(args: argparse.Namespace, task: str, method: str, base: EngineConfig | None = None) -> EngineConfig:
    """The configuration the flags ask for: ``--config`` over the method's defaults (or over
    ``base``, a saved configuration, when no ``--config`` is given), then the flags and ``--set``."""
    if args.config is not None or base is None:
        config = make_config(task, method)
        if args.config is not None:
            config = config.merged_with(read_config_file(args.config))
    else:
        config = replace_nested(base, task=task, method=method)
    changes = {key: getattr(args, dest) for dest, key in CONFIG_FLAGS.items() if getattr(args, dest) is not None}
    changes.update(dict(parse_override(s) for s in args.set))
    config = replace_nested(config, **changes) if changes else config  # every value is checked here
    config = with_data_root(config, args.data_root)
    if config.task != task or config.method != method:
        raise UserError("task and method come from --task and --method, not from --config")
    return config


def resumed_config(args: argparse.Namespace, given: set[str], out: Path) -> tuple[EngineConfig, int]:
    """The configuration and seed saved in ``out``; flags that would change them are refused."""
    config_file = out / "config.json"
    load_resume_state(out)  # fails early with a one-line error when there is nothing to resume
    if not config_file.is_file():
        raise UserError(f"--resume: {config_file} is missing; start the run afresh with --overwrite")
    try:
        saved = json.loads(config_file.read_text())
        seed = int(saved.pop("seed"))
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise UserError(
            f"--resume: {config_file} is damaged ({type(exc).__name__}: {exc}); start the run afresh with --overwrite"
        ) from None
    config = EngineConfig.from_dict(saved)
    task = args.task if "task" in given else config.task
    method = args.method if "method" in given else config.method
    requested = build_config(args, task, method, base=config)
    refuse_changes_on_resume(
        {"seed": seed, **config.to_dict()},
        {"seed": args.seed if "seed" in given else seed, **requested.to_dict()},
        config_file,
    )
    return config, seed


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    apply_scale(args)
    task = get_task(args.task)
    if args.checkpoint_every < 1:
        raise UserError(
            f"--checkpoint-every is the rounds between checkpoints, at least 1; got {args.checkpoint_every}"
        )
    out = args.out or Path("runs") / "distill" / f"{task.name}-{args.method}-s{args.seed}"
    # a fresh run's flags are checked before its folder is touched; a resumed run's once the folder is held
    fresh = None if args.resume else (build_config(args, task.name, args.method), args.seed)
    with RunFolder(out, RUN_FILES, resume=args.resume, overwrite=args.overwrite):
        config, seed = fresh or resumed_config(args, explicit_flags(parser, argv), out)
        return distill(args, config, seed, out)


def distill(args: argparse.Namespace, config: EngineConfig, seed: int, out: Path) -> int:
    """The run of ``config`` in the folder ``out``, which :func:`main` holds."""
    task = get_task(config.task)
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
    acc, metric = summary["student_acc"], summary["metric"]  # accuracy, or miou for segmentation
    acc_text = "n/a (no real test data)" if acc is None else f"{acc:.4f}"
    print(
        f"{config.method} on {task.name}: student_{metric}={acc_text} probe_agreement={summary['probe_agreement']:.4f} "
        f"teacher_{metric}={card.test_acc} samples={summary['synthetic_samples']} "
        f"time={summary['wall_time_s']:.1f}s -> {out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
