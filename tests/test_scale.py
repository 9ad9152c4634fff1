"""Task scales: a CPU-only machine never silently starts a paper-scale job of days."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ssdkd_env.common.cli import run_cli
from ssdkd_env.tasks import get_task, task_at_scale
from ssdkd_env.teachers import ZOO_NOTICE_SHOWN

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_auto_on_cpu_picks_the_variant_with_a_notice() -> None:
    task, notice = task_at_scale("cifar10", "auto", CPU)
    assert task.name == "cifar10-cpu"
    assert notice is not None and "\n" not in notice
    assert "cifar10-cpu" in notice and "--scale paper" in notice and "resnet34" in notice


def test_auto_on_cuda_and_paper_keep_the_task() -> None:
    assert task_at_scale("cifar10", "auto", CUDA) == (get_task("cifar10"), None)
    assert task_at_scale("cifar10", "paper", CPU) == (get_task("cifar10"), None)


def test_cpu_scale_is_the_variant_on_any_device() -> None:
    assert task_at_scale("cifar10", "cpu", CUDA) == (get_task("cifar10-cpu"), None)


@pytest.mark.parametrize("scale", ["auto", "paper", "cpu"])
def test_tasks_without_a_variant_are_unchanged(scale: str) -> None:
    assert task_at_scale("digits", scale, CPU) == (get_task("digits"), None)


def test_variant_shares_the_data_but_not_the_models() -> None:
    paper, cpu = get_task("cifar10"), get_task("cifar10-cpu")
    assert (cpu.input_shape, cpu.num_classes, cpu.mean, cpu.std) == (
        paper.input_shape,
        paper.num_classes,
        paper.mean,
        paper.std,
    )
    assert (cpu.teacher_arch, cpu.recipe.epochs) != (paper.teacher_arch, paper.recipe.epochs)


def test_distill_cli_on_cpu_prints_the_notice_then_runs_the_variant(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without CUDA, ``--task cifar10`` runs ``cifar10-cpu`` on the zoo's teacher (no CIFAR data here)."""
    import importlib.util

    monkeypatch.delenv(ZOO_NOTICE_SHOWN, raising=False)
    script = Path(__file__).resolve().parents[1] / "train" / "distill.py"
    spec = importlib.util.spec_from_file_location("distill_script", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tiny = ["--rounds", "1", "--kd-steps", "2", "--synth-budget", "16", "--g-steps", "1"]
    argv = ["--task", "cifar10", "--device", "cpu", *tiny, "--set", "distiller.batch_size=16", "--out", str(tmp_path)]
    code = run_cli(module.main, argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith(("notice", "error"))]
    assert code == 0
    assert err[0].startswith("notice: no CUDA device") and "cifar10-cpu" in err[0]
    assert err[1].startswith("notice: no teacher for task 'cifar10-cpu'") and "zoo's cifar10-cpu/wrn16_1" in err[1]
    assert len(err) == 2
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["task"] == "cifar10-cpu" and summary["teacher_arch"] == "wrn16_1"
