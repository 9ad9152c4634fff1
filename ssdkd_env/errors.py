"""User-facing errors: anything raised as :class:`UserError` becomes a one-line CLI message."""

from __future__ import annotations

from collections.abc import Iterable


class UserError(Exception):
    """An error caused by the user's input (bad name, missing file, wrong checkpoint).

    Command-line entry points print ``error: <message>`` on one line and exit with code 2.
    """


class WorkerDied(UserError):
    """A worker process or Ray actor of a run ended without being asked to (killed, out of memory).

    The message names the worker (index, pid, and the signal when known) and what survives it."""


def unknown_name(kind: str, name: str, valid: Iterable[str]) -> UserError:
    """Build the error for an unknown registry name, listing the valid ones."""
    return UserError(f"unknown {kind} '{name}'; valid: {', '.join(sorted(valid))}")
