"""Finding a run's teacher: an explicit checkpoint, the cache, the shipped zoo, or a freshly trained one."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
import torch.nn as nn

from ssdkd_env.checkpoint import ModelCard, load_model
from ssdkd_env.common.io import default_teacher_dir
from ssdkd_env.errors import UserError
from ssdkd_env.supervised import TeacherRun, train_teacher
from ssdkd_env.tasks import LabeledImages, TaskSpec
from ssdkd_env.zoo import find_zoo_teacher, verified_path

ZOO_NOTICE_SHOWN = "SSDKD_ENV_ZOO_NOTICE_SHOWN"
"""Set to the zoo file once its notice is printed, so worker processes started later stay quiet."""


def no_teacher_error(task: TaskSpec) -> UserError:
    """The one-line error for a task with neither a teacher nor data to train one."""
    return UserError(
        f"no teacher for task '{task.name}' and no data to train one: pass --teacher PATH, or point "
        f"--data-root at the {task.name} data (or add --download), or first run "
        f"python train/train_teacher.py --task {task.name} --data-root DIR"
    )


def obtain_teacher(
    task: TaskSpec,
    teacher_path: str | Path | None,
    data_root: str | Path | None,
    download: bool,
    device: torch.device,
    progress: bool = True,
    train: bool = True,
) -> tuple[nn.Module, ModelCard]:
    """Load ``teacher_path``; else the cached teacher of the task's default architecture; else the
    zoo's (:mod:`ssdkd_env.zoo`), with a one-line notice on stderr (once per process tree); else
    train and cache one (only with ``train=True``) when the task's data can be had."""
    if teacher_path is not None:
        return load_model(teacher_path, task=task.name, role="teacher", device=device)
    cached = default_teacher_dir(task.name, task.teacher_arch) / "teacher.pt"
    shipped = None if cached.is_file() else find_zoo_teacher(task.name, task.teacher_arch)
    if shipped is not None:
        if os.environ.get(ZOO_NOTICE_SHOWN) != shipped.file:
            print(
                f"notice: no teacher for task '{task.name}' in the cache ({cached.parent}), so the zoo's "
                f"{shipped.describe()} is used; --teacher PATH or train_teacher.py for another",
                file=sys.stderr,
            )
            os.environ[ZOO_NOTICE_SHOWN] = shipped.file
        return load_model(verified_path(shipped), task=task.name, arch=task.teacher_arch, role="teacher", device=device)
    if not cached.is_file() and not train:
        raise UserError(
            f"no cached teacher for task '{task.name}' ({cached}): pass a teacher checkpoint, train one with "
            f"python train/train_teacher.py --task {task.name}, or build the environment with "
            "ssdkd_env.env.make_env(..., train_teacher=True)"
        )
    if not cached.is_file():
        if task.needs_data_root and data_root is None and not download:
            raise no_teacher_error(task)
        try:
            task.load(data_root, train=True, download=download)
        except UserError:
            raise no_teacher_error(task) from None
        train_teacher(
            TeacherRun(task, task.teacher_arch, cached.parent, data_root, download, device=device, progress=progress)
        )
    return load_model(cached, task=task.name, arch=task.teacher_arch, role="teacher", device=device)


def test_split_if_available(task: TaskSpec, data_root: str | Path | None, download: bool) -> LabeledImages | None:
    """The task's real test split, or None when its data is not on this machine."""
    if task.needs_data_root and data_root is None and not download:
        return None
    try:
        return task.load(data_root, train=False, download=download)
    except UserError:
        return None
