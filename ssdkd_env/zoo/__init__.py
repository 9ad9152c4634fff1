"""The teacher zoo: small pretrained teachers shipped inside the package.

Data-free distillation starts from a pretrained teacher. Each zoo entry is a checkpoint written by
``train/train_teacher.py`` (the format of :mod:`ssdkd_env.checkpoint`, read with
``weights_only=True``) and a JSON card beside it: task, architecture, data, the exact command,
the test score, date, torch version and the file's sha256. When the teacher cache has no teacher
for a task, :func:`ssdkd_env.teachers.obtain_teacher` takes the zoo's, so scripts and ``gym.make``
work on a fresh install without training one. ``python train/zoo.py`` lists, checks and adds entries.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import shutil
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch

from ssdkd_env.checkpoint import load_model, read_checkpoint
from ssdkd_env.common.images import normalize_uint8
from ssdkd_env.common.io import write_json
from ssdkd_env.errors import UserError
from ssdkd_env.tasks import get_task
from ssdkd_env.tasks.kinds import TASK_KINDS

ZOO_DIR = Path(__file__).parent
"""Where the zoo's checkpoints and cards live (package data: a wheel carries them)."""

SIZE_LIMIT_BYTES = 8 * 2**20
"""The most the zoo's checkpoints may hold together, so the package stays small."""


@dataclass(frozen=True)
class ZooCard:
    """What a zoo teacher says about itself (the JSON card beside its checkpoint)."""

    task: str
    arch: str
    file: str  # the checkpoint's name inside ZOO_DIR
    data: str  # the training data, as a user would find it
    command: str  # the exact command that trained it
    metric: str  # "accuracy" or "miou" (the task kind's score)
    test_score: float  # the metric on the task's real test split, as train_teacher.py measured it
    epochs: int
    seed: int
    date: str  # YYYY-MM-DD the training finished
    torch: str  # the torch version that trained it
    sha256: str
    size_bytes: int

    @property
    def path(self) -> Path:
        return ZOO_DIR / self.file

    @property
    def card_path(self) -> Path:
        return ZOO_DIR / f"{Path(self.file).stem}.json"

    def describe(self) -> str:
        """One phrase naming the teacher and its score, for notices and listings."""
        return f"{self.task}/{self.arch} (test {self.metric} {self.test_score:.4f}, trained {self.date})"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_card(path: Path) -> ZooCard:
    """A card from its JSON file; a malformed card is a one-line :class:`UserError`."""
    try:
        raw = json.loads(path.read_text())
        return ZooCard(**{f.name: raw[f.name] for f in fields(ZooCard)})
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"zoo card {path} is unreadable ({type(exc).__name__}: {exc})") from None


def zoo_cards() -> list[ZooCard]:
    """Every card in the zoo, sorted by task and architecture."""
    return sorted((read_card(p) for p in ZOO_DIR.glob("*.json")), key=lambda c: (c.task, c.arch))


def find_zoo_teacher(task: str, arch: str) -> ZooCard | None:
    """The zoo's card for ``task``'s teacher of ``arch``, or None."""
    return next((c for c in zoo_cards() if c.task == task and c.arch == arch), None)


def verified_path(card: ZooCard) -> Path:
    """The card's checkpoint, after checking that it is there and matches the card's sha256."""
    if not card.path.is_file():
        raise UserError(f"zoo checkpoint {card.path} is missing; reinstall ssdkd_env or pass --teacher PATH")
    if sha256_of(card.path) != card.sha256:
        raise UserError(
            f"zoo checkpoint {card.path} does not match its card's sha256; reinstall ssdkd_env or pass --teacher PATH"
        )
    return card.path


def score_on_test_split(card: ZooCard, data_root: str | Path | None) -> float:
    """The card's metric, measured again on the task's real test split under ``data_root``, the
    way ``train_teacher.py`` measured it."""
    task = get_task(card.task)
    model, _ = load_model(verified_path(card), task=card.task, arch=card.arch, role="teacher")
    test = task.load(data_root, train=False)
    kind = TASK_KINDS.get(task.kind)
    return kind.score(model, normalize_uint8(test.images, task.mean, task.std), test.labels)[kind.metric]


def zoo_file_name(task: str, arch: str) -> str:
    return f"{task}-{arch}.pt"


def add_to_zoo(run_dir: Path, data: str, command: str) -> ZooCard:
    """Copy the teacher of a finished ``train_teacher.py`` run in ``run_dir`` into the zoo and write its card.

    The card's score, epochs and seed come from the run's ``summary.json``; its date is the
    checkpoint's modification day and its torch version this process's, so add a teacher from
    the environment that trained it. A run that is not finished, or a zoo that would pass
    :data:`SIZE_LIMIT_BYTES`, is refused in one line.
    """
    summary_file, checkpoint = run_dir / "summary.json", run_dir / "teacher.pt"
    if not summary_file.is_file() or not checkpoint.is_file():
        raise UserError(f"{run_dir} holds no finished teacher run (summary.json and teacher.pt)")
    summary: dict[str, Any] = json.loads(summary_file.read_text())
    model_card, _, _ = read_checkpoint(checkpoint)
    name = zoo_file_name(model_card.task, model_card.arch)
    others = sum(p.stat().st_size for p in ZOO_DIR.glob("*.pt") if p.name != name)
    if others + checkpoint.stat().st_size > SIZE_LIMIT_BYTES:
        raise UserError(f"adding {checkpoint} would take the zoo past {SIZE_LIMIT_BYTES / 2**20:.0f} MiB")
    target = ZOO_DIR / name
    shutil.copyfile(checkpoint, target)
    day = datetime.datetime.fromtimestamp(checkpoint.stat().st_mtime, tz=datetime.timezone.utc).date()
    card = ZooCard(
        task=model_card.task,
        arch=model_card.arch,
        file=name,
        data=data,
        command=command,
        metric=str(summary.get("metric", "accuracy")),
        test_score=float(summary["test_acc"]),
        epochs=int(summary["epochs"]),
        seed=int(summary["seed"]),
        date=day.isoformat(),
        torch=torch.__version__,
        sha256=sha256_of(target),
        size_bytes=target.stat().st_size,
    )
    write_json(card.card_path, asdict(card))
    return card


__all__ = [
    "SIZE_LIMIT_BYTES",
    "ZOO_DIR",
    "ZooCard",
    "add_to_zoo",
    "find_zoo_teacher",
    "score_on_test_split",
    "verified_path",
    "zoo_cards",
]
