"""train/distill.py end to end: outputs, --resume after SIGKILL, and one-line errors."""

from __future__ import annotations

import csv
import json
import signal
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import KILL_DRIVER, TINY, nested, saved_random_teacher
from scripts import assert_one_line_error, run_in_process, run_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "train" / "distill.py"


def tiny_config_file(path: Path, **extra: object) -> Path:
    path.write_text(json.dumps(nested({**TINY, **extra})))
    return path


def distill(*args: str) -> subprocess.CompletedProcess[str]:
    """``python train/distill.py ARGS`` in a new process."""
    return run_script("distill", *args, "--no-progress", "--device", "cpu")


def distill_here(*args: str) -> subprocess.CompletedProcess[str]:
    """The same call in this process (what a new process adds is its start-up only)."""
    return run_in_process("distill", *args, "--no-progress", "--device", "cpu")


@pytest.mark.slow
def test_run_writes_every_output(tmp_path: Path) -> None:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    config = tiny_config_file(tmp_path / "tiny.json")
    result = distill(
        "--task", "digits", "--teacher", str(teacher), "--config", str(config), "--out", str(out),
        "--set", "meta-generator.pretrain_steps=2",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    pretraining = summary["synthesis"]  # the generator's warm-up, reported apart from the samples it kept
    assert pretraining["pretrain_steps"] == 2 and pretraining["pretrain_images"] == 2 * 16
    assert len(pretraining["pretrain_bn_loss_first"]) == len(pretraining["pretrain_bn_loss_last"]) == 1
    for key in (
        "method",
        "task",
        "teacher_acc",
        "student_acc",
        "probe_agreement",
        "synthetic_samples",
        "buffer_size",
        "wall_time_s",
        "seed",
        "config",
    ):
        assert key in summary
    # 3 rounds of 32, plus the probe: 20 inversion rounds of ceil(16 / 10) = 2 images
    assert summary["synthetic_samples"] == 3 * 32 + 20 * 2 and summary["buffer_size"] == 64
    assert summary["config"]["rounds"] == 3 and 0.0 <= summary["student_acc"] <= 1.0
    with open(out / "metrics.csv") as fh:
        accuracies = [float(row["test_acc"]) * 100 for row in csv.DictReader(fh)]
    assert len(accuracies) == 3  # every round measured: PRE-DFKD's mean and variance over the run
    assert summary["acc_mean_over_run"] == pytest.approx(statistics.fmean(accuracies), abs=1e-3)
    assert summary["acc_variance_over_run"] == pytest.approx(statistics.pvariance(accuracies), abs=1e-3)
    for name in ("buffer_samples.png", "sample_diagnostics.png", "curves.png", "student.pt", "config.json"):
        assert (out / name).stat().st_size > 0
    assert list((out / "tb").glob("events.out.tfevents.*"))


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path / "metrics.csv") as fh:
        return [{k: v for k, v in row.items() if k != "wall_time_s"} for row in csv.DictReader(fh)]


@pytest.mark.slow
def test_resume_after_sigkill_reproduces_the_uninterrupted_run(tmp_path: Path) -> None:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    config = tiny_config_file(tmp_path / "tiny.json", rounds=10, kd_steps=10)
    common = ["--task", "digits", "--teacher", str(teacher), "--config", str(config), "--checkpoint-every", "3"]
    reference = tmp_path / "reference"
    uninterrupted = distill(*common, "--out", str(reference))  # processes all: the same torch thread count
    assert uninterrupted.returncode == 0, uninterrupted.stderr

    # killed in round 8: rounds 1-7 are logged, the last checkpoint is round 6's
    out = tmp_path / "killed"
    args = [*common, "--out", str(out), "--no-progress", "--device", "cpu"]
    killed = subprocess.run(
        [sys.executable, "-c", KILL_DRIVER, "8", str(SCRIPT), *args], capture_output=True, text=True, timeout=300
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert len(read_rows(out)) == 7 and (out / "state.pt").is_file() and not (out / "summary.json").exists()

    # the resumed run forgets round 7's row, redoes rounds 7-10 and ends where the uninterrupted run ended
    resumed = distill(*common, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert read_rows(out) == read_rows(reference)
    ref_summary = json.loads((reference / "summary.json").read_text())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["student_acc"] == ref_summary["student_acc"]


def test_bad_inputs_are_one_line_errors(tmp_path: Path) -> None:
    distill = distill_here  # the error paths, in this process
    assert_one_line_error(distill("--method", "magic"), "unknown method 'magic'", "ssdkd")
    assert_one_line_error(distill("--task", "nope"), "unknown task 'nope'")
    assert_one_line_error(
        distill("--task", "cifar10", "--scale", "paper"), "--teacher", "--data-root", "--download", "train_teacher.py"
    )
    assert_one_line_error(distill("--set", "action.nope=1"), "unknown config key 'action.nope'")
    assert_one_line_error(distill("--resume", "--out", str(tmp_path / "none")), "--resume")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"junk")
    assert_one_line_error(distill("--teacher", str(bad)), "not a readable ssdkd_env checkpoint")
    mnist_teacher = tmp_path / "mnist.pt"
    from ssdkd_env.checkpoint import card_for, save_model
    from ssdkd_env.models import build_model
    from ssdkd_env.tasks import get_task

    save_model(
        mnist_teacher, build_model("lenet5_half", 10, 1), card_for(get_task("mnist"), "lenet5_half", "teacher", 0.9)
    )
    assert_one_line_error(distill("--teacher", str(mnist_teacher)), "for task 'mnist', not 'digits'")
    # MNIST's default student starts from the teacher's weights, which needs a LeNet-5 teacher
    cnn_teacher = tmp_path / "mnist_cnn.pt"
    save_model(cnn_teacher, build_model("cnn", 10, 1), card_for(get_task("mnist"), "cnn", "teacher", 0.9))
    assert_one_line_error(
        distill("--task", "mnist", "--teacher", str(cnn_teacher)), "student_init=teacher", "--set student_init=random"
    )


@pytest.mark.slow  # a whole (tiny) run with its figures and TensorBoard log
def test_resume_from_another_versions_checkpoint_is_a_one_line_error(tmp_path: Path) -> None:
    """A state.pt whose engine state does not fit today's engine (here: the single-generator layout
    of earlier versions) is refused in one line, and the run's files are left alone."""
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    config = tiny_config_file(tmp_path / "tiny.json")
    common = ["--task", "digits", "--teacher", str(teacher), "--config", str(config), "--out", str(tmp_path / "run")]
    assert distill_here(*common, "--checkpoint-every", "1").returncode == 0
    state_path = tmp_path / "run" / "state.pt"
    state = torch.load(state_path, weights_only=False)
    synth = state["engine"]["synthesizer"]
    synth["meta"], synth["meta_optimizer"] = synth.pop("metas")[0], synth.pop("meta_optimizers")[0]
    torch.save(state, state_path)
    metrics_before = (tmp_path / "run" / "metrics.csv").read_text()
    assert_one_line_error(distill_here(*common, "--resume"), "--resume", "does not fit", "--overwrite")
    assert (tmp_path / "run" / "metrics.csv").read_text() == metrics_before
