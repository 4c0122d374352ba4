"""Load and validate the skill's content: intents with sample sentences, and the dialogue tree.

Content is data (YAML under `intents/`); this module is the only place that reads it. Every
problem is reported as `file:line: what is wrong`, so a clinician editing the YAML can find it.
Sample-sentence templates are expanded here, once, with hassil; the matcher (nlu) and the
speech recogniser's domain model (asr) both use this one expansion.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import ClassVar

import yaml
from jsonschema import Draft202012Validator

from voiceskill.bounded import FileTooLargeError, NotRegularFileError, read_regular
from voiceskill.cache import cache_dir, keep_recent, read_json, write_atomic

INTENTS_FILE = "intents.yaml"
DIALOGUE_FILE = "dialogue.yaml"
LEXICON_FILE = "lexicon.yaml"
RED_FLAGS_FILE = "red_flags.yaml"
EXAMPLES_FILE = "examples.yaml"
MAX_FILE_BYTES = 1_000_000
MAX_SENTENCES_PER_TEMPLATE = 10_000
MAX_TOTAL_SENTENCES = 200_000  # the shipped content expands to about 50 000
MAX_DEPTH = 32  # YAML nesting; the schema needs 6
MAX_TEMPLATE_DEPTH = 64  # nested groups and rule references within one template
MAX_NUMBER_CHARS = 18  # an int64; Python refuses to convert more than 4300 digits
MAX_LOOPS_REPORTED = 20
OUTCOMES = ("self_care", "see_doctor", "urgent", "emergency")
ACTIONS = ("repeat", "slower", "stop", "help", "more", "back", "start_over", "goodbye")
ANSWERS = ("yes", "no", "unknown")
FALLBACK = "fallback"
# The intent names other tools rely on (DESIGN.md); `check` refuses content without them.
CONTRACT_INTENTS = (
    "twitch_vs_spasm", "twitch_causes", "spasm_causes", "twitch_serious", "spasm_relief",
    "spasm_prevention", "when_to_see_doctor", "doctor_visit", "back_spasm", "medication",
    "nutrition", "emergency", "repeat", "slower", "stop", "help", "yes", "no", "back",
    "start_over", "goodbye", FALLBACK,
)
CONTENT_FILES = (INTENTS_FILE, DIALOGUE_FILE, LEXICON_FILE, RED_FLAGS_FILE)
OPTIONAL_FILES = (EXAMPLES_FILE,)
SIGN_REFERENCE_KINDS = ("present", "not_a_sign")
LASTING_STATUSES = ("gradual", "occasional")
"""ConText statuses of a sign that is happening but crept up or comes and goes."""
CACHE_FORMAT = "4"  # bump when what is built from the content changes, to invalidate caches
SWAP_POOL = 400
SWAPS_PER_TERM = 12
"""How many sample sentences are copied with each lexicon term swapped in: enough for the
language model to know the term in a few contexts, few enough to keep the model small."""

MESSAGE_KEYS = (
    "fallback", "help", "nothing_to_repeat", "nothing_more", "no_context",
    "slower", "stopped", "goodbye", "at_start", "reask", "unsure_reask", "unsure_move_on",
    "asked_about_red_flag", "asked_about_urgent_sign", "not_confirmed",
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


_WORDS = {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 80}}

INTENTS_SCHEMA = _record(["language", "intents"], {
    "language": {"type": "string"},
    "expansion_rules": _named(_TEXT),
    "intents": _named(
        _record(["sentences"], {
            "sentences": {"type": "array", "minItems": 1, "items": _TEXT},
            "action": {"enum": list(ACTIONS)},
            "answer": {"enum": list(ANSWERS)},
            "needs": {"type": "array", "minItems": 1, "items": _NAME},
        }),
        min_items=1,
    ),
})

LEXICON_SCHEMA = _record(["concepts"], {
    "concepts": _named(_record(["terms"], {
        "terms": {**_WORDS, "minItems": 1},
        "domain": {"type": "boolean"},
        "swap": {"type": "boolean"},
        "veto": {"type": "boolean"},
        "courtesy": {"type": "boolean"},
    }), min_items=1),
    "time_units": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
    "quantities": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
    "since": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
    "under": _WORDS,
    "frequency": _WORDS,
    "pronunciations": {"type": "object", "propertyNames": {"pattern": "^[a-z][a-z']*$"},
                       "additionalProperties": {"type": "string",
                                                "pattern": "^[A-Z]+( [A-Z]+)*$"}},
})

_TRIGGERS = {"forward": _WORDS, "backward": _WORDS}
RED_FLAGS_SCHEMA = _record(["max_gap", "context", "flags"], {
    "max_gap": {"type": "integer", "minimum": 0, "maximum": 5},
    "context": _record(
        ["window", "terminators", "pseudo", "present", "negated", "historical", "hypothetical",
         "question_backward", "question_starts"],
        {
            "window": {"type": "integer", "minimum": 1, "maximum": 20},
            "terminators": _WORDS, "pseudo": _WORDS, "present": _WORDS, "decoys": _WORDS,
            "negated": _record([], _TRIGGERS), "historical": _record([], _TRIGGERS),
            "hypothetical": _record([], _TRIGGERS),
            **{status: _record([], _TRIGGERS) for status in LASTING_STATUSES},
            "question_backward": _WORDS, "question_starts": _WORDS, "light_words": _WORDS,
        },
    ),
    "flags": _named(_record(["goto", "confirm", "phrases"], {
        "goto": _NAME,
        "max_gap": {"type": "integer", "minimum": 0, "maximum": 16},
        "confirm": _TEXT,
        "becomes": _record([], {status: _NAME for status in LASTING_STATUSES}),
        "phrases": {"type": "array", "minItems": 1, "items": _TEXT},
        "examples": _record([], {kind: {"type": "array", "items": _TEXT}
                                 for kind in ("present", "negated", "question", "past")}),
    }), min_items=1),
})

EXAMPLES_SCHEMA = _record([], {
    "intents": _named({"type": "array", "minItems": 1, "items": _TEXT}),
    "red_flags": _named(_record([], {kind: {"type": "array", "items": _TEXT}
                                     for kind in SIGN_REFERENCE_KINDS})),
})

# A document is looked up inside the source folders only: a relative path whose parts are plain
# names (no "/" at the start, no "..", no hidden files), so content from someone else cannot make
# the review sheet embed /etc/passwd or /proc/self/environ.
DOCUMENT_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$"
_DOCUMENT = {"type": "string", "maxLength": 200, "pattern": DOCUMENT_PATTERN}

_SOURCE_REF = _record(
    ["doc", "paragraph"], {"doc": _NAME, "paragraph": {"type": "integer", "minimum": 1}}
)

DIALOGUE_SCHEMA = _record(["sources", "start", "disclaimer", "messages", "routes", "nodes"], {
    "sources": _named(_record(["title", "document"], {"title": _TEXT, "document": _DOCUMENT}),
                      min_items=1),
    "start": _NAME,
    "disclaimer": _TEXT,
    "messages": _record(
        list(MESSAGE_KEYS), {key: {"type": "string", "maxLength": 2000} for key in MESSAGE_KEYS}
    ),
    "routes": _named(_NAME),
    "nodes": _named(_record(["say"], {
        "kind": {"enum": ["info", "advice", "question", "chat"]},
        "say": _TEXT,
        "more": _TEXT,
        "ask": _TEXT,
        "on": _named(_NAME),
        "outcome": {"enum": list(OUTCOMES)},
        "sources": {"type": "array", "minItems": 1, "items": _SOURCE_REF},
        "yes_from_days": {"type": "number", "minimum": 0},
        "yes_if": {"type": "array", "items": _NAME},
    }), min_items=1),
})


# --- the loaded content ---------------------------------------------------------------------


@dataclass(frozen=True)
class SourceRef:
    doc: str
    paragraph: int


@dataclass(frozen=True)
class Node:
    """One thing the skill says, and where each intent leads from here.

    A triage question (`kind: question`) also takes "yes" from a duration of at least
    `yes_from_days`, or from a lexicon concept or red flag in `yes_if` named in the answer.
    """

    id: str
    kind: str
    say: str
    more: str | None = None
    ask: str | None = None
    on: Mapping[str, str] = field(default_factory=dict)
    outcome: str | None = None
    sources: tuple[SourceRef, ...] = ()
    yes_from_days: float | None = None
    yes_if: tuple[str, ...] = ()


@dataclass(frozen=True)
class RedFlag:
    """A sign that escalates to `goto` when said to be happening; `confirm` asks when unsure."""

    name: str
    goto: str
    confirm: str
    phrases: tuple[str, ...]
    examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    templates: tuple[str, ...] = ()  # the phrases as written, before expansion
    max_gap: int | None = None  # words allowed between two of a phrase's; None: the default
    becomes: Mapping[str, str] = field(default_factory=dict)
    """The flag this one counts as when said to come and go (`occasional`: "pins and needles
    sometimes") or to have crept up (`gradual`: "slurred lately"): such a sign is a reason to
    see a doctor, not an ambulance (clinical review M11, m13). Otherwise it is itself."""
    references: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """examples.yaml's sentences that say the sign (`present`) or only sound like it
    (`not_a_sign`), in words no phrase rule need know: for finding it by meaning."""


@dataclass(frozen=True)
class ContextRules:
    """The ConText trigger lexicon (red_flags.yaml `context`), every phrase normalized."""

    window: int
    max_gap: int
    terminators: tuple[str, ...]
    pseudo: tuple[str, ...]
    decoys: tuple[str, ...]
    present: tuple[str, ...]
    forward: Mapping[str, tuple[str, ...]]
    backward: Mapping[str, tuple[str, ...]]
    question_backward: tuple[str, ...]
    question_starts: frozenset[str]
    light_words: frozenset[str] = frozenset()  # not counted in a phrase's gaps


@dataclass(frozen=True)
class Concept:
    name: str
    terms: tuple[str, ...]
    domain: bool = False
    swap: bool = True
    veto: bool = False
    courtesy: bool = False


@dataclass(frozen=True)
class Lexicon:
    """Lay words grouped into concepts, and the words that say how long something lasted."""

    concepts: Mapping[str, Concept]
    time_units: Mapping[str, float] = field(default_factory=dict)
    quantities: Mapping[str, float] = field(default_factory=dict)
    since: Mapping[str, float] = field(default_factory=dict)
    under: tuple[str, ...] = ()
    frequency: tuple[str, ...] = ()
    pronunciations: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Content:
    intents: Mapping[str, tuple[str, ...]]
    swapped: Mapping[str, tuple[str, ...]]
    actions: Mapping[str, str]
    answers: Mapping[str, str]
    needs: Mapping[str, frozenset[str]]
    lexicon: Lexicon
    nodes: Mapping[str, Node]
    routes: Mapping[str, str]
    red_flags: tuple[RedFlag, ...]
    context: ContextRules
    messages: Mapping[str, str]
    disclaimer: str
    start: str
    sources: Mapping[str, Mapping[str, str]]
    folder: Path
    fingerprint: str
    problems: tuple[Problem, ...] = ()  # only a lenient read (strict=False) keeps any
    examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Per intent, sentences as people say them (examples.yaml), not expanded from templates."""

    def training_sentences(self) -> dict[str, tuple[str, ...]]:
        """Sample sentences per intent, fallback included, with lexicon terms swapped into
        copies of some of them: the classifier's training set."""
        return {name: (*sentences, *self.swapped.get(name, ()))
                for name, sentences in self.intents.items()}

    def domain_sentences(self) -> dict[str, tuple[str, ...]]:
        """The recogniser's domain model, grouped so that each group weighs the same: the
        training sentences (so it can hear "charley horse") and the red-flag phrases (so it
        can hear "my words are coming out wrong")."""
        flags = tuple(phrase for flag in self.red_flags for phrase in flag.phrases)
        return {**self.training_sentences(), "red_flags": flags}


def swapped_sentences(sentences: tuple[str, ...], lexicon: Lexicon) -> tuple[str, ...]:
    """Copies of some of `sentences` with one lexicon term replaced by another of its concept.

    Deterministic (evenly spaced picks, no randomness), so the same content always gives the
    same language model and classifier.
    """
    term_concept = {term: concept.name for concept in lexicon.concepts.values() if concept.swap
                    for term in concept.terms}
    longest = max((len(term.split()) for term in term_concept), default=0)
    pool = sentences[:: max(1, len(sentences) // SWAP_POOL)]
    holders: dict[str, list[tuple[str, str]]] = {}
    for sentence in pool:
        words = sentence.split()
        for size in range(1, longest + 1):
            for start in range(len(words) - size + 1):
                gram = " ".join(words[start : start + size])
                if gram in term_concept:
                    holders.setdefault(term_concept[gram], []).append((gram, sentence))
    known = set(sentences)
    copies: list[str] = []
    for name, found in holders.items():
        step = max(1, len(found) // SWAPS_PER_TERM)
        for term in lexicon.concepts[name].terms:
            for other, sentence in found[::step][:SWAPS_PER_TERM]:
                copy = f" {sentence} ".replace(f" {other} ", f" {term} ", 1).strip()
                if copy not in known:
                    known.add(copy)
                    copies.append(copy)
    return tuple(copies)


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


def _read_yaml(file: Path) -> _Document:
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
    return _Document(file, data, lines)


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


# --- templates ------------------------------------------------------------------------------


def normalize(text: str) -> str:
    """Lower-case words only, the form both the matcher and the recogniser see."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    return " ".join(word.strip("'") for word in text.split() if word.strip("'"))


CONTRACTIONS = {"'s": "is", "'re": "are", "'m": "am", "'ve": "have", "'ll": "will", "'d": "would"}
# Contractions typed or transcribed without their apostrophe; only spellings that are not
# words of their own ("its", "ill", "well", "were" are left alone).
UNAPOSTROPHISED = {
    "cant": "can't", "dont": "don't", "wont": "won't", "isnt": "isn't", "arent": "aren't",
    "wasnt": "wasn't", "werent": "weren't", "doesnt": "doesn't", "didnt": "didn't",
    "couldnt": "couldn't", "wouldnt": "wouldn't", "shouldnt": "shouldn't", "havent": "haven't",
    "hasnt": "hasn't", "hadnt": "hadn't", "aint": "ain't", "im": "i'm", "ive": "i've",
    "youre": "you're", "theyre": "they're", "hes": "he's", "shes": "she's",
    "whats": "what's", "thats": "that's", "theres": "there's",
}


def tokens(text: str) -> list[str]:
    """Normalized words with contractions opened ("urine's" -> "urine is"), the form the
    classifier, the lexicon and the red flags are matched in; "n't" words stay whole."""
    words = []
    for word in normalize(text).split():
        word = UNAPOSTROPHISED.get(word, word)
        for ending, full in CONTRACTIONS.items():
            if word.endswith(ending) and len(word) > len(ending) and word != "let's":
                words += [word[: -len(ending)], full]
                break
        else:
            words.append(word)
    return words


def _parse_rules(doc: _Document, rules: Mapping[str, str]) -> tuple[dict, list]:
    from hassil import parse_sentence  # only when expanding: a cached expansion needs none

    parsed, problems = {}, []
    for name, template in rules.items():
        try:
            parsed[name] = parse_sentence(template)
        except Exception as exc:  # hassil raises several parse error types
            problems.append(doc.problem(("expansion_rules", name), f"bad template: {exc}"))
    return parsed, problems


class ExpansionBudget:
    """How many more sentences the content may expand to, all templates together; counted
    before a template is expanded, so a template bomb is refused before any work is done.
    Also remembers each rule's count, so rules referring to rules are counted once."""

    def __init__(self, limit: int = MAX_TOTAL_SENTENCES):
        self.left = limit
        self.limit = limit
        self.rule_counts: dict[str, int] = {}

    def take(self, count: int) -> None:
        if count > self.left:
            self.left = 0
            raise ValueError(f"the content allows more than {self.limit} sentences in all")
        self.left -= count


def sentence_count(expression, rules: Mapping,
                   rule_counts: dict[str, int], depth: int = 0) -> int:
    """How many sentences hassil would list for `expression` (duplicates included), computed
    from its structure; a count above MAX_SENTENCES_PER_TEMPLATE is reported as one more than
    that, so it stays cheap. Raises ValueError when groups or rules nest too deeply (a rule
    that refers to itself)."""
    from hassil.expression import Alternative, Group, Permutation, RuleReference

    cap = MAX_SENTENCES_PER_TEMPLATE + 1
    if depth > MAX_TEMPLATE_DEPTH:
        raise ValueError(f"groups or rules nested more than {MAX_TEMPLATE_DEPTH} levels deep")

    def count(item) -> int:
        return sentence_count(item, rules, rule_counts, depth + 1)

    if isinstance(expression, RuleReference):
        name = expression.rule_name
        if name not in rule_counts:
            rule = rules.get(name)
            rule_counts[name] = count(rule.expression) if rule is not None else 1
        return rule_counts[name]
    if isinstance(expression, Alternative):
        return min(cap, sum(count(item) for item in expression.items))
    if isinstance(expression, Group):  # Sequence or Permutation: every combination
        total = 1
        for item in expression.items:
            total = min(cap, total * count(item))
        if isinstance(expression, Permutation):
            total *= math.factorial(min(len(expression.items), 13))
        return min(cap, total)
    return 1


def expand_template(template: str, rules: Mapping,
                    budget: ExpansionBudget | None = None) -> list[str]:
    """Every sentence a template allows, normalized; raises ValueError if it cannot be used
    (bad syntax, more than MAX_SENTENCES_PER_TEMPLATE sentences, or over the `budget`)."""
    from hassil import parse_sentence  # only when expanding: a cached expansion needs none
    from hassil.sample import sample_sentence

    try:
        sentence = parse_sentence(template)
    except Exception as exc:  # hassil's parse errors share no base class narrower than this
        raise ValueError(f"bad template: {exc}") from None
    rule_counts = budget.rule_counts if budget is not None else {}
    count = sentence_count(sentence.expression, rules, rule_counts)
    if count > MAX_SENTENCES_PER_TEMPLATE:
        raise ValueError(f"template allows more than {MAX_SENTENCES_PER_TEMPLATE} sentences")
    if budget is not None:
        budget.take(count)
    try:
        expanded = list(sample_sentence(sentence, expansion_rules=dict(rules)))
    except Exception as exc:  # e.g. a missing rule or list; no narrower common base class
        raise ValueError(f"bad template: {exc}") from None
    return sorted({normalize(s) for s in expanded} - {""})


def lexicon_rules(lexicon: Lexicon) -> dict[str, str]:
    """Each lexicon concept as an expansion rule, `<lex_NAME>`, for the intent templates."""
    return {f"lex_{name}": "(" + "|".join(concept.terms) + ")"
            for name, concept in lexicon.concepts.items()}


def _expand_intents(doc: _Document, lexicon: Lexicon, budget: ExpansionBudget
                    ) -> tuple[dict[str, tuple[str, ...]], list[Problem]]:
    rules = {**lexicon_rules(lexicon), **(doc.data.get("expansion_rules") or {})}
    rules, problems = _parse_rules(doc, rules)
    owner: dict[str, tuple[str, tuple]] = {}
    intents: dict[str, tuple[str, ...]] = {}
    for name, intent in doc.data["intents"].items():
        sentences: set[str] = set()
        for index, template in enumerate(intent["sentences"]):
            path = ("intents", name, "sentences", index)
            try:
                expanded = expand_template(template, rules, budget)
            except ValueError as exc:
                problems.append(doc.problem(path, f"intent '{name}': {exc}"))
                if budget.left == 0:
                    return intents, problems
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
    for name in CONTRACT_INTENTS:
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
            yes_from_days=spec.get("yes_from_days"),
            yes_if=tuple(spec.get("yes_if", ())),
        )
        for node_id, spec in data["nodes"].items()
    }


def _tree_problems(doc: _Document, nodes: dict[str, Node], intents: Mapping,
                   flags: _Document, lexicon: Lexicon) -> list[Problem]:
    """References, reachability, and the medical-safety rules of the tree."""
    data = doc.data
    problems = []
    flag_names = set(flags.data["flags"])

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
    for name, flag in flags.data["flags"].items():
        if flag["goto"] not in nodes:
            message = f"no node named '{flag['goto']}'"
            problems.append(flags.problem(("flags", name, "goto"), message))
        for status, other in (flag.get("becomes") or {}).items():
            if other not in flags.data["flags"]:
                message = f"no red flag named '{other}'"
                problems.append(flags.problem(("flags", name, "becomes", status), message))
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
        for name in node.yes_if:
            if name not in lexicon.concepts and name not in flag_names:
                message = f"'{name}' is neither a lexicon concept nor a red flag"
                problems.append(doc.problem((*path, "yes_if"), message))
        if node.kind != "question" and (node.yes_if or node.yes_from_days is not None):
            problems.append(doc.problem(path, f"node '{node.id}' is not a question"))
    if problems:
        return problems
    gotos = [flag["goto"] for flag in flags.data["flags"].values()]
    problems += _reachability_problems(doc, nodes, gotos)
    problems += _triage_problems(doc, nodes)
    return problems


def _reachability_problems(doc: _Document, nodes: Mapping[str, Node],
                           red_flag_targets: list[str]) -> list[Problem]:
    data = doc.data
    entry = [data["start"], *data["routes"].values(), *red_flag_targets]
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
    """Every path through triage questions must end in advice, and must end at all.

    One depth-first walk over the questions, so linear in the size of the tree: an edge back to
    a question still on the walk's path is a loop; each question remembers one non-advice end
    it can reach (directly or through the questions after it).
    """
    questions = {node_id: None for node_id, node in nodes.items() if node.kind == "question"}
    loops: list[Problem] = []
    bad_end: dict[str, str] = {}

    def finish(node_id: str) -> None:
        for target in nodes[node_id].on.values():
            end = bad_end.get(target) if target in questions else target
            if end is not None and nodes[end].outcome is None:
                bad_end[node_id] = end
                return

    done: set[str] = set()
    for root in questions:
        if root in done:
            continue
        path, on_path = [root], {root}
        pending = [iter(nodes[root].on.values())]
        while pending:
            target = next(pending[-1], None)
            if target is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                finish(finished)
                pending.pop()
            elif target in on_path:
                if len(loops) < MAX_LOOPS_REPORTED:
                    loop = " -> ".join([*path[path.index(target):], target])
                    message = f"triage loops with no exit: {loop}"
                    loops.append(doc.problem(("nodes", target), message))
            elif target in questions and target not in done:
                path.append(target)
                on_path.add(target)
                pending.append(iter(nodes[target].on.values()))
    ends = [
        doc.problem(("nodes", node_id),
                    f"triage from '{node_id}' can end at '{end}', which gives no advice")
        for node_id, end in ((q, bad_end.get(q)) for q in questions)
        if end is not None
    ]
    return loops + ends


def _phrase_list(doc: _Document, path: tuple, templates: list[str],
                 budget: ExpansionBudget) -> tuple[list[str], list]:
    phrases, problems = [], []
    for index, template in enumerate(templates):
        try:
            phrases += expand_template(template, {}, budget)
        except ValueError as exc:
            problems.append(doc.problem((*path, index), str(exc)))
    return phrases, problems


def _flag_phrases(doc: _Document, budget: ExpansionBudget
                  ) -> tuple[dict[str, list[str]], list[Problem]]:
    phrases, problems = {}, []
    for name, flag in doc.data["flags"].items():
        path = ("flags", name, "phrases")
        phrases[name], found = _phrase_list(doc, path, flag["phrases"], budget)
        problems += found
    return phrases, problems


def _red_flags(doc: _Document, phrases: Mapping[str, list[str]],
               references: Mapping[str, Mapping[str, tuple[str, ...]]]) -> tuple[RedFlag, ...]:
    flags = []
    for name, flag in doc.data["flags"].items():
        examples = {kind: tuple(texts) for kind, texts in (flag.get("examples") or {}).items()}
        flags.append(RedFlag(name, flag["goto"], flag["confirm"], tuple(phrases[name]), examples,
                             tuple(flag["phrases"]), flag.get("max_gap"),
                             dict(flag.get("becomes") or {}), references.get(name, {})))
    return tuple(flags)


def _examples(doc: _Document | None, intents: Mapping[str, tuple[str, ...]],
              flags_doc: _Document) -> tuple[dict, dict, list[Problem]]:
    """examples.yaml (optional): sentences per intent and per red flag, normalized, each
    naming an intent or flag that exists and none also another intent's sentence."""
    if doc is None:
        return {}, {}, []
    problems: list[Problem] = []
    owner = {sentence: name for name, sentences in intents.items() for sentence in sentences}
    examples: dict[str, tuple[str, ...]] = {}
    for name, texts in (doc.data.get("intents") or {}).items():
        path = ("intents", name)
        if name not in intents:
            problems.append(doc.problem(path, f"examples of unknown intent '{name}'"))
            continue
        for index, text in enumerate(texts):
            sentence = normalize(text)
            other = owner.setdefault(sentence, name)
            if not sentence or other != name:
                why = f"is also a sentence of '{other}'" if sentence else "has no words"
                problems.append(doc.problem((*path, index), f"example '{text}' {why}"))
        examples[name] = _words(texts)
    references = {}
    for name, kinds in (doc.data.get("red_flags") or {}).items():
        if name not in flags_doc.data["flags"]:
            message = f"references of unknown red flag '{name}'"
            problems.append(doc.problem(("red_flags", name), message))
            continue
        references[name] = {kind: _words(texts) for kind, texts in kinds.items()}
    return examples, references, problems


def _words(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(normalize(item) for item in items if normalize(item)))


def _context(doc: _Document) -> ContextRules:
    rules = doc.data["context"]
    statuses = ("negated", "historical", "hypothetical", *LASTING_STATUSES)
    return ContextRules(
        window=rules["window"],
        max_gap=doc.data["max_gap"],
        terminators=_words(rules["terminators"]),
        pseudo=_words(rules["pseudo"]),
        decoys=_words(rules.get("decoys", [])),
        present=_words(rules["present"]),
        forward={status: _words(rules.get(status, {}).get("forward", []))
                 for status in statuses},
        backward={status: _words(rules.get(status, {}).get("backward", []))
                  for status in statuses},
        question_backward=_words(rules["question_backward"]),
        question_starts=frozenset(_words(rules["question_starts"])),
        light_words=frozenset(_words(rules.get("light_words", []))),
    )


def _lexicon(doc: _Document) -> Lexicon:
    data = doc.data
    concepts = {
        name: Concept(name, _words(spec["terms"]), spec.get("domain", False),
                      spec.get("swap", True), spec.get("veto", False),
                      spec.get("courtesy", False))
        for name, spec in data["concepts"].items()
    }
    numbers = {key: {normalize(word): value for word, value in (data.get(key) or {}).items()}
               for key in ("time_units", "quantities", "since")}
    return Lexicon(concepts, **numbers, under=_words(data.get("under", [])),
                   frequency=_words(data.get("frequency", [])),
                   pronunciations=dict(data.get("pronunciations") or {}))


def _intent_needs(doc: _Document, lexicon: Lexicon) -> tuple[dict, list[Problem]]:
    """Intents that count only when the sentence names one of these lexicon concepts."""
    needs, problems = {}, []
    for name, intent in doc.data["intents"].items():
        for concept in intent.get("needs", ()):
            if concept not in lexicon.concepts:
                path = ("intents", name, "needs")
                problems.append(doc.problem(path, f"no lexicon concept named '{concept}'"))
        needs[name] = frozenset(intent.get("needs", ()))
    return {name: found for name, found in needs.items() if found}, problems


def _intent_kinds(doc: _Document) -> tuple[dict[str, str], dict[str, str], list[Problem]]:
    """Which intents are control actions and which answer a yes/no question."""
    actions, answers, problems = {}, {}, []
    for name, intent in doc.data["intents"].items():
        for key, table in (("action", actions), ("answer", answers)):
            if key in intent:
                table[name] = intent[key]
    for key, table, needed in (("action", actions, ACTIONS), ("answer", answers, ANSWERS)):
        for value in needed:
            if list(table.values()).count(value) != 1:
                message = f"exactly one intent needs {key}: {value}"
                problems.append(doc.problem(("intents",), message))
    return actions, answers, problems


def fingerprint(folder: Path) -> str:
    """A hash of the content files: caches built from the content are keyed by it."""
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    for name in (*CONTENT_FILES, *OPTIONAL_FILES):
        path = Path(folder) / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return digest.hexdigest()[:20]


# --- entry points ---------------------------------------------------------------------------


def default_folder() -> Path:
    """The content shipped with the package, or `intents/` of a source checkout."""
    packaged = Path(str(resources.files("voiceskill"))) / "intents"
    if packaged.is_dir():
        return packaged
    return Path(__file__).resolve().parents[2] / "intents"


def _expansions(content_fingerprint: str, docs: Mapping[str, _Document], lexicon: Lexicon
                ) -> tuple[dict, dict, dict, list[Problem]]:
    """Expanded sample sentences, their lexicon swaps and the red-flag phrases; cached by
    the content's fingerprint, since expanding takes longer than answering a question."""
    path = cache_dir() / f"content-{content_fingerprint}.json"
    cached = read_json(path)
    if cached and _whole_expansions(cached, docs):
        keep_recent(path, "content")
        return cached["intents"], cached["swapped"], cached["flags"], []
    budget = ExpansionBudget()
    intents, problems = _expand_intents(docs[INTENTS_FILE], lexicon, budget)
    flags, flag_problems = _flag_phrases(docs[RED_FLAGS_FILE], budget)
    problems += flag_problems
    swapped = {name: swapped_sentences(sentences, lexicon) for name, sentences in intents.items()}
    if not problems:
        record = {"intents": intents, "swapped": swapped, "flags": flags}
        write_atomic(path, json.dumps(record).encode())
        keep_recent(path, "content")
    return intents, swapped, flags, problems


def _whole_expansions(cached: dict, docs: Mapping[str, _Document]) -> bool:
    """Whether a cached expansion holds, for every intent and every red flag of the content and
    nothing else, a list of sentences: a damaged or doctored one is rebuilt from the YAML,
    never blamed on it."""
    intents = set(docs[INTENTS_FILE].data["intents"])
    expected = {"intents": intents, "swapped": intents,
                "flags": set(docs[RED_FLAGS_FILE].data["flags"])}
    return set(cached) == set(expected) and all(
        isinstance(table := cached[key], dict) and set(table) == names
        and all(isinstance(texts, list) and all(isinstance(text, str) for text in texts)
                for texts in table.values())
        for key, names in expected.items())


def load_content(folder: Path | None = None, *, strict: bool = True) -> Content:
    """Read, validate and expand the YAML in `folder`; raise ContentError listing every problem.

    With strict=False, content whose shape is sound but whose tree is flawed (dangling or
    unreachable nodes, bad triage) is returned with its `problems`, so a reviewer can see them.
    """
    folder = Path(folder) if folder else default_folder()
    if not folder.is_dir():
        raise ContentError([Problem(folder, 1, "content folder not found")])
    docs = {name: _read_yaml(folder / name) for name in CONTENT_FILES}
    examples_doc = _read_yaml(folder / EXAMPLES_FILE) if (folder / EXAMPLES_FILE).exists() else None
    intents_doc, dialogue_doc = docs[INTENTS_FILE], docs[DIALOGUE_FILE]
    lexicon_doc, flags_doc = docs[LEXICON_FILE], docs[RED_FLAGS_FILE]
    problems = _schema_problems(intents_doc, INTENTS_SCHEMA)
    problems += _schema_problems(dialogue_doc, DIALOGUE_SCHEMA)
    problems += _schema_problems(lexicon_doc, LEXICON_SCHEMA)
    problems += _schema_problems(flags_doc, RED_FLAGS_SCHEMA)
    if examples_doc:
        problems += _schema_problems(examples_doc, EXAMPLES_SCHEMA)
    if problems:
        raise ContentError(problems)
    lexicon = _lexicon(lexicon_doc)
    content_fingerprint = fingerprint(folder)
    intents, swapped, phrases, problems = _expansions(content_fingerprint, docs, lexicon)
    actions, answers, kind_problems = _intent_kinds(intents_doc)
    needs, need_problems = _intent_needs(intents_doc, lexicon)
    examples, references, example_problems = _examples(examples_doc, intents, flags_doc)
    problems += kind_problems + need_problems + example_problems
    nodes = _build_nodes(dialogue_doc.data)
    problems += _tree_problems(dialogue_doc, nodes, intents, flags_doc, lexicon)
    if problems and strict:
        raise ContentError(problems)
    data = dialogue_doc.data
    return Content(
        intents={name: tuple(sentences) for name, sentences in intents.items()},
        swapped={name: tuple(sentences) for name, sentences in swapped.items()},
        actions=actions,
        answers=answers,
        needs=needs,
        lexicon=lexicon,
        nodes=nodes,
        routes=dict(data["routes"]),
        red_flags=_red_flags(flags_doc, phrases, references),
        context=_context(flags_doc),
        messages={key: " ".join(text.split()) for key, text in data["messages"].items()},
        disclaimer=data["disclaimer"],
        start=data["start"],
        sources=data["sources"],
        folder=folder,
        fingerprint=content_fingerprint,
        problems=tuple(problems),
        examples=examples,
    )
