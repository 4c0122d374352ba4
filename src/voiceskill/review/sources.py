"""The documents the answers cite, found and split into the paragraphs the YAML counts.

A source's `document` is a file name. The article lives outside the repo (it is not ours to
copy) and the safety policy inside it, so a name is looked up in a list of folders: the one
the user gives (or `../shared/seed` beside the checkout), then the repo's own `docs/`
(shipped in the wheel, so an installed skill finds the safety policy and the summaries of
mainstream guidance in `docs/sources/`).
A paragraph is a block of text between blank lines, counted from 1.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from voiceskill.content.schema import DOCUMENT_PATTERN
from voiceskill.packaged import CHECKOUT, IN_CHECKOUT, data_folder

_SHARED = os.environ.get("VOICESKILL_SHARED")
DEFAULT_SOURCE_DIR = (Path(_SHARED) / "seed" if _SHARED
                      else CHECKOUT.parent / "shared" / "seed" if IN_CHECKOUT
                      else Path("..") / "shared" / "seed")
"""$VOICESKILL_SHARED/seed, else ../shared/seed beside the checkout, else (installed from a
wheel) ../shared/seed from the current folder; --source-dir overrides it."""
BENCHMARK = CHECKOUT / "bench" / "results" / "latest.json" if IN_CHECKOUT else None
DOCS = data_folder("docs")


def split_paragraphs(text: str) -> list[str]:
    """The blocks of `text` between blank lines; paragraph n is item n - 1."""
    return [block.strip() for block in re.split(r"\n\s*\n", text) if block.strip()]


def source_dirs(source_dir: Path | None = None) -> list[Path]:
    """Where documents are looked for, first match wins."""
    first = source_dir if source_dir is not None else DEFAULT_SOURCE_DIR
    return [first, DOCS]


def safe_name(name: str) -> bool:
    """Whether `name` can only mean a file inside a source folder: relative, plain parts, no
    "..", no hidden files (content.DOCUMENT_PATTERN, which `check` enforces)."""
    return bool(re.fullmatch(DOCUMENT_PATTERN, name))


def find_document(name: str, folders: list[Path]) -> Path | None:
    """The first regular file called `name` in `folders` that lies inside that folder (after
    following symlinks), or None; a name that could point elsewhere is never looked up."""
    if not safe_name(name):
        return None
    for folder in folders:
        path = folder / name
        try:
            inside = path.resolve().is_relative_to(folder.resolve())
        except (OSError, RuntimeError):  # a symlink loop
            continue
        if inside and path.is_file():
            return path
    return None
