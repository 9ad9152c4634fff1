"""Model checkpoints that carry what is needed to validate them: task, architecture, shapes."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ssdkd_env.common.io import load_data_file, save_torch
from ssdkd_env.errors import UserError
from ssdkd_env.models import build_model
from ssdkd_env.tasks import TaskSpec, get_task

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class ModelCard:
    """What a classifier checkpoint says about itself."""

    role: str  # "teacher" or "student"
    task: str
    arch: str
    num_classes: int
    input_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    test_acc: float | None


def save_model(path: str | Path, model: nn.Module, card: ModelCard, extra: dict[str, Any] | None = None) -> None:
    """Atomically write ``model``'s weights with its card (and optional extra metadata)."""
    payload = {
        "format": CHECKPOINT_FORMAT,
        "card": {**asdict(card), "input_shape": list(card.input_shape), "mean": list(card.mean), "std": list(card.std)},
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "extra": extra or {},
    }
    save_torch(Path(path), payload)


def card_for(task: TaskSpec, arch: str, role: str, test_acc: float | None) -> ModelCard:
    """A card describing a model of ``arch`` for ``task``."""
    return ModelCard(role, task.name, arch, task.num_classes, task.input_shape, task.mean, task.std, test_acc)


def read_checkpoint(path: str | Path) -> tuple[ModelCard, dict[str, torch.Tensor], dict[str, Any]]:
    """Read and check a checkpoint file; any problem is a one-line :class:`UserError`."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"checkpoint {path} is a folder; give the checkpoint file in it (e.g. {path / 'teacher.pt'})")
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    payload = load_data_file(path, "ssdkd_env checkpoint", "give a checkpoint written by this project")
    try:
        if not isinstance(payload, dict):
            raise ValueError(f"it holds a {type(payload).__name__}, not a checkpoint")
        if payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"unknown format {payload.get('format')!r}")
        raw = payload["card"]
        card = ModelCard(
            role=str(raw["role"]),
            task=str(raw["task"]),
            arch=str(raw["arch"]),
            num_classes=int(raw["num_classes"]),
            input_shape=tuple(int(v) for v in raw["input_shape"]),  # type: ignore[arg-type]
            mean=tuple(float(v) for v in raw["mean"]),
            std=tuple(float(v) for v in raw["std"]),
            test_acc=None if raw["test_acc"] is None else float(raw["test_acc"]),
        )
        return card, payload["state_dict"], dict(payload.get("extra", {}))
    except (KeyError, TypeError, ValueError) as exc:  # a readable file that is not a checkpoint of this project
        reason = " ".join(str(exc).split())
        raise UserError(f"{path} is not a readable ssdkd_env checkpoint ({type(exc).__name__}: {reason})") from None


def load_model(
    path: str | Path,
    task: str | None = None,
    arch: str | None = None,
    role: str | None = None,
    device: torch.device | str = "cpu",
) -> tuple[nn.Module, ModelCard]:
    """Load a classifier checkpoint, rejecting one made for another task, architecture or role."""
    card, state, _ = read_checkpoint(path)
    if role is not None and card.role != role:
        raise UserError(f"{path} holds a {card.role}, not a {role}")
    if task is not None and card.task != task:
        raise UserError(f"{path} is a {card.role} for task '{card.task}', not '{task}'")
    if arch is not None and card.arch != arch:
        raise UserError(f"{path} holds architecture '{card.arch}', not '{arch}'")
    spec = get_task(card.task)
    if card.num_classes != spec.num_classes or tuple(card.input_shape) != spec.input_shape:
        raise UserError(
            f"{path} was made for {card.num_classes} classes and input {card.input_shape}, "
            f"but task '{spec.name}' has {spec.num_classes} classes and input {spec.input_shape}"
        )
    # weights come from the file: a throwaway generator keeps the global RNG untouched
    model = build_model(card.arch, card.num_classes, card.input_shape[0], generator=torch.Generator())
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise UserError(f"{path}: weights do not fit architecture '{card.arch}' ({str(exc).splitlines()[0]})") from None
    return model.to(device).eval(), card
