"""Atomic file writes and output folders."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import tempfile
from pathlib import Path
from typing import Any

import torch

from ssdkd_env.errors import UserError

# a write refused for lack of room: a full disk, a quota, a file size limit (ulimit -f)
NO_ROOM_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
# errors of a write that the user can fix: no room, or a read-only or forbidden place
WRITE_ERRORS = (*NO_ROOM_ERRORS, errno.EROFS, errno.EACCES, errno.EPERM)


class WriteFailed(UserError):
    """A file could not be written for a reason outside the program (full disk, size limit, ...)."""

    def __init__(self, path: Path | str, exc: OSError) -> None:
        reason = exc.strerror or type(exc).__name__
        fix = "free space or raise the limit" if exc.errno in NO_ROOM_ERRORS else "make the place writable"
        super().__init__(
            f"could not write {path} ({reason}); the file it would have replaced is unchanged: {fix}, then run "
            "again (with --resume where the script has it, to continue from the last checkpoint)"
        )


def atomic_write_bytes(path: Path, write: Any) -> None:
    """Write a file through a temporary neighbour and rename, so a crash never leaves half a file.

    A full disk or a file size limit (``ulimit -f``) is a one-line :class:`WriteFailed` naming
    ``path``; the file it would have replaced stays as it was.
    """
    tmp: str | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in WRITE_ERRORS:
            raise WriteFailed(path, exc) from None
        raise


def write_text(path: Path, text: str) -> None:
    """Atomically write ``text`` (UTF-8)."""
    atomic_write_bytes(path, lambda fh: fh.write(text.encode()))


def write_json(path: Path, data: dict[str, Any]) -> None:
    """Atomically write ``data`` as indented JSON."""
    atomic_write_bytes(path, lambda fh: fh.write((json.dumps(data, indent=2, sort_keys=False) + "\n").encode()))


def save_torch(path: Path, obj: Any) -> None:
    """Atomically ``torch.save`` ``obj`` to ``path`` (serialised in memory first, so that a failed
    write is the operating system's error, not a torch one)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, lambda fh: fh.write(buffer.getbuffer()))


# how torch's data-only unpickler words a refused object (a class, a function to call), as
# opposed to bytes that are not a pickle at all ("Unsupported operand")
REFUSED_OBJECT = re.compile(r"global|reduce|unsupported class|__setstate__", re.IGNORECASE)


class UnreadableFile(UserError):
    """A file read back (checkpoint, state, samples) that is damaged, or that holds more than data."""


def load_data_file(path: Path, what: str, fix: str) -> Any:
    """``torch.load`` a file the project wrote, as data only (``weights_only=True``).

    Tensors, numbers, strings, lists, tuples and dicts pass; a pickle that would build any other
    object, and so could run code, is refused before it does anything. Every failure is a one-line
    :class:`UnreadableFile` that says what ``path`` should have been (``what``) and how to go on
    (``fix``).
    """
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if not REFUSED_OBJECT.search(str(exc)):  # a damaged file, not a refused object
            raise UnreadableFile(f"{path} is not a readable {what} (damaged: not a torch file); {fix}") from None
        raise UnreadableFile(
            f"{path} is refused: it holds objects other than tensors and plain values, which a {what} never "
            f"does (files read back may not run code); {fix}"
        ) from None
    except Exception as exc:  # torch.load fails in many ways on a damaged or truncated file; all mean the same
        reason = " ".join(str(exc).split()) or type(exc).__name__
        raise UnreadableFile(f"{path} is not a readable {what} ({type(exc).__name__}: {reason}); {fix}") from None


def cache_dir() -> Path:
    """Root of the cache (``$SSDKD_ENV_CACHE``, default ``~/.cache/ssdkd_env``)."""
    return Path(os.environ.get("SSDKD_ENV_CACHE", Path.home() / ".cache" / "ssdkd_env"))


def default_teacher_dir(task: str, arch: str) -> Path:
    """Where ``train_teacher.py`` puts a task's teacher when no ``--out`` is given."""
    return cache_dir() / "teachers" / task / arch


def probe_writable(folder: Path) -> None:
    """Create ``folder`` if missing and write (then remove) a file in it; raises the ``OSError``
    that a real output would meet."""
    folder.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=folder, prefix=".write-check.", suffix=".tmp")
    os.close(fd)
    os.unlink(probe)


def unwritable_reason(exc: OSError) -> str:
    """Why :func:`probe_writable` failed, in words for a one-line error."""
    if exc.errno in (errno.ENOTDIR, errno.EEXIST):
        return "a part of the path is a file, not a folder"
    return exc.strerror or type(exc).__name__


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
        probe_writable(path)
    except OSError as exc:
        raise UserError(
            f"{flag} {path} cannot be written to ({unwritable_reason(exc)}); choose another folder"
        ) from None
    return path
