"""Atomic file writes and run folders."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write a file through a temporary neighbour and rename, so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write_bytes(path, lambda fh: fh.write((json.dumps(data, indent=2, sort_keys=False) + "\n").encode()))


def save_torch(path: Path, obj: Any) -> None:
    """Atomically ``torch.save`` ``obj`` to ``path``."""
    atomic_write_bytes(path, lambda fh: torch.save(obj, fh))


def cache_dir() -> Path:
    """Root of the cache (``$SSDKD_ENV_CACHE``, default ``~/.cache/ssdkd_env``)."""
    return Path(os.environ.get("SSDKD_ENV_CACHE", Path.home() / ".cache" / "ssdkd_env"))


def default_teacher_dir(task: str, arch: str) -> Path:
    """Where ``train_teacher.py`` puts a task's teacher when no ``--out`` is given."""
    return cache_dir() / "teachers" / task / arch
