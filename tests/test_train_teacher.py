"""The teacher-training command: a short real run and its one-line errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from fake_data import write_idx
from scripts import assert_one_line_error, run_in_process, run_script


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """train_teacher.py in a new process."""
    return run_script("train_teacher", *args, "--no-progress")


def here(*args: str) -> subprocess.CompletedProcess[str]:
    """train_teacher.py in this process (its error paths, and short runs where a new process adds only its start-up)."""
    return run_in_process("train_teacher", *args, "--no-progress")


@pytest.mark.slow
def test_short_digits_run_writes_summary_checkpoint_and_tensorboard(tmp_path: Path) -> None:
    out = tmp_path / "teacher"
    result = run("--task", "digits", "--epochs", "2", "--out", str(out), "--device", "cpu")
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "digits" and summary["arch"] == "cnn"
    assert 0.5 < summary["test_acc"] <= 1.0  # two epochs already learn most digits
    assert summary["wall_time_s"] > 0 and Path(summary["checkpoint"]).is_file()
    assert list((out / "tb").glob("events.out.tfevents.*"))


@pytest.mark.slow
def test_default_out_is_the_teacher_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSDKD_ENV_CACHE", str(tmp_path))
    result = here("--task", "digits", "--arch", "cnn_half", "--epochs", "1")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "teachers" / "digits" / "cnn_half" / "teacher.pt").is_file()


@pytest.mark.slow
def test_unknown_task_lists_valid_tasks() -> None:  # in a real process: the script's own exit path
    assert_one_line_error(run("--task", "imagenet"), "unknown task 'imagenet'", "digits", "cifar100")


def test_unknown_arch_lists_valid_architectures() -> None:
    assert_one_line_error(here("--task", "digits", "--arch", "resnet999"), "resnet999", "wrn40_2", "lenet5")


def test_incompatible_arch_is_refused() -> None:
    assert_one_line_error(here("--task", "digits", "--arch", "lenet5"), "lenet5", "32x32")


def test_missing_data_names_folder_and_download_flag(tmp_path: Path) -> None:
    assert_one_line_error(here("--task", "mnist", "--data-root", str(tmp_path)), str(tmp_path), "--download")


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["lenet5_half"])
def test_mnist_like_training_on_fake_idx_files(tmp_path: Path, arch: str) -> None:
    write_idx(tmp_path / "data", "MNIST", n_train=64, n_test=16)
    out = tmp_path / "out"
    result = here(
        "--task", "mnist", "--arch", arch, "--data-root", str(tmp_path / "data"), "--epochs", "1", "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "summary.json").read_text())["test_samples"] == 16


@pytest.mark.slow
def test_resume_after_an_interrupted_epoch_gives_the_uninterrupted_teacher(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from ssdkd_env import supervised
    from ssdkd_env.supervised import TeacherRun, train_teacher
    from ssdkd_env.tasks import get_task

    task = get_task("digits")
    whole = train_teacher(TeacherRun(task, "cnn_half", tmp_path / "whole", epochs=2, progress=False))

    real_save, saves = supervised.save_model, []

    def save_then_stop(path: Path, *args: object, **kwargs: object) -> None:
        real_save(path, *args, **kwargs)  # type: ignore[arg-type]
        saves.append(path)
        if Path(path).name == "last.pt" and len(saves) == 1:
            raise KeyboardInterrupt  # stopped after the first epoch's checkpoint

    monkeypatch.setattr(supervised, "save_model", save_then_stop)
    with pytest.raises(KeyboardInterrupt):
        train_teacher(TeacherRun(task, "cnn_half", tmp_path / "cut", epochs=2, progress=False))
    monkeypatch.setattr(supervised, "save_model", real_save)
    resumed = train_teacher(TeacherRun(task, "cnn_half", tmp_path / "cut", epochs=2, progress=False, resume=True))

    assert resumed["test_acc"] == whole["test_acc"] and resumed["steps"] == whole["steps"]
    a = torch.load(tmp_path / "whole" / "teacher.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut" / "teacher.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_without_a_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    assert_one_line_error(here("--task", "digits", "--out", str(tmp_path), "--resume"), "--resume", "last.pt")
