"""Command-line plumbing: one-line errors and exit codes."""

from __future__ import annotations

import sys
from collections.abc import Callable

from ssdkd_env.errors import UserError

USER_ERROR_EXIT = 2


def run_cli(main: Callable[[list[str] | None], int | None], argv: list[str] | None = None) -> int:
    """Run ``main``; a :class:`UserError` prints ``error: ...`` on one line and returns 2."""
    try:
        return int(main(argv) or 0)
    except UserError as exc:
        message = " ".join(str(exc).split())
        print(f"error: {message}", file=sys.stderr)
        return USER_ERROR_EXIT
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
