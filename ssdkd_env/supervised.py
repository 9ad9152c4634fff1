"""Supervised training of a task's teacher on its real data.

The data set lives on the device as tensors, augmented there (no DataLoader). On CUDA the forward
passes run under bf16 autocast (``ssdkd_env.common.precision``, ``auto``) and the steps of an
epoch never read a device value on the host: the epoch's loss and accuracy are summed on the
device (the loss in float64, exactly as Python floats would sum it) and read once per epoch.
"""

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
from ssdkd_env.common.images import normalize_uint8, random_hflip, random_translate
from ssdkd_env.common.io import load_data_file, write_json
from ssdkd_env.common.precision import autocast_for
from ssdkd_env.common.seeding import seed_everything
from ssdkd_env.errors import UserError
from ssdkd_env.models import build_model, count_parameters, get_model_entry, is_compatible
from ssdkd_env.tasks import TaskSpec
from ssdkd_env.tasks.data import IGNORE_INDEX
from ssdkd_env.tasks.kinds import TASK_KINDS

# what a teacher run writes in its folder (ssdkd_env/common/runfolder.py)
RUN_FILES = ("teacher.pt", "last.pt", "summary.json", "tb")


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
    resume: bool = False  # continue from ``out_dir/last.pt`` (written after every epoch)
    compile: bool = False  # torch.compile the training forward pass (the saved model is unchanged)


def check_arch_fits(task: TaskSpec, arch: str) -> None:
    """Reject an architecture that cannot take the task's input or give its kind of output."""
    entry = get_model_entry(arch)
    dense_task = TASK_KINDS.get(task.kind).dense
    if entry.dense != dense_task:
        what = "a segmentation model" if entry.dense else "a classifier"
        wanted = "segmentation models" if dense_task else "classifiers"
        raise UserError(f"architecture '{arch}' is {what} but task '{task.name}' ({task.kind}) needs {wanted}")
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


def _restore(
    last: Path,
    epochs: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: torch.optim.lr_scheduler.LRScheduler,
    generator: torch.Generator,
    augment_rng: torch.Generator,
) -> tuple[int, int, float, float]:
    """Load the state of ``last.pt`` into the run's objects; return (epoch, step, test_acc, seconds spent)."""
    if not last.is_file():
        raise UserError(f"--resume: no {last} to continue from (it is written after every epoch)")
    payload = load_data_file(last, "training checkpoint", "start the run afresh with --overwrite")
    try:
        state = payload["extra"]["training_state"]
        if state["epochs"] != epochs:
            raise UserError(f"--resume: {last} belongs to a run of {state['epochs']} epochs, not {epochs}")
        model.load_state_dict(payload["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        generator.set_state(state["generator"])
        if "augment_generator" in state:  # absent from the files of runs before it existed (CPU: the same generator)
            augment_rng.set_state(state["augment_generator"])
        return state["epoch"], state["step"], state["test_acc"], state["wall_time_s"]
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:  # another version's or architecture's file
        reason = " ".join(str(exc).split())
        raise UserError(
            f"--resume: {last} does not fit this run ({type(exc).__name__}: {reason}); start afresh with --overwrite"
        ) from None


def augment_pair(
    images: torch.Tensor, labels: torch.Tensor, max_shift: int, hflip: bool, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random shifts (and flips) of a batch; per-pixel labels ``[N, H, W]`` move with their images."""
    if labels.dim() == 1:
        images = random_translate(images, max_shift, generator)
        return (random_hflip(images, generator) if hflip else images), labels
    joint = torch.cat([images, labels[:, None].to(images.dtype)], 1)  # one gather moves both
    joint = random_translate(joint, max_shift, generator)
    if hflip:
        joint = random_hflip(joint, generator)
    return joint[:, :-1], joint[:, -1].round().long()


def train_teacher(run: TeacherRun) -> dict[str, Any]:
    """Train, evaluate on the test split, write checkpoint and ``summary.json``; return the summary."""
    task, recipe = run.task, run.task.recipe
    kind = TASK_KINDS.get(task.kind)
    check_arch_fits(task, run.arch)
    start = time.perf_counter()
    generator = seed_everything(run.seed)  # the order of the samples
    # augmentation draws on the device: a CPU draw copied to a GPU would wait for it at every step
    augment_rng = generator if run.device.type == "cpu" else torch.Generator(run.device).manual_seed(run.seed)
    train_set = task.load(run.data_root, train=True, download=run.download)
    test_set = task.load(run.data_root, train=False, download=run.download)
    x_train = normalize_uint8(train_set.images, task.mean, task.std).to(run.device)
    y_train = train_set.labels.to(run.device)
    x_test = normalize_uint8(test_set.images, task.mean, task.std).to(run.device)
    y_test = test_set.labels.to(run.device)

    # channels_last: the layout oneDNN and cuDNN convolutions prefer (about 20% faster on CPU)
    model = build_model(run.arch, task.num_classes, task.input_shape[0]).to(run.device)
    model = model.to(memory_format=torch.channels_last)
    x_train = x_train.contiguous(memory_format=torch.channels_last)
    forward = torch.compile(model) if run.compile else model  # the state_dict stays the model's own
    epochs = run.epochs if run.epochs is not None else recipe.epochs
    steps_per_epoch = math.ceil(len(train_set) / recipe.batch_size)
    total_steps = max(1, epochs * steps_per_epoch)
    optimizer = _make_optimizer(model, recipe.optimizer, recipe.lr, recipe.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.lr, total_steps=total_steps, pct_start=0.15, anneal_strategy="cos"
    )
    run.out_dir.mkdir(parents=True, exist_ok=True)
    last = run.out_dir / "last.pt"
    first_epoch, step, test_acc, spent = 0, 0, 0.0, 0.0
    if run.resume:
        first_epoch, step, test_acc, spent = _restore(last, epochs, model, optimizer, schedule, generator, augment_rng)
    writer = SummaryWriter(str(run.out_dir / "tb"))
    bar = tqdm(
        range(first_epoch, epochs),
        desc=f"teacher {task.name}/{run.arch}",
        disable=not run.progress,
        unit="epoch",
        initial=first_epoch,
        total=epochs,
    )
    for epoch in bar:
        model.train()
        order = torch.randperm(len(train_set), generator=generator).to(run.device)
        loss_sum = torch.zeros((), dtype=torch.float64, device=run.device)
        correct = torch.zeros((), dtype=torch.long, device=run.device)
        labelled = torch.zeros((), dtype=torch.long, device=run.device)  # images, or labelled pixels
        for i in range(0, len(order), recipe.batch_size):
            idx = order[i : i + recipe.batch_size]
            xb, yb = augment_pair(x_train[idx], y_train[idx], recipe.max_shift, recipe.hflip, augment_rng)
            with autocast_for(run.device, "auto"):
                logits = forward(xb).float()
            loss = F.cross_entropy(logits, yb, ignore_index=IGNORE_INDEX)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            loss_sum += loss.detach().double() * len(idx)
            valid = yb != IGNORE_INDEX
            correct += ((logits.argmax(1) == yb) & valid).sum()
            labelled += valid.sum()
        train_loss, train_acc = float(loss_sum) / len(train_set), int(correct) / max(1, int(labelled))
        test_acc = kind.score(model, x_test, y_test)[kind.metric]
        writer.add_scalar("teacher/train_loss", train_loss, epoch)
        writer.add_scalar("teacher/train_acc", train_acc, epoch)  # pixel accuracy for segmentation
        writer.add_scalar(f"teacher/test_{kind.metric}", test_acc, epoch)
        bar.set_postfix(loss=f"{train_loss:.3f}", test_acc=f"{test_acc:.4f}")
        state = {
            "epoch": epoch + 1,
            "epochs": epochs,
            "step": step,
            "test_acc": test_acc,
            "wall_time_s": spent + time.perf_counter() - start,
            "optimizer": optimizer.state_dict(),
            "schedule": schedule.state_dict(),
            "generator": generator.get_state(),
            "augment_generator": augment_rng.get_state(),
        }
        save_model(last, model, card_for(task, run.arch, "teacher", test_acc), {"training_state": state})
    writer.close()

    checkpoint = run.out_dir / "teacher.pt"
    save_model(checkpoint, model, card_for(task, run.arch, "teacher", test_acc), {"seed": run.seed, "epochs": epochs})
    summary = {
        "task": task.name,
        "arch": run.arch,
        "metric": kind.metric,
        "test_acc": test_acc,  # the task's metric: accuracy, or mIoU for segmentation
        "test_scores": kind.score(model, x_test, y_test),
        "train_acc": kind.score(model, x_train, y_train)[kind.metric],
        "wall_time_s": round(spent + time.perf_counter() - start, 2),
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
