"""The on-disk cache of things built from the content (expanded sentences, trained models).

Everything here is keyed by the content's fingerprint, so a stale entry is never read; a
damaged or unreadable entry is treated as missing and rebuilt; writes are atomic (fsync, then
rename), so a reader sees a whole file or none.  Losing the cache costs time, never answers.
Each edit of the content makes new entries: only the MAX_KEPT most recently used of each kind
stay, and what a killed writer left behind goes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)
MAX_KEPT = 4  # entries per kind: the content in use, and a few edits back


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/voiceskill, else ~/.cache/voiceskill. A relative XDG_CACHE_HOME is
    ignored (the XDG spec says so; it would depend on the folder a command runs in), and so is
    a HOME that is empty, relative or missing: the cache then goes to a private folder in the
    temporary directory rather than to /.cache or a made-up home."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(base):
        return Path(base) / "voiceskill"
    home = os.environ.get("HOME")
    if home is None:  # unset: the password database's entry, as Path.home() does
        home = str(Path.home())
    if os.path.isabs(home) and home != "/" and os.path.isdir(home):
        return Path(home) / ".cache" / "voiceskill"
    return _private_temporary_cache()


_fallback: Path | None = None


def _private_temporary_cache() -> Path:
    """A cache folder of this user's own in the temporary directory (created 0700; one someone
    else made there, or a symlink, is not used: a folder for this process only instead)."""
    global _fallback
    if _fallback is not None:
        return _fallback
    folder = Path(tempfile.gettempdir()) / f"voiceskill-cache-{os.getuid()}"
    with contextlib.suppress(FileExistsError, OSError):
        folder.mkdir(mode=0o700)
    try:
        info = os.lstat(folder)
        usable = (stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid()
                  and stat.S_IMODE(info.st_mode) & 0o077 == 0)
    except OSError:
        usable = False
    _fallback = folder if usable else Path(tempfile.mkdtemp(prefix="voiceskill-cache-"))
    log.warning("no usable home folder (HOME=%r); caching in %s", os.environ.get("HOME"),
                _fallback)
    return _fallback


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all; failures are logged, not raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"build-{os.getpid()}-")
        try:
            with os.fdopen(handle, "wb") as file:
                file.write(data)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, path)
        finally:
            if os.path.exists(temporary):
                os.unlink(temporary)
    except OSError as exc:
        log.warning("cannot write cache %s: %s", path, exc)


def read_json(path: Path) -> dict | None:
    """The JSON object stored at `path`, or None when missing or damaged."""
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


Built = TypeVar("Built")


def load_arrays(path: Path, build: Callable[[np.lib.npyio.NpzFile], Built],
                whole: Callable[[Built], bool], what: str) -> Built:
    """What `build` makes of the arrays cached at `path` (no pickles); ValueError unless
    `whole` finds every array of the shape, type and values its user relies on, so a damaged
    or doctored file is rebuilt, never used."""
    import numpy as np  # only where arrays are cached: content loading needs none

    try:
        with np.load(path, allow_pickle=False) as data:
            built = build(data)
    except TypeError:  # e.g. names stored as a single value
        raise ValueError(f"{path} holds a damaged {what}") from None
    if not whole(built):
        raise ValueError(f"{path} holds a {what} of the wrong shape")
    return built


def keep_recent(entry: Path, kind: str) -> None:
    """Mark `entry` (a file or folder named `<kind>-*`) as just used; remove all but the
    MAX_KEPT most recently used entries of its kind, and builds whose process is gone."""
    with contextlib.suppress(OSError):
        os.utime(entry)
    try:
        entries = list(entry.parent.iterdir())
    except OSError:
        return
    used = []
    for other in entries:
        if other.name.startswith("build-"):
            pid = other.name.split("-")[1]
            if not (pid.isdigit() and _process_alive(int(pid))):
                _remove(other)
        elif other.name.startswith(f"{kind}-") and other != entry:
            with contextlib.suppress(OSError):
                used.append((other.stat().st_mtime, other))
    for _, other in sorted(used, reverse=True)[MAX_KEPT - 1 :]:
        _remove(other)


def _remove(entry: Path) -> None:
    """Remove a cache entry if possible; one that cannot be removed only costs disk."""
    if entry.is_dir():
        shutil.rmtree(entry, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):
            entry.unlink()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True
