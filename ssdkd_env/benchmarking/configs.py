"""Named benchmark configurations, kept as data: which run to time and how much of it.

A configuration names a task, its teacher and student, and engine overrides applied on top of
``make_config(task)`` (so it follows the task's ``engine_defaults``). The timed part
(warm-up rounds, measured rounds, KD steps per measured round) is separate from the schedule
that the projection uses: a measured round may run fewer KD steps than the real one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ssdkd_env.engine import EngineConfig, make_config
from ssdkd_env.registry import Registry
from ssdkd_env.tasks import get_task


@dataclass(frozen=True)
class BenchConfig:
    """A named run to time: task, architectures, engine overrides, and the timed part of it."""

    name: str
    task: str
    description: str
    teacher: str | None = None  # None: the task's teacher architecture
    student: str | None = None  # None: the configuration's (else the task's) student architecture
    overrides: Mapping[str, Any] = field(default_factory=dict)  # dotted engine fields on top of make_config(task)
    warmup: int = 2  # untimed rounds before the measured ones (>= 1; the first runs under the FLOP counter)
    rounds: int = 3  # measured rounds (medians are taken over them)
    kd_steps: int | None = None  # KD steps per measured round (None: the schedule's); the projection scales

    def engine_config(self) -> EngineConfig:
        """The real schedule: the task's default configuration with this benchmark's overrides."""
        overrides = dict(self.overrides)
        if self.student is not None:
            overrides["student_arch"] = self.student
        return make_config(self.task, **overrides)

    @property
    def teacher_arch(self) -> str:
        return self.teacher or get_task(self.task).teacher_arch

    @property
    def student_arch(self) -> str:
        return self.engine_config().student_arch or get_task(self.task).student_arch


BENCH_CONFIGS: Registry[BenchConfig] = Registry("benchmark config")


def register_bench_config(config: BenchConfig) -> BenchConfig:
    """Add ``config`` to :data:`BENCH_CONFIGS` under its name."""
    return BENCH_CONFIGS.add(config.name, config)


def get_bench_config(name: str) -> BenchConfig:
    """The configuration called ``name``; unknown names are a one-line error listing the valid ones."""
    return BENCH_CONFIGS.get(name)


register_bench_config(
    BenchConfig(
        "digits",
        "digits",
        "the digits default run (make_config('digits')): cnn -> cnn_half, 8x8 images",
        teacher="cnn",
        student="cnn_half",
    )
)
register_bench_config(
    BenchConfig(
        "cifar10-cpu",
        "cifar10-cpu",
        "CIFAR-10 at CPU scale (make_config('cifar10-cpu')): wrn16_1 -> wrn16_1, 3x32x32",
        teacher="wrn16_1",
        student="wrn16_1",
        warmup=1,
        rounds=2,
        kd_steps=4,
    )
)
register_bench_config(
    BenchConfig(
        "cifar10-r34-r18",
        "cifar10",
        "CIFAR-10, the paper's pair and schedule (make_config('cifar10')): resnet34 -> resnet18, 3x32x32",
        teacher="resnet34",
        student="resnet18",
        kd_steps=20,
    )
)
register_bench_config(
    BenchConfig(
        "tiny",
        "digits",
        "a digits run that takes seconds (tests): small generator, buffer, batches and probe",
        teacher="cnn_half",
        student="cnn_half",
        overrides={
            "rounds": 5,
            "kd_steps": 3,
            "buffer_size": 64,
            "probe_size": 16,
            "action.synth_budget": 32,
            "distiller.batch_size": 16,
            "meta-generator.nz": 16,
            "meta-generator.ngf": 8,
        },
        warmup=1,
        rounds=2,
        kd_steps=2,
    )
)
