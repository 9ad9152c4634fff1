#!/usr/bin/env python
"""Build the instance sets of a suite: the states that environment episodes start from.

    python train/build_instances.py --suite digits --split both
    python -c "import gymnasium as gym, ssdkd_env; gym.make('SSDKD-v0', suite='digits', instance_set='train')"

For each reference seed of the split, the suite's run goes with the engine's configured actions,
and its complete engine state is saved after each start round, with index.json beside the states,
in --out/SPLIT (by default in the cache: $SSDKD_ENV_CACHE/instances/SUITE/SPLIT). A split that is
already built is kept (--overwrite builds it again); an --out set is played with instance_dir=DIR.
"""

from __future__ import annotations

import argparse
import sys

from ssdkd_env.common.cli import DefaultText, add_common_flags, make_parser, run_cli
from ssdkd_env.common.io import prepare_out_dir
from ssdkd_env.env.instance_builder import build_instance_set
from ssdkd_env.env.instances import SPLITS, SUITES, set_folder


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    p.add_argument("--suite", default="digits", help=f"instance suite: one of {', '.join(SUITES)}")
    p.add_argument("--split", default="both", choices=(*SPLITS, "both"), help="which split to build")
    add_common_flags(p, "teacher", "device", "out", out=DefaultText("CACHE/instances/SUITE"))
    p.add_argument("--overwrite", action="store_true", help="build a split again even when it is already built")
    add_common_flags(p, "no-progress")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    SUITES.get(args.suite)  # an unknown suite is a one-line error before any work
    splits = SPLITS if args.split == "both" else (args.split,)
    for split in splits:
        prepare_out_dir(set_folder(args.suite, split, args.out), "--out")
        result = build_instance_set(
            args.suite,
            split,
            root=args.out,
            teacher=args.teacher,
            device=args.device,
            overwrite=args.overwrite,
            progress=not args.no_progress,
        )
        found = result.instances
        how = f"built in {result.seconds:.1f}s" if result.built else "already built (--overwrite to build it again)"
        print(f"{args.suite}/{split}: {len(found)} instances {how} -> {found.folder}")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
