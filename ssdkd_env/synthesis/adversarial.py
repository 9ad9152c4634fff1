"""DFAD's adversarial generator (synthesizer ``adversarial-generator``).

Fang et al., "Data-Free Adversarial Distillation" (2019): one persistent generator (Tanh output
then a BatchNorm without affine parameters) is trained by Adam to *maximise* the teacher–student
discrepancy on the images it makes, while the student minimises the same discrepancy on fresh
images from it; nothing is stored. The generator's objective is -D (classification) or
-log(1 + D) (the form the paper uses for segmentation). The round that interleaves the two sides
is ``ssdkd_env.methods.adversarial``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import torch
import torch.nn as nn

from ssdkd_env.common.precision import Precision, autocast_for, module_layout, to_layout
from ssdkd_env.common.validation import Validated, spec
from ssdkd_env.models import Generator
from ssdkd_env.models.init import seeded
from ssdkd_env.synthesis.base import SYNTHESIZERS, BaseSynthesizer, SynthesisRequest, SynthesisResult

if TYPE_CHECKING:
    from ssdkd_env.engine.context import RunContext

GeneratorObjective = Literal["negative", "negative-log1p"]


@dataclass
class AdversarialConfig(Validated):
    """The adversarial generator and its schedule (DFAD's CIFAR settings by default)."""

    nz: int = spec(256, ge=1)
    ngf: int = spec(64, ge=1)
    lr: float = spec(1e-3, ge=0)  # Adam
    student_steps: int = spec(5, ge=1)  # student steps per generator step
    objective: GeneratorObjective = "negative"  # generator loss: -D, or -log(1 + D) (DFAD on segmentation)


def generator_objective(mean_discrepancy: torch.Tensor, objective: GeneratorObjective) -> torch.Tensor:
    """The generator's loss for a batch's mean discrepancy D: ``-D`` or ``-log(1 + D)``."""
    if objective == "negative":
        return -mean_discrepancy
    return -torch.log1p(mean_discrepancy)


class AdversarialGenerator(BaseSynthesizer):
    """Fresh images from one generator; :meth:`adversarial_step` moves it towards disagreement."""

    def __init__(
        self,
        teacher: nn.Module,
        img_shape: tuple[int, int, int],
        config: AdversarialConfig,
        device: torch.device,
        init_rng: torch.Generator,
        device_rng: torch.Generator,
        precision: Precision = "auto",
        channels_last: bool = False,
    ) -> None:
        """``init_rng`` draws the generator's initial weights, ``device_rng`` every latent."""
        self.teacher, self.config, self.device = teacher, config, device
        self.device_rng, self.precision, self.channels_last = device_rng, precision, channels_last
        self.generator = module_layout(
            seeded(lambda: Generator(config.nz, img_shape, config.ngf, "tanh_bn"), init_rng).to(device), channels_last
        )
        self.optimizer = torch.optim.Adam(self.generator.parameters(), lr=config.lr)

    @classmethod
    def from_context(cls, ctx: RunContext) -> AdversarialGenerator:
        cfg = ctx.config
        return cls(
            ctx.teacher,
            ctx.task.input_shape,
            cfg.adversarial,
            ctx.device,
            ctx.init_rng,
            ctx.device_rng,
            cfg.precision,
            cfg.channels_last,
        )

    def _images(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.config.nz, generator=self.device_rng, device=self.device)
        return to_layout(self.generator(z), self.channels_last)

    def synthesize(self, request: SynthesisRequest) -> SynthesisResult:
        """``request.n`` fresh images (no optimisation) with the teacher's outputs; the targets
        are the teacher's predictions (DFAD draws no target classes)."""
        self.generator.train()  # DFAD's generator always normalises with its batch statistics
        with torch.no_grad(), autocast_for(self.device, self.precision):
            images = self._images(request.n)
            t_logits = self.teacher(images).float()
        return SynthesisResult(images=images.float(), targets=t_logits.argmax(1), teacher_logits=t_logits, losses={})

    def adversarial_step(
        self, student: nn.Module, discrepancy: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], n: int
    ) -> torch.Tensor:
        """One Adam step of the generator on ``n`` fresh images, minimising the objective of the
        per-sample ``discrepancy(teacher_out, student_out)``; returns the loss (detached).

        The student's weights get no gradient; it stays in its mode (training, as in DFAD)."""
        self.generator.train()
        student.requires_grad_(False)
        try:
            with autocast_for(self.device, self.precision):
                images = self._images(n)
                t_logits = self.teacher(images).float()
                s_logits = student(images).float()
            loss = generator_objective(discrepancy(t_logits, s_logits).mean(), self.config.objective)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        finally:
            student.requires_grad_(True)
        return loss.detach()

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])


SYNTHESIZERS.add("adversarial-generator", AdversarialGenerator)
