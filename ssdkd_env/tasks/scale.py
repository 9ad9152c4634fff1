"""Two scales of one data set: the paper's models and schedule, and a preset that fits a CPU.

A task whose paper-scale models take days without a GPU (``cifar10``: ResNet-34 -> ResNet-18,
220 rounds of 400 KD steps) names a CPU-scale variant: another registered task on the same data
with a smaller pair and schedule (``cifar10-cpu``). :func:`task_at_scale` picks between them, so
a run on a machine without CUDA never silently starts a job of days.
"""

from __future__ import annotations

import torch

from ssdkd_env.tasks.registry import TaskSpec, get_task

SCALES = ("auto", "paper", "cpu")
"""``auto``: the CPU variant when there is no CUDA device; ``paper``: the task as named; ``cpu``: the variant."""


def task_at_scale(name: str, scale: str, device: torch.device) -> tuple[TaskSpec, str | None]:
    """The task to run for ``--task name --scale scale`` on ``device``, and the notice to print
    when ``auto`` chose the CPU variant (None otherwise)."""
    task = get_task(name)
    if task.cpu_variant is None or scale == "paper":
        return task, None
    variant = get_task(task.cpu_variant)
    if scale == "cpu":
        return variant, None
    if device.type == "cuda":
        return task, None
    notice = (
        f"notice: no CUDA device, so --task {task.name} runs at CPU scale as task '{variant.name}' "
        f"({variant.teacher_arch} -> {variant.student_arch}; {variant.scale_note}); "
        f"--scale paper runs {task.teacher_arch} -> {task.student_arch} here anyway ({task.scale_note})"
    )
    return variant, notice
