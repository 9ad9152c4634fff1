"""One run per output folder.

:class:`RunFolder` claims a script's output folder for the life of the process:

* a folder that already holds a run (one of the files the script writes) is refused, unless the
  user asks to ``--resume`` it or to ``--overwrite`` it (the run's own files are then deleted first;
  other files in the folder are left alone);
* a second process on the same folder is refused while the first holds it: an exclusive
  ``flock`` on the folder itself, which the kernel releases when the holder exits in any way,
  ``kill -9`` included (no lock file is left behind);
* a run refused before it wrote anything leaves nothing behind: the folders it created are
  removed again (only empty ones: a file is never deleted on the way out).

Paths of single output files (``--json``) are checked with :func:`prepare_out_file`.
"""

from __future__ import annotations

import errno
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from ssdkd_env.common.io import prepare_out_dir, probe_writable, unwritable_reason
from ssdkd_env.errors import UserError

try:
    import fcntl
except ImportError:  # Windows: no flock; the folder guard still works, the lock does not
    fcntl = None  # type: ignore[assignment]


class RunFolder:
    """Claim ``path`` for one run (a context manager; see the module docstring).

    ``run_files`` names what the script writes in the folder (files or sub-folders); the folder
    holds a run when any of them exists. ``flag`` is the option that named the folder, for the
    messages.
    """

    def __init__(
        self,
        path: Path,
        run_files: Sequence[str],
        *,
        resume: bool = False,
        overwrite: bool = False,
        flag: str = "--out",
    ) -> None:
        if resume and overwrite:
            raise UserError("--resume continues the run in the folder and --overwrite replaces it; give one of them")
        self.path = Path(path)
        self.run_files = tuple(run_files)
        self.resume = resume
        self.overwrite = overwrite
        self.flag = flag
        self._fd: int | None = None
        self._created: Path | None = None  # the outermost folder this claim created

    def held_files(self) -> list[str]:
        """The run files present in the folder."""
        return [name for name in self.run_files if (self.path / name).exists()]

    def __enter__(self) -> RunFolder:
        self._created = _first_missing(self.path)
        try:
            prepare_out_dir(self.path, self.flag)
            self._lock()
            held = self.held_files()
            if held and not (self.resume or self.overwrite):
                shown = ", ".join(held[:3]) + (f" and {len(held) - 3} more" if len(held) > 3 else "")
                raise UserError(
                    f"{self.flag} {self.path} already holds a run ({shown}); continue it with --resume, "
                    f"replace it with --overwrite, or choose another {self.flag}"
                )
            if self.overwrite:
                for name in held:
                    target = self.path / name
                    shutil.rmtree(target) if target.is_dir() and not target.is_symlink() else target.unlink()
        except BaseException:
            self._release(remove_created=True)
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self._release(remove_created=exc_type is not None)

    def _lock(self) -> None:
        if fcntl is None:
            return
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            os.close(self._fd)
            self._fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UserError(
                    f"{self.flag} {self.path} is in use by another run (it holds the folder's lock); wait for it "
                    f"to end, or choose another {self.flag}"
                ) from None
            raise

    def _release(self, remove_created: bool) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if remove_created and self._created is not None:
            _remove_empty_tree(self._created)


def _first_missing(path: Path) -> Path | None:
    """The outermost folder of ``path`` (itself included) that does not exist yet."""
    path = Path(os.path.abspath(path))
    missing = None
    while not path.exists():
        missing, parent = path, path.parent
        if parent == path:
            break
        path = parent
    return missing


def _remove_empty_tree(root: Path) -> None:
    """Remove ``root`` and its sub-folders, bottom up, as long as they are empty (files stay)."""
    if not root.is_dir():
        return
    for folder, _, _ in sorted(os.walk(root), key=lambda entry: -len(entry[0])):
        try:
            os.rmdir(folder)
        except OSError:
            pass


def prepare_out_file(path: Path, flag: str) -> Path:
    """Check, before any work, that the file ``path`` can be written (folders it needs may be missing).

    A folder in its place, a parent that is a file, or a place without write permission is a
    one-line :class:`UserError` naming ``flag``.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name")
    created = _first_missing(path.parent)
    try:
        probe_writable(path.parent)
        if path.exists() and not os.access(path, os.W_OK):
            raise PermissionError(errno.EACCES, "Permission denied")
    except OSError as exc:
        raise UserError(f"{flag} {path} cannot be written ({unwritable_reason(exc)}); choose another path") from None
    finally:
        if created is not None:  # the file's folder is made again when the file is written
            _remove_empty_tree(created)
    return path
