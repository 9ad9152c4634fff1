"""A held-out synthetic probe set: measures the student data-free, never trained on.

The probe comes from its own inversion of the teacher, without the adversarial term (there is
no student in it), so it holds samples typical of each class rather than the hard,
student-dependent samples that training uses. It is built once, from its own seed, and stays
fixed for the run (and across an environment's episodes), so measurements are comparable.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn as nn

from ssdkd_env.common.images import predict_logits
from ssdkd_env.common.precision import Precision
from ssdkd_env.context import RunContext
from ssdkd_env.losses import per_sample_kl
from ssdkd_env.synthesis import MetaGeneratorSynthesizer, SynthesisConfig, SynthesisRequest
from ssdkd_env.tasks import TaskSpec
from ssdkd_env.tasks.kinds import TASK_KINDS, TaskKind


@dataclass
class ProbeMetrics:
    agreement: float  # share of probe samples where student and teacher predict the same class
    kl: float  # mean KL(p_T || p_S) at temperature 1


@dataclass
class ProbeSet:
    """Fixed synthetic images with their cached teacher logits."""

    images: torch.Tensor
    teacher_logits: torch.Tensor
    synthesized: int  # images synthesised to build it (including warm-up rounds)
    kind: TaskKind = TASK_KINDS.get("classification")

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def measure(self, student: nn.Module, precision: Precision = "fp32") -> ProbeMetrics:
        """Student–teacher agreement and KL (temperature 1) on the probe samples; the student's
        forward passes at ``precision``."""
        if len(self) == 0:
            return ProbeMetrics(0.0, 0.0)
        s_logits = predict_logits(student, self.images, precision=precision)
        agreement = float(self.kind.agreement(s_logits, self.teacher_logits).mean())
        kl = self.kind.per_sample(per_sample_kl(self.teacher_logits, s_logits))
        return ProbeMetrics(agreement, float(kl.mean()))


def build_probe(
    teacher: nn.Module,
    task: TaskSpec,
    size: int,
    rounds: int,
    synthesis: SynthesisConfig,
    device: torch.device,
    seed: int,
    precision: Precision = "auto",
    channels_last: bool = False,
) -> ProbeSet:
    """Invert ``size`` probe samples: ``rounds`` rounds of BN + class loss, balanced classes.

    The first half of the rounds warm the generator up; the samples of the second half are kept. The
    synthesis' ``pretrain_steps`` are not taken, so the probe costs the same whatever the run's warm-up.
    ``precision`` and ``channels_last`` are the run's (see ``EngineConfig``).
    """
    kind = TASK_KINDS.get(task.kind)
    if size <= 0:
        empty = torch.zeros((0, *task.input_shape), device=device)
        outputs = torch.zeros((0, *kind.output_shape(task.num_classes, task.input_shape)), device=device)
        return ProbeSet(empty, outputs, 0, kind)
    rounds = max(2, rounds)
    keep_rounds = rounds - rounds // 2
    per_round = -(-size // keep_rounds)  # ceil
    config = replace(synthesis, adv_weight=0.0, pretrain_steps=0)  # a yardstick: no generator pre-training
    uniform = torch.zeros(task.num_classes, device=device)
    images, logits = [], []
    # the probe depends on ``seed`` only: its own generators for weights and for sampling
    context = RunContext.of_task(
        task,
        teacher,
        torch.Generator().manual_seed(seed),
        torch.Generator().manual_seed(seed),
        device=device,
        precision=precision,
        channels_last=channels_last,
    )
    synthesizer = MetaGeneratorSynthesizer(config, context)
    for r in range(rounds):
        out = synthesizer.synthesize(SynthesisRequest(per_round, uniform, r))
        if r >= rounds // 2:
            images.append(out.images)
            logits.append(out.teacher_logits)
    synthesizer.close()
    return ProbeSet(torch.cat(images)[:size], torch.cat(logits)[:size], rounds * per_round, kind)
