"""train/compare_methods.py: the method × seed table, parallel jobs and --resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from helpers import TINY, saved_random_teacher
from test_train_teacher import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "compare_methods.py"


def compare(*args: str) -> subprocess.CompletedProcess[str]:
    sets = [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--task", "digits", *sets, *args, "--no-progress", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_parallel_jobs_fill_the_table_and_resume_keeps_finished_runs(tmp_path: Path) -> None:
    teacher = str(saved_random_teacher(tmp_path / "teacher.pt"))
    out = tmp_path / "cmp"
    common = ("--teacher", teacher, "--methods", "ssdkd,fast", "--seeds", "0,1", "--out", str(out))
    result = compare(*common, "--jobs", "2")
    assert result.returncode == 0, result.stderr
    table = json.loads((out / "results.json").read_text())
    runs = table["runs"]
    assert list(runs) == ["ssdkd", "fast"] and [r["seed"] for r in runs["fast"]] == [0, 1]
    assert all(r["method"] == m and r["rounds"] == TINY["rounds"] for m in runs for r in runs[m])
    assert "| fast | 2 |" in (out / "results.md").read_text()

    # a second call with --resume reuses the finished runs; a changed config reruns them
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")}
    again = compare(*common, "--resume")
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")} == stamps
    assert json.loads((out / "results.json").read_text())["runs"] == runs
    changed = compare(*common, "--resume", "--methods", "fast", "--seeds", "1", "--set", "kd_steps=2")
    assert changed.returncode == 0, changed.stderr
    assert (out / "fast-s1" / "summary.json").stat().st_mtime_ns != stamps[out / "fast-s1" / "summary.json"]
    assert json.loads((out / "fast-s1" / "summary.json").read_text())["kd_steps"] == 2 * TINY["rounds"]


def test_bad_jobs_is_a_one_line_error(tmp_path: Path) -> None:
    assert_one_line_error(compare("--jobs", "0", "--out", str(tmp_path)), "--jobs")
