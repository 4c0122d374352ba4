"""Hardened YAML reading for the content files: every problem as `file:line: what is wrong`.

A content file is data someone edits by hand, perhaps a file someone else named: it is read
bounded, and refused (never crashed on) when it could hang, blow up or mislead.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import yaml

from voiceskill.bounded import FileTooLargeError, NotRegularFileError, read_regular

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 32  # YAML nesting; the schema needs 6
MAX_NUMBER_CHARS = 18  # an int64; Python refuses to convert more than 4300 digits


@dataclass(frozen=True)
class Problem:
    file: Path
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class ContentError(Exception):
    """The YAML cannot be used; carries every problem found, each with file and line."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


# --- YAML with line numbers -----------------------------------------------------------------


@dataclass
class Document:
    """Parsed YAML plus the line of every key path, for error messages."""

    file: Path
    data: object
    lines: dict[tuple, int]

    def line(self, path: tuple) -> int:
        """The line of `path`, or of its nearest ancestor that has one."""
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path, 1)

    def problem(self, path: tuple, message: str) -> Problem:
        return Problem(self.file, self.line(path), message)


# libyaml's parser when PyYAML has it: the pure-Python one took 30 s for a 1 MB file
_SafeLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _ContentLoader(_SafeLoader):
    """SafeLoader where only true/false are booleans: `yes:`, `no:` and `on:` stay words, and
    dates stay text. A value that cannot be converted is an error at its line."""

    yaml_implicit_resolvers: ClassVar = {
        first: [(tag, regexp) for tag, regexp in resolvers
                if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_object(self, node: yaml.Node, deep: bool = False) -> object:
        try:
            value = super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:  # e.g. `!!int abc`, `!!float x`
            problem = f"cannot convert this value ({_shorten(str(exc))})"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark) from None
        if isinstance(value, float) and not math.isfinite(value):
            # .nan passes every `minimum` (all comparisons are false) and .inf disables a rule
            problem = f"{node.value!r} is not a finite number"
            raise yaml.constructor.ConstructorError(None, None, problem, node.start_mark)
        return value


_ContentLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)
_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
# what YAML itself calls non-printable (PyYAML's reader would stop on it with a traceback)
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]"
)


def read_yaml(file: Path) -> Document:
    """Safe-load one YAML file, refusing what could hang, blow up or mislead: files that are not
    regular files, oversized files, control characters, deep nesting, aliases, duplicate keys,
    keys that are not text and numbers too long to convert."""
    raw = _read_bounded(file)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ContentError([Problem(file, line, "not valid UTF-8 text")]) from None
    control = _NON_PRINTABLE.search(text)
    if control:
        line = text.count("\n", 0, control.start()) + 1
        message = f"control character U+{ord(control.group()):04X} is not allowed"
        raise ContentError([Problem(file, line, message)])
    try:
        _check_events(file, text)
        loader = _ContentLoader(text)
        try:
            root = loader.get_single_node()
            if root is None:
                raise ContentError([Problem(file, 1, "file is empty")])
            lines: dict[tuple, int] = {}
            _index_lines(file, root, (), lines)
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ContentError([Problem(file, line, f"YAML syntax: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ContentError([Problem(file, 1, f"YAML syntax: {exc}")]) from None
    return Document(file, data, lines)


def _read_bounded(file: Path) -> bytes:
    """At most MAX_FILE_BYTES of a regular file (bounded.py)."""
    try:
        return read_regular(file, MAX_FILE_BYTES)
    except IsADirectoryError:
        raise ContentError([Problem(file, 1, "is a folder, not a YAML file")]) from None
    except NotRegularFileError:
        raise ContentError([Problem(file, 1, "not a regular file (a pipe or a device?)")]) from None
    except FileTooLargeError:
        raise ContentError([Problem(file, 1, f"file is larger than {MAX_FILE_BYTES} bytes")]
                           ) from None
    except OSError as exc:
        raise ContentError([Problem(file, 1, f"cannot read: {exc.strerror}")]) from None


def _check_events(file: Path, text: str) -> None:
    """Walk the YAML event stream (no recursion, nothing built) before composing: anchors and
    aliases can blow up exponentially ("billion laughs") and content needs none; deep nesting
    would exhaust the stack of every recursive step after this one."""
    depth = 0
    for event in yaml.parse(text, Loader=_ContentLoader):
        line = event.start_mark.line + 1
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            raise ContentError([Problem(file, line, "YAML anchors and aliases are not allowed")])
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                message = f"nested more than {MAX_DEPTH} levels deep"
                raise ContentError([Problem(file, line, message)])
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def _index_lines(file: Path, node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    """Record the line of each key path; refuse duplicate keys, keys that are not text and
    numbers too long to convert on the way."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR_TAG:
                message = "keys must be plain text (quote a key that is a number, date or list)"
                raise ContentError([Problem(file, line, message)])
            key = key_node.value
            if key in seen:
                message = f"duplicate key '{_shorten(key)}' (first at line {seen[key]})"
                raise ContentError([Problem(file, line, message)])
            seen[key] = line
            _index_lines(file, value_node, (*path, key), lines)
            lines[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(file, item, (*path, index), lines)
    elif node.tag == _INT_TAG and len(node.value) > MAX_NUMBER_CHARS:
        message = f"number longer than {MAX_NUMBER_CHARS} characters"
        raise ContentError([Problem(file, lines[path], message)])


def _shorten(text: str, limit: int = 40) -> str:
    """Content echoed in a message is kept short: a file may point at something private."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def schema_problems(doc: Document, schema: dict) -> list[Problem]:
    # Imported here: content already validated is loaded from its cache without it, and
    # importing jsonschema costs a tenth of a `voiceskill ask`.
    from jsonschema import Draft202012Validator

    problems = []
    validator = Draft202012Validator(schema)
    for error in sorted(validator.iter_errors(doc.data), key=lambda e: list(e.absolute_path)):
        path = tuple(error.absolute_path)
        where = ".".join(str(p) for p in path) or "top level"
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            allowed = error.schema.get("properties", {})
            for key in error.instance:
                if key not in allowed:
                    problems.append(doc.problem((*path, key), f"{where}: unknown key '{key}'"))
            continue
        problems.append(doc.problem(path, f"{where}: {_schema_message(error)}"))
    return problems


def _schema_message(error) -> str:
    """jsonschema's message, unless it would quote a long value: a content file may point at
    something private (a symlink to a system file), and `check` must not print it."""
    shown = repr(error.instance)
    if len(shown) <= 60 or shown[:30] not in error.message:
        return error.message
    found = type(error.instance).__name__.replace("str", "text").replace("dict", "mapping")
    if error.validator == "type":
        return f"should be of type {error.validator_value!r}, not {found}"
    rule = _shorten(f"{error.validator}: {error.validator_value}")
    return f"this {found} does not satisfy '{rule}'"
