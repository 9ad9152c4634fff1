"""DeepInversion in the engine: the pixels are the optimised variables, every loss term has its own
weight, the adaptive term is 1 - JS with a frozen student, and the round keeps nothing."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from helpers import random_teacher, tiny_config

from ssdkd_env.context import RunContext
from ssdkd_env.distillation.distiller import StepResult
from ssdkd_env.engine import DistillationEngine, methods_with_memory
from ssdkd_env.env import DistillationEnv
from ssdkd_env.errors import UserError
from ssdkd_env.losses import jensen_shannon
from ssdkd_env.models import build_model
from ssdkd_env.replay import BufferBatch
from ssdkd_env.synthesis import PixelInversion, PixelInversionConfig, SynthesisRequest, SynthesisResult
from ssdkd_env.tasks import get_task

CPU = torch.device("cpu")
TINY_DI = {"pixel-inversion.iterations": 3, "probe_size": 0}  # no probe: its inversion is not what is tested here
ALL_TERMS = {"bn_weight": 2.0, "oh_weight": 1.5, "tv_l1": 0.3, "tv_l2": 0.2, "l2_weight": 0.1, "adaptive_weight": 0.7}
FIELD_OF = {  # reported loss -> its weight in PixelInversionConfig
    "bn": "bn_weight",
    "oh": "oh_weight",
    "tv_l1": "tv_l1",
    "tv_l2": "tv_l2",
    "l2": "l2_weight",
    "adaptive": "adaptive_weight",
}


def make_synth(**fields: Any) -> tuple[PixelInversion, torch.nn.Module]:
    task = get_task("digits")
    torch.manual_seed(1)
    student = build_model("cnn_half", task.num_classes, 1).train()
    config = PixelInversionConfig(**{"iterations": 20, "jitter": 1, **fields})
    rng = torch.Generator().manual_seed(0)
    synth = PixelInversion(config, RunContext.of_task(task, random_teacher(), rng, student=student))
    return synth, student


def request(n: int = 16) -> SynthesisRequest:
    return SynthesisRequest(n, torch.zeros(10), 0)


def test_pixels_are_optimised_from_noise_and_the_loss_falls(monkeypatch: pytest.MonkeyPatch) -> None:
    synth, student = make_synth(lr=0.2, iterations=10)
    modules = [v for v in vars(synth).values() if isinstance(v, torch.nn.Module)]
    assert all(m is synth.teacher or m is student for m in modules)  # no generator: nothing else has weights
    seen: list[tuple[torch.Tensor, float]] = []
    objective = synth.objective

    def recording(pixels: torch.Tensor, *args: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        total, terms = objective(pixels, *args)
        seen.append((pixels.detach().clone(), total.item()))
        assert pixels.requires_grad and pixels.is_leaf  # the optimised variable itself
        return total, terms

    monkeypatch.setattr(synth, "objective", recording)
    result = synth.synthesize(request())
    assert len(seen) == synth.config.iterations
    assert all(not torch.equal(a, b) for (a, _), (b, _) in zip(seen, seen[1:], strict=False))
    totals = [loss for _, loss in seen]
    assert totals[-1] < 0.97 * totals[0] and sum(b < a for a, b in zip(totals, totals[1:], strict=False)) >= 7
    assert torch.equal(result.images, seen[-1][0]) is False  # the last step moved them once more
    low, high = synth.low, synth.high
    assert bool((result.images >= low).all()) and bool((result.images <= high).all())  # clamped to [0, 1]
    losses = result.losses
    assert set(losses) == set(FIELD_OF) and all(isinstance(v, torch.Tensor) and v.dim() == 0 for v in losses.values())
    assert float(losses["adaptive"]) == 0.0  # off by default (plain DeepInversion)


def test_total_is_the_weighted_sum_and_each_term_switches_off() -> None:
    synth, student = make_synth(**ALL_TERMS)
    student.eval()
    pixels = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    targets = torch.arange(8)
    state = synth.device_rng.get_state()

    def evaluate(config: PixelInversionConfig) -> tuple[float, dict[str, float]]:
        synth.config = config
        synth.device_rng.set_state(state)  # the same jitter every time
        with synth.statistics() as bn_loss:
            total, terms = synth.objective(pixels, targets, 0.0, student, bn_loss)
        return total.item(), {name: value.item() for name, value in terms.items()}

    full = synth.config
    total, terms = evaluate(full)
    assert all(value > 0 for value in terms.values())
    assert total == pytest.approx(sum(ALL_TERMS[FIELD_OF[n]] * v for n, v in terms.items()), rel=1e-5)
    for name, field in FIELD_OF.items():
        off: dict[str, Any] = {field: 0.0}
        without, _ = evaluate(dataclasses.replace(full, **off))
        assert without == pytest.approx(total - ALL_TERMS[field] * terms[name], rel=1e-5), name
    all_off: dict[str, Any] = {field: 0.0 for field in FIELD_OF.values()}
    none, _ = evaluate(dataclasses.replace(full, **all_off))
    assert none == 0.0


def test_adaptive_term_is_one_minus_js_and_the_student_is_frozen() -> None:
    a, b = torch.randn(5, 10), torch.randn(5, 10)
    p, q = F.softmax(a, 1), F.softmax(b, 1)
    m = (p + q) / 2
    expected = 0.5 * (p * (p / m).log()).sum(1) + 0.5 * (q * (q / m).log()).sum(1)
    assert jensen_shannon(a, b).mean().item() == pytest.approx(expected.mean().item(), rel=1e-5)
    assert jensen_shannon(a, a).mean().item() == pytest.approx(0.0, abs=1e-6)
    assert 0 < jensen_shannon(a, b).mean().item() <= math.log(2)

    synth, student = make_synth(adaptive_weight=1.0, iterations=5)
    before = {k: v.clone() for k, v in student.state_dict().items()}
    calls: list[bool] = []
    student.register_forward_hook(lambda m, _i, _o: calls.append(m.training))
    result = synth.synthesize(request())
    assert len(calls) == 5 and not any(calls)  # one student pass per iteration, in eval mode
    assert 1 - math.log(2) <= float(result.losses["adaptive"]) <= 1
    assert all(p.grad is None and p.requires_grad for p in student.parameters())
    assert student.training and all(torch.equal(before[k], v) for k, v in student.state_dict().items())

    synth, student = make_synth(adaptive_weight=0.0, iterations=5)
    calls.clear()
    student.register_forward_hook(lambda m, _i, _o: calls.append(m.training))
    synth.synthesize(request())
    assert calls == []  # off at weight 0: the student is not even run


def test_round_distils_on_the_round_images_and_keeps_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    task = get_task("digits")
    config = tiny_config("deepinv", **TINY_DI)
    assert (config.round_loop, config.synthesizer, config.memory) == ("synthesize-distil", "pixel-inversion", "none")
    engine = DistillationEngine(config, task, random_teacher(), CPU, 0)
    assert engine.memory is None
    made: list[torch.Tensor] = []
    batches: list[BufferBatch] = []
    synthesize, step = engine.synthesizer.synthesize, engine.distiller.step

    def recording_synthesize(req: SynthesisRequest) -> SynthesisResult:
        result = synthesize(req)
        made.append(result.images)
        return result

    def recording_step(batch: BufferBatch) -> StepResult:
        batches.append(batch)
        return step(batch)

    monkeypatch.setattr(engine.synthesizer, "synthesize", recording_synthesize)
    monkeypatch.setattr(engine.distiller, "step", recording_step)
    rows = [engine.run_round().as_dict() for _ in range(2)]
    budget, kd_steps = config.action.synth_budget, config.kd_steps
    assert [r["synthetic_samples"] for r in rows] == [budget, 2 * budget]
    assert [r["kd_steps"] for r in rows] == [kd_steps, 2 * kd_steps] and all(r["buffer_fill"] == 0 for r in rows)
    assert all(math.isfinite(r[f"loss_{name}"]) for r in rows for name in FIELD_OF)
    for i, batch in enumerate(batches):  # every batch comes from its own round's images, uniformly weighted
        images = made[i // kd_steps]
        assert torch.equal(batch.images, images[batch.index]) and bool((batch.weights == 1).all())
    assert engine.round_loop.state_dict() == {} and engine.synthesizer.state_dict() == {}
    held = [v for part in (engine.round_loop, engine.synthesizer) for v in vars(part).values()]
    assert not any(isinstance(v, torch.Tensor) and v.shape[:1] == (budget,) for v in held)


def test_seeded_runs_reproduce_and_resume_without_the_global_rng() -> None:
    task, teacher = get_task("digits"), random_teacher()
    config = tiny_config("deepinv", **TINY_DI, **{"pixel-inversion.flip": True})
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    full = DistillationEngine(config, task, teacher, CPU, 4)
    rows_full = [full.run_round().as_dict() for _ in range(3)]
    assert torch.equal(torch.get_rng_state(), global_state)
    again = DistillationEngine(config, task, teacher, CPU, 4)
    assert [again.run_round().as_dict() for _ in range(3)] == rows_full
    first = DistillationEngine(config, task, teacher, CPU, 4)
    first.run_round()
    second = DistillationEngine(config, task, teacher, CPU, 9)
    second.load_state_dict(first.state_dict())
    assert [second.run_round().as_dict() for _ in range(2)] == rows_full[1:]


def test_hooks_live_only_while_inverting() -> None:
    synth, _ = make_synth(iterations=2)
    layers = [m for m in synth.teacher.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert layers and not any(m._forward_hooks for m in layers)
    with synth.statistics():
        assert all(m._forward_hooks for m in layers)
    synth.close()  # the run's end: a last batch (the sample grid of distill.py) must still invert
    result = synth.synthesize(request(4))
    assert not any(m._forward_hooks for m in layers) and float(result.losses["bn"]) > 0


def test_environment_refuses_deepinv_and_bad_settings_are_user_errors() -> None:
    assert "deepinv" not in methods_with_memory()
    with pytest.raises(UserError, match="keeps no memory"):
        DistillationEnv(task="digits", method="deepinv", teacher_model=random_teacher())
    with pytest.raises(UserError, match="iterations"):
        tiny_config("deepinv", **{"pixel-inversion.iterations": 0})
