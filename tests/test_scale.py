"""Task scales: a CPU-only machine never silently starts a paper-scale job of days."""

from __future__ import annotations

import pytest
import torch

from ssdkd_env.common.cli import run_cli
from ssdkd_env.tasks import get_task, task_at_scale

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


def test_distill_cli_on_cpu_prints_the_notice_then_runs_the_variant(capsys: pytest.CaptureFixture[str]) -> None:
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "train" / "distill.py"
    spec = importlib.util.spec_from_file_location("distill_script", script)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    code = run_cli(module.main, ["--task", "cifar10", "--device", "cpu", "--rounds", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2  # no CIFAR data here: the variant's one-line error follows the notice
    assert err[0].startswith("notice: no CUDA device") and "cifar10-cpu" in err[0]
    assert err[1].startswith("error: ") and "cifar10-cpu" in err[1] and len(err) == 2
