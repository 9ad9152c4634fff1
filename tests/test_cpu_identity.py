"""Golden numbers: the default CPU path gives the metrics recorded in ``golden/cpu_identity.json``.

``precision``, ``channels_last`` and ``compile`` and the device-side accumulation of step
statistics must leave every default CPU result unchanged. The runs below (the digits default
shortened to 6 rounds of 8 steps, the last one adversarial; an augmented two-generator run with
an EMA student; the Fast baseline; a short teacher training) are recorded in the golden file with
the torch version, CPU capability and thread count they ran on. Every machine checks:

* that the runs, done twice in one process, are bit-identical;
* that they match the golden numbers: bit for bit on the recorded platform, and elsewhere within
  :data:`RTOL` and :data:`FRACTION_ATOL` (see :func:`compare_to_golden` for what is compared and why).

Regenerate the file with ``python tests/test_cpu_identity.py --write`` only for a change meant to
alter the numbers.
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import torch
from helpers import random_teacher, tiny_config

from ssdkd_env.engine import DistillationEngine, EngineConfig, make_config
from ssdkd_env.supervised import TeacherRun, train_teacher
from ssdkd_env.tasks import get_task

GOLDEN = Path(__file__).parent / "golden" / "cpu_identity.json"
THREADS = 2  # the thread count the golden numbers are recorded (and checked) with

# Across platforms (AVX512 against the recorded AVX2, torch 2.14.1, 2 threads, 2026-12-07) the
# continuous quantities of the compared runs differed by at most 5.2e-4 relative (augmented:
# batch_discrepancy); 2e-3 leaves room for other kernels and still fails a 1% change of one
# hyper-parameter (test_a_one_percent_change_is_outside_the_tolerance).
RTOL = 2e-3
# Agreement and accuracy are fractions of counted samples: a near-tied sample that flips moves them
# by 1/64 in the augmented run's 64 KD samples a round (measured: one such flip). Two flips at most.
FRACTION_ATOL = 2 / 64
FRACTIONS = ("batch_agreement", "probe_agreement")  # and every *_acc* field
# The digits default (probe, adversarial round, six rounds of a near-chance student) amplifies
# rounding into another trajectory: across platforms its KD metrics differed by up to 26% (test
# accuracy in round 3). Only its synthesis losses, which stay within 2e-4, are compared there.
CHAOTIC = {"digits-default": ("loss_bn", "loss_oh")}


def platform() -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
    }


def engine_run(config: EngineConfig, teacher_arch: str, seed: int) -> dict[str, Any]:
    """Every round's metrics and a checksum of the delivered student's weights."""
    task = get_task("digits")
    engine = DistillationEngine(
        config, task, random_teacher(teacher_arch), torch.device("cpu"), seed, task.load(None, False)
    )
    rows = []
    while not engine.done:
        rows.append(engine.run_round().as_dict())
    state = engine.delivered_student.state_dict()
    checksum = torch.stack([v.double().sum() for v in state.values() if v.is_floating_point()]).sum()
    engine.close()
    return {"rows": rows, "student_checksum": float(checksum)}


class _Scalars:
    """Stands in for TensorBoard's SummaryWriter: keeps the scalars a teacher run logs."""

    logged: list[tuple[str, float, int]] = []

    def __init__(self, *_args: Any) -> None:
        pass

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        self.logged.append((tag, value, step))

    def close(self) -> None:
        pass


def teacher_run() -> dict[str, Any]:
    """A two-epoch digits teacher: its logged scalars and summary numbers."""
    _Scalars.logged = []
    with tempfile.TemporaryDirectory() as out, mock.patch("ssdkd_env.supervised.SummaryWriter", _Scalars):
        run = TeacherRun(task=get_task("digits"), arch="cnn_half", out_dir=Path(out), epochs=2, progress=False)
        summary = train_teacher(run)
    return {
        "scalars": [list(entry) for entry in _Scalars.logged],
        "test_acc": summary["test_acc"],
        "train_acc": summary["train_acc"],
        "steps": summary["steps"],
    }


def fast_run(**overrides: object) -> dict[str, Any]:
    return engine_run(tiny_config("fast", rounds=4, kd_steps=4, **overrides), "cnn_half", 2)


def identity_runs() -> dict[str, Any]:
    """The recorded runs, as JSON would give them back."""
    runs = {
        "digits-default": engine_run(
            make_config("digits", "ssdkd", rounds=6, kd_steps=8, probe_size=100, probe_rounds=4), "cnn", 0
        ),
        "augmented": engine_run(
            tiny_config(
                rounds=4,
                kd_steps=4,
                **{
                    "distiller.augment_shift": 1,
                    "distiller.augment_flip": True,
                    "distiller.augment_rotate": 10.0,
                    "distiller.augment_scale": 0.1,
                    "distiller.augment_shrink": 0.5,
                    "distiller.augment_mixup": 0.5,
                    "distiller.ema_decay": 0.9,
                    "meta-generator.generators": 2,
                    "meta-generator.augment_shift": 1,
                    "meta-generator.augment_flip": True,
                    "meta-generator.tv_weight": 0.1,
                },
            ),
            "cnn_half",
            1,
        ),
        "fast": fast_run(),
        "teacher": teacher_run(),
    }
    return json.loads(json.dumps(runs))


def leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every number or string in a nested run record, with its path (list items under their tag
    when they are a logged scalar ``[tag, value, step]``, else under their index)."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        if len(value) == 3 and isinstance(value[0], str):  # a logged scalar
            yield (*path, "tag"), value[0]
            yield (*path, value[0]), value[1]
            yield (*path, "step"), value[2]
        else:
            for i, item in enumerate(value):
                yield from leaves(item, (*path, str(i)))
    else:
        yield path, value


def compare_to_golden(runs: dict[str, Any], golden: dict[str, Any]) -> list[str]:
    """What differs beyond the cross-platform tolerance; empty when the runs match.

    Structure, strings and integers (round numbers, sample counts, steps, tags) must be equal.
    Floats: fractions of counted samples within :data:`FRACTION_ATOL`, every other float within
    :data:`RTOL` relative; in the runs named in :data:`CHAOTIC` only the listed metrics are compared.
    """
    ours, theirs = dict(leaves(runs)), dict(leaves(golden))
    if ours.keys() != theirs.keys():
        return [f"different fields: {sorted(set(ours) ^ set(theirs))[:5]}"]
    problems = []
    for path, expected in theirs.items():
        value = ours[path]
        where = ".".join(path)
        if not isinstance(expected, float):
            if value != expected:
                problems.append(f"{where}: {value!r} != {expected!r}")
            continue
        if path[0] in CHAOTIC and path[-1] not in CHAOTIC[path[0]]:
            continue
        if path[-1] in FRACTIONS or "_acc" in path[-1]:
            close = abs(value - expected) <= FRACTION_ATOL
        else:
            close = math.isclose(value, expected, rel_tol=RTOL, abs_tol=1e-12)
        if not close:
            problems.append(f"{where}: {value!r} != {expected!r}")
    return problems


@pytest.fixture(scope="module")
def recorded_threads() -> Iterator[None]:
    """Torch on the golden file's thread count while this module runs (a worker may use fewer)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def first_runs(recorded_threads: None) -> dict[str, Any]:
    return identity_runs()


pytestmark = pytest.mark.usefixtures("recorded_threads")


@pytest.mark.slow
def test_two_runs_in_one_process_are_bit_identical(first_runs: dict[str, Any]) -> None:
    assert identity_runs() == first_runs


@pytest.mark.slow
def test_runs_match_the_golden_numbers(first_runs: dict[str, Any]) -> None:
    golden = json.loads(GOLDEN.read_text())
    if golden["platform"] == platform():
        assert first_runs == golden["runs"]  # the recorded platform: bit for bit
    else:
        assert compare_to_golden(first_runs, golden["runs"]) == []


def test_a_one_percent_change_is_outside_the_tolerance() -> None:
    """The tolerance still tells a real change: the Fast run with its KD learning rate 1% higher."""
    golden = json.loads(GOLDEN.read_text())["runs"]
    changed = json.loads(json.dumps({**golden, "fast": fast_run(**{"distiller.lr": 0.101})}))
    problems = compare_to_golden(changed, golden)
    assert problems and all(p.startswith("fast.") for p in problems)


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_cpu_identity.py --write  (records the golden numbers)")
    torch.set_num_threads(THREADS)
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"platform": platform(), "runs": identity_runs()}, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
