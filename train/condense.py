#!/usr/bin/env python
"""Condense a task's real training split into K images per class (the data owner's side of csmi).

    python train/condense.py --task digits --per-class 1 --out condensed/digits_dm1.pt
    python train/condense.py --task digits --per-class 1 --real --out condensed/digits_real1.pt
    python train/distill.py --method csmi --task digits --set condensed_path=condensed/digits_dm1.pt

By default the images are made by distribution matching (Zhao & Bilen, WACV 2023): they start as
K random real images per class and are optimised so that their mean embedding under a fresh
random ConvNet at every step matches that of a real batch of the same class. --real writes K
random real images per class instead (the few-shot case), in the same format.

FILE is a torch file of a dict: images (float32 [N, C, H, W], normalised with the task's mean and
std), labels (int64 [N]), task, per_class, method ("distribution-matching" or "real") and loss
(the distribution-matching loss of the images, measured over 10 random embeddings of their own
stream, so files of the same task and seed compare).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from ssdkd_env.common.cli import add_common_flags, apply_scale, make_parser, run_cli
from ssdkd_env.common.device import resolve_device
from ssdkd_env.common.runfolder import prepare_out_file
from ssdkd_env.condensation import CondenseRun, condense, pick_real
from ssdkd_env.errors import UserError
from ssdkd_env.tasks import get_task


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    add_common_flags(p, "task", "scale")
    p.add_argument("--per-class", type=int, required=True, metavar="K", help="images per class")
    p.add_argument("--out", type=Path, required=True, metavar="FILE", help="the condensed file to write")
    p.add_argument("--real", action="store_true", help="take K random real images per class instead of condensing")
    add_common_flags(p, "data-root", "download", "seed", "device")
    defaults = {f.name: f.default for f in dataclasses.fields(CondenseRun)}
    p.add_argument("--steps", type=int, default=defaults["steps"], help="distribution-matching iterations")
    p.add_argument(
        "--lr", type=float, default=defaults["lr"], help="Adam's learning rate on the pixels (decayed to 0 on a cosine)"
    )
    p.add_argument("--batch-real", type=int, default=defaults["batch_real"], help="real images per class per iteration")
    p.add_argument("--width", type=int, default=defaults["width"], help="channels of the random ConvNet embeddings")
    add_common_flags(p, "overwrite", "no-progress")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    apply_scale(args)
    task = get_task(args.task)
    for flag, value in (("--per-class", args.per_class), ("--steps", args.steps), ("--batch-real", args.batch_real)):
        if value < 1:
            raise UserError(f"{flag} must be at least 1, got {value}")
    if args.width < 1 or not args.lr > 0:
        raise UserError("--width must be at least 1 and --lr positive")
    if args.out.exists() and not args.out.is_dir() and not args.overwrite:
        raise UserError(f"--out {args.out} exists; replace it with --overwrite, or choose another --out")
    prepare_out_file(args.out, "--out")
    run = CondenseRun(
        task=task,
        per_class=args.per_class,
        steps=args.steps,
        lr=args.lr,
        batch_real=args.batch_real,
        width=args.width,
        seed=args.seed,
        device=resolve_device(args.device),
        progress=not args.no_progress,
    )
    real = task.load(args.data_root, train=True, download=args.download)
    condensed = pick_real(real, run) if args.real else condense(real, run)
    condensed.save(args.out)
    print(
        f"{task.name}: {condensed.images.shape[0]} images ({args.per_class} per class, {condensed.method}) "
        f"loss={condensed.loss:.4f} -> {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
