"""The front-ends (live/, serve/, cli/) adapt input and output only: the limits and the audio
format they work to come through `pipeline`, the door, or from the object they drive (the
voice detector's rate), never as a number imported from a module below the door. A limit
copied into a front-end that way drifts from the core's (docs/architecture.md). And the
tests reach the code through its public names only."""

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


def private_names(path: Path) -> Iterator[str]:
    """Each `_name` `path` takes from voiceskill: imported by name, or read or patched
    (`monkeypatch.setattr(module, "_name", ...)`) as an attribute of a voiceskill module it
    imported by name."""
    modules: set[str] = set()  # local names of voiceskill modules
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("voiceskill"):
            for alias in node.names:
                if alias.name.startswith("_"):
                    yield f"{node.module}.{alias.name}"
                elif isinstance(_imported(node.module, alias.name), ModuleType):
                    modules.add(alias.asname or alias.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            owner, name = node.value, node.attr
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(
                node.args[1], ast.Constant) and isinstance(node.args[1].value, str):
            owner, name = node.args[0], node.args[1].value
        else:
            continue
        if (isinstance(owner, ast.Name) and owner.id in modules and name.startswith("_")
                and not name.startswith("__")):
            yield f"{owner.id}.{name}"


@pytest.mark.parametrize("path", sorted(ROOT.joinpath("tests").rglob("*.py")),
                         ids=lambda path: str(path.relative_to(ROOT)))
def test_a_test_uses_only_public_names(path):
    """A test of a private name pins how the code is written, not what it does."""
    assert list(private_names(path)) == []
