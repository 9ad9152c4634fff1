"""The GPU-path options on a CPU: precision, channels_last, compile, and steps without host reads."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn as nn
from helpers import random_teacher, tiny_config

from ssdkd_env.checkpoint import load_model, read_checkpoint
from ssdkd_env.common.precision import autocast_dtype, autocast_for
from ssdkd_env.engine import DistillationEngine
from ssdkd_env.errors import UserError
from ssdkd_env.replay import ReplayBuffer
from ssdkd_env.supervised import TeacherRun, train_teacher
from ssdkd_env.synthesis import MetaGeneratorSynthesizer
from ssdkd_env.tasks import get_task

# augmented replay (the teacher relabels) with an EMA student
AUGMENTED: dict[str, object] = {
    "distiller.augment_shift": 1,
    "distiller.augment_mixup": 0.5,
    "distiller.ema_decay": 0.9,
}
METRICS = ("kd_loss", "batch_discrepancy", "batch_agreement", "probe_agreement", "probe_kl", "test_acc")


def tiny_engine(**overrides: object) -> DistillationEngine:
    task = get_task("digits")
    return DistillationEngine(
        tiny_config(**overrides), task, random_teacher(), torch.device("cpu"), 0, task.load(None, False)
    )


def run_all(engine: DistillationEngine) -> list[dict[str, Any]]:
    rows = []
    while not engine.done:
        rows.append(engine.run_round().as_dict())
    return rows


def assert_close_rows(rows: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    assert len(rows) == len(expected)
    for row, ref in zip(rows, expected, strict=True):
        for name in METRICS:
            assert row[name] == pytest.approx(ref[name], rel=1e-3, abs=1e-4), name


def test_autocast_helper_decides_by_device_and_precision() -> None:
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert autocast_dtype(cuda, "auto") == torch.bfloat16 and autocast_dtype(cuda, "bf16") == torch.bfloat16
    assert autocast_dtype(cuda, "fp32") is None
    assert autocast_dtype(cpu, "auto") is None and autocast_dtype(cpu, "fp32") is None
    assert autocast_dtype(cpu, "bf16") == torch.bfloat16
    layer = nn.Linear(4, 2)
    for precision in ("auto", "fp32"):
        context = autocast_for(cpu, precision)
        assert isinstance(context, contextlib.nullcontext)
        with context:
            assert layer(torch.randn(3, 4)).dtype == torch.float32
    with autocast_for(cpu, "bf16"):
        assert torch.is_autocast_enabled("cpu") and layer(torch.randn(3, 4)).dtype == torch.bfloat16


def test_precision_is_a_checked_config_choice() -> None:
    assert tiny_config().precision == "auto" and not tiny_config().channels_last and not tiny_config().compile
    with pytest.raises(UserError, match="precision"):
        tiny_config(precision="fp16")


def test_fp32_is_exactly_the_cpu_default() -> None:
    assert run_all(tiny_engine(precision="fp32")) == run_all(tiny_engine())


def test_bf16_runs_on_cpu_with_finite_metrics() -> None:
    engine = tiny_engine(precision="bf16", **AUGMENTED)
    dtypes: dict[str, set[torch.dtype]] = {"teacher": set(), "student": set()}
    for name, model in (("teacher", engine.teacher), ("student", engine.student)):
        model.register_forward_hook(lambda _m, _i, out, name=name: dtypes[name].add(out.dtype))
    rows = run_all(engine)
    # (the delivered student is the EMA copy: the trained student runs only in bf16 steps)
    assert dtypes["teacher"] == {torch.bfloat16} and dtypes["student"] == {torch.bfloat16}
    for row in rows:
        assert all(math.isfinite(row[name]) for name in (*METRICS, "loss_bn", "loss_oh", "loss_adv"))
        assert 0.0 <= row["probe_agreement"] <= 1.0 and 0.0 <= row["test_acc"] <= 1.0
    # what the memory keeps and the step reports stays fp32
    images, logits = engine.require_memory().contents()
    assert images.dtype == torch.float32 and logits.dtype == torch.float32


def test_channels_last_converts_the_models_and_gives_the_same_run() -> None:
    engine = tiny_engine(channels_last=True, **AUGMENTED)
    rows = run_all(engine)
    assert_close_rows(rows, run_all(tiny_engine(**AUGMENTED)))
    assert isinstance(engine.synthesizer, MetaGeneratorSynthesizer)
    for model in (engine.teacher, engine.student, *engine.synthesizer.metas):
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(c.weight.is_contiguous(memory_format=torch.channels_last) for c in convs)


def test_compile_is_opt_in() -> None:
    engine = tiny_engine()
    assert engine.distiller.student_forward is engine.student
    assert engine.distiller.teacher_forward is engine.teacher


@pytest.mark.slow  # compiling the tiny student and teacher takes 20-60 s on a 2-core CPU
def test_compiled_run_matches_and_keeps_the_state_dict_keys() -> None:
    plain = tiny_engine(**AUGMENTED)
    expected = run_all(plain)
    engine = tiny_engine(compile=True, **AUGMENTED)  # augmented: the teacher's forward is compiled too
    assert engine.distiller.student_forward is not engine.student
    assert engine.distiller.teacher_forward is not engine.teacher
    assert_close_rows(run_all(engine), expected)
    keys = list(plain.state_dict()["student"])
    assert list(engine.state_dict()["student"]) == keys
    assert list(engine.delivered_student.state_dict()) == keys
    assert not any("_orig_mod" in key for key in keys)


@pytest.mark.slow  # compiles the teacher
def test_compiled_teacher_training_saves_the_plain_model(tmp_path: Path) -> None:
    task = get_task("digits")
    summary = train_teacher(TeacherRun(task, "cnn_half", tmp_path, epochs=2, progress=False, compile=True))
    _, state, _ = read_checkpoint(summary["checkpoint"])
    assert not any("_orig_mod" in key for key in state)
    load_model(summary["checkpoint"], "digits", "cnn_half")  # loads strictly
    assert summary["test_acc"] > 0.5


HOST_READS = ("__bool__", "__float__", "__int__", "__index__", "item", "tolist", "numpy", "cpu")


def _refuse(name: str) -> Callable[..., Any]:
    def method(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"Tensor.{name} inside a KD step: a host synchronisation on CUDA")

    return method


@contextlib.contextmanager
def no_host_reads() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        for name in HOST_READS:
            patch.setattr(torch.Tensor, name, _refuse(name))
        yield


def guarded(call: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with no_host_reads():
            return call(*args, **kwargs)

    return wrapper


@pytest.mark.parametrize("overrides", [{}, AUGMENTED])
def test_kd_steps_read_nothing_on_the_host(overrides: dict[str, object]) -> None:
    """Every per-step call leaves its results on the device (on CUDA: no synchronisation)."""
    engine = tiny_engine(**overrides)
    memory = engine.require_memory()
    engine.distiller.step = guarded(engine.distiller.step)  # type: ignore[method-assign]
    memory.sample = guarded(memory.sample)  # type: ignore[method-assign]
    memory.update_priorities = guarded(memory.update_priorities)  # type: ignore[method-assign]
    rows = run_all(engine)
    assert all(math.isfinite(row["kd_loss"]) for row in rows)
    with pytest.raises(AssertionError, match="host synchronisation"), no_host_reads():
        float(torch.ones(()))  # the guard itself works


def test_a_non_finite_loss_fails_the_round() -> None:
    """The round checks its steps' losses once, at its end; the steps between keep sampling."""
    engine = tiny_engine(kd_steps=4)
    memory = engine.require_memory()
    assert isinstance(memory, ReplayBuffer)
    sample = memory.sample

    def nan_weights(*args: Any, **kwargs: Any) -> Any:
        batch = sample(*args, **kwargs)
        return dataclasses.replace(batch, weights=torch.full_like(batch.weights, math.nan))

    memory.sample = nan_weights  # type: ignore[method-assign]
    with pytest.raises(FloatingPointError, match="non-finite distillation loss"):
        engine.run_round()
    assert engine.distiller.steps == 4  # NaN weights, then NaN priorities: sampling went on
    assert bool((memory.priorities[: memory.size] >= memory.min_priority).all())


@pytest.mark.parametrize(("overrides", "relabels"), [({}, False), (AUGMENTED, True)])
def test_the_teacher_labels_only_augmented_batches(overrides: dict[str, object], relabels: bool) -> None:
    """Plain replay trains on the teacher outputs cached in the memory; augmentation relabels."""
    engine = tiny_engine(**overrides)
    engine.run_round()
    calls = []
    engine.teacher.register_forward_hook(lambda _m, inputs, _o: calls.append(inputs[0].shape[0]))
    batch = engine.require_memory().sample(16, generator=engine.device_rng)
    engine.distiller.step(batch)
    assert calls == ([16] if relabels else [])
