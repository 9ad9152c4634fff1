"""Importing the library and the train scripts has no side effects on matplotlib."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# Imports the library, its reporting module and every train script (as modules: their main() does
# not run), then reports whether pyplot was imported and which backend matplotlib would use.
PROBE = """
import importlib.util, pathlib, sys

import ssdkd_env, ssdkd_env.reporting, ssdkd_env.engine.run, ssdkd_env.env, agents

for path in sorted(pathlib.Path(sys.argv[1]).glob("*.py")):
    spec = importlib.util.spec_from_file_location("train_" + path.stem, path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
print("pyplot imported:", "matplotlib.pyplot" in sys.modules)
import matplotlib

print("backend:", matplotlib.get_backend())
"""


@pytest.mark.slow
def test_importing_selects_no_matplotlib_backend() -> None:
    # "template" stands for whatever backend the user chose: an import that called
    # matplotlib.use("Agg") would replace it
    env = {**os.environ, "MPLBACKEND": "template"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(ROOT / "train")], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "pyplot imported: False" in result.stdout
    assert "backend: template" in result.stdout


def test_figures_are_written_without_pyplot(tmp_path: Path) -> None:
    from ssdkd_env.reporting import save_curves

    save_curves(tmp_path / "curves.png", {"a": ([1, 2, 3], [0.1, 0.5, 0.9])}, "round", "title")
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
