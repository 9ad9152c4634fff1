"""Stacked students (torch.func) against separate distillers: the same KD steps, to float rounding."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from ssdkd_env.distillation import Distiller, DistillerConfig
from ssdkd_env.distillation.stacked import StackedStudents
from ssdkd_env.errors import UserError
from ssdkd_env.models.registry import build_model
from ssdkd_env.replay import BufferBatch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
import bench_stacked  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")  # see assert_near

CPU = torch.device("cpu")
N, BATCH, STEPS = 3, 16, 4


def distillers(config: DistillerConfig | None = None) -> list[Distiller]:
    config = config or DistillerConfig(lr=0.1, momentum=0.9, weight_decay=1e-3, batch_size=BATCH)
    students = [build_model("cnn_half", 10, 3, torch.Generator().manual_seed(i)) for i in range(N)]
    return [Distiller(student, config, total_steps=STEPS, device=CPU) for student in students]


def batches(step: int) -> list[BufferBatch]:
    return bench_stacked.random_batches(N, BATCH, (3, 16, 16), 10, CPU, seed=1000 + step)


def assert_near(got: torch.Tensor, expected: torch.Tensor, rel: float = 1e-5) -> None:
    """Equal to float32 rounding, in norm: a BatchNorm bias's gradient is a sum that cancels to ~0, where
    the vmapped and the native kernels differ by more than the bias's own size but by ~1e-6 of a
    weight's (measured: 2e-6 relative after 4 steps on one thread)."""
    error = float((got.detach().double() - expected.detach().double()).norm())
    assert error <= rel * float(expected.detach().double().norm()) + 1e-7


def test_stacked_steps_match_separate_steps() -> None:
    separate, stacked_distillers = distillers(), distillers()
    stacked = StackedStudents(stacked_distillers)
    assert stacked.size == N and stacked.momentum is None
    for step in range(STEPS):
        step_batches = batches(step)
        expected = [d.step(b) for d, b in zip(separate, step_batches, strict=True)]
        got = stacked.step(step_batches)
        for want, have in zip(expected, got, strict=True):
            torch.testing.assert_close(have.discrepancy, want.discrepancy, rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(have.loss, want.loss, rtol=1e-5, atol=1e-6)
            assert float(have.agreement) == float(want.agreement)
    stacked.write_back()
    for e, r in zip(separate, stacked_distillers, strict=True):
        assert r.steps == e.steps == STEPS and r.scheduler.get_last_lr() == e.scheduler.get_last_lr()
        for p, q in zip(e.student.parameters(), r.student.parameters(), strict=True):
            assert_near(q, p)
            assert_near(r.optimizer.state[q]["momentum_buffer"], e.optimizer.state[p]["momentum_buffer"])
        for b, c in zip(e.student.buffers(), r.student.buffers(), strict=True):
            assert_near(c, b)
    # the students differ from one another: stacking kept them apart
    first, second = (next(d.student.parameters()) for d in stacked_distillers[:2])
    assert not torch.allclose(first, second)


def test_the_stacked_forward_pass_is_bitwise_the_separate_one_with_native_convolutions() -> None:
    separate = distillers()
    stacked = StackedStudents(distillers())
    step_batches = batches(0)
    with torch.backends.mkldnn.flags(enabled=False):
        expected = [d.step(b) for d, b in zip(separate, step_batches, strict=True)]
        got = stacked.step(step_batches)
    for e, r in zip(expected, got, strict=True):
        assert torch.equal(r.discrepancy, e.discrepancy)


def test_stacked_state_continues_separately_after_write_back() -> None:
    separate, resumed = distillers(), distillers()
    stacked = StackedStudents(resumed)
    for d, b in zip(separate, batches(0), strict=True):
        d.step(b)
    stacked.step(batches(0))
    stacked.write_back()
    for step in (1, 2):
        for e, r, b in zip(separate, resumed, batches(step), strict=True):
            torch.testing.assert_close(r.step(b).discrepancy, e.step(b).discrepancy, rtol=1e-5, atol=1e-6)
    # and restacking picks up the momentum the separate steps left
    assert StackedStudents(resumed).momentum is not None


def test_stacking_refuses_what_it_cannot_step_as_one() -> None:
    ahead = distillers()
    ahead[0].step(batches(0)[0])
    with pytest.raises(ValueError, match="lockstep"):
        StackedStudents(ahead)
    with pytest.raises(ValueError, match="augmentation"):
        StackedStudents(
            [
                Distiller(d.student, DistillerConfig(augment_flip=True), 4, CPU, teacher=d.student)
                for d in distillers()
            ]
        )
    with pytest.raises(ValueError, match="one configuration"):
        StackedStudents([distillers()[0], distillers(DistillerConfig(lr=0.05))[0]])
    stacked = StackedStudents(distillers())
    with pytest.raises(ValueError, match="3 batches"):
        stacked.step(batches(0)[:2])


def test_bench_stacked_measures_both_ways_and_the_difference(tmp_path: Path) -> None:
    out = tmp_path / "bench"
    assert bench_stacked.main(["--episodes", "1,2", "--steps", "2", "--warmup", "1", "--batch-size", "4",
                               "--device", "cpu", "--out", str(out)]) == 0
    report = json.loads((out / "bench_stacked.json").read_text())
    assert [row["episodes"] for row in report["rows"]] == [1, 2]
    for row in report["rows"]:
        assert row["separate_steps_per_s"] > 0 and row["stacked_steps_per_s"] > 0
        assert row["speedup"] == pytest.approx(row["stacked_steps_per_s"] / row["separate_steps_per_s"], rel=0.02)
        assert row["max_relative_weight_difference"] < 1e-3  # one thread, three steps: float rounding
        assert row["noise_floor"] > 0
    with pytest.raises(UserError, match="--steps at least 1"):
        bench_stacked.main(["--steps", "0", "--out", str(tmp_path / "bad")])
