"""train/run_agent.py and train/compare.py end to end on the tiny environment."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from helpers import KILL_DRIVER, TINY, nested, saved_random_teacher
from scipy import stats
from scripts import assert_one_line_error, load_script, run_in_process, run_script

from ssdkd_env.reporting import rolling_mean_band, sample_grid

ROOT = Path(__file__).resolve().parents[1]


def tiny_env_file(path: Path, rounds: int = 3) -> Path:
    path.write_text(json.dumps({"engine": nested({**TINY, "rounds": rounds})}))
    return path


def train_reinforce_args(
    teacher: Path, env_file: Path, out: Path, total_steps: int, eval_episodes: int, eval_workers: int = 1
) -> list[str]:
    """run_agent.py arguments that train the built-in REINFORCE agent on the tiny digits environment
    (evaluated in this process unless ``eval_workers`` > 1: worker processes cost seconds to start)."""
    return [
        "--eval-workers",
        str(eval_workers),
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


@pytest.mark.slow
def test_run_agent_writes_summary_plots_and_logs(tmp_path: Path) -> None:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    args = train_reinforce_args(teacher, tiny_env_file(tmp_path / "env.json"), out, 6, 2, eval_workers=2)
    result = run_script("run_agent", *args)
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["agent"] == "reinforce" and summary["task"] == "digits" and summary["total_steps"] == 6
    assert summary["wall_time_s"] > 0
    assert set(summary["policies"]) == {"reinforce", "ssdkd", "uniform"}
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


@pytest.mark.slow
def test_sigkill_then_resume_keeps_completed_work(tmp_path: Path) -> None:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    args = train_reinforce_args(teacher, tiny_env_file(tmp_path / "env.json"), out, 45, 1)
    # killed inside the 20th round: 6 episodes of 3 rounds were checkpointed, the 7th was under way
    killed = subprocess.run(
        [sys.executable, "-c", KILL_DRIVER, "20", str(ROOT / "train" / "run_agent.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    saved = json.loads((out / "checkpoint" / "progress.json").read_text())
    assert saved["num_steps"] == 18 and len(saved["curve"]) == 6
    assert not (out / "summary.json").exists()

    resumed = run_script("run_agent", *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["total_steps"] == 45
    # the episodes finished before the kill are kept as they were, and training went on from there
    assert summary["learning_curve"][: len(saved["curve"])] == saved["curve"]
    assert len(summary["learning_curve"]) == 15


def test_run_agent_errors_are_one_line(tmp_path: Path) -> None:
    assert_one_line_error(run_in_process("run_agent", "--agent", "alphazero"), "unknown agent 'alphazero'", "ppo")
    assert_one_line_error(
        run_in_process("run_agent", "--agent", "ppo", "--task", "cifar10", "--scale", "paper"),
        "--teacher",
        "--data-root",
        "--download",
        "train_teacher.py",
    )
    assert_one_line_error(run_in_process("run_agent", "--resume", "--out", str(tmp_path / "none")), "--resume")
    assert_one_line_error(run_in_process("run_agent", "--agent", "fixed", "--action", "1,2"), "--action")


@pytest.mark.slow
def test_compare_tabulates_policies_with_confidence_intervals(tmp_path: Path) -> None:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    env_file = tiny_env_file(tmp_path / "env.json", rounds=2)
    run = tmp_path / "run"
    trained = run_script("run_agent", *train_reinforce_args(teacher, env_file, run, 4, 1))
    assert trained.returncode == 0, trained.stderr
    out = tmp_path / "compare"
    result = run_script(
        "compare",
        "--agents",
        f"ssdkd,random,reinforce={run / 'agent'}",
        "--task",
        "digits",
        "--seeds",
        "200000-200002",
        "--teacher",
        str(teacher),
        "--config",
        str(env_file),
        "--device",
        "cpu",
        "--out",
        str(out),
        "--bootstrap-reps",
        "200",
    )
    assert result.returncode == 0, result.stderr
    table = (out / "compare.md").read_text()
    assert "| IQM [95% CI] | P(> reference) [95% CI] |" in table
    for label in ("ssdkd", "random", "reinforce="):
        assert label in table
    saved = json.loads((out / "compare.json").read_text())
    data = saved["results"]
    assert saved["seeds"] == [200000, 200001, 200002]
    assert [e["seed"] for e in data["ssdkd"]["episodes"]] == [200000, 200001, 200002]
    acc = data["ssdkd"]["student_acc"]
    assert acc["n"] == 3 and acc["ci95_low"] <= acc["mean"] <= acc["ci95_high"]
    # a quarter of three scores rounds down to none cut: the IQM of three evaluation seeds is their mean
    assert data["ssdkd"]["iqm"]["student_acc"]["value"] == pytest.approx(acc["mean"])
    assert "improvement" not in data["ssdkd"]
    for label in ("random", f"reinforce={run / 'agent'}"):
        better = data[label]["improvement"]["student_acc"]
        assert 0.0 <= better["ci95_low"] <= better["ci95_high"] <= 1.0 and 0.0 <= better["value"] <= 1.0
    assert (out / "compare.png").stat().st_size > 0 and (out / "compare.csv").stat().st_size > 0
    assert (out / "protocol.png").stat().st_size > 0
    assert_one_line_error(run_script("compare", "--agents", "ppo", "--teacher", str(teacher)), "ppo=PATH")


@pytest.mark.slow
def test_resume_restores_the_saved_configuration_and_refuses_changes(tmp_path: Path) -> None:
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    first = run_script("run_agent", *train_reinforce_args(teacher, tiny_env_file(tmp_path / "env.json", 2), out, 4, 1))
    assert first.returncode == 0, first.stderr
    saved = yaml.safe_load((out / "env_config.yaml").read_text())
    assert saved["engine"]["rounds"] == 2 and saved["teacher"] == str(teacher)
    progress = json.loads((out / "checkpoint" / "progress.json").read_text())
    assert (progress["agent"], progress["seed"], progress["num_steps"]) == ("reinforce", 0, 4)

    # flags that would change the saved run are refused, before any work
    resume = ["--out", str(out), "--resume", "--no-progress"]
    for flags, needle in [
        (["--rounds", "5"], "engine.rounds: 2 -> 5"),
        (["--set", "kd_steps=7"], "engine.kd_steps: 3 -> 7"),
        (["--agent", "ppo"], "agent: 'reinforce' -> 'ppo'"),
        (["--seed", "1"], "seed: 0 -> 1"),
        (["--teacher", str(tmp_path / "other.pt")], "teacher: "),
    ]:
        assert_one_line_error(run_in_process("run_agent", *resume, *flags), "--resume", needle, "env_config.yaml")

    # with none of them, the saved configuration, agent and seed are used (not the flags' defaults:
    # --agent ppo, 30 rounds per episode, the cached teacher) and training goes on to --total-steps
    resumed = run_script("run_agent", *resume, "--total-steps", "6", "--eval-episodes", "1", "--device", "cpu")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["agent"], summary["seed"], summary["total_steps"]) == ("reinforce", 0, 6)
    assert summary["rounds_per_episode"] == 2 and summary["env_config"]["teacher"] == str(teacher)
    assert summary["env_config"]["engine"] == saved["engine"]
    assert summary["learning_curve"][:2] == progress["curve"] and len(summary["learning_curve"]) == 3
    assert yaml.safe_load((out / "env_config.yaml").read_text()) == saved


@pytest.mark.usefixtures("one_thread")
def test_the_main_job_reports_paired_differences_with_cis_and_per_environment_curves(tmp_path: Path) -> None:
    """PPO with run_agent.py's defaults (started at the rule) on two environments, then the paired comparison."""
    teacher = saved_random_teacher(tmp_path / "teacher.pt")
    out = tmp_path / "run"
    env_file = tiny_env_file(tmp_path / "env.json", rounds=2)
    flags = f"--agent ppo --task digits --teacher {teacher} --config {env_file} --total-steps 8 --eval-episodes 3"
    flags += " --n-envs 2 --transport local --eval-workers 1 --device cpu --no-progress"
    flags += f" --hyper n_steps=2 --hyper batch_size=2 --hyper n_epochs=1 --out {out}"
    result = run_in_process("run_agent", *flags.split())
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    # run_agent.py's PPO defaults, under the explicit --hyper values
    assert summary["hyper"]["start_at_rule"] is True and summary["hyper"]["initial_std"] == 0.3
    assert summary["hyper"]["learning_rate"] == 1e-3 and summary["hyper"]["n_steps"] == 2
    assert set(summary["policies"]) == {"ppo", "ssdkd", "uniform"} and set(summary["paired"]) == {"ssdkd", "uniform"}
    seeds = summary["eval_seeds"]
    assert len(seeds) == 3 and all([e["seed"] for e in p["episodes"]] == seeds for p in summary["policies"].values())
    table = (out / "results.md").read_text()
    for baseline, paired in summary["paired"].items():
        for metric in ("student_acc", "return"):
            stats = paired[metric]
            learned = [e[metric] for e in summary["policies"]["ppo"]["episodes"]]
            reference = [e[metric] for e in summary["policies"][baseline]["episodes"]]
            differences = np.subtract(learned, reference)  # paired seed by seed
            assert stats["n"] == 3 and stats["over"] == "evaluation seeds"
            assert stats["mean"] == pytest.approx(differences.mean())
            assert stats["ci95_low"] <= stats["mean"] <= stats["ci95_high"] and "p_value" in stats
        acc, ret = paired["student_acc"], paired["return"]
        paired_rows = table[table.index("| ppo minus |") :].splitlines()
        row = next(line for line in paired_rows if line.startswith(f"| {baseline} ("))
        assert f"{100 * acc['mean']:+.2f} [{100 * acc['ci95_low']:+.2f}, {100 * acc['ci95_high']:+.2f}]" in row
        assert f"{ret['mean']:+.3f} [{ret['ci95_low']:+.3f}, {ret['ci95_high']:+.3f}]" in row
        assert row in result.stdout  # the console's final lines give the same table
    assert "ppo minus" in table and "95% CI" in table
    # each training episode is attributed to its environment, whose seed is --seed + its index
    assert [c["env_index"] for c in summary["learning_curve"]] == [0, 1, 0, 1]
    runs = load_script("run_agent").curves_by_environment(summary)
    assert list(runs) == ["env 0 (seed 0)", "env 1 (seed 1)"]
    returns = [c["episode_return"] for c in summary["learning_curve"]]
    assert runs["env 1 (seed 1)"]["episode return"] == returns[1::2]
    for name in ("learning_curve.png", "eval_curves.png", "samples.png", "student.pt"):
        assert (out / name).stat().st_size > 0, name


def test_sample_grid_labels_rows_and_tiles_and_draws_no_empty_tile() -> None:
    images = torch.full((7, 1, 8, 8), -1.0)  # black: denormalised with mean 0 and std 1, then clamped to [0, 1]
    classes = torch.tensor([2, 0, 2, 2, 0, 2, 2])
    confidence = torch.tensor([0.5, 0.9, 0.7, 0.99, 0.6, 0.1, 0.3])
    grid = sample_grid(images, classes, 3, [0.0], [1.0], per_class=4, confidence=confidence)
    # class 1 has no sample: its row is labelled and empty; class 2 shows its 4 most confident of 5
    assert grid.rows == [(0, [1, 4]), (1, []), (2, [3, 2, 0, 6])]
    texts = [t[2] for t in grid.texts]
    assert {"class 0", "class 1", "class 2", "2 samples", "0 samples", "5 samples", "none of this class"} <= set(texts)
    assert [t for t in texts if t[:2] == "0."] == ["0.90", "0.60", "0.99", "0.70", "0.50", "0.30"]
    assert grid.tile == (64, 64)  # an 8x8 digit upscaled 8 times
    # exactly six black tiles are drawn: nothing where a class has no sample
    dark = grid.canvas.sum(axis=2) < 0.5
    assert dark.sum() == 6 * 64 * 64
    rgb = sample_grid(torch.zeros(3, 3, 32, 32), torch.tensor([0, 1, 1]), 10, [0.5] * 3, [0.5] * 3)
    assert rgb.tile == (64, 64) and [len(drawn) for _, drawn in rgb.rows] == [1, 2] + [0] * 8


def test_rolling_mean_band_covers_each_full_window() -> None:
    mean, low, high = rolling_mean_band([1.0, 2.0, 3.0, 5.0], 2)
    np.testing.assert_allclose(mean, [1.5, 2.5, 4.0])  # windows ending at points 2, 3 and 4
    half = stats.t.ppf(0.975, 1) * np.array([0.5, 0.5, 1.0])  # t * sample std / sqrt(2), sample std = |a - b| / sqrt(2)
    np.testing.assert_allclose(high - mean, half)
    np.testing.assert_allclose(mean - low, half)
    assert all(len(a) == 0 for a in rolling_mean_band([1.0], 2))
