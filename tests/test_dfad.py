"""DFAD in the engine: the generator's loss is the negated discrepancy, nothing is stored, and the
environment refuses a method without a memory."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import random_teacher, tiny_config

from ssdkd_env.checkpoint import card_for
from ssdkd_env.context import RunContext
from ssdkd_env.engine import DistillationEngine, methods_with_memory
from ssdkd_env.engine.run import RunSpec, run_distillation
from ssdkd_env.env import DistillationEnv
from ssdkd_env.errors import UserError
from ssdkd_env.losses import mean_absolute_error
from ssdkd_env.models import build_model
from ssdkd_env.synthesis import AdversarialGenerator, AdversarialGeneratorConfig
from ssdkd_env.synthesis.adversarial import generator_objective
from ssdkd_env.tasks import get_task

SMALL_GENERATOR = {"adversarial-generator.nz": 16, "adversarial-generator.ngf": 8}


def make_generator(lr: float = 1e-3) -> tuple[AdversarialGenerator, torch.nn.Module, torch.nn.Module]:
    task = get_task("digits")
    teacher = random_teacher().requires_grad_(False)
    torch.manual_seed(1)
    student = build_model("cnn_half", task.num_classes, 1).train()
    config = AdversarialGeneratorConfig(nz=16, ngf=8, lr=lr)
    context = RunContext.of_task(task, teacher, torch.Generator().manual_seed(1), torch.Generator().manual_seed(0))
    generator = AdversarialGenerator(config, context)
    return generator, teacher, student


def mae(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    return mean_absolute_error(t, s)


def test_objectives_are_minus_d_and_minus_log_one_plus_d() -> None:
    d = torch.tensor(0.7)
    assert generator_objective(d, "negative").item() == pytest.approx(-0.7)
    assert generator_objective(d, "negative-log1p").item() == pytest.approx(-torch.log1p(d).item())


def test_generator_loss_is_the_negated_discrepancy_of_its_batch() -> None:
    generator, teacher, student = make_generator()
    state = generator.device_rng.get_state()
    with torch.no_grad():  # the batch the step will draw: same latents, same batch statistics
        images = generator._images(32)
        expected = mae(teacher(images), student(images)).mean()
    generator.device_rng.set_state(state)
    loss = generator.adversarial_step(student, mae, 32)
    assert loss.item() == pytest.approx(-expected.item(), rel=1e-5)
    assert all(p.grad is None for p in student.parameters())  # only the generator learns in its step
    assert all(p.requires_grad for p in student.parameters())


def test_generator_steps_raise_the_discrepancy_on_fixed_latents() -> None:
    generator, teacher, student = make_generator(lr=1e-2)
    z = torch.randn(64, 16, generator=torch.Generator().manual_seed(5))

    def discrepancy() -> float:
        with torch.no_grad():
            images = generator.generator(z)
            return mae(teacher(images), student(images)).mean().item()

    before = discrepancy()
    for _ in range(10):
        generator.adversarial_step(student, mae, 64)
    assert discrepancy() > before


def test_dfad_round_interleaves_steps_and_stores_nothing() -> None:
    task = get_task("digits")
    config = tiny_config("dfad", kd_steps=10, **SMALL_GENERATOR)
    engine = DistillationEngine(config, task, random_teacher(), torch.device("cpu"), 0, task.load(None, False))
    assert engine.memory is None and config.distiller.kd_loss == "l1"
    before = [p.detach().clone() for p in engine.student.parameters()]
    rows = [engine.run_round().as_dict() for _ in range(2)]
    batch = config.distiller.batch_size
    # 10 student steps and 10 // 5 = 2 generator steps per round, each on a fresh batch
    assert [r["synthetic_samples"] - engine.probe.synthesized for r in rows] == [12 * batch, 24 * batch]
    assert [r["kd_steps"] for r in rows] == [10, 20] and all(r["buffer_fill"] == 0.0 for r in rows)
    assert all(r["loss_generator"] < 0 for r in rows)  # -MAE
    assert any(not torch.equal(a, b) for a, b in zip(before, engine.student.parameters(), strict=True))


def test_dfad_resumes_the_same_trajectory() -> None:
    task, teacher = get_task("digits"), random_teacher()
    config = tiny_config("dfad", kd_steps=5, **SMALL_GENERATOR)
    full = DistillationEngine(config, task, teacher, torch.device("cpu"), 2)
    rows_full = [full.run_round().as_dict() for _ in range(3)]
    first = DistillationEngine(config, task, teacher, torch.device("cpu"), 2)
    first.run_round()
    second = DistillationEngine(config, task, teacher, torch.device("cpu"), 7)
    second.load_state_dict(first.state_dict())
    assert [second.run_round().as_dict() for _ in range(2)] == rows_full[1:]


def test_environment_refuses_a_method_without_memory() -> None:
    assert "ssdkd" in methods_with_memory() and "fast" in methods_with_memory()
    assert "dfad" not in methods_with_memory()
    with pytest.raises(UserError, match="keeps no memory") as info:
        DistillationEnv(task="digits", method="dfad", teacher_model=random_teacher())
    assert "ssdkd" in str(info.value) and "fast" in str(info.value)


def test_dfad_run_writes_a_generator_grid_and_reports_no_memory(tmp_path: Path) -> None:
    task = get_task("digits")
    config = tiny_config("dfad", rounds=2, kd_steps=5, **SMALL_GENERATOR)
    spec = RunSpec(
        task,
        random_teacher(),
        card_for(task, "cnn_half", "teacher", None),
        torch.device("cpu"),
        0,
        tmp_path,
        task.load(None, False),
        progress=False,
    )
    summary = run_distillation(config, spec)
    assert (tmp_path / "generator_samples.png").is_file() and not (tmp_path / "buffer_samples.png").exists()
    assert summary["buffer_size"] == 0 and summary["buffer_memory_mb"] == 0.0 and summary["kd_steps"] == 10
    assert json.loads((tmp_path / "config.json").read_text())["memory"] == "none"
