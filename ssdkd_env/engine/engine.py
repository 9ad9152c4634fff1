"""One distillation run, advanced a round at a time.

This is the single implementation of the loop: ``train/distill.py`` runs it with fixed actions,
and the Gymnasium environment steps it with an agent's actions. The engine builds the run's
components by name (synthesizer, memory, KD loss, round loop; see ``EngineConfig``), lets the
round loop run each round, and measures the student after it. All randomness comes from the
run's own generators, seeded from ``seed``: the global torch RNG is never read or reseeded.

On a GPU the configuration's ``precision``, ``channels_last`` and ``compile`` choose how the
forward passes run; on a CPU the defaults give exactly the results of plain fp32.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn as nn

from ssdkd_env.action import RoundAction
from ssdkd_env.common.images import normalize_uint8
from ssdkd_env.common.precision import module_layout, to_layout
from ssdkd_env.context import RunContext
from ssdkd_env.distillation import Distiller, ProbeMetrics, ProbeSet, build_probe
from ssdkd_env.engine.config import EngineConfig
from ssdkd_env.methods import ROUND_LOOPS
from ssdkd_env.methods.base import RoundContext, require_memory
from ssdkd_env.models import build_model, check_teacher_init_pair, init_from_teacher
from ssdkd_env.replay import MEMORIES, NO_MEMORY, BaseMemory
from ssdkd_env.supervised import check_arch_fits
from ssdkd_env.synthesis import SYNTHESIZERS
from ssdkd_env.tasks import LabeledImages, TaskSpec
from ssdkd_env.tasks.kinds import TASK_KINDS

PROBE_SEED_OFFSET = 7919  # the probe's inversion draws from its own stream


@dataclass
class RoundMetrics:
    """What one round did and measured (no wall-clock values: they are not reproducible).

    The core fields are the same for every method; ``losses`` holds the method's own losses by
    name (flattened to ``loss_<name>`` columns by :meth:`as_dict`).
    """

    round: int
    synthetic_samples: int  # all images synthesised so far
    kd_steps: int  # distillation steps so far
    buffer_fill: float  # occupied share of the memory (0 without one)
    kd_loss: float
    batch_discrepancy: float  # the KD loss's per-sample discrepancy on the round's batches
    batch_agreement: float
    probe_agreement: float
    probe_kl: float
    test_acc: float | None  # real test score (accuracy, or mIoU for segmentation); reported, never used to decide
    losses: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        losses = data.pop("losses")
        return {**data, **{f"loss_{name}": value for name, value in losses.items()}}


def run_context(
    config: EngineConfig,
    task: TaskSpec,
    teacher: nn.Module,
    student: nn.Module,
    device: torch.device,
    rng: torch.Generator,
    init_rng: torch.Generator,
    device_rng: torch.Generator,
) -> RunContext:
    """What the components of a run of ``config`` are built from (the sizes and inputs they read)."""
    return RunContext.of_task(
        task,
        teacher,
        rng,
        init_rng,
        device=device,
        device_rng=device_rng,
        student=student,
        precision=config.precision,
        channels_last=config.channels_last,
        rounds=config.rounds,
        buffer_size=config.buffer_size,
        synth_budget=config.action.synth_budget,
        condensed_path=config.condensed_path,
    )


class DistillationEngine:
    """Holds the student, the components and the probe of one run."""

    def __init__(
        self,
        config: EngineConfig,
        task: TaskSpec,
        teacher: nn.Module,
        device: torch.device,
        seed: int,
        test_set: LabeledImages | None = None,
        probe: ProbeSet | None = None,
    ) -> None:
        """``probe``: a probe set to share (an environment builds one for all its episodes);
        by default one is built from ``seed``."""
        config = copy.deepcopy(config)  # the run owns its configuration
        self.config, self.task, self.device, self.seed = config, task, device, seed
        self.kind = TASK_KINDS.get(task.kind)
        self.rng = torch.Generator().manual_seed(seed)  # sampling: targets and latents (on a CPU: all of it)
        init_rng = torch.Generator().manual_seed(seed)  # initial weights of the student and generators
        # the draws of every step (replay, augmentation) stay on the device: the run's CPU generator
        # on a CPU, a generator of the device's own elsewhere (a CPU draw copied over would wait for it)
        self.device_rng = self.rng if device.type == "cpu" else torch.Generator(device).manual_seed(seed)
        self.teacher = module_layout(teacher.to(device).eval().requires_grad_(False), config.channels_last)
        arch = config.student_arch or task.student_arch
        check_arch_fits(task, arch)
        self.student = build_model(arch, task.num_classes, task.input_shape[0], generator=init_rng)
        if config.student_init == "teacher":  # refused pairs fail here, before the probe's inversion
            check_teacher_init_pair(self.student, self.teacher)
            init_from_teacher(self.student, self.teacher)
        self.student = module_layout(self.student.to(device), config.channels_last)
        context = run_context(config, task, self.teacher, self.student, device, self.rng, init_rng, self.device_rng)
        synthesizer_class = SYNTHESIZERS.get(config.synthesizer)
        synthesizer_options = config.options("synthesizer")
        # inputs first: a missing one (csmi's condensed samples, kd-real's data) fails before the probe's work
        synthesizer_class.check_inputs(synthesizer_options, context)
        self.memory: BaseMemory | None = (
            None if config.memory == NO_MEMORY else MEMORIES.get(config.memory).build(config.options("memory"), context)
        )
        if probe is None:
            probe = build_probe(
                self.teacher,
                task,
                config.probe_size,
                config.probe_rounds,
                config.probe_inversion,
                device,
                seed + PROBE_SEED_OFFSET,
                config.precision,
                config.channels_last,
            )
        self.probe = probe
        self.synthesizer = synthesizer_class(synthesizer_options, context)
        self.distiller = Distiller(
            self.student,
            config.distiller,
            config.rounds * config.kd_steps,
            device,
            self.teacher,
            self.device_rng,
            self.kind,
            config.precision,
            config.channels_last,
            config.compile,
        )
        self.round = 0
        self.round_loop = ROUND_LOOPS.get(config.round_loop)(config.options("round_loop"), self.round_context())
        self.test_x: torch.Tensor | None = None
        self.test_y: torch.Tensor | None = None
        if test_set is not None:
            test_x = normalize_uint8(test_set.images, task.mean, task.std).to(device)
            self.test_x = to_layout(test_x, config.channels_last)
            self.test_y = test_set.labels.to(device)
        self.synthetic_samples = probe.synthesized

    def close(self) -> None:
        """Remove the hooks this run put on the (possibly shared) teacher."""
        self.synthesizer.close()

    @property
    def done(self) -> bool:
        return self.round >= self.config.rounds

    @property
    def delivered_student(self) -> nn.Module:
        """The student this run delivers and measures (its weight average when ``ema_decay > 0``)."""
        return self.distiller.delivered

    def round_context(self) -> RoundContext:
        """What the round loop sees of this run now (the components and the current round; no real data)."""
        return RoundContext(
            self.config,
            self.task.num_classes,
            self.synthesizer,
            self.memory,
            self.distiller,
            self.student,
            self.device,
            self.rng,
            self.device_rng,
            self.round,
        )

    def require_memory(self) -> BaseMemory:
        """The run's memory; a one-line error for a configuration that has none."""
        return require_memory(self.round_context())

    def measure_probe(self) -> ProbeMetrics:
        """The delivered student's agreement and KL with the teacher on the probe set."""
        return self.probe.measure(self.delivered_student, self.config.precision)

    def test_scores(self) -> dict[str, float] | None:
        """The student's real test scores (in fp32; accuracy, or mIoU and pixel accuracy for
        segmentation), when the task's test split was given."""
        if self.test_x is None or self.test_y is None:
            return None
        return self.kind.score(self.delivered_student, self.test_x, self.test_y)

    def test_accuracy(self) -> float | None:
        """The student's primary test score (the task kind's ``metric``: accuracy or mIoU)."""
        scores = self.test_scores()
        return None if scores is None else scores[self.kind.metric]

    def run_round(self, action: RoundAction | None = None) -> RoundMetrics:
        """Run one round of the method with ``action`` (default: the configured one) and measure."""
        cfg = self.config
        outcome = self.round_loop.run(self.round_context(), action or cfg.action)
        self.synthetic_samples += outcome.synthesized
        if self.memory is not None:
            self.memory.end_round()
        self.round += 1
        probe = self.measure_probe()
        evaluate = self.done or (cfg.eval_every > 0 and self.round % cfg.eval_every == 0)
        return RoundMetrics(
            round=self.round,
            synthetic_samples=self.synthetic_samples,
            kd_steps=self.distiller.steps,
            buffer_fill=0.0 if self.memory is None else self.memory.size / self.memory.capacity,
            kd_loss=outcome.kd_loss,
            batch_discrepancy=outcome.batch_discrepancy,
            batch_agreement=outcome.batch_agreement,
            probe_agreement=probe.agreement,
            probe_kl=probe.kl,
            test_acc=self.test_accuracy() if evaluate else None,
            losses=outcome.losses,
        )

    def state_dict(self) -> dict[str, Any]:
        """Complete state for checkpoints and ``--resume``."""
        return {
            "round": self.round,
            "synthetic_samples": self.synthetic_samples,
            "rng": self.rng.get_state(),
            "device_rng": self.device_rng.get_state(),
            "student": self.student.state_dict(),
            "synthesizer": self.synthesizer.state_dict(),
            "distiller": self.distiller.state_dict(),
            "memory": None if self.memory is None else self.memory.state_dict(),
            "round_loop": self.round_loop.state_dict(),
            "probe": {
                "images": self.probe.images,
                "teacher_logits": self.probe.teacher_logits,
                "synthesized": self.probe.synthesized,
            },
        }

    def reseed(self, seed: int) -> None:
        """Seed the run's random generators afresh, in place: every component draws from them, so the
        state is kept and the randomness from here on is ``seed``'s."""
        self.rng.manual_seed(seed)
        if self.device_rng is not self.rng:
            self.device_rng.manual_seed(seed)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.round, self.synthetic_samples = int(state["round"]), int(state["synthetic_samples"])
        self.rng.set_state(state["rng"])
        if "device_rng" in state:  # absent from the checkpoints of CPU runs before it existed
            self.device_rng.set_state(state["device_rng"])
        self.student.load_state_dict(state["student"])
        self.synthesizer.load_state_dict(state["synthesizer"])
        self.distiller.load_state_dict(state["distiller"])
        if self.memory is not None:
            self.memory.load_state_dict(state["memory"])
        self.round_loop.load_state_dict(state["round_loop"])
        probe = state["probe"]
        self.probe = ProbeSet(
            probe["images"].to(self.device),
            probe["teacher_logits"].to(self.device),
            int(probe["synthesized"]),
            self.kind,
        )
