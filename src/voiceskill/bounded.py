"""Reading a file whose name someone else chose (content YAML, the config file), bounded.

The file is opened without blocking and checked before anything is read, so a FIFO or a
device (/dev/zero) is refused, not waited on or read for ever; at most `limit` bytes are read.
Each caller words the failures for its own users.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path


class NotRegularFileError(ValueError):
    """A pipe, a device or a socket where a file was expected."""


class FileTooLargeError(ValueError):
    """More than the limit."""


def read_regular(path: Path, limit: int) -> bytes:
    """The whole of a regular file of at most `limit` bytes. Raises OSError (as
    IsADirectoryError for a folder), NotRegularFileError or FileTooLargeError."""
    descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(path)
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(descriptor, limit + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    finally:
        os.close(descriptor)
    if size > limit:
        raise FileTooLargeError(path)
    return b"".join(chunks)
