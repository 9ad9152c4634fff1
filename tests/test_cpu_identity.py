"""Golden numbers: the CPU path gives exactly the metrics recorded before the GPU-path options.

``precision``, ``channels_last`` and ``compile`` and the device-side accumulation of step
statistics must leave every default CPU result bit-identical. The runs below (the digits default
shortened to 6 rounds of 8 steps, the last one adversarial; an augmented two-generator run with
an EMA student; the Fast baseline; a short teacher training) were recorded before those changes
in ``golden/cpu_identity.json``, with the torch version, CPU capability and thread count;
elsewhere kernels may round differently and the test skips. Regenerate them with
``python tests/test_cpu_identity.py --write`` only for a change meant to alter the numbers.
"""

from __future__ import annotations

import json
import sys
import tempfile
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
THREADS = 2  # what conftest sets


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


def identity_runs() -> dict[str, Any]:
    return {
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
                    "synthesis.generators": 2,
                    "synthesis.augment_shift": 1,
                    "synthesis.augment_flip": True,
                    "synthesis.tv_weight": 0.1,
                },
            ),
            "cnn_half",
            1,
        ),
        "fast": engine_run(tiny_config("fast", rounds=4, kd_steps=4), "cnn_half", 2),
        "teacher": teacher_run(),
    }


def test_default_cpu_results_are_bit_identical_to_the_recorded_ones() -> None:
    golden = json.loads(GOLDEN.read_text())
    if golden["platform"] != platform():
        pytest.skip(f"golden numbers recorded on {golden['platform']}, this is {platform()}")
    assert json.loads(json.dumps(identity_runs())) == golden["runs"]


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        sys.exit("usage: python tests/test_cpu_identity.py --write  (records the golden numbers)")
    torch.set_num_threads(THREADS)
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps({"platform": platform(), "runs": identity_runs()}, indent=1) + "\n")
    print(f"wrote {GOLDEN}")
