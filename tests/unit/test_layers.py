"""The front-ends (live/, serve/, cli/) adapt input and output only: the limits and the audio
format they work to come through `pipeline`, the door, or from the object they drive (the
voice detector's rate), never as a number imported from a module below the door. A limit
copied into a front-end that way drifts from the core's (docs/architecture.md)."""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from helpers import ROOT

SRC = ROOT / "src" / "voiceskill"
FRONT_ENDS = sorted(path for name in ("live", "serve", "cli")
                    for path in (SRC / name).rglob("*.py"))
DOOR_AND_ABOVE = ("voiceskill.pipeline", "voiceskill.present", "voiceskill.live",
                  "voiceskill.serve", "voiceskill.cli", "voiceskill.review")


def _number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _imported(module: str, name: str) -> object:
    """What `from module import name` gives: a submodule, else an attribute."""
    try:
        return importlib.import_module(f"{module}.{name}")
    except ModuleNotFoundError:
        return getattr(importlib.import_module(module), name)


def core_numbers(path: Path) -> Iterator[str]:
    """`module.NAME` for each number `path` takes from a voiceskill module below the door:
    imported by name, or read as an attribute of a module it imported by name."""
    below: dict[str, ModuleType] = {}  # local name -> a voiceskill module below the door
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("voiceskill"):
            for alias in node.names:
                value = _imported(node.module, alias.name)
                if isinstance(value, ModuleType):
                    if not value.__name__.startswith(DOOR_AND_ABOVE):
                        below[alias.asname or alias.name] = value
                elif _number(value) and not node.module.startswith(DOOR_AND_ABOVE):
                    yield f"{node.module}.{alias.name}"
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id in below
                and _number(getattr(below[node.value.id], node.attr, None))):
            yield f"{below[node.value.id].__name__}.{node.attr}"


@pytest.mark.parametrize("path", FRONT_ENDS, ids=lambda path: str(path.relative_to(SRC)))
def test_a_front_end_takes_no_number_from_below_the_door(path):
    assert list(core_numbers(path)) == []
