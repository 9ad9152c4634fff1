"""Runs that cannot be hijacked or lost.

* files read back never run code (planted pickles in every file the project reads back), while
  the files written by the release of 2026-12-07 (tests/fixtures/) still load;
* an output folder belongs to one run: a finished run and a run in progress are refused, byte for
  byte untouched, and a refused run leaves nothing behind;
* every failure a user can cause is one line and exit status 2, a full disk included.

The agents' own files (SB3's model.zip, replay buffers) are covered in test_agent_safety.py, dying
workers in test_worker_faults.py and NaN actions in test_action_rules.py.
"""

from __future__ import annotations

import errno
import hashlib
import json
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import TINY, nested, saved_random_teacher
from scripts import assert_one_line_error, run_in_process

from ssdkd_env.checkpoint import load_model
from ssdkd_env.common.cli import run_cli
from ssdkd_env.common.io import WriteFailed, load_data_file, save_torch
from ssdkd_env.common.runfolder import RunFolder, prepare_out_file
from ssdkd_env.condensation import load_condensed
from ssdkd_env.engine.run import RUN_FILES
from ssdkd_env.errors import UserError
from ssdkd_env.tasks import get_task

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "tests" / "fixtures" / "release-2026-12-07"


class Planted:
    """Unpickling this runs Python code that creates the marker file: what a hostile file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


def plant(path: Path, marker: Path, payload: object = None) -> Path:
    """Write a torch file at ``path`` whose loading with ``weights_only=False`` creates ``marker``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"engine": Planted(marker), "payload": payload}, path)
    return path


def folder_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def distill_args(tmp_path: Path, out: Path, *extra: str) -> list[str]:
    teacher = tmp_path / "teacher.pt"
    if not teacher.is_file():
        saved_random_teacher(teacher)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(nested({**TINY, "rounds": 2})))
    return ["--task", "digits", "--teacher", str(teacher), "--config", str(config), "--out", str(out), *extra]


def distill_here(*args: str) -> subprocess.CompletedProcess[str]:
    return run_in_process("distill", *args, "--no-progress", "--device", "cpu")


# --------------------------------------------------------------------------------------------
# nothing read back runs code


def test_the_planted_pickle_is_live(tmp_path: Path) -> None:
    """The trap works: loaded the old way (``weights_only=False``), the planted file runs its code."""
    marker = tmp_path / "marker"
    path = plant(tmp_path / "state.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_planted_state_pt_runs_nothing_on_distill_resume(tmp_path: Path) -> None:
    out, marker = tmp_path / "run", tmp_path / "marker"
    assert distill_here(*distill_args(tmp_path, out)).returncode == 0
    plant(out / "state.pt", marker)
    assert_one_line_error(distill_here("--out", str(out), "--resume"), "state.pt", "refused", "--overwrite")
    assert not marker.exists()


def test_planted_last_pt_runs_nothing_on_train_teacher_resume(tmp_path: Path) -> None:
    out, marker = tmp_path / "teacher", tmp_path / "marker"
    plant(out / "last.pt", marker)
    result = run_in_process(
        "train_teacher", "--task", "digits", "--arch", "cnn_half", "--epochs", "1", "--out", str(out), "--resume"
    )
    assert_one_line_error(result, "last.pt", "refused")
    assert not marker.exists()


def test_planted_teacher_and_condensed_files_run_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    teacher = plant(tmp_path / "teacher.pt", marker)
    result = distill_here("--task", "digits", "--teacher", str(teacher), "--out", str(tmp_path / "run"))
    assert_one_line_error(result, "teacher.pt", "refused")
    assert not (tmp_path / "run").exists()  # refused before anything was written
    with pytest.raises(UserError, match="refused"):
        load_condensed(plant(tmp_path / "condensed.pt", marker), get_task("digits"))
    assert not marker.exists()


# --------------------------------------------------------------------------------------------
# the files of the previous release still load


def test_files_of_the_release_of_2026_12_07_still_load(tmp_path: Path) -> None:
    model, card = load_model(RELEASE / "teacher.pt", task="digits", role="teacher")
    assert card.arch == "cnn_half" and sum(p.numel() for p in model.parameters()) > 0
    condensed = load_condensed(RELEASE / "condensed.pt", get_task("digits"))
    assert condensed.images.shape == (10, 1, 8, 8)
    state = load_data_file(RELEASE / "state.pt", "run checkpoint", "")
    assert state["engine"]["round"] == 2
    last = load_data_file(RELEASE / "teacher_run" / "last.pt", "training checkpoint", "")
    assert last["extra"]["training_state"]["epoch"] == 1


def test_a_run_of_the_previous_release_resumes(tmp_path: Path) -> None:
    """Its state.pt and config.json continue under today's code (the run had finished: resuming it
    writes its outputs again from the saved state)."""
    out = tmp_path / "run"
    out.mkdir()
    for name in ("state.pt", "config.json", "metrics.csv"):
        shutil.copy(RELEASE / name, out / name)
    result = distill_here("--teacher", str(RELEASE / "teacher.pt"), "--out", str(out), "--resume")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["rounds"] == 2 and summary["seed"] == 0


def test_a_teacher_run_of_the_previous_release_resumes(tmp_path: Path) -> None:
    out = tmp_path / "teacher"
    out.mkdir()
    shutil.copy(RELEASE / "teacher_run" / "last.pt", out / "last.pt")
    args = ("--task", "digits", "--arch", "cnn_half", "--epochs", "1", "--out", str(out), "--resume", "--no-progress")
    result = run_in_process("train_teacher", *args)
    assert result.returncode == 0, result.stderr
    assert (out / "teacher.pt").is_file()


# --------------------------------------------------------------------------------------------
# a run folder belongs to one run


def test_a_finished_run_is_refused_and_left_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = distill_args(tmp_path, out)
    assert distill_here(*args).returncode == 0
    before = folder_digest(out)
    assert_one_line_error(distill_here(*args), "already holds a run", "--resume", "--overwrite")
    assert folder_digest(out) == before


def test_a_folder_in_use_is_refused_and_left_byte_for_byte(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = distill_args(tmp_path, out)
    assert distill_here(*args).returncode == 0
    before = folder_digest(out)
    with RunFolder(out, RUN_FILES, resume=True):  # another run holds the folder
        for extra in ((), ("--resume",), ("--overwrite",)):
            assert_one_line_error(distill_here(*args, *extra), "in use by another run")
    assert folder_digest(out) == before
    assert distill_here(*args, "--resume").returncode == 0  # released on exit


def test_a_second_distill_on_a_folder_in_use_is_refused(tmp_path: Path) -> None:
    """Two real runs: the first, long one is paused (SIGSTOP) once it has written its first round, so
    that its files can be compared byte for byte around the second one's attempt."""
    out = tmp_path / "run"
    first = subprocess.Popen(
        [sys.executable, str(ROOT / "train" / "distill.py"), *distill_args(tmp_path, out), "--rounds", "10000"]
        + ["--no-progress", "--device", "cpu"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "metrics.csv").is_file() or len((out / "metrics.csv").read_text().splitlines()) < 2:
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        first.send_signal(signal.SIGSTOP)
        before = folder_digest(out)
        for extra in ((), ("--resume",), ("--overwrite",)):
            assert_one_line_error(distill_here(*distill_args(tmp_path, out), *extra), "in use by another run")
        assert folder_digest(out) == before
    finally:
        first.kill()
        first.wait(timeout=30)


def test_the_lock_is_released_when_its_holder_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from pathlib import Path; from ssdkd_env.common.runfolder import RunFolder\n"
            "with RunFolder(Path(sys.argv[1]), ()):\n    print('held', flush=True); time.sleep(600)",
            str(out),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(UserError, match="in use"):
            RunFolder(out, ()).__enter__()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
    with RunFolder(out, ()):
        pass
    assert not list(out.iterdir())  # the lock leaves no file behind


def test_overwrite_replaces_the_run_and_keeps_other_files(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = distill_args(tmp_path, out)
    assert distill_here(*args).returncode == 0
    (out / "notes.txt").write_text("mine")
    (out / "tb" / "stale-events").write_text("old")
    assert distill_here(*args, "--overwrite").returncode == 0
    assert (out / "notes.txt").read_text() == "mine"
    assert not (out / "tb" / "stale-events").exists()  # one run's TensorBoard events, not two
    assert_one_line_error(distill_here(*args, "--overwrite", "--resume"), "--resume", "--overwrite")


def test_a_refused_run_leaves_nothing_behind(tmp_path: Path) -> None:
    out = tmp_path / "a" / "b" / "run"
    missing = tmp_path / "missing.pt"
    assert_one_line_error(distill_here("--teacher", str(missing), "--out", str(out)), "does not exist")
    assert_one_line_error(
        run_in_process("run_agent", "--agent", "ppo", "--hyper", "n_steps", "--out", str(out)), "--hyper", "KEY=VALUE"
    )
    assert not (tmp_path / "a").exists()


def test_output_files_are_checked_before_the_work(tmp_path: Path) -> None:
    (tmp_path / "folder.json").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="is a folder"):
        prepare_out_file(tmp_path / "folder.json", "--json")
    with pytest.raises(UserError, match="cannot be written"):
        prepare_out_file(tmp_path / "file" / "result.json", "--json")
    assert not (tmp_path / "new").exists() and prepare_out_file(tmp_path / "new" / "r.json", "--json")
    assert not (tmp_path / "new").exists()  # checked, not created: the write makes it
    start = time.perf_counter()
    for path, needle in ((tmp_path / "folder.json", "is a folder"), (tmp_path / "file" / "r.json", "cannot be")):
        result = run_in_process("benchmark", "--bench", "digits", "--json", str(path), "--no-progress")
        assert_one_line_error(result, "--json", needle)
    assert time.perf_counter() - start < 5  # refused at once, not after the benchmark


# --------------------------------------------------------------------------------------------
# one line for every failure a user can cause


def test_damaged_resume_files_are_one_line_errors(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = distill_args(tmp_path, out)
    assert distill_here(*args).returncode == 0
    (out / "config.json").write_text("{not json")
    assert_one_line_error(distill_here("--out", str(out), "--resume"), "config.json", "damaged", "--overwrite")
    (out / "state.pt").write_bytes((RELEASE / "state.pt").read_bytes()[:5000])  # cut short
    assert_one_line_error(distill_here("--out", str(out), "--resume"), "state.pt", "not a readable")

    teacher_out = tmp_path / "teacher"
    teacher_out.mkdir()
    (teacher_out / "last.pt").write_bytes((RELEASE / "teacher_run" / "last.pt").read_bytes()[:50_000])
    args = ("--task", "digits", "--arch", "cnn_half", "--out", str(teacher_out), "--resume")
    result = run_in_process("train_teacher", *args)
    assert_one_line_error(result, "last.pt", "not a readable", "--overwrite")


def test_bad_flags_are_one_line_errors(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = distill_args(tmp_path, out)
    for every in ("0", "-5"):
        assert_one_line_error(distill_here(*args, "--checkpoint-every", every), "--checkpoint-every", every)
    assert_one_line_error(distill_here("--teacher", str(tmp_path), "--out", str(out)), "is a folder", "teacher.pt")
    assert_one_line_error(run_in_process("run_agent", "--hyper", "gamma", "--out", str(out)), "--hyper expects")
    for hyper, needle in (
        ("nosuch=1", "no hyper-parameter 'nosuch'"),
        ("learning_rate=banana", "must be a number"),
        ("n_steps=-4", "integer >= 1"),
        ("gamma=abc", "in [0, 1]"),
    ):
        result = run_in_process("run_agent", "--agent", "ppo", "--n-envs", "2", "--hyper", hyper, "--out", str(out))
        assert_one_line_error(result, hyper.split("=")[0], needle)  # before any worker: no worker's traceback
    assert not out.exists()


def test_long_messages_are_printed_whole(capsys: pytest.CaptureFixture[str]) -> None:
    reason = "word " * 80

    def main(argv: list[str] | None) -> int:
        raise UserError(f"start {reason}end")

    assert run_cli(main, []) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.strip().endswith("end") and len(err) > 400


# --------------------------------------------------------------------------------------------
# a full disk or a file size limit


def _limit_file_size(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))


def test_a_file_size_limit_is_one_line_naming_the_file(tmp_path: Path) -> None:
    """``ulimit -f``: the state file cannot be written; one line names it, and says to resume."""
    out = tmp_path / "run"
    result = subprocess.run(
        [sys.executable, str(ROOT / "train" / "distill.py"), *distill_args(tmp_path, out), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        preexec_fn=lambda: _limit_file_size(100_000),  # the teacher (100 kB) loads, state.pt (300 kB) does not fit
    )
    assert_one_line_error(result, "could not write", str(out / "state.pt"), "File too large", "--resume")
    assert not list(out.glob(".state.pt.*"))  # no half-written temporary left


def test_a_failed_write_keeps_the_last_good_file(tmp_path: Path) -> None:
    path = tmp_path / "state.pt"
    save_torch(path, {"round": torch.tensor(1)})
    good = path.read_bytes()
    code = (
        "import resource, sys, torch\n"
        "from pathlib import Path\n"
        "from ssdkd_env.common.io import WriteFailed, save_torch\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))\n"
        "try:\n"
        "    save_torch(Path(sys.argv[1]), {'round': torch.tensor(2), 'weights': torch.zeros(100_000)})\n"
        "except WriteFailed as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=120)
    assert "could not write" in result.stdout and "unchanged" in result.stdout, result.stderr
    assert path.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]
    assert issubclass(WriteFailed, UserError)


def test_no_module_loads_pickles_unrestricted() -> None:
    """No module of the project calls ``pickle.load`` or ``torch.load(weights_only=False)``."""
    offenders = []
    for folder in ("ssdkd_env", "agents", "train"):
        for file in (ROOT / folder).rglob("*.py"):
            text = file.read_text()
            for number, line in enumerate(text.splitlines(), 1):
                if "weights_only=False" in line or "pickle.load(" in line:
                    offenders.append(f"{file.relative_to(ROOT)}:{number}")
    assert not offenders, offenders


def test_no_room_anywhere_is_one_line_and_other_os_errors_are_not_hidden(capsys: pytest.CaptureFixture[str]) -> None:
    """A figure or a log that finds the disk full (not only a checkpoint) is one line naming the file."""

    def full(argv: list[str] | None) -> int:
        raise OSError(errno.ENOSPC, "No space left on device", "OUT/curves.png")

    assert run_cli(full, []) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "could not write OUT/curves.png (No space left on device)" in err

    def bug(argv: list[str] | None) -> int:
        raise OSError(errno.EBADF, "Bad file descriptor")

    with pytest.raises(OSError, match="Bad file descriptor"):  # a programming error keeps its traceback
        run_cli(bug, [])
