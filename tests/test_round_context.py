"""What a round loop sees: its run's components and sizes through a RoundContext, never real data."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from helpers import random_teacher, tiny_config

from ssdkd_env.distillation import Distiller
from ssdkd_env.engine import DistillationEngine, EngineConfig
from ssdkd_env.engine.engine import run_context
from ssdkd_env.methods import ROUND_LOOPS
from ssdkd_env.methods.base import RoundContext
from ssdkd_env.models import build_model
from ssdkd_env.replay import MEMORIES, NO_MEMORY
from ssdkd_env.synthesis import SYNTHESIZERS
from ssdkd_env.tasks import LabeledImages, get_task
from ssdkd_env.tasks.kinds import TASK_KINDS

CPU = torch.device("cpu")
METHODS = ["ssdkd", "dfad", "deepinv", "mb-dfkd"]  # the three round loops, with and without a memory
QUICK = {"probe_size": 0, "pixel-inversion.iterations": 5}  # no probe; DeepInversion's pixels take few steps


def quick_config(method: str) -> EngineConfig:
    return tiny_config(method, **QUICK)


def reachable(root: object) -> list[tuple[str, object]]:
    """Every object reachable from ``root`` through attributes, slots and container items, with its path."""
    seen: set[int] = set()
    found: list[tuple[str, object]] = []
    stack: list[tuple[str, object]] = [("ctx", root)]
    while stack:
        path, obj = stack.pop()
        if id(obj) in seen or isinstance(obj, (type, str, bytes, int, float, bool, type(None))):
            continue
        seen.add(id(obj))
        found.append((path, obj))
        if isinstance(obj, dict):
            stack.extend((f"{path}[{key!r}]", value) for key, value in obj.items())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend((f"{path}[{i}]", value) for i, value in enumerate(obj))
        elif not isinstance(obj, torch.Tensor):
            fields = dict(getattr(obj, "__dict__", {}))
            for cls in type(obj).__mro__:
                for slot in getattr(cls, "__slots__", ()):
                    if hasattr(obj, slot):
                        fields[slot] = getattr(obj, slot)
            stack.extend((f"{path}.{name}", value) for name, value in fields.items())
    return found


@pytest.mark.parametrize("method", METHODS)
def test_the_round_context_holds_no_real_data(method: str) -> None:
    task = get_task("digits")
    test_set = task.load(None, False)
    engine = DistillationEngine(quick_config(method), task, random_teacher(), CPU, 0, test_set)
    assert engine.test_x is not None and engine.test_y is not None
    real = {t.untyped_storage().data_ptr() for t in (test_set.images, test_set.labels, engine.test_x, engine.test_y)}
    objects = reachable(engine.round_context())
    assert len(objects) > 50  # the walk reached into the components
    for path, obj in objects:
        assert not isinstance(obj, (DistillationEngine, LabeledImages)), path
        assert not any(name in path.rsplit(".", 1)[-1] for name in ("test_x", "test_y", "test_set")), path
        if isinstance(obj, torch.Tensor) and obj.numel() > 0:
            assert obj.untyped_storage().data_ptr() not in real, path


def components(method: str, seed: int) -> tuple[Any, RoundContext]:
    """A run's components built as the engine builds them, from a RunContext and no data at all."""
    config, task = quick_config(method), get_task("digits")
    kind = TASK_KINDS.get(task.kind)
    rng, init_rng = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    teacher = random_teacher().eval().requires_grad_(False)
    student = build_model(task.student_arch, task.num_classes, task.input_shape[0], generator=init_rng)
    run = run_context(config, task, teacher, student, CPU, rng, init_rng, rng)
    memory = None if config.memory == NO_MEMORY else MEMORIES.get(config.memory).build(config.options("memory"), run)
    synthesizer = SYNTHESIZERS.get(config.synthesizer)(config.options("synthesizer"), run)
    distiller = Distiller(
        student, config.distiller, config.rounds * config.kd_steps, CPU, teacher, rng, kind, config.precision
    )
    context = RoundContext(config, task.num_classes, synthesizer, memory, distiller, student, CPU, rng, rng, 0)
    return config, context


@pytest.mark.parametrize("method", METHODS)
def test_a_loop_runs_on_a_context_built_without_real_data(method: str) -> None:
    """The loop's rounds on hand-built components equal the engine's, bit for bit (the engine's probe
    draws from its own generators)."""
    config, ctx = components(method, seed=5)
    loop = ROUND_LOOPS.get(config.round_loop)(config.options("round_loop"), ctx)
    engine = DistillationEngine(config, get_task("digits"), random_teacher(), CPU, 5)
    for round_index in range(2):
        ctx.round = round_index
        outcome = loop.run(ctx, config.action)
        metrics = engine.run_round()
        if ctx.memory is not None:
            ctx.memory.end_round()
        assert (outcome.kd_loss, outcome.batch_discrepancy, outcome.losses) == (
            metrics.kd_loss,
            metrics.batch_discrepancy,
            metrics.losses,
        )
    for mine, theirs in zip(ctx.student.parameters(), engine.student.parameters(), strict=True):
        assert torch.equal(mine, theirs)
