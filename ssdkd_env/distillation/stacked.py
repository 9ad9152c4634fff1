"""N episodes' students distilled in lockstep as one stacked model (``torch.func``).

Episodes of one suite share the student architecture, the KD loss and the optimiser's schedule, so
their KD steps can run as one: the students' parameters and buffers are stacked along a leading
episode dimension (:func:`torch.func.stack_module_state`), the per-episode loss and its gradient
are mapped over that dimension (:func:`torch.func.vmap` of :func:`torch.func.grad` through
:func:`torch.func.functional_call`), and SGD with momentum and weight decay updates the stacked
tensors with the same operations ``torch.optim.SGD`` applies to each student. One step is then a
few large kernels instead of N small ones, which is what a GPU needs to be kept busy by small
students.

The stacked step computes what the N separate :meth:`Distiller.step` calls compute, in another
order of summation: vmap runs the N convolutions as one grouped convolution, the N linear layers as
one batched matrix product and BatchNorm's backward pass through generic operations, so the results
agree to float32 rounding, not bit for bit. With torch's native convolutions (oneDNN off) the forward
pass is bitwise the separate one. The largest gaps are in the BatchNorm biases, whose gradients are
sums that cancel to almost nothing; over all of a student's weights the two runs stay within 1e-6
after a few steps, and over tens of steps they drift apart as far as two separate runs whose weights
differ by one part in 10^7 (``tests/test_stacked_students.py``, ``train/bench_stacked.py``).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Sequence

import torch
from torch.func import functional_call, grad, stack_module_state, vmap

from ssdkd_env.common.precision import autocast_for
from ssdkd_env.distillation.distiller import Distiller, StepResult
from ssdkd_env.replay import BufferBatch

Tensors = dict[str, torch.Tensor]


class StackedStudents:
    """The students of ``distillers`` (N >= 1, in lockstep) stepped as one stacked model.

    While stacked, the students' modules and optimisers are stale: :meth:`write_back` copies the
    stacked parameters, buffers and momentum back into each distiller, which can then go on alone
    (evaluate, checkpoint, or step separately). The distillers' schedulers and step counts advance
    with every stacked step.
    """

    def __init__(self, distillers: Sequence[Distiller]) -> None:
        if not distillers:
            raise ValueError("StackedStudents needs at least one distiller")
        first = distillers[0]
        for other in distillers:
            if other.config != first.config or type(other.student) is not type(first.student):
                raise ValueError("stacked distillers need one configuration and one student architecture")
            if other.steps != first.steps or other.scheduler.get_last_lr() != first.scheduler.get_last_lr():
                raise ValueError("stacked distillers must be in lockstep (same step count and learning rate)")
        if first.config.augments or first.ema is not None:
            raise ValueError("stacked students take replayed batches as they are: no augmentation, no EMA")
        if first.channels_last or first.student_forward is not first.student:
            raise ValueError("stacked students run without channels_last and without torch.compile")
        self.distillers = list(distillers)
        self.template = copy.deepcopy(first.student).to("meta")  # architecture only: no storage
        params, buffers = stack_module_state([d.student for d in self.distillers])  # type: ignore[arg-type]
        self.params: Tensors = {name: p.detach() for name, p in params.items()}
        self.buffers: Tensors = buffers
        self.momentum: Tensors | None = self._stack_momentum()
        self._step = vmap(grad(self._loss, has_aux=True), randomness="error")

    @property
    def size(self) -> int:
        """N, the number of stacked students."""
        return len(self.distillers)

    def _stack_momentum(self) -> Tensors | None:
        """The optimisers' momentum buffers, stacked (None before the first step)."""
        states = []
        for distiller in self.distillers:
            named = dict(distiller.student.named_parameters())
            buffers = {name: distiller.optimizer.state.get(p, {}).get("momentum_buffer") for name, p in named.items()}
            states.append(buffers)
        present = {buf is not None for state in states for buf in state.values()}
        if present == {False}:
            return None
        if present != {True}:
            raise ValueError("stacked distillers need momentum for every parameter or for none")
        return {name: torch.stack([state[name] for state in states]) for name in states[0]}  # type: ignore[misc]

    def _loss(
        self, params: Tensors, buffers: Tensors, images: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """One episode's importance-weighted KD loss, as :meth:`Distiller.step` computes it."""
        distiller = self.distillers[0]
        temperature = distiller.config.temperature
        with autocast_for(distiller.device, distiller.precision):
            logits = functional_call(self.template, (params, buffers), (images,)).float()
        discrepancy = distiller.discrepancy(targets, logits)
        loss = (weights * discrepancy).mean() * distiller.loss_fn.scale(temperature)
        return loss, (loss.detach(), discrepancy.detach(), distiller.kind.agreement(logits, targets).mean())

    def step(self, batches: Sequence[BufferBatch]) -> list[StepResult]:
        """One KD step of every student on its own batch (``batches[i]`` for student i)."""
        if len(batches) != self.size:
            raise ValueError(f"{self.size} stacked students need {self.size} batches, got {len(batches)}")
        images = torch.stack([b.images for b in batches])
        targets = torch.stack([b.teacher_logits for b in batches])
        weights = torch.stack([b.weights for b in batches])
        self.template.train()
        # BatchNorm's running statistics are updated in place in the stacked buffers
        grads, (losses, discrepancy, agreement) = self._step(self.params, self.buffers, images, targets, weights)
        self._sgd(grads)
        with warnings.catch_warnings():  # the stacked step stands in for optimizer.step(): the scheduler warns of it
            warnings.filterwarnings("ignore", message=r".*`optimizer\.step\(\)`", category=UserWarning)
            for distiller in self.distillers:
                distiller.scheduler.step()
                distiller.steps += 1
        return [
            StepResult(discrepancy[i], losses[i], discrepancy[i].mean(), agreement[i]) for i in range(self.size)
        ]

    @torch.no_grad()
    def _sgd(self, grads: Tensors) -> None:
        """``torch.optim.SGD``'s update (dampening 0, no Nesterov) on the stacked tensors."""
        config = self.distillers[0].config
        lr = float(self.distillers[0].optimizer.param_groups[0]["lr"])
        if config.weight_decay != 0:
            grads = {name: g.add(self.params[name], alpha=config.weight_decay) for name, g in grads.items()}
        if config.momentum != 0:
            if self.momentum is None:
                self.momentum = {name: g.clone() for name, g in grads.items()}
            else:
                for name, g in grads.items():
                    self.momentum[name].mul_(config.momentum).add_(g)
            grads = self.momentum
        for name, g in grads.items():
            self.params[name].add_(g, alpha=-lr)

    @torch.no_grad()
    def write_back(self) -> None:
        """Copy the stacked state into each distiller's student and optimiser."""
        for i, distiller in enumerate(self.distillers):
            for name, p in distiller.student.named_parameters():
                p.copy_(self.params[name][i])
                if self.momentum is not None:
                    distiller.optimizer.state[p]["momentum_buffer"] = self.momentum[name][i].clone()
            for name, b in distiller.student.named_buffers():
                b.copy_(self.buffers[name][i])
