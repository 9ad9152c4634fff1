"""Running the train/*.py scripts from tests: as a real process, or in this one for error paths.

A process start costs seconds (torch, gymnasium and Stable-Baselines3 are imported again), so the
one-line-error cases, which stop before any heavy work, call the script's ``main`` through the same
``run_cli`` wrapper that ``python train/NAME.py`` uses. Runs that train, resume or get killed keep
starting a real process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from ssdkd_env.common.cli import run_cli

ROOT = Path(__file__).resolve().parents[1]


def load_script(name: str) -> ModuleType:
    """Import train/NAME.py as a module (its ``main`` does not run)."""
    spec = importlib.util.spec_from_file_location(f"train_script_{name}", ROOT / "train" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    if spec.name in sys.modules:
        return sys.modules[spec.name]
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def run_script(
    name: str, *args: str, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess[str]:
    """``python train/NAME.py ARGS`` in a new process (``env`` entries added to this one's)."""
    return subprocess.run(
        [sys.executable, str(ROOT / "train" / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def run_in_process(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    """What ``python train/NAME.py ARGS`` would return, computed in this process: the exit status of
    ``run_cli(main)`` (or of argparse's exit) with the captured output."""
    module = load_script(name)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = run_cli(module.main, list(args))
        except SystemExit as exc:  # argparse's own errors and --help
            code = exc.code if isinstance(exc.code, int) else 1
    return subprocess.CompletedProcess([name, *args], code, out.getvalue(), err.getvalue())


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Exit status 2 and a single ``error: ...`` line naming every needle, no traceback."""
    assert result.returncode == 2, result.stderr
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0]
