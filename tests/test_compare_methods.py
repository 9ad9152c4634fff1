"""train/compare_methods.py: the method × seed table, parallel jobs, --resume, and workers that
never outlive the parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from helpers import TINY, saved_random_teacher
from scripts import assert_one_line_error, load_script, run_in_process, run_script

from ssdkd_env.engine import make_config
from ssdkd_env.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "compare_methods.py"


def tiny_sets() -> list[str]:
    return [arg for key, value in TINY.items() for arg in ("--set", f"{key}={value}")]


def compare(*args: str) -> subprocess.CompletedProcess[str]:
    """``python train/compare_methods.py`` on the tiny digits configuration, in a new process."""
    return run_script("compare_methods", "--task", "digits", *tiny_sets(), *args, "--no-progress", "--device", "cpu")


def compare_here(*args: str) -> subprocess.CompletedProcess[str]:
    """The same call in this process: for refusals and for calls that run at most one run (which
    ``run_all`` keeps in the calling process), where a new process would only add its start-up."""
    return run_in_process(
        "compare_methods", "--task", "digits", *tiny_sets(), *args, "--no-progress", "--device", "cpu"
    )


@pytest.mark.slow
def test_parallel_jobs_fill_the_table_and_resume_keeps_finished_runs(tmp_path: Path) -> None:
    teacher = str(saved_random_teacher(tmp_path / "teacher.pt"))
    out = tmp_path / "cmp"
    common = ("--teacher", teacher, "--methods", "ssdkd,fast", "--seeds", "0,1", "--out", str(out))
    result = compare(*common, "--jobs", "2")  # the script end to end: four runs in two worker processes
    assert result.returncode == 0, result.stderr
    table = json.loads((out / "results.json").read_text())
    runs = table["runs"]
    assert list(runs) == ["ssdkd", "fast"] and [r["seed"] for r in runs["fast"]] == [0, 1]
    assert all(r["method"] == m and r["rounds"] == TINY["rounds"] for m in runs for r in runs[m])
    assert "| fast | 2 |" in (out / "results.md").read_text()
    assert (out / "time_to_accuracy.png").stat().st_size > 0

    # a second call without --resume refuses to run over the finished runs
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")}
    assert len(stamps) == 4
    assert_one_line_error(compare_here(*common), "--resume", str(out), "ssdkd-s0")
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")} == stamps

    # with --resume it reuses the finished runs; a changed config reruns them
    again = compare_here(*common, "--resume")
    assert again.returncode == 0, again.stderr
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/summary.json")} == stamps
    assert json.loads((out / "results.json").read_text())["runs"] == runs
    changed = compare_here(*common, "--resume", "--methods", "fast", "--seeds", "1", "--set", "kd_steps=2")
    assert changed.returncode == 0, changed.stderr
    assert (out / "fast-s1" / "summary.json").stat().st_mtime_ns != stamps[out / "fast-s1" / "summary.json"]
    assert json.loads((out / "fast-s1" / "summary.json").read_text())["kd_steps"] == 2 * TINY["rounds"]


def test_memory_fractions_make_one_labelled_buffer_size_each() -> None:
    module = load_script("compare_methods")
    configs = {"ssdkd": make_config("digits", "ssdkd")}
    variants = module.memory_variants(configs, [0.01, 0.2], 1000)
    assert {label: c.buffer_size for label, c in variants.items()} == {"ssdkd@1%": 10, "ssdkd@20%": 200}
    with pytest.raises(UserError, match="replay buffer"):
        module.memory_variants({"fast": make_config("digits", "fast")}, [0.1], 1000)


def test_bad_memory_fractions_are_a_one_line_error(tmp_path: Path) -> None:
    result = run_in_process(
        "compare_methods", "--task", "digits", "--memory-fractions", "0.1,2", "--out", str(tmp_path), "--no-progress"
    )
    assert_one_line_error(result, "--memory-fractions")


def test_bad_jobs_is_a_one_line_error(tmp_path: Path) -> None:
    result = run_in_process(
        "compare_methods", "--task", "digits", "--jobs", "0", "--out", str(tmp_path), "--no-progress"
    )
    assert_one_line_error(result, "--jobs")


def test_an_interrupted_run_in_out_needs_resume(tmp_path: Path) -> None:
    out = tmp_path / "cmp"
    (out / "fast-s1").mkdir(parents=True)
    (out / "fast-s1" / "state.pt").write_bytes(b"checkpoint")
    result = compare_here("--methods", "ssdkd,fast", "--seeds", "0-1", "--out", str(out))
    assert_one_line_error(result, "already holds runs (fast-s1)", "--resume")
    assert (out / "fast-s1" / "state.pt").read_bytes() == b"checkpoint"
    assert sorted(p.name for p in out.iterdir()) == ["fast-s1"]


# --------------------------------------------------------------------------------------------
# stopping: no worker outlives the parent (Linux: read from /proc)


def process_start(pid: int) -> tuple[str, int] | None:
    """(state, start time) of a process from /proc/PID/stat, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return fields[0], int(fields[19])  # state, starttime


def children_of(pid: int) -> dict[int, str]:
    """The child processes of ``pid`` and their command lines."""
    children = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                children[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return children


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def start_long_comparison(tmp_path: Path, jobs: int = 2) -> tuple[subprocess.Popen[bytes], Path, Path]:
    """Two tiny digits runs of 100,000 rounds, ``jobs`` at a time: still running whenever the test acts."""
    teacher = str(saved_random_teacher(tmp_path / "teacher.pt"))
    out, log = tmp_path / "cmp", tmp_path / "stderr.txt"
    sets = [arg for key, value in {**TINY, "rounds": 100_000}.items() for arg in ("--set", f"{key}={value}")]
    cmd = [sys.executable, str(SCRIPT), "--task", "digits", "--teacher", teacher, "--methods", "ssdkd"]
    cmd += ["--seeds", "0,1", "--jobs", str(jobs), "--out", str(out), *sets, "--no-progress", "--device", "cpu"]
    with open(log, "wb") as stderr:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=stderr)
    return proc, out, log


def running_workers(
    proc: subprocess.Popen[bytes], out: Path, seeds: tuple[int, ...] = (0, 1)
) -> dict[int, tuple[str, int] | None]:
    """Wait until one worker per seed in ``seeds`` has started its run; their pids (and start times,
    against pid reuse)."""
    workers: dict[int, str] = {}

    def all_running() -> bool:
        assert proc.poll() is None, "compare_methods.py ended early"
        workers.clear()
        workers.update({p: c for p, c in children_of(proc.pid).items() if "spawn_main" in c})
        started = all((out / f"ssdkd-s{s}" / "config.json").is_file() for s in seeds)
        return len(workers) == len(seeds) and started

    wait_until(all_running, "the workers to start their runs")
    return {pid: process_start(pid) for pid in workers}


def assert_all_gone(workers: dict[int, tuple[str, int] | None]) -> None:
    def gone(pid: int, start: tuple[str, int] | None) -> bool:
        now = process_start(pid)
        if now is None or start is None or now[1] != start[1]:  # exited (its pid free or taken by another)
            return True
        return now[0] == "Z"  # exited, not yet reaped

    wait_until(lambda: all(gone(pid, start) for pid, start in workers.items()), "the workers to exit", timeout=15)


def kill_leftovers(proc: subprocess.Popen[bytes], workers: dict[int, tuple[str, int] | None]) -> None:
    """Never leave a process behind, whatever the test found."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for pid, start in workers.items():
        now = process_start(pid)
        if now is not None and start is not None and now[1] == start[1]:
            os.kill(pid, signal.SIGKILL)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_sigterm_to_the_parent_stops_every_worker(tmp_path: Path) -> None:
    proc, out, log = start_long_comparison(tmp_path)
    workers: dict[int, tuple[str, int] | None] = {}
    try:
        workers = running_workers(proc, out)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        assert_all_gone(workers)
        assert "error: terminated" in log.read_text()
        assert not (out / "results.json").exists()
    finally:
        kill_leftovers(proc, workers)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_die_with_a_parent_killed_outright(tmp_path: Path) -> None:
    proc, out, _ = start_long_comparison(tmp_path)
    workers: dict[int, tuple[str, int] | None] = {}
    try:
        workers = running_workers(proc, out)
        proc.send_signal(signal.SIGKILL)  # no handler runs: the kernel ends the workers
        assert proc.wait(timeout=60) == -signal.SIGKILL
        assert_all_gone(workers)
    finally:
        kill_leftovers(proc, workers)


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process tree from /proc")
def test_one_job_runs_each_run_in_a_worker_of_its_own(tmp_path: Path) -> None:
    """With --jobs 1 the runs still get a process each (one at a time), so each peak memory is its own."""
    proc, out, _ = start_long_comparison(tmp_path, jobs=1)
    workers: dict[int, tuple[str, int] | None] = {}
    try:
        workers = running_workers(proc, out, seeds=(0,))
        assert not (out / "ssdkd-s1").exists()  # one at a time
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 143
        assert_all_gone(workers)
    finally:
        kill_leftovers(proc, workers)
