"""The speed harness: time a configuration's rounds phase by phase and project its full schedule.

Method:

1. Setup (not timed). Teacher and student get random weights (``build_model`` from a seeded
   generator): nothing is trained and no real data is used, so **accuracy is not measured**.
   The probe set is ``probe_size`` random images labelled by the teacher: measuring it costs
   what measuring an inverted probe costs, and building it by inversion would only add setup
   time. A :class:`DistillationEnv` builds the engine at ``reset``, as in an agent's episode
   (``DistillationEngine(config, task, teacher, device, seed, test_set=None, probe=probe)``, the
   constructor ``train/distill.py`` uses), and every round is one ``env.step`` with the
   configured action, which runs the round exactly as ``train/distill.py`` does.
2. Steady state. Before the first round the memory is filled to capacity with random samples,
   and the adversarial term is on from the first round (``meta-generator.warmup_rounds=0``), as in
   all but the first rounds of a real run.
3. Timing. Thin wrappers on the instances (``synthesizer.synthesize``, the memory's methods,
   ``distiller.step``, ``probe.measure``, ``engine.test_accuracy``, ``engine.run_round``) and
   around ``env.step`` record exclusive wall time per call, synchronising CUDA before each clock
   read. Warm-up rounds first (at least one), then the measured rounds; each figure is a median
   over the measured rounds.
   Phases: synthesis; memory work (insert, sample, priority updates, class histogram, stats,
   end of round); distillation (the student's steps); measurement (the probe, and real test
   accuracy, which is never run here); round-loop other (the rest of ``engine.run_round``: the
   student's priorities for the new samples, loop glue); environment overhead (the rest of
   ``env.step``: action decoding, reward, info, observation assembly).
4. Projection. A measured round may run fewer KD steps than the schedule (a benchmark's
   ``kd_steps``). The calls made once per KD step (``distiller.step``, ``memory.sample``,
   ``memory.update_priorities``) are scaled: projected round = the per-round calls' median time +
   schedule ``kd_steps`` x the median time per call of the per-step calls. Projected wall time =
   schedule ``rounds`` x projected round: environment steps with the probe measured every round;
   excluded are teacher training, building the probe, real test-set evaluation, logging and
   checkpoints, and the cheaper first rounds before the buffer fills.
5. FLOPs. The first warm-up round (never timed) runs under ``FlopCounterMode``; its FLOPs are
   attributed to the same calls and scaled the same way. Achieved fraction = FLOPs per projected
   round / projected round time / the device's peak (a data-sheet bf16 peak for a known GPU,
   else a measured matmul peak).
6. Scaling (optional). The memory alone (the config's ``memory`` from ``MEMORIES``, a replay
   buffer) at 1k, 5k, 20k and 100k samples for 10 and 100 classes, at the task's image shape,
   filled to capacity, doing one round's operations of the schedule: class histogram, insert
   ``synth_budget`` samples with the replace fraction and eviction rule, ``kd_steps`` x (sample a
   batch, update its priorities), stats, end of round. Its round time is the projected round
   with its own memory work replaced by this one; share = memory time / that round time.
"""

from __future__ import annotations

import datetime
import platform
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
import torch.nn as nn
from torch.utils.flop_counter import FlopCounterMode

from ssdkd_env.benchmarking.configs import BenchConfig
from ssdkd_env.benchmarking.instrument import CallStats, PhaseRecorder
from ssdkd_env.benchmarking.system import cuda_memory_mb, device_name, device_peak, host_memory_mb, synchronize
from ssdkd_env.common.images import predict_logits
from ssdkd_env.distillation import ProbeSet
from ssdkd_env.engine import DistillationEngine, EngineConfig, replace_nested
from ssdkd_env.env import DistillationEnv, EnvConfig
from ssdkd_env.errors import UserError
from ssdkd_env.models import build_model
from ssdkd_env.replay import MEMORIES, BaseMemory, ReplayBuffer
from ssdkd_env.tasks import TaskSpec, get_task
from ssdkd_env.tasks.kinds import TASK_KINDS

WEIGHTS_NOTE = "random weights (untrained teacher and student): speed only, accuracy is not measured"
PHASES: dict[str, tuple[str, ...]] = {
    "synthesis": ("synthesizer.synthesize",),
    "memory": tuple(
        f"memory.{m}" for m in ("insert", "sample", "update_priorities", "class_histogram", "stats", "end_round")
    ),
    "distillation": ("distiller.step",),
    "measurement": ("probe.measure", "engine.test_accuracy"),
    "round_loop_other": ("engine.run_round",),
    "env_overhead": ("env.step",),
}
PER_KD_STEP = frozenset({"distiller.step", "memory.sample", "memory.update_priorities"})
PROJECTION_INCLUDES = "environment steps (engine round + observation), probe measurement every round"
PROJECTION_EXCLUDES = (
    "teacher training, probe construction, real test-set evaluation, logging and checkpoints, "
    "the cheaper first rounds before the memory fills"
)
SCALING_CAPACITIES = (1_000, 5_000, 20_000, 100_000)
SCALING_CLASSES = (10, 100)
SCALING_ROUNDS = 2  # measured memory rounds per row, after one warm-up round


class _BenchmarkEnv(DistillationEnv):
    """The environment with a given probe set and no real test split (the one that
    :class:`DistillationEnv` loads for a task whose data ships with a package is dropped)."""

    def __init__(self, config: EnvConfig, teacher: nn.Module, probe: ProbeSet) -> None:
        super().__init__(config, teacher_model=teacher)
        self.test_set = None
        self._given_probe = probe

    @property
    def probe(self) -> ProbeSet:
        return self._given_probe


def random_probe(teacher: nn.Module, task: TaskSpec, size: int, device: torch.device, seed: int) -> ProbeSet:
    """``size`` random images labelled by ``teacher``: a probe that costs what an inverted one costs."""
    images = torch.randn(size, *task.input_shape, generator=torch.Generator().manual_seed(seed)).to(device)
    logits = predict_logits(teacher, images).float()
    return ProbeSet(images, logits, 0, TASK_KINDS.get(task.kind))


def fill_memory(
    memory: BaseMemory, shape: tuple[int, ...], classes: int, device: torch.device, generator: torch.Generator
) -> None:
    """Fill ``memory`` to capacity with blank images, random teacher logits and random priorities."""
    n = memory.capacity - memory.size
    if n <= 0:
        return
    images = torch.zeros(1, *shape, device=device).expand(n, *shape)
    logits = torch.randn(n, classes, generator=generator).to(device)
    priorities = torch.rand(n, generator=generator).to(device)
    replace_all = {"replace_fraction": 1.0} if "replace_fraction" in memory.insert_fields else {}
    memory.insert(images, logits, priorities, **replace_all)


def instrument(recorder: PhaseRecorder, engine: DistillationEngine) -> None:
    """Install the timing wrappers on the engine's components (this engine's instances only)."""
    recorder.wrap(engine, "run_round", "engine.run_round")
    recorder.wrap(engine, "test_accuracy", "engine.test_accuracy")
    recorder.wrap(engine.synthesizer, "synthesize", "synthesizer.synthesize")
    recorder.wrap(engine.distiller, "step", "distiller.step")
    recorder.wrap(engine.probe, "measure", "probe.measure")
    memory = engine.require_memory()
    for name in PHASES["memory"]:
        recorder.wrap(memory, name.split(".", 1)[1], name)


def _median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else 0.0


def _ratio(part: float, whole: float) -> float:
    """``part / whole``, 0 when ``whole`` is 0."""
    return part / whole if whole > 0 else 0.0


def summarise_calls(
    rounds: list[dict[str, CallStats]], counted: dict[str, CallStats], kd_steps: int
) -> dict[str, dict[str, float]]:
    """Per call name: medians over the measured rounds, and the projection to ``kd_steps`` per round."""
    names = sorted(set().union(*rounds, counted))
    summary = {}
    for name in names:
        stats = [r.get(name, CallStats()) for r in rounds]
        per_call = _median([s.seconds / s.calls for s in stats if s.calls])
        flops = counted.get(name, CallStats())
        flops_per_call = flops.flops / flops.calls if flops.calls else 0.0
        per_round = _median([s.seconds for s in stats])
        per_step = name in PER_KD_STEP
        summary[name] = {
            "per_round_s": per_round,
            "calls_per_round": _median([float(s.calls) for s in stats]),
            "per_call_s": per_call,
            "projected_s": per_call * kd_steps if per_step else per_round,
            "projected_flops": flops_per_call * kd_steps if per_step else float(flops.flops),
        }
    return summary


def summarise_phases(calls: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Per phase: measured and projected seconds per round, their shares, projected FLOPs."""

    def total(names: tuple[str, ...], key: str) -> float:
        return sum(calls[n][key] for n in names if n in calls)

    measured = sum(total(names, "per_round_s") for names in PHASES.values())
    projected = sum(total(names, "projected_s") for names in PHASES.values())
    return {
        phase: {
            "measured_s": total(names, "per_round_s"),
            "measured_share": _ratio(total(names, "per_round_s"), measured),
            "projected_s": total(names, "projected_s"),
            "projected_share": _ratio(total(names, "projected_s"), projected),
            "projected_flops": total(names, "projected_flops"),
        }
        for phase, names in PHASES.items()
    }


def memory_round_seconds(
    config: EngineConfig, shape: tuple[int, ...], capacity: int, classes: int, device: torch.device, seed: int
) -> float:
    """Median wall time of one round's memory operations of ``config`` on a full memory."""
    memory_class = MEMORIES.get(config.memory)
    if not issubclass(memory_class, ReplayBuffer):
        raise UserError(f"--scaling times the replay buffer, but this configuration's memory is '{config.memory}'")
    generator = torch.Generator().manual_seed(seed)  # the data
    sampler = torch.Generator(device=device).manual_seed(seed)  # the replay draws, on the memory's device
    memory = memory_class(capacity, shape, classes, device)
    fill_memory(memory, shape, classes, device, generator)
    action, batch, budget = config.action, config.distiller.batch_size, config.action.synth_budget
    new_images = torch.zeros(1, *shape, device=device).expand(budget, *shape)
    times = []
    for _ in range(1 + SCALING_ROUNDS):  # the first round warms up
        new_logits = torch.randn(budget, classes, generator=generator).to(device)
        new_priorities = torch.rand(budget, generator=generator).to(device)
        step_priorities = torch.rand(config.kd_steps, batch, generator=generator).to(device)
        synchronize(device)
        start = time.perf_counter()
        memory.class_histogram()
        memory.insert(new_images, new_logits, new_priorities, action.replace_fraction, action.eviction)
        for priorities in step_priorities:
            drawn = memory.sample(batch, sampler, alpha=action.alpha, beta=action.beta)
            memory.update_priorities(drawn.index, priorities)
        memory.stats()
        memory.end_round()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return _median(times[1:])


def memory_scaling(
    config: EngineConfig, task: TaskSpec, device: torch.device, other_round_s: float, seed: int
) -> list[dict[str, float]]:
    """The scaling table: memory work per round and its share of the round, per size and class count."""
    rows = []
    for classes in SCALING_CLASSES:
        for capacity in SCALING_CAPACITIES:
            memory_s = memory_round_seconds(config, task.input_shape, capacity, classes, device, seed)
            round_s = other_round_s + memory_s
            rows.append(
                {
                    "capacity": capacity,
                    "classes": classes,
                    "memory_s": memory_s,
                    "round_s": round_s,
                    "memory_share": _ratio(memory_s, round_s),
                }
            )
    return rows


def system_info(device: torch.device) -> dict[str, Any]:
    return {
        "torch": torch.__version__,
        "device": str(device),
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def run_benchmark(
    bench: BenchConfig,
    device: torch.device,
    *,
    warmup: int | None = None,
    rounds: int | None = None,
    kd_steps: int | None = None,
    scaling: bool = False,
    seed: int = 0,
    progress: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Time ``bench`` on ``device`` (see the module's docstring); every number in a JSON-ready dict.

    ``warmup``, ``rounds`` and ``kd_steps`` (KD steps per measured round) default to the benchmark's.
    """
    warmup = bench.warmup if warmup is None else warmup
    rounds = bench.rounds if rounds is None else rounds
    kd_cap = bench.kd_steps if kd_steps is None else kd_steps
    if warmup < 1 or rounds < 1 or (kd_cap is not None and kd_cap < 1):
        raise UserError(f"need warm-up rounds >= 1, rounds >= 1, KD steps >= 1; got {warmup}, {rounds}, {kd_cap}")
    started = time.perf_counter()
    schedule = bench.engine_config()
    task = get_task(schedule.task)
    measured_kd = schedule.kd_steps if kd_cap is None else min(kd_cap, schedule.kd_steps)
    timed = replace_nested(
        schedule,
        kd_steps=measured_kd,
        rounds=max(schedule.rounds, warmup + rounds),
        **{"meta-generator.warmup_rounds": 0},
    )
    progress(f"setup: random {bench.teacher_arch} teacher, {bench.student_arch} student on {device}")
    weights = torch.Generator().manual_seed(seed)
    teacher = build_model(bench.teacher_arch, task.num_classes, task.input_shape[0], generator=weights)
    teacher.to(device).eval()
    probe = random_probe(teacher, task, schedule.probe_size, device, seed + 1)
    env = _BenchmarkEnv(EnvConfig(engine=timed, device=str(device)), teacher, probe)
    env.reset(seed=seed)
    assert env.engine is not None
    memory, generator = env.engine.require_memory(), torch.Generator().manual_seed(seed)
    fill_memory(memory, task.input_shape, task.num_classes, device, generator)
    recorder = PhaseRecorder(device)
    instrument(recorder, env.engine)
    action = env.default_action()

    def one_round() -> dict[str, CallStats]:
        *_, truncated, info = recorder.call("env.step", env.step, action)
        if truncated:
            raise UserError(f"the benchmark run diverged at round {info['round']} (non-finite loss)")
        return recorder.take()

    progress(f"warm-up round 1/{warmup}, under the FLOP counter")
    with FlopCounterMode(display=False) as counter:
        recorder.counter = counter
        counted = one_round()
    recorder.counter = None
    for i in range(1, warmup):
        progress(f"warm-up round {i + 1}/{warmup}")
        one_round()
    measured = []
    for i in range(rounds):
        progress(f"measured round {i + 1}/{rounds}")
        measured.append(one_round())
    memory_use = {**host_memory_mb(), "cuda_max_allocated_mb": cuda_memory_mb(device)}
    env.close()
    progress("measuring the device's peak")
    peak = device_peak(device)

    calls = summarise_calls(measured, counted, schedule.kd_steps)
    phases = summarise_phases(calls)
    round_s = sum(p["projected_s"] for p in phases.values())
    round_flops = sum(p["projected_flops"] for p in phases.values())
    synthesis, distill_step = calls["synthesizer.synthesize"], calls.get("distiller.step")
    result: dict[str, Any] = {
        "config": bench.name,
        "description": bench.description,
        "task": task.name,
        "teacher": bench.teacher_arch,
        "student": bench.student_arch,
        "weights": WEIGHTS_NOTE,
        "system": system_info(device),
        "schedule": {
            "rounds": schedule.rounds,
            "kd_steps": schedule.kd_steps,
            "batch_size": schedule.distiller.batch_size,
            "synth_budget": schedule.action.synth_budget,
            "buffer_size": schedule.buffer_size,
            "probe_size": schedule.probe_size,
            "g_steps": schedule.synthesizer_options.get("g_steps"),
        },
        "engine_config": schedule.to_dict(),
        "measured": {
            "warmup_rounds": warmup,
            "rounds": rounds,
            "kd_steps_per_round": measured_kd,
            "steady_state": "memory filled to capacity before the first round; adversarial term on from round 0",
            "round_s": sum(p["measured_s"] for p in phases.values()),
        },
        "phases": phases,
        "calls": calls,
        "throughput": {
            "inversion_images_per_s": _ratio(timed.action.synth_budget, synthesis["per_round_s"]),
            "distillation_images_per_s": (
                _ratio(timed.distiller.batch_size, distill_step["per_call_s"]) if distill_step else None
            ),
        },
        "memory": memory_use,
        "flops": {
            "per_round": round_flops,
            "peak_flops_per_s": peak.flops_per_s,
            "peak_source": peak.source,
            "achieved_flops_per_s": _ratio(round_flops, round_s),
            "achieved_fraction_of_peak": _ratio(round_flops, round_s * peak.flops_per_s),
            "synthesis_flops_per_s": _ratio(phases["synthesis"]["projected_flops"], phases["synthesis"]["projected_s"]),
            "distillation_flops_per_s": _ratio(
                phases["distillation"]["projected_flops"], phases["distillation"]["projected_s"]
            ),
        },
        "projection": {
            "rounds": schedule.rounds,
            "round_s": round_s,
            "total_s": schedule.rounds * round_s,
            "includes": PROJECTION_INCLUDES,
            "excludes": PROJECTION_EXCLUDES,
        },
        "scaling": None,
    }
    if scaling:
        progress("scaling: memory work at 1k-100k samples, 10 and 100 classes")
        other_round_s = round_s - phases["memory"]["projected_s"]
        result["scaling"] = memory_scaling(schedule, task, device, other_round_s, seed)
    result["wall_time_s"] = time.perf_counter() - started
    return result
