"""Supervised training of a task's teacher on its real data."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from ssdkd_env.checkpoint import card_for, save_model
from ssdkd_env.common.images import accuracy, normalize_uint8, random_hflip, random_translate
from ssdkd_env.common.io import write_json
from ssdkd_env.common.seeding import seed_everything
from ssdkd_env.errors import UserError
from ssdkd_env.models import build_model, count_parameters, get_model_entry, is_compatible
from ssdkd_env.tasks import TaskSpec


@dataclass
class TeacherRun:
    """Inputs of one teacher training run."""

    task: TaskSpec
    arch: str
    out_dir: Path
    data_root: str | Path | None = None
    download: bool = False
    epochs: int | None = None  # None: the task's recipe
    seed: int = 0
    device: torch.device = torch.device("cpu")
    progress: bool = True


def check_arch_fits(task: TaskSpec, arch: str) -> None:
    """Reject an architecture that cannot take the task's input."""
    entry = get_model_entry(arch)
    if not is_compatible(arch, task.input_shape):
        size = entry.fixed_input_size or entry.min_input_size
        raise UserError(
            f"architecture '{arch}' needs {size}x{size} inputs but task '{task.name}' has "
            f"{task.input_shape[1]}x{task.input_shape[2]}"
        )


def _make_optimizer(model: nn.Module, name: str, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    if name == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True, weight_decay=weight_decay)


def train_teacher(run: TeacherRun) -> dict[str, Any]:
    """Train, evaluate on the test split, write checkpoint and ``summary.json``; return the summary."""
    task, recipe = run.task, run.task.recipe
    check_arch_fits(task, run.arch)
    start = time.perf_counter()
    generator = seed_everything(run.seed)
    train_set = task.load(run.data_root, train=True, download=run.download)
    test_set = task.load(run.data_root, train=False, download=run.download)
    x_train = normalize_uint8(train_set.images, task.mean, task.std).to(run.device)
    y_train = train_set.labels.to(run.device)
    x_test = normalize_uint8(test_set.images, task.mean, task.std).to(run.device)
    y_test = test_set.labels.to(run.device)

    model = build_model(run.arch, task.num_classes, task.input_shape[0]).to(run.device)
    epochs = run.epochs if run.epochs is not None else recipe.epochs
    steps_per_epoch = math.ceil(len(train_set) / recipe.batch_size)
    total_steps = max(1, epochs * steps_per_epoch)
    optimizer = _make_optimizer(model, recipe.optimizer, recipe.lr, recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=total_steps, pct_start=0.15, anneal_strategy="cos"
    )
    run.out_dir.mkdir(parents=True, exist_ok=True)
    writer = SummaryWriter(str(run.out_dir / "tb"))
    bar = tqdm(range(epochs), desc=f"teacher {task.name}/{run.arch}", disable=not run.progress, unit="epoch")
    test_acc = 0.0
    step = 0
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train_set), generator=generator).to(run.device)
        loss_sum, correct = 0.0, 0
        for i in range(0, len(order), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            xb = random_translate(x_train[idx], recipe.max_shift, generator)
            if recipe.hflip:
                xb = random_hflip(xb, generator)
            logits = model(xb)
            loss = F.cross_entropy(logits, y_train[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            loss_sum += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y_train[idx]).sum())
        test_acc = accuracy(model, x_test, y_test)
        writer.add_scalar("teacher/train_loss", loss_sum / len(train_set), epoch)
        writer.add_scalar("teacher/train_acc", correct / len(train_set), epoch)
        writer.add_scalar("teacher/test_acc", test_acc, epoch)
        bar.set_postfix(loss=f"{loss_sum / len(train_set):.3f}", test_acc=f"{test_acc:.4f}")
    writer.close()

    checkpoint = run.out_dir / "teacher.pt"
    save_model(checkpoint, model, card_for(task, run.arch, "teacher", test_acc), {"seed": run.seed, "epochs": epochs})
    summary = {
        "task": task.name,
        "arch": run.arch,
        "test_acc": test_acc,
        "train_acc": accuracy(model, x_train, y_train),
        "wall_time_s": round(time.perf_counter() - start, 2),
        "checkpoint": str(checkpoint.resolve()),
        "epochs": epochs,
        "steps": step,
        "seed": run.seed,
        "device": str(run.device),
        "parameters": count_parameters(model),
        "train_samples": len(train_set),
        "test_samples": len(test_set),
    }
    write_json(run.out_dir / "summary.json", summary)
    return summary
