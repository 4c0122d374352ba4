"""Files written only when the user asks (`--save-audio`, `--log-dir`, `say -o`), created safely.

A new file is created with O_EXCL and O_NOFOLLOW: it never follows a symlink someone left in
the folder and never overwrites an earlier (or a concurrent) run's file; numbered names go on
to the next free number instead. Every failure is an OutputError whose message is one line
naming the path and the reason, so the caller can warn and carry on.
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from voiceskill.errors import UserError

_CREATE = os.O_WRONLY | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_REASONS = {
    errno.ENOENT: "the folder does not exist",
    errno.ENOTDIR: "part of the path is a file, not a folder",
    errno.EISDIR: "it is a folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.EROFS: "read-only file system",
    errno.ELOOP: "it is a symbolic link",
    errno.ENOSPC: "no space left on device",
    errno.EFBIG: "the file is too large (no space or a size limit)",
    errno.EDQUOT: "disk quota exceeded",
}


class OutputError(UserError):
    """A file the user asked for cannot be written; str() is one line naming it."""


def reason(exc: OSError) -> str:
    return _REASONS.get(exc.errno, exc.strerror or str(exc))


def _error(path: Path, exc: OSError) -> OutputError:
    return OutputError(f"cannot write {path}: {reason(exc)}")


def prepare_folder(folder: Path) -> None:
    """Create `folder` (owner-only) if needed; OutputError if it cannot be, or is not a folder."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except FileExistsError:
        raise OutputError(f"cannot write to {folder}: it is a file, not a folder") from None
    except OSError as exc:
        raise _error(folder, exc) from None


def create_new(
    folder: Path, name_for: Callable[[int], str], mode: int, start: int = 1
) -> tuple[int, Path, BinaryIO]:
    """A new file `folder / name_for(n)` for the first free n >= start, opened for writing."""
    number = start
    while True:
        path = folder / name_for(number)
        try:
            descriptor = os.open(path, _CREATE | os.O_EXCL, mode)
        except FileExistsError:
            number += 1
            continue
        except OSError as exc:
            raise _error(path, exc) from None
        return number, path, os.fdopen(descriptor, "wb")


def create_or_replace(path: Path, mode: int = 0o644) -> BinaryIO:
    """`path` opened for writing, emptied if it is a file already; never through a symlink."""
    try:
        return os.fdopen(os.open(path, _CREATE | os.O_TRUNC, mode), "wb")
    except OSError as exc:
        raise _error(path, exc) from None


def write_whole(path: Path, data: bytes, mode: int = 0o644) -> None:
    """Write `data` as the file `path`, whole or not at all, never through a symlink.

    A regular file (or a new one) is written beside it under a temporary name and renamed over
    it, so a full disk or a failure leaves the earlier file as it was; a device or a pipe
    (`/dev/null`, `/dev/stdout`) is written to directly. OutputError says why it failed."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        info = None
    except OSError as exc:
        raise _error(path, exc) from None
    if info is not None and stat.S_ISLNK(info.st_mode):
        raise _error(path, OSError(errno.ELOOP, "symbolic link"))
    if info is not None and stat.S_ISDIR(info.st_mode):
        raise _error(path, OSError(errno.EISDIR, "is a folder"))
    if info is not None and not stat.S_ISREG(info.st_mode):
        try:
            with os.fdopen(os.open(path, _CREATE), "wb") as file:
                file.write(data)
        except OSError as exc:
            raise _error(path, exc) from None
        return
    folder = path.parent
    try:
        descriptor, temporary = tempfile.mkstemp(dir=folder, prefix=f".{path.name[:64]}.")
    except OSError as exc:
        raise _error(path, exc) from None
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
            file.flush()
            os.fchmod(file.fileno(), mode & ~_umask())
        os.replace(temporary, path)
    except OSError as exc:
        raise _error(path, exc) from None
    finally:
        if os.path.lexists(temporary):
            os.unlink(temporary)


def _umask() -> int:
    current = os.umask(0o022)
    os.umask(current)
    return current
