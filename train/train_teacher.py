#!/usr/bin/env python
"""Train a teacher classifier on a task's real data and save a validated checkpoint.

    python train/train_teacher.py --task digits
    python train/train_teacher.py --task mnist --arch lenet5 --data-root ../shared/datasets/mnist

Without ``--out`` the teacher goes to the cache (``$SSDKD_ENV_CACHE``, default
``~/.cache/ssdkd_env``) under ``teachers/<task>/<arch>/``, where later runs find it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssdkd_env.common.cli import DefaultText, add_common_flags, apply_scale, make_parser, run_cli
from ssdkd_env.common.device import resolve_device
from ssdkd_env.common.io import default_teacher_dir
from ssdkd_env.common.runfolder import RunFolder
from ssdkd_env.errors import UserError, unknown_name
from ssdkd_env.models import list_models
from ssdkd_env.supervised import RUN_FILES, TeacherRun, train_teacher
from ssdkd_env.tasks import get_task


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    add_common_flags(p, "task", "scale")
    p.add_argument(
        "--arch", default=None, help=f"architecture (default: the task's teacher): {', '.join(list_models())}"
    )
    add_common_flags(p, "data-root", "download")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (default: the task's recipe)")
    cache = DefaultText("the teacher cache, $SSDKD_ENV_CACHE/teachers/TASK/ARCH")
    add_common_flags(p, "seed", "device", "out", "resume", "overwrite", "no-progress", out=cache)
    p.add_argument(
        "--compile", action="store_true", help="torch.compile the training forward pass (for long runs on a GPU)"
    )
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    apply_scale(args)
    task = get_task(args.task)
    arch = args.arch or task.teacher_arch
    if arch not in list_models():
        raise unknown_name("architecture", arch, list_models())
    if args.epochs is not None and args.epochs < 1:
        raise UserError("--epochs must be at least 1")
    out = Path(args.out or default_teacher_dir(task.name, arch))
    run = TeacherRun(
        task=task,
        arch=arch,
        out_dir=out,
        data_root=args.data_root,
        download=args.download,
        epochs=args.epochs,
        seed=args.seed,
        device=resolve_device(args.device),
        progress=not args.no_progress,
        resume=args.resume,
        compile=args.compile,
    )
    with RunFolder(out, RUN_FILES, resume=args.resume, overwrite=args.overwrite):
        summary = train_teacher(run)
    acc, seconds = summary["test_acc"], summary["wall_time_s"]
    print(f"{task.name}/{arch}: test_{summary['metric']}={acc:.4f} in {seconds:.1f}s -> {summary['checkpoint']}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
