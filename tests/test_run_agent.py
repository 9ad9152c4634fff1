"""train/run_agent.py and train/compare.py end to end on the tiny environment."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import TINY, nested, saved_random_teacher
from test_train_teacher import assert_one_line_error

ROOT = Path(__file__).resolve().parents[1]


def tiny_env_file(path: Path, rounds: int = 3) -> Path:
    path.write_text(json.dumps({"engine": nested({**TINY, "rounds": rounds})}))
    return path


def train_reinforce_args(teacher: Path, env_file: Path, out: Path, total_steps: int, eval_episodes: int) -> list[str]:
    """run_agent.py arguments that train the built-in REINFORCE agent on the tiny digits environment."""
    return [
        "--agent",
        "reinforce",
        "--task",
        "digits",
        "--teacher",
        str(teacher),
        "--config",
        str(env_file),
        "--total-steps",
        str(total_steps),
        "--eval-episodes",
        str(eval_episodes),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--no-progress",
    ]


def script(name: str, *args: str, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "train" / name), *args], capture_output=True, text=True, timeout=timeout
    )


def test_run_agent_writes_summary_plots_and_logs(tmp_path: Path) -> None:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    result = script("run_agent.py", *train_reinforce_args(teacher, tiny_env_file(tmp_path / "env.json"), out, 6, 2))
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent"] == "reinforce" and summary["task"] == "digits" and summary["total_steps"] == 6
    assert summary["wall_time_s"] > 0
    assert set(summary["policies"]) == {"reinforce", "ssdkd", "random"}
    for policy in summary["policies"].values():
        assert len(policy["episodes"]) == 2
        assert 0.0 <= policy["student_acc"]["mean"] <= 1.0 and 0.0 <= policy["probe_agreement"]["mean"] <= 1.0
    assert len(summary["learning_curve"]) == 2  # two training episodes of three rounds
    assert all(0.0 <= c["test_acc"] <= 1.0 and 0.0 <= c["probe_agreement"] <= 1.0 for c in summary["learning_curve"])
    for name in ("learning_curve.png", "eval_curves.png", "samples.png", "student.pt", "results.md", "env_config.yaml"):
        assert (out / name).stat().st_size > 0, name
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tb"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"env/reward", "env/probe_agreement", "env/test_acc", "train/episode_return"} <= tags
    assert any(tag.startswith("agent/") for tag in tags)  # reinforce's losses


def test_sigkill_then_resume_keeps_completed_work(tmp_path: Path) -> None:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    args = train_reinforce_args(teacher, tiny_env_file(tmp_path / "env.json"), out, 45, 1)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "train" / "run_agent.py"), *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    progress_file = out / "checkpoint" / "progress.json"
    deadline = time.time() + 180
    while time.time() < deadline:
        if progress_file.exists() and json.loads(progress_file.read_text())["num_steps"] >= 6:
            break
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    saved = json.loads(progress_file.read_text())
    assert 6 <= saved["num_steps"] < 45, "the kill should land mid-training"
    assert not (out / "summary.json").exists()

    resumed = script("run_agent.py", *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == 45
    # the episodes finished before the kill are kept as they were, and training went on from there
    assert summary["learning_curve"][: len(saved["curve"])] == saved["curve"]
    assert len(summary["learning_curve"]) == 15


def test_run_agent_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(script("run_agent.py", "--agent", "alphazero"), "unknown agent 'alphazero'", "ppo")
    assert_one_line_error(
        script("run_agent.py", "--agent", "ppo", "--task", "cifar10"),
        "--teacher",
        "--data-root",
        "--download",
        "train_teacher.py",
    )
    assert_one_line_error(script("run_agent.py", "--resume", "--out", str(tmp_path / "none")), "--resume")
    assert_one_line_error(script("run_agent.py", "--agent", "fixed", "--action", "1,2"), "--action")


def test_compare_tabulates_policies_with_confidence_intervals(tmp_path: Path) -> None:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    env_file = tiny_env_file(tmp_path / "env.json", rounds=2)
    run = tmp_path / "run"
    trained = script("run_agent.py", *train_reinforce_args(teacher, env_file, run, 4, 1))
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "compare"
    result = script(
        "compare.py",
        "--agents",
        f"ssdkd,random,reinforce={run / 'agent'}",
        "--task",
        "digits",
        "--seeds",
        "3",
        "--teacher",
        str(teacher),
        "--config",
        str(env_file),
        "--device",
        "cpu",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    table = (out / "compare.md").read_text()
    for label in ("ssdkd", "random", "reinforce="):
        assert label in table
    data = json.loads((out / "compare.json").read_text())["results"]
    acc = data["ssdkd"]["student_acc"]
    assert acc["n"] == 3 and acc["ci95_low"] <= acc["mean"] <= acc["ci95_high"]
    assert (out / "compare.png").stat().st_size > 0 and (out / "compare.csv").stat().st_size > 0
    assert_one_line_error(script("compare.py", "--agents", "ppo", "--teacher", str(teacher)), "ppo=PATH")
