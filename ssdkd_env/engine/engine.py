"""One SSD-KD distillation run, advanced a round at a time.

This is the single implementation of the loop: ``train/distill.py`` runs it with fixed actions,
and the Gymnasium environment steps it with an agent's actions.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn

from ssdkd_env.common.images import accuracy, normalize_uint8, predict_logits
from ssdkd_env.distillation import Distiller, ProbeSet, build_probe
from ssdkd_env.engine.config import STUDENT_INITS, EngineConfig, RoundAction
from ssdkd_env.errors import UserError
from ssdkd_env.models import build_model, check_teacher_init_pair, init_from_teacher
from ssdkd_env.replay import ReplayBuffer
from ssdkd_env.synthesis import Synthesizer, per_sample_kl
from ssdkd_env.tasks import LabeledImages, TaskSpec

PROBE_SEED_OFFSET = 7919  # the probe's inversion draws from its own stream


@dataclass
class RoundMetrics:
    """What one round did and measured (no wall-clock values: they are not reproducible)."""

    round: int
    synthetic_samples: int  # all images synthesised so far
    kd_steps: int  # distillation steps so far
    buffer_fill: float
    kd_loss: float
    batch_kl: float
    batch_agreement: float
    probe_agreement: float
    probe_kl: float
    test_acc: float | None  # real test accuracy (reported only, never used to decide anything)
    loss_bn: float
    loss_oh: float
    loss_adv: float

    def as_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


class DistillationEngine:
    """Holds the student, generator, replay buffer and probe of one run."""

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
        self.rng = torch.Generator().manual_seed(seed)
        torch.manual_seed(seed)
        self.teacher = teacher.to(device).eval().requires_grad_(False)
        arch = config.student_arch or task.student_arch
        if config.student_init not in STUDENT_INITS:
            raise UserError(f"unknown student_init '{config.student_init}'; valid: {', '.join(STUDENT_INITS)}")
        if config.student_init == "teacher":  # fail before the probe's inversion, leaving the RNG untouched
            with torch.random.fork_rng(devices=[]):
                check_teacher_init_pair(build_model(arch, task.num_classes, task.input_shape[0]), self.teacher)
        if probe is None:
            probe = build_probe(
                self.teacher,
                task,
                config.probe_size,
                config.probe_rounds,
                config.synthesis,
                device,
                seed + PROBE_SEED_OFFSET,
            )
        self.probe = probe
        self.student = build_model(arch, task.num_classes, task.input_shape[0])
        if config.student_init == "teacher":
            init_from_teacher(self.student, self.teacher)
        self.student.to(device)
        per_round = config.action.synth_budget
        capacity = config.rounds * per_round if config.grow_only else config.buffer_size
        self.buffer = ReplayBuffer(capacity, task.input_shape, task.num_classes, device)
        self.synthesizer = Synthesizer(
            self.teacher,
            self.student,
            task.input_shape,
            task.num_classes,
            task.mean,
            task.std,
            config.synthesis,
            device,
            self.rng,
        )
        self.distiller = Distiller(
            self.student, config.distiller, config.rounds * config.kd_steps, device, self.teacher, self.rng
        )
        self.test_x: torch.Tensor | None = None
        self.test_y: torch.Tensor | None = None
        if test_set is not None:
            self.test_x = normalize_uint8(test_set.images, task.mean, task.std).to(device)
            self.test_y = test_set.labels.to(device)
        self.round = 0
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

    def test_accuracy(self) -> float | None:
        """The student's real test accuracy, when the task's test split was given."""
        if self.test_x is None or self.test_y is None:
            return None
        return accuracy(self.delivered_student, self.test_x, self.test_y)

    def run_round(self, action: RoundAction | None = None) -> RoundMetrics:
        """Synthesise, update the buffer, distil ``kd_steps`` steps and measure."""
        cfg = self.config
        action = action or cfg.action
        if cfg.grow_only:
            action = RoundAction(**{**asdict(action), "replace_fraction": 0.0})
        synth = self.synthesizer.synthesize(
            action.synth_budget, self.buffer.class_histogram(), self.round, action.diversity, action.difficulty
        )
        self.synthetic_samples += action.synth_budget
        images, t_logits = synth.images, synth.teacher_logits
        s_logits = predict_logits(self.student, images)
        priorities = per_sample_kl(t_logits, s_logits.float(), cfg.distiller.temperature)
        self.buffer.insert(images, t_logits, priorities, action.replace_fraction, action.eviction)

        loss_sum = kl_sum = agree_sum = 0.0
        for _ in range(cfg.kd_steps):
            batch = self.buffer.sample(cfg.distiller.batch_size, action.alpha, action.beta, self.rng)
            step = self.distiller.step(batch)
            self.buffer.update_priorities(batch.index, step.discrepancy)
            loss_sum, kl_sum, agree_sum = loss_sum + step.loss, kl_sum + step.kl, agree_sum + step.agreement
        self.buffer.end_round()
        self.round += 1

        probe = self.probe.measure(self.delivered_student)
        evaluate = self.done or (cfg.eval_every > 0 and self.round % cfg.eval_every == 0)
        steps = max(1, cfg.kd_steps)
        return RoundMetrics(
            round=self.round,
            synthetic_samples=self.synthetic_samples,
            kd_steps=self.distiller.steps,
            buffer_fill=self.buffer.size / self.buffer.capacity,
            kd_loss=loss_sum / steps,
            batch_kl=kl_sum / steps,
            batch_agreement=agree_sum / steps,
            probe_agreement=probe.agreement,
            probe_kl=probe.kl,
            test_acc=self.test_accuracy() if evaluate else None,
            loss_bn=synth.losses["bn"],
            loss_oh=synth.losses["oh"],
            loss_adv=synth.losses["adv"],
        )

    def state_dict(self) -> dict:
        """Complete state for checkpoints and ``--resume``."""
        return {
            "round": self.round,
            "synthetic_samples": self.synthetic_samples,
            "rng": self.rng.get_state(),
            "torch_rng": torch.get_rng_state(),
            "student": self.student.state_dict(),
            "synthesizer": self.synthesizer.state_dict(),
            "distiller": self.distiller.state_dict(),
            "buffer": self.buffer.state_dict(),
            "probe": {
                "images": self.probe.images,
                "teacher_logits": self.probe.teacher_logits,
                "synthesized": self.probe.synthesized,
            },
        }

    def load_state_dict(self, state: dict) -> None:
        self.round, self.synthetic_samples = int(state["round"]), int(state["synthetic_samples"])
        self.rng.set_state(state["rng"])
        torch.set_rng_state(state["torch_rng"])
        self.student.load_state_dict(state["student"])
        self.synthesizer.load_state_dict(state["synthesizer"])
        self.distiller.load_state_dict(state["distiller"])
        self.buffer.load_state_dict(state["buffer"])
        probe = state["probe"]
        self.probe = ProbeSet(
            probe["images"].to(self.device), probe["teacher_logits"].to(self.device), int(probe["synthesized"])
        )
