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
from ssdkd_env.synthesis import SynthesisConfig, Synthesizer, per_sample_kl
from ssdkd_env.tasks import TaskSpec


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

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def measure(self, student: nn.Module) -> ProbeMetrics:
        """Student–teacher agreement and KL on the probe samples."""
        if len(self) == 0:
            return ProbeMetrics(0.0, 0.0)
        s_logits = predict_logits(student, self.images).float()
        agreement = float((s_logits.argmax(1) == self.teacher_logits.argmax(1)).float().mean())
        return ProbeMetrics(agreement, float(per_sample_kl(self.teacher_logits, s_logits).mean()))


def build_probe(
    teacher: nn.Module,
    task: TaskSpec,
    size: int,
    rounds: int,
    synthesis: SynthesisConfig,
    device: torch.device,
    seed: int,
) -> ProbeSet:
    """Invert ``size`` probe samples: ``rounds`` rounds of BN + class loss, balanced classes.

    The first half of the rounds warm the generator up; the samples of the second half are kept.
    """
    if size <= 0:
        empty = torch.zeros((0, *task.input_shape), device=device)
        return ProbeSet(empty, torch.zeros((0, task.num_classes), device=device), 0)
    rounds = max(2, rounds)
    keep_rounds = rounds - rounds // 2
    per_round = -(-size // keep_rounds)  # ceil
    config = replace(synthesis, adv_weight=0.0)
    uniform = torch.zeros(task.num_classes, device=device)
    images, logits = [], []
    with torch.random.fork_rng(devices=[]):  # depends on ``seed`` only and leaves the caller's stream alone
        torch.manual_seed(seed)
        synthesizer = Synthesizer(
            teacher,
            None,
            task.input_shape,
            task.num_classes,
            task.mean,
            task.std,
            config,
            device,
            torch.Generator().manual_seed(seed),
        )
        for r in range(rounds):
            out = synthesizer.synthesize(per_round, uniform, r, diversity=0.0, difficulty_gamma=0.0)
            if r >= rounds // 2:
                images.append(out.images)
                logits.append(out.teacher_logits)
        synthesizer.close()
    return ProbeSet(torch.cat(images)[:size], torch.cat(logits)[:size], rounds * per_round)
