#!/usr/bin/env python
"""List, check and add the shipped teachers (the teacher zoo, ssdkd_env/zoo/).

    python train/zoo.py list
    python train/zoo.py check --data-root DIR
    python train/zoo.py add RUN_DIR --data "CIFAR-10 train split" --command "python train/train_teacher.py ..."

``list`` prints every card and checks each checkpoint's sha256. ``check`` measures each teacher
again on its task's real test split (the tasks whose data is under --data-root, or ships with a
package) and prints the difference from its card. ``add`` copies the teacher of a finished
``train_teacher.py`` run into the zoo and writes its card.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ssdkd_env.common.cli import add_common_flags, make_parser, run_cli
from ssdkd_env.errors import UserError
from ssdkd_env.tasks import get_task
from ssdkd_env.zoo import SIZE_LIMIT_BYTES, add_to_zoo, score_on_test_split, verified_path, zoo_cards


def build_parser() -> argparse.ArgumentParser:
    p = make_parser(__doc__)
    commands = p.add_subparsers(dest="command", required=True, metavar="{list,check,add}")
    commands.add_parser("list", help="print every card and check each checkpoint's sha256")
    check = commands.add_parser("check", help="measure each teacher again on its real test split")
    add_common_flags(check, "data-root")
    check.add_argument("--task", action="append", default=None, help="check only this task (repeatable)")
    add = commands.add_parser("add", help="copy a finished train_teacher.py run into the zoo")
    add.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="the --out folder of a finished teacher run")
    add.add_argument("--data", required=True, help="the training data, as a user would find it")
    add.add_argument("--command", required=True, dest="train_command", help="the exact command that trained it")
    return p


def list_zoo() -> None:
    total = 0
    for card in zoo_cards():
        verified_path(card)
        total += card.size_bytes
        print(f"{card.file:28s} {card.describe()}  sha256 {card.sha256[:12]} ok, {card.size_bytes / 2**20:.2f} MiB")
    print(f"{total / 2**20:.2f} MiB in all (limit {SIZE_LIMIT_BYTES / 2**20:.0f} MiB)")


def check_zoo(data_root: str | None, tasks: list[str] | None) -> None:
    cards = [c for c in zoo_cards() if tasks is None or c.task in tasks]
    if not cards:
        raise UserError(f"no zoo teacher for task(s) {', '.join(tasks or [])}; see python train/zoo.py list")
    for card in cards:
        if get_task(card.task).needs_data_root and data_root is None:
            print(f"{card.file:28s} skipped: its data needs --data-root")
            continue
        measured = score_on_test_split(card, data_root)
        print(
            f"{card.file:28s} test {card.metric}: card {card.test_score:.4f}, measured {measured:.4f} "
            f"(difference {measured - card.test_score:+.4f})"
        )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "list":
        list_zoo()
    elif args.command == "check":
        check_zoo(args.data_root, args.task)
    else:
        card = add_to_zoo(args.run_dir, args.data, args.train_command)
        print(f"added {card.file}: {card.describe()}, {card.size_bytes / 2**20:.2f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(run_cli(main))
