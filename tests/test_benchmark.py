"""train/benchmark.py: the speed harness on the tiny configuration, and its one-line errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from scripts import load_script

from ssdkd_env.benchmarking.harness import PHASES, SCALING_CAPACITIES, SCALING_CLASSES
from ssdkd_env.common.cli import run_cli


@pytest.fixture(autouse=True)
def keep_threads() -> Iterator[None]:
    """The script sets torch's thread count: give the rest of the session its own back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_tiny_benchmark_reports_phases_flops_projection_and_scaling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    main = load_script("benchmark").main
    json_path = tmp_path / "result.json"
    argv = ["--bench", "tiny", "--device", "cpu", "--threads", "1", "--out", str(tmp_path), "--json", str(json_path)]
    assert run_cli(main, [*argv, "--scaling"]) == 0
    printed = capsys.readouterr().out
    result = json.loads(json_path.read_text())

    assert "random" in result["weights"] and "accuracy is not measured" in result["weights"]
    assert "WEIGHTS ARE RANDOM" in printed and "environment overhead" in printed
    assert result["system"]["threads"] == 1 and result["system"]["device"] == "cpu"
    assert result["system"]["torch"] == torch.__version__ and result["system"]["date"]

    phases = result["phases"]
    assert set(phases) == set(PHASES)
    for phase in phases.values():
        assert phase["measured_s"] > 0 and phase["projected_s"] > 0
    assert sum(p["measured_share"] for p in phases.values()) == pytest.approx(1.0)
    assert sum(p["projected_share"] for p in phases.values()) == pytest.approx(1.0)

    # measured rounds ran 2 KD steps; the schedule has 3, and the projection scales the per-step calls
    schedule, measured = result["schedule"], result["measured"]
    assert (schedule["rounds"], schedule["kd_steps"], measured["kd_steps_per_round"]) == (5, 3, 2)
    step = result["calls"]["distiller.step"]
    assert step["calls_per_round"] == 2
    assert step["projected_s"] == pytest.approx(3 * step["per_call_s"])
    projection = result["projection"]
    assert projection["round_s"] == pytest.approx(sum(p["projected_s"] for p in phases.values()))
    assert projection["total_s"] == pytest.approx(5 * projection["round_s"])
    assert "probe" in projection["includes"] and "evaluation" in projection["excludes"]

    flops = result["flops"]
    assert flops["per_round"] > 0 and flops["peak_flops_per_s"] > 0
    assert (
        0
        < flops["achieved_fraction_of_peak"]
        == pytest.approx(flops["per_round"] / projection["round_s"] / flops["peak_flops_per_s"])
    )
    assert "measured fp32 matmul peak" in flops["peak_source"]
    assert result["throughput"]["inversion_images_per_s"] > 0
    assert result["throughput"]["distillation_images_per_s"] > 0
    assert result["memory"]["peak_rss_mb"] > 0 and result["memory"]["cuda_max_allocated_mb"] is None

    rows = result["scaling"]
    assert [(r["classes"], r["capacity"]) for r in rows] == [
        (k, c) for k in SCALING_CLASSES for c in SCALING_CAPACITIES
    ]
    other = projection["round_s"] - phases["memory"]["projected_s"]
    for row in rows:
        assert row["memory_s"] > 0 and 0 < row["memory_share"] < 1
        assert row["round_s"] == pytest.approx(other + row["memory_s"])
    assert "100,000" in printed


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--bench", "nope"], "unknown benchmark config 'nope'; valid: cifar10-cpu, cifar10-r34-r18, digits, tiny"),
        (["--bench", "tiny", "--rounds", "0"], "--rounds must be >= 1"),
        (["--bench", "tiny", "--warmup", "0"], "--warmup must be >= 1"),
        (["--bench", "tiny", "--threads", "0"], "--threads must be >= 1"),
    ],
)
def test_bad_input_is_one_line_error(args: list[str], needle: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(load_script("benchmark").main, args) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0]


def test_unwritable_out_is_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    regular = tmp_path / "file"
    regular.write_text("x")
    assert run_cli(load_script("benchmark").main, ["--bench", "tiny", "--out", str(regular / "run")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--out" in lines[0] and "cannot be written" in lines[0]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for machines without CUDA")
def test_cuda_without_cuda_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(load_script("benchmark").main, ["--bench", "tiny", "--device", "cuda"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "no CUDA GPU is available" in lines[0]
