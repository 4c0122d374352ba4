"""Load and validate the skill's content: intents with sample sentences, and the dialogue tree.

Content is data (YAML under `intents/`); this module is the only place that reads it. Every
problem is reported as `file:line: what is wrong`, so a clinician editing the YAML can find it.
Sample-sentence templates are expanded here, once, with hassil; the matcher (nlu) and the
speech recogniser's domain model (asr) both use this one expansion.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import ClassVar

import yaml
from hassil import parse_sentence
from hassil.expression import Sentence
from hassil.sample import sample_sentence
from jsonschema import Draft202012Validator

INTENTS_FILE = "intents.yaml"
DIALOGUE_FILE = "dialogue.yaml"
MAX_FILE_BYTES = 1_000_000
MAX_SENTENCES_PER_TEMPLATE = 10_000
OUTCOMES = ("self_care", "see_doctor", "urgent", "emergency")
CONTROL_INTENTS = (
    "repeat",
    "slower",
    "stop",
    "help",
    "yes",
    "no",
    "back",
    "start_over",
    "goodbye",
)
DOMAIN_INTENTS = (
    "twitch_vs_spasm",
    "twitch_causes",
    "spasm_causes",
    "twitch_serious",
    "spasm_relief",
    "spasm_prevention",
    "when_to_see_doctor",
    "doctor_visit",
    "back_spasm",
    "medication",
    "nutrition",
    "emergency",
)
FALLBACK = "fallback"
REQUIRED_INTENTS = (*DOMAIN_INTENTS, *CONTROL_INTENTS, FALLBACK)

MESSAGE_KEYS = (
    "fallback", "help", "nothing_to_repeat", "nothing_more", "no_context",
    "slower", "stopped", "goodbye", "at_start", "reask",
)
_TEXT = {"type": "string", "minLength": 1, "maxLength": 2000}
_NAME = {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "maxLength": 64}


def _record(required: list[str], properties: dict) -> dict:
    """A mapping with exactly these keys (the required ones and optional others)."""
    return {"type": "object", "additionalProperties": False, "required": required,
            "properties": properties}


def _named(values: dict, min_items: int = 0) -> dict:
    """A mapping from snake_case names to `values`."""
    return {"type": "object", "minProperties": min_items, "propertyNames": _NAME,
            "additionalProperties": values}


INTENTS_SCHEMA = _record(["language", "intents"], {
    "language": {"type": "string"},
    "expansion_rules": _named(_TEXT),
    "intents": _named(
        _record(["sentences"], {"sentences": {"type": "array", "minItems": 1, "items": _TEXT}}),
        min_items=1,
    ),
})

_SOURCE_REF = _record(
    ["doc", "paragraph"], {"doc": _NAME, "paragraph": {"type": "integer", "minimum": 1}}
)

DIALOGUE_SCHEMA = _record(["sources", "start", "disclaimer", "messages", "routes", "nodes"], {
    "sources": _named(_record(["title", "document"], {"title": _TEXT, "document": _TEXT}),
                      min_items=1),
    "start": _NAME,
    "disclaimer": _TEXT,
    "messages": _record(
        list(MESSAGE_KEYS), {key: {"type": "string", "maxLength": 2000} for key in MESSAGE_KEYS}
    ),
    "routes": _named(_NAME),
    "red_flags": _named(_record(["goto", "phrases"], {
        "goto": _NAME,
        "phrases": {"type": "array", "minItems": 1, "items": _TEXT},
    })),
    "negations": {"type": "array", "items": {"type": "string", "maxLength": 32}},
    "clause_breaks": {"type": "array", "items": {"type": "string", "maxLength": 32}},
    "nodes": _named(_record(["say"], {
        "kind": {"enum": ["info", "advice", "question", "chat"]},
        "say": _TEXT,
        "more": _TEXT,
        "ask": _TEXT,
        "on": _named(_NAME),
        "outcome": {"enum": list(OUTCOMES)},
        "sources": {"type": "array", "minItems": 1, "items": _SOURCE_REF},
    }), min_items=1),
})


# --- the loaded content ---------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRef:
    doc: str
    paragraph: int


@dataclass(frozen=True)
class Node:
    """One thing the skill says, and where each intent leads from here."""

    id: str
    kind: str
    say: str
    more: str | None = None
    ask: str | None = None
    on: Mapping[str, str] = field(default_factory=dict)
    outcome: str | None = None
    sources: tuple[SourceRef, ...] = ()


@dataclass(frozen=True)
class RedFlag:
    """Phrases that, spotted anywhere in what the user says, jump to `goto`."""

    name: str
    goto: str
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class Content:
    intents: Mapping[str, tuple[str, ...]]
    nodes: Mapping[str, Node]
    routes: Mapping[str, str]
    red_flags: tuple[RedFlag, ...]
    negations: frozenset[str]
    clause_breaks: frozenset[str]
    messages: Mapping[str, str]
    disclaimer: str
    start: str
    sources: Mapping[str, Mapping[str, str]]
    folder: Path
    problems: tuple[Problem, ...] = ()  # only a lenient read (strict=False) keeps any

    def domain_sentences(self) -> dict[str, tuple[str, ...]]:
        """Sample sentences per intent, fallback included: the recogniser's domain model,
        grouped so that each intent weighs the same however many sentences it expands to."""
        return dict(self.intents)


# --- problems -------------------------------------------------------------------------------


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
class _Document:
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


class _ContentLoader(yaml.SafeLoader):
    """SafeLoader where only true/false are booleans: `yes:`, `no:` and `on:` stay words."""

    yaml_implicit_resolvers: ClassVar = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:bool"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }


_ContentLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|false)$"), list("tf")
)


def _read_yaml(file: Path) -> _Document:
    """Safe-load one YAML file, refusing what could hang or mislead (aliases, duplicate keys)."""
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ContentError([Problem(file, 1, f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_FILE_BYTES:
        raise ContentError([Problem(file, 1, f"file is larger than {MAX_FILE_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ContentError([Problem(file, line, "not valid UTF-8 text")]) from None
    loader = _ContentLoader(text)
    try:
        _refuse_anchors(file, text)
        root = loader.get_single_node()
        if root is None:
            raise ContentError([Problem(file, 1, "file is empty")])
        lines: dict[tuple, int] = {}
        _index_lines(file, root, (), lines)
        data = loader.construct_document(root)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        raise ContentError([Problem(file, line, f"YAML syntax: {exc.problem}")]) from None
    except yaml.YAMLError as exc:
        raise ContentError([Problem(file, 1, f"YAML syntax: {exc}")]) from None
    finally:
        loader.dispose()
    return _Document(file, data, lines)


def _refuse_anchors(file: Path, text: str) -> None:
    """Anchors and aliases can blow up exponentially ("billion laughs"); content needs none."""
    for event in yaml.parse(text, Loader=_ContentLoader):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None):
            line = event.start_mark.line + 1
            raise ContentError([Problem(file, line, "YAML anchors and aliases are not allowed")])


def _index_lines(file: Path, node: yaml.Node, path: tuple, lines: dict[tuple, int]) -> None:
    """Record the line of each key path; refuse duplicate keys on the way."""
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: dict[object, int] = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if key in seen:
                message = f"duplicate key '{key}' (first at line {seen[key]})"
                raise ContentError([Problem(file, line, message)])
            seen[key] = line
            _index_lines(file, value_node, (*path, key), lines)
            lines[(*path, key)] = line
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(file, item, (*path, index), lines)


def _schema_problems(doc: _Document, schema: dict) -> list[Problem]:
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
        problems.append(doc.problem(path, f"{where}: {error.message}"))
    return problems


# --- templates ------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Lower-case words only, the form both the matcher and the recogniser see."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(word.strip("'") for word in text.split() if word.strip("'"))


def _parse_rules(doc: _Document, rules: Mapping[str, str]) -> tuple[dict[str, Sentence], list]:
    parsed, problems = {}, []
    for name, template in rules.items():
        try:
            parsed[name] = parse_sentence(template)
        except Exception as exc:  # hassil raises several parse error types
            problems.append(doc.problem(("expansion_rules", name), f"bad template: {exc}"))
    return parsed, problems


def expand_template(template: str, rules: Mapping[str, Sentence]) -> list[str]:
    """Every sentence a template allows, normalized; raises ValueError if it cannot be used."""
    try:
        sentence = parse_sentence(template)
        samples = sample_sentence(sentence, expansion_rules=dict(rules))
        expanded = list(itertools.islice(samples, MAX_SENTENCES_PER_TEMPLATE + 1))
    except Exception as exc:  # hassil's parse errors share no base class narrower than this
        raise ValueError(f"bad template: {exc}") from None
    if len(expanded) > MAX_SENTENCES_PER_TEMPLATE:
        raise ValueError(f"template allows more than {MAX_SENTENCES_PER_TEMPLATE} sentences")
    return sorted({normalize(s) for s in expanded} - {""})


def _expand_intents(doc: _Document) -> tuple[dict[str, tuple[str, ...]], list[Problem]]:
    rules, problems = _parse_rules(doc, doc.data.get("expansion_rules") or {})
    owner: dict[str, tuple[str, tuple]] = {}
    intents: dict[str, tuple[str, ...]] = {}
    for name, intent in doc.data["intents"].items():
        sentences: set[str] = set()
        for index, template in enumerate(intent["sentences"]):
            path = ("intents", name, "sentences", index)
            try:
                expanded = expand_template(template, rules)
            except ValueError as exc:
                problems.append(doc.problem(path, f"intent '{name}': {exc}"))
                continue
            clashes: dict[tuple[str, tuple], list[str]] = {}
            for sentence in expanded:
                other = owner.setdefault(sentence, (name, path))
                if other[0] != name:
                    clashes.setdefault(other, []).append(sentence)
            for (other_name, other_path), shared in clashes.items():
                problems.append(
                    doc.problem(
                        path,
                        (
                            f"intent '{name}': {len(shared)} sentence(s) also samples of "
                            f"'{other_name}' "
                            f"(line {doc.line(other_path)}), e.g. '{shared[0]}'"
                        ),
                    )
                )
            sentences.update(expanded)
        intents[name] = tuple(sorted(sentences))
    for name in REQUIRED_INTENTS:
        if name not in intents:
            problems.append(doc.problem(("intents",), f"required intent '{name}' is missing"))
    return intents, problems


# --- the dialogue tree ----------------------------------------------------------------------


def _build_nodes(data: Mapping) -> dict[str, Node]:
    return {
        node_id: Node(
            id=node_id,
            kind=spec.get("kind", "info"),
            say=" ".join(spec["say"].split()),
            more=" ".join(spec["more"].split()) if "more" in spec else None,
            ask=" ".join(spec["ask"].split()) if "ask" in spec else None,
            on=dict(spec.get("on") or {}),
            outcome=spec.get("outcome"),
            sources=tuple(SourceRef(s["doc"], s["paragraph"]) for s in spec.get("sources", [])),
        )
        for node_id, spec in data["nodes"].items()
    }


def _tree_problems(doc: _Document, nodes: dict[str, Node], intents: Mapping) -> list[Problem]:
    """References, reachability, and the medical-safety rules of the tree."""
    data = doc.data
    problems = []

    def need_node(path: tuple, target: str) -> None:
        if target not in nodes:
            problems.append(doc.problem(path, f"no node named '{target}'"))

    def need_intent(path: tuple, name: str) -> None:
        if name not in intents:
            problems.append(doc.problem(path, f"no intent named '{name}' in {INTENTS_FILE}"))

    need_node(("start",), data["start"])
    for intent, target in data["routes"].items():
        need_intent(("routes", intent), intent)
        need_node(("routes", intent), target)
    for name, flag in (data.get("red_flags") or {}).items():
        need_node(("red_flags", name, "goto"), flag["goto"])
    for node in nodes.values():
        path = ("nodes", node.id)
        for intent, target in node.on.items():
            need_intent((*path, "on", intent), intent)
            need_node((*path, "on", intent), target)
        for index, ref in enumerate(node.sources):
            if ref.doc not in data["sources"]:
                problems.append(
                    doc.problem((*path, "sources", index), f"unknown source '{ref.doc}'")
                )
        if node.kind == "advice" and node.outcome is None:
            problems.append(doc.problem(path, f"advice node '{node.id}' has no outcome"))
        if node.kind != "advice" and node.outcome is not None:
            problems.append(doc.problem(path, f"node '{node.id}' has an outcome but is not advice"))
        if node.kind == "question" and not {"yes", "no"} <= set(node.on):
            problems.append(doc.problem(path, f"question '{node.id}' needs both yes and no"))
        if node.kind == "question" and node.ask is None:
            problems.append(doc.problem(path, f"question '{node.id}' has no 'ask'"))
        if node.ask and not node.more and not {"yes", "no"} & set(node.on):
            problems.append(doc.problem(path, f"node '{node.id}' asks but yes/no lead nowhere"))
        if node.kind != "chat" and not node.sources:
            problems.append(doc.problem(path, f"node '{node.id}' cites no source"))
    if problems:
        return problems
    problems += _reachability_problems(doc, nodes)
    problems += _triage_problems(doc, nodes)
    return problems


def _reachability_problems(doc: _Document, nodes: Mapping[str, Node]) -> list[Problem]:
    data = doc.data
    entry = [data["start"], *data["routes"].values()]
    entry += [flag["goto"] for flag in (data.get("red_flags") or {}).values()]
    seen, todo = set(), list(entry)
    while todo:
        node_id = todo.pop()
        if node_id not in seen:
            seen.add(node_id)
            todo.extend(nodes[node_id].on.values())
    return [
        doc.problem(("nodes", node_id), f"node '{node_id}' can never be reached")
        for node_id in nodes
        if node_id not in seen
    ]


def _triage_problems(doc: _Document, nodes: Mapping[str, Node]) -> list[Problem]:
    """Every path through triage questions must end in advice, and must end at all."""
    problems = []

    def endings(node_id: str, trail: tuple[str, ...]) -> Iterator[tuple[str, tuple[str, ...]]]:
        node = nodes[node_id]
        if node_id in trail:
            yield node_id, (*trail, node_id)
        elif node.kind != "question":
            yield node_id, trail
        else:
            for target in node.on.values():
                yield from endings(target, (*trail, node_id))

    for node in nodes.values():
        if node.kind != "question":
            continue
        for end, trail in endings(node.id, ()):
            if end in trail:
                loop = " -> ".join(trail)
                problems.append(
                    doc.problem(("nodes", node.id), f"triage loops with no exit: {loop}")
                )
            elif nodes[end].outcome is None:
                problems.append(
                    doc.problem(
                        ("nodes", node.id),
                        f"triage from '{node.id}' can end at '{end}', which gives no advice",
                    )
                )
    return list(dict.fromkeys(problems))


def _red_flags(doc: _Document) -> tuple[tuple[RedFlag, ...], list[Problem]]:
    flags, problems = [], []
    for name, flag in (doc.data.get("red_flags") or {}).items():
        phrases: list[str] = []
        for index, template in enumerate(flag["phrases"]):
            try:
                phrases += expand_template(template, {})
            except ValueError as exc:
                problems.append(doc.problem(("red_flags", name, "phrases", index), str(exc)))
        flags.append(RedFlag(name, flag["goto"], tuple(phrases)))
    return tuple(flags), problems


# --- entry points ---------------------------------------------------------------------------


def default_folder() -> Path:
    """The content shipped with the package, or `intents/` of a source checkout."""
    packaged = Path(str(resources.files("voiceskill"))) / "intents"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "intents"


def load_content(folder: Path | None = None, *, strict: bool = True) -> Content:
    """Read, validate and expand the YAML in `folder`; raise ContentError listing every problem.

    With strict=False, content whose shape is sound but whose tree is flawed (dangling or
    unreachable nodes, bad triage) is returned with its `problems`, so a reviewer can see them.
    """
    folder = Path(folder) if folder else default_folder()
    if not folder.is_dir():
        raise ContentError([Problem(folder, 1, "content folder not found")])
    intents_doc = _read_yaml(folder / INTENTS_FILE)
    dialogue_doc = _read_yaml(folder / DIALOGUE_FILE)
    problems = _schema_problems(intents_doc, INTENTS_SCHEMA)
    problems += _schema_problems(dialogue_doc, DIALOGUE_SCHEMA)
    if problems:
        raise ContentError(problems)
    intents, problems = _expand_intents(intents_doc)
    nodes = _build_nodes(dialogue_doc.data)
    problems += _tree_problems(dialogue_doc, nodes, intents)
    red_flags, flag_problems = _red_flags(dialogue_doc)
    problems += flag_problems
    if problems and strict:
        raise ContentError(problems)
    data = dialogue_doc.data
    return Content(
        intents=intents,
        nodes=nodes,
        routes=dict(data["routes"]),
        red_flags=red_flags,
        negations=frozenset(normalize(word) for word in data.get("negations", [])),
        clause_breaks=frozenset(normalize(word) for word in data.get("clause_breaks", [])),
        messages={key: " ".join(text.split()) for key, text in data["messages"].items()},
        disclaimer=data["disclaimer"],
        start=data["start"],
        sources=data["sources"],
        folder=folder,
        problems=tuple(problems),
    )


def content_hash(folder: Path | None = None) -> str:
    """sha256 over the content's YAML files (name and bytes, sorted by name): what was measured."""
    folder = Path(folder) if folder else default_folder()
    digest = hashlib.sha256()
    for file in sorted(folder.glob("*.yaml")):
        digest.update(file.name.encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()
