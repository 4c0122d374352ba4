"""The on-disk cache of things built from the content (expanded sentences, trained models).

Everything here is keyed by the content's fingerprint, so a stale entry is never read; a
damaged or unreadable entry is treated as missing and rebuilt; writes are atomic (fsync, then
rename), so a reader sees a whole file or none.  Losing the cache costs time, never answers.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "voiceskill"


def write_atomic(path: Path, data: bytes) -> None:
    """Write `data` to `path` whole or not at all; failures are logged, not raised."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".build-")
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
