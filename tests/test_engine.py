"""The distillation engine: reproducibility, method presets and round bookkeeping."""

from __future__ import annotations

import pytest
import torch
from helpers import random_teacher, tiny_config

from ssdkd_env.engine import METHODS, DistillationEngine, make_config
from ssdkd_env.errors import UserError
from ssdkd_env.models import build_model, init_from_teacher
from ssdkd_env.synthesis import SynthesisRequest
from ssdkd_env.tasks import get_task


def run_engine(seed: int, method: str = "ssdkd", **overrides: object) -> tuple[list[dict], DistillationEngine]:
    task = get_task("digits")
    engine = DistillationEngine(
        tiny_config(method, **overrides), task, random_teacher(), torch.device("cpu"), seed, task.load(None, False)
    )
    rows = []
    while not engine.done:
        rows.append(engine.run_round().as_dict())
    return rows, engine


def test_seeded_run_is_reproducible_on_cpu() -> None:
    rows_a, engine_a = run_engine(seed=3)
    rows_b, engine_b = run_engine(seed=3)
    assert rows_a == rows_b
    for p, q in zip(engine_a.student.parameters(), engine_b.student.parameters(), strict=True):
        assert torch.equal(p, q)
    rows_c, _ = run_engine(seed=4)
    assert rows_c != rows_a


def test_round_bookkeeping() -> None:
    rows, engine = run_engine(seed=0)
    assert [r["round"] for r in rows] == [1, 2, 3]
    probe_cost = engine.probe.synthesized
    assert len(engine.probe) == 16 and probe_cost >= 16
    assert [r["synthetic_samples"] for r in rows] == [probe_cost + 32, probe_cost + 64, probe_cost + 96]
    assert [r["kd_steps"] for r in rows] == [3, 6, 9]
    assert engine.memory.size == 64
    assert all(0.0 <= r["probe_agreement"] <= 1.0 and r["test_acc"] is not None for r in rows)
    assert rows[0]["loss_adv"] == 0.0 and rows[-1]["loss_adv"] <= 0.0  # adversarial term after warm-up


def test_partial_update_replaces_only_the_fraction() -> None:
    _, engine = run_engine(seed=0, **{"action.replace_fraction": 0.25})
    births = engine.memory.birth_round[: engine.memory.size]
    # rounds 0 and 1 fill the 64 slots (32 each); round 2 may overwrite only round(0.25 * 64) = 16
    assert int((births == 2).sum()) == 16
    assert int((births < 2).sum()) == 64 - 16


def test_grow_only_pool_keeps_everything() -> None:
    _, engine = run_engine(seed=0, method="ssdkd-grow")
    assert engine.memory.capacity == 3 * 32 and engine.memory.size == 3 * 32


def test_presets_change_what_they_name() -> None:
    base = make_config("digits", "ssdkd")
    assert make_config("digits", "ssdkd-no-diversity").action.diversity == 0.0
    assert make_config("digits", "ssdkd-no-difficulty").action.difficulty == 0.0
    uniform = make_config("digits", "ssdkd-uniform").action
    assert uniform.alpha == 0.0 and uniform.beta == 0.0
    fast = make_config("digits", "fast")
    assert fast.memory == "pool" and fast.action.alpha == 0.0 and fast.action.diversity == 0.0
    assert base.action.alpha > 0 and base.action.diversity > 0 and base.action.difficulty > 0
    assert set(METHODS) >= {"ssdkd", "fast"}


@pytest.mark.parametrize(("method", "steps", "lr_g"), [("fast2", 2, 5e-3), ("fast5", 5, 3e-3), ("fast10", 10, 2e-3)])
def test_fast_n_takes_n_generator_steps_into_a_pool_that_only_grows(
    method: str, steps: int, lr_g: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fast2/5/10 differ only in the inversion's inner steps (and Fast's learning rates for them);
    the pool never evicts. Also on a task whose default is another step count (MNIST: 10)."""
    config = make_config("mnist", method)
    assert (config.synthesizer_options["g_steps"], config.synthesizer_options["lr_g"], config.memory) == (
        steps,
        lr_g,
        "pool",
    )
    _, engine = run_engine(seed=0, method=method)
    assert engine.memory.capacity == engine.memory.size == 3 * 32
    assert sorted(engine.memory.birth_round.tolist()) == [0] * 32 + [1] * 32 + [2] * 32
    calls = []
    step = torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, "step", lambda self, *a, **k: (calls.append(1), step(self, *a, **k))[1])
    engine.synthesizer.synthesize(SynthesisRequest(8, torch.zeros(10), 5))
    assert len(calls) == steps + 1  # N inner steps, then the meta-generator's Reptile step


def test_unknown_method_and_key_are_user_errors() -> None:
    with pytest.raises(UserError, match="unknown method"):
        make_config("digits", "nope")
    with pytest.raises(UserError, match="unknown config key"):
        make_config("digits", "ssdkd", **{"action.nope": 1})
    with pytest.raises(UserError, match="eviction"):
        make_config("digits", "ssdkd", **{"action.eviction": "random"})


def test_probe_is_fixed_balanced_and_never_trained_on() -> None:
    rows, engine = run_engine(seed=0, probe_size=40, probe_rounds=4)
    probe = engine.probe
    assert len(probe) == 40 and probe.synthesized == 4 * 20  # 2 warm-up + 2 kept rounds of ceil(40 / 2)
    same = DistillationEngine(
        tiny_config(probe_size=40, probe_rounds=4), get_task("digits"), random_teacher(), torch.device("cpu"), 0
    )
    assert torch.equal(same.probe.images, probe.images)
    # no probe image is in the training buffer
    flat_probe = probe.images.flatten(1)
    flat_buffer = engine.memory.images[: engine.memory.size].flatten(1)
    assert torch.cdist(flat_probe, flat_buffer).min() > 1e-4


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"distiller.ema_decay": 0.9},
        {"meta-generator.generators": 2, "distiller.augment_shrink": 0.5},
    ],
)
def test_state_dict_resumes_the_same_trajectory(overrides: dict[str, object]) -> None:
    task = get_task("digits")
    teacher = random_teacher()
    config = tiny_config(**overrides)
    full = DistillationEngine(config, task, teacher, torch.device("cpu"), 5)
    rows_full = [full.run_round().as_dict() for _ in range(3)]
    first = DistillationEngine(config, task, teacher, torch.device("cpu"), 5)
    first.run_round()
    state = first.state_dict()
    second = DistillationEngine(config, task, teacher, torch.device("cpu"), 99)
    second.load_state_dict(state)
    rows_resumed = [second.run_round().as_dict() for _ in range(2)]
    assert rows_resumed == rows_full[1:]


def test_ema_student_is_the_moving_average_of_the_weights() -> None:
    """With ``ema_decay`` the run delivers and measures the average; the trained student is unchanged."""
    task = get_task("digits")
    decay = 0.75
    engine = DistillationEngine(
        tiny_config(**{"distiller.ema_decay": decay}), task, random_teacher(), torch.device("cpu"), 0
    )
    expected: list[torch.Tensor] | None = None
    original_step = engine.distiller.step

    def step_and_track(batch):  # type: ignore[no-untyped-def]
        nonlocal expected
        result = original_step(batch)
        current = [p.detach().clone() for p in engine.student.parameters()]
        expected = (
            current
            if expected is None
            else [decay * e + (1 - decay) * c for e, c in zip(expected, current, strict=True)]
        )
        return result

    engine.distiller.step = step_and_track  # type: ignore[method-assign]
    engine.run_round()
    engine.run_round()
    delivered = list(engine.delivered_student.parameters())
    assert expected is not None and engine.delivered_student is not engine.student
    for avg, exp in zip(delivered, expected, strict=True):
        assert torch.allclose(avg, exp, atol=1e-6)
    assert not all(torch.equal(a, s) for a, s in zip(delivered, engine.student.parameters(), strict=True))
    plain = DistillationEngine(tiny_config(), task, random_teacher(), torch.device("cpu"), 0)
    assert plain.delivered_student is plain.student


def test_student_init_teacher_starts_from_the_pruned_teacher() -> None:
    task = get_task("digits")
    teacher = random_teacher("cnn")
    engine = DistillationEngine(tiny_config(student_init="teacher"), task, teacher, torch.device("cpu"), 0)
    expected = build_model("cnn_half", task.num_classes, task.input_shape[0])
    init_from_teacher(expected, teacher)
    for p, q in zip(engine.student.parameters(), expected.parameters(), strict=True):
        assert torch.equal(p, q)
    random_start = DistillationEngine(tiny_config(), task, teacher, torch.device("cpu"), 0)
    assert not torch.equal(next(random_start.student.parameters()), next(expected.parameters()))
    with pytest.raises(UserError, match="student_init"):
        DistillationEngine(tiny_config(student_init="pretrained"), task, teacher, torch.device("cpu"), 0)
