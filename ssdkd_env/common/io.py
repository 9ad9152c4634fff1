"""Atomic file writes and output folders."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from ssdkd_env.errors import UserError


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


def prepare_out_dir(path: Path, flag: str = "--out") -> Path:
    """Create the output folder ``path`` if missing and check that files can be written in it.

    Called before any heavy work, so that an output folder under a regular file, in a read-only
    place or on a full disk is a one-line :class:`~ssdkd_env.errors.UserError` naming ``flag``
    at once, not a traceback at the end of a long run.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{flag} {path} is a file, not a folder; give a folder for the outputs")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        if exc.errno in (errno.ENOTDIR, errno.EEXIST):
            reason = "a part of the path is a file, not a folder"
        raise UserError(f"{flag} {path} cannot be written to ({reason}); choose another folder") from None
    return path
