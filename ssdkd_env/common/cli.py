"""Command-line plumbing shared by every ``train/*.py`` script.

* :func:`run_cli`: one-line ``error: ...`` messages and exit codes.
* :data:`COMMON_FLAGS` and :func:`add_common_flags`: the flags the scripts share, each defined
  once with its help text, so that a flag means the same thing in every script.
* :func:`parse_seeds`: the ``--seeds`` syntax (``0,1,2``, ``0-4``, ``0-2,10``).
* :func:`explicit_flags` and :func:`refuse_changes_on_resume`: what a ``--resume`` may not change.
* :func:`terminate_on_sigterm`: SIGTERM as an exception, so ``finally`` blocks clean up.
"""

from __future__ import annotations

import argparse
import copy
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ssdkd_env.common.io import NO_ROOM_ERRORS, WriteFailed
from ssdkd_env.errors import UserError

USER_ERROR_EXIT = 2
INTERRUPTED_EXIT = 130  # 128 + SIGINT
TERMINATED_EXIT = 143  # 128 + SIGTERM
MAX_SEEDS = 100_000


class Terminated(BaseException):
    """SIGTERM, raised in the main thread by :func:`terminate_on_sigterm` (a ``BaseException``,
    like ``KeyboardInterrupt``, so that ``except Exception`` does not swallow it)."""


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``main``; a :class:`UserError` prints ``error: ...`` on one line and returns 2, as does a
    write that failed for a reason the user can fix (full disk, quota, ``ulimit -f``).

    Ctrl-C returns 130 and SIGTERM (under :func:`terminate_on_sigterm`) 143, each with one line.
    """
    try:
        with terminate_on_sigterm():
            return int(main(argv) or 0)
    except UserError as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        return USER_ERROR_EXIT
    except OSError as exc:  # no room for a write outside the atomic writer (a figure, a log), anywhere
        if exc.errno not in NO_ROOM_ERRORS:
            raise
        print(f"error: {WriteFailed(exc.filename or 'an output file', exc)}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return INTERRUPTED_EXIT
    except Terminated:
        print("error: terminated", file=sys.stderr)
        return TERMINATED_EXIT


@contextmanager
def terminate_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises :class:`Terminated` in the main thread (once: a second
    SIGTERM while cleaning up kills the process the default way). Outside the main thread, or
    where signals cannot be set, the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        raise Terminated(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


# --------------------------------------------------------------------------------------------
# the shared flags


@dataclass(frozen=True)
class Flag:
    """One shared command-line flag: its help text and ``add_argument`` keywords.

    ``help`` may name ``{tasks}`` (the registered tasks), filled in when the flag is added.
    """

    help: str
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DefaultText:
    """A default worked out at run time: the flag's value is ``None`` and ``--help`` shows ``text``."""

    text: str


def parse_seeds(text: str) -> list[int]:
    """``"0,1,2"`` -> ``[0, 1, 2]``; ``"0-4"`` -> ``[0, 1, 2, 3, 4]``; ``"0-2,10"`` -> ``[0, 1, 2, 10]``.

    Seeds are non-negative integers, each at most once; anything else is a :class:`UserError`.
    """
    seeds: list[int] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        first, dash, last = part.partition("-")
        try:
            low = int(first)
            high = int(last) if dash else low
        except ValueError:
            raise UserError(
                f"--seeds expects seeds and ranges separated by commas, e.g. 0,1,2 or 0-4; got '{text}'"
            ) from None
        if low < 0 or high < low:
            raise UserError(f"--seeds: '{part}' is not a seed or an increasing range of non-negative seeds")
        if len(seeds) + high - low + 1 > MAX_SEEDS:
            raise UserError(f"--seeds: '{text}' names more than {MAX_SEEDS} seeds")
        seeds.extend(range(low, high + 1))
    if not seeds:
        raise UserError("--seeds needs at least one seed, e.g. 0,1,2 or 0-4")
    repeated = sorted({s for s in seeds if seeds.count(s) > 1})
    if repeated:
        raise UserError(f"--seeds names seed {', '.join(map(str, repeated))} more than once")
    return seeds


COMMON_FLAGS: dict[str, Flag] = {
    "task": Flag("task: one of {tasks}", {"default": "digits"}),
    "scale": Flag(
        "auto: on a machine without CUDA, a task with a CPU-scale variant (cifar10 -> cifar10-cpu) runs "
        "that variant, with a one-line notice; paper: the task as named, whatever the device; cpu: the variant",
        {"default": "auto", "choices": ("auto", "paper", "cpu")},
    ),
    "teacher": Flag(
        "teacher checkpoint (.pt); without it, the task's cached teacher, else the one shipped in the teacher zoo "
        "(python train/zoo.py list), else one trained on the task's real data",
        {"default": None, "metavar": "PATH"},
    ),
    "data-root": Flag(
        "folder of the task's real data (to train a missing teacher and to measure real test accuracy)",
        {"default": None, "metavar": "DIR"},
    ),
    "download": Flag("download the task's data into --data-root if it is missing", {"action": "store_true"}),
    "device": Flag(
        "compute device: auto (a CUDA GPU when there is one, else the CPU), cpu, cuda or cuda:N", {"default": "auto"}
    ),
    "seed": Flag("random seed", {"type": int, "default": 0}),
    "seeds": Flag(
        "seeds, one run or episode each: comma-separated integers and ranges, e.g. 0,1,2 or 0-4 or 0-2,10",
        {"type": parse_seeds, "metavar": "LIST"},
    ),
    "rounds": Flag(
        "distillation rounds of each run or episode (default: --config's, else the script's default for the task)",
        {"type": int, "default": None, "metavar": "N"},
    ),
    "regime": Flag(
        "environment variant (ssdkd_env/env/regimes.py): 'full' (the task's own run, cut to an agent episode) or "
        "'budget' (10 cheap rounds where the data decisions matter); default: the task's (digits: budget, else full)",
        {"default": None, "metavar": "NAME"},
    ),
    "suite": Flag(
        "start every episode from an instance of this suite (ssdkd_env/env/instances.py, built by "
        "train/build_instances.py): a saved state of a reference run; the suite sets the task, the run's "
        "configuration and the episode length",
        {"default": None, "metavar": "NAME"},
    ),
    "instance-set": Flag(
        "which split of --suite's instances the episodes start from (the test split is held out from learning)",
        {"default": "test", "choices": ("train", "test")},
    ),
    "instance-dir": Flag(
        "folder of --suite's instance sets, if not the cache's instances/SUITE (build_instances.py --out)",
        {"default": None, "metavar": "DIR"},
    ),
    "config": Flag(
        "JSON or YAML file of (partial) configuration fields, applied before --rounds and --set: EngineConfig "
        "fields for distillation runs, EnvConfig fields (engine ones under 'engine') for environment runs",
        {"type": Path, "default": None, "metavar": "FILE"},
    ),
    "set": Flag(
        "override one engine configuration field by dotted path, after --config, e.g. --set kd_steps=10 "
        "--set action.alpha=0.8 (repeatable; VALUE is read as JSON when it parses, else as text)",
        {"action": "append", "default": [], "metavar": "KEY=VALUE"},
    ),
    "out": Flag(
        "output folder (created if missing; checked for writing before any work)", {"type": Path, "metavar": "DIR"}
    ),
    "resume": Flag(
        "continue the work saved in --out instead of starting afresh: finished runs are kept and interrupted "
        "ones continue from their last checkpoint",
        {"action": "store_true"},
    ),
    "overwrite": Flag(
        "start afresh in an --out that already holds a run: that run's files are deleted first (without --resume "
        "or --overwrite such a folder is refused)",
        {"action": "store_true"},
    ),
    "no-progress": Flag("hide progress bars", {"action": "store_true"}),
}


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """``--help`` with defaults shown where they say something (not ``None``, ``False`` or ``[]``),
    a :class:`DefaultText` where the default is worked out at run time, and the description's
    own line breaks kept."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = getattr(action, "default_text", None)
        if text is not None:
            return f"{action.help} (default: {text})"
        if action.default is None or action.default is False or action.default == []:
            return action.help
        return super()._get_help_string(action)


def make_parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose description is ``doc``'s first paragraph and whose epilog is the rest."""
    head, _, rest = (doc or "").strip().partition("\n\n")
    return argparse.ArgumentParser(description=head, epilog=rest.rstrip() or None, formatter_class=HelpFormatter)


def apply_scale(args: argparse.Namespace) -> None:
    """Replace ``args.task`` by the task to run at ``args.scale`` on ``args.device`` (printing the
    notice when ``--scale auto`` picks a CPU-scale variant)."""
    from ssdkd_env.common.device import resolve_device
    from ssdkd_env.tasks import task_at_scale

    task, notice = task_at_scale(args.task, args.scale, resolve_device(args.device))
    if notice is not None:
        print(notice, file=sys.stderr)
    args.task = task.name


def apply_suite(args: argparse.Namespace) -> None:
    """With ``--suite``, the task is the suite's (``args.task`` is replaced)."""
    if getattr(args, "suite", None) is not None:
        from ssdkd_env.env.instances import SUITES

        args.task = SUITES.get(args.suite).task


def add_common_flags(parser: argparse.ArgumentParser, *names: str, **defaults: Any) -> dict[str, argparse.Action]:
    """Add the shared flags ``names`` (as spelled on the command line, without ``--``) to ``parser``.

    ``defaults`` gives a script its own default by destination name (``out=Path("runs/x")``,
    ``seeds="0,1,2"``); a :class:`DefaultText` leaves the value ``None`` and shows its text in
    ``--help``. The help text itself is the same in every script. Returns the added actions by name.
    """
    unknown = [n for n in names if n not in COMMON_FLAGS]
    if unknown:
        raise ValueError(f"unknown common flags {unknown}; known: {', '.join(COMMON_FLAGS)}")
    dests = {n.replace("-", "_") for n in names}
    stray = set(defaults) - dests
    if stray:
        raise ValueError(f"defaults for flags that are not added: {sorted(stray)}")
    actions = {}
    for name in names:
        flag = COMMON_FLAGS[name]
        kwargs = dict(flag.kwargs)
        dest = name.replace("-", "_")
        default_text = None
        if dest in defaults:
            value = defaults[dest]
            if isinstance(value, DefaultText):
                default_text, value = value.text, None
            kwargs["default"] = value
        action = parser.add_argument(f"--{name}", help=common_help(name), **kwargs)
        if default_text is not None:
            action.default_text = default_text  # type: ignore[attr-defined]  # read by HelpFormatter
        actions[name] = action
    return actions


def common_help(name: str) -> str:
    """The help text of the shared flag ``name`` (with placeholders filled in)."""
    text = COMMON_FLAGS[name].help
    if "{tasks}" in text:
        from ssdkd_env.tasks import list_tasks  # late: the task registry is not needed to import this module

        text = text.replace("{tasks}", ", ".join(list_tasks()))
    return text


def explicit_flags(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> set[str]:
    """Destinations of the flags that ``argv`` gives explicitly (even when equal to the default)."""
    probe = copy.deepcopy(parser)  # the same flags with no defaults: only what argv gives lands in the namespace
    for action in probe._actions:
        action.default = argparse.SUPPRESS
    return set(vars(probe.parse_args(None if argv is None else list(argv))))


# --------------------------------------------------------------------------------------------
# --resume: the saved configuration wins


def flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, f"{path}."))
        else:
            flat[path] = value
    return flat


def config_changes(saved: Mapping[str, Any], requested: Mapping[str, Any]) -> list[str]:
    """``"key: saved -> requested"`` for every dotted key where two nested mappings differ."""
    old, new = flatten(saved), flatten(requested)
    missing = object()
    changes = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key, missing), new.get(key, missing)
        if _normalised(a) != _normalised(b):
            changes.append(f"{key}: {_shown(a, missing)} -> {_shown(b, missing)}")
    return changes


def refuse_changes_on_resume(saved: Mapping[str, Any], requested: Mapping[str, Any], saved_in: Path) -> None:
    """Raise a one-line :class:`UserError` when the flags of a ``--resume`` would change the
    configuration saved in ``saved_in``."""
    changes = config_changes(saved, requested)
    if changes:
        shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
        raise UserError(
            f"--resume continues the run with the configuration saved in {saved_in}, and the flags given would "
            f"change it ({shown}); leave those flags out, or start a new run in another --out"
        )


def _normalised(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_normalised(v) for v in value]
    if isinstance(value, list):
        return [_normalised(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _shown(value: Any, missing: object) -> str:
    return "(unset)" if value is missing else repr(_normalised(value))
