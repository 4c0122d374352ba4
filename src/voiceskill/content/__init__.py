"""Load and validate the skill's content: intents with sample sentences, and the dialogue tree.

Content is data (YAML under `intents/`); this package is the only place that reads it. Every
problem is reported as `file:line: what is wrong`, so a clinician editing the YAML can find it.
Sample-sentence templates are expanded here, once, with hassil; the matcher (nlu) and the
speech recogniser's domain model (asr) both use this one expansion.

This module builds `Content` and checks how its parts fit together; the parts live in
`schema` (files, names, JSON schemas), `yamlsafe` (hardened reading, `Problem`), `model` (the
dataclasses), `expand` (templates within a budget) and `checks` (the tree's safety rules).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

from voiceskill.cache import cache_dir, keep_recent, read_json, write_atomic
from voiceskill.content.checks import tree_problems
from voiceskill.content.expand import (
    ExpansionBudget,
    expand_template,
    flag_phrase_keys,
    flag_phrases,
    lexicon_rules,
    parse_rules,
    swapped_sentences,
    together_keys,
)
from voiceskill.content.model import (
    Concept,
    ContextRules,
    Lexicon,
    Node,
    NotMuscle,
    OwnBody,
    RedFlag,
    SourceRef,
)
from voiceskill.content.schema import (
    ACTIONS,
    ANSWERS,
    CONTENT_FILES,
    CONTRACT_INTENTS,
    DIALOGUE_FILE,
    DIALOGUE_SCHEMA,
    EXAMPLES_FILE,
    EXAMPLES_SCHEMA,
    INTENTS_FILE,
    INTENTS_SCHEMA,
    LASTING_STATUSES,
    LEXICON_FILE,
    LEXICON_SCHEMA,
    OPTIONAL_FILES,
    RED_FLAGS_FILE,
    RED_FLAGS_SCHEMA,
)
from voiceskill.content.yamlsafe import ContentError, Document, Problem, read_yaml, schema_problems
from voiceskill.packaged import data_folder
from voiceskill.text import normalize

CACHE_FORMAT = "4"  # bump when what is built from the content changes, to invalidate caches


# --- the loaded content ---------------------------------------------------------------------


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
        training sentences (so it can hear "charley horse"), the red-flag phrases (so it
        can hear "my words are coming out wrong"), and examples.yaml's sentences as people
        say them, each kind one group of its own (so it can follow chatty speech: beside
        the intents, not inside them, they leave a plain "nope" as sure as it was); not the
        parts said `together`, whose words the phrases already have, as every sentence here
        costs a replay memory."""
        flags = tuple(phrase for flag in self.red_flags for phrase in flag.phrases)
        examples = tuple(text for texts in self.examples.values() for text in texts)
        references = tuple(text for flag in self.red_flags
                           for texts in flag.references.values() for text in texts)
        return {**self.training_sentences(), "red_flags": flags, "examples": examples,
                "references": references}


def _expand_intents(doc: Document, lexicon: Lexicon, budget: ExpansionBudget
                    ) -> tuple[dict[str, tuple[str, ...]], list[Problem]]:
    rules = {**lexicon_rules(lexicon), **(doc.data.get("expansion_rules") or {})}
    rules, problems = parse_rules(doc, rules)
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


def _red_flags(doc: Document, phrases: Mapping[str, list[str]],
               references: Mapping[str, Mapping[str, Sequence[str]]]) -> tuple[RedFlag, ...]:
    flags = []
    for name, flag in doc.data["flags"].items():
        examples = {kind: tuple(texts) for kind, texts in (flag.get("examples") or {}).items()}
        said_like = {kind: tuple(texts) for kind, texts in references.get(name, {}).items()}
        together = tuple(tuple(phrases[key]) for key in together_keys(name, flag))
        flags.append(RedFlag(name, flag["goto"], flag["confirm"], tuple(phrases[name]), examples,
                             tuple(flag["phrases"]), flag.get("max_gap"),
                             dict(flag.get("becomes") or {}), said_like, together,
                             tuple(map(tuple, flag.get("together", ()))),
                             flag.get("by_meaning", True)))
    return tuple(flags)


def _examples(doc: Document | None, intents: Mapping[str, tuple[str, ...]],
              flags_doc: Document) -> tuple[dict, dict, list[Problem]]:
    """examples.yaml (optional): sentences per intent and per red flag, normalized, each
    naming an intent or flag that exists (that none is another intent's sentence is checked
    when the content is expanded, `_example_clashes`)."""
    if doc is None:
        return {}, {}, []
    problems: list[Problem] = []
    examples: dict[str, tuple[str, ...]] = {}
    for name, texts in (doc.data.get("intents") or {}).items():
        if name not in intents:
            problems.append(doc.problem(("intents", name), f"examples of unknown intent '{name}'"))
            continue
        examples[name] = _words(texts)
    references = {}
    for name, kinds in (doc.data.get("red_flags") or {}).items():
        if name not in flags_doc.data["flags"]:
            message = f"references of unknown red flag '{name}'"
            problems.append(doc.problem(("red_flags", name), message))
            continue
        references[name] = {kind: _words(texts) for kind, texts in kinds.items()}
    return examples, references, problems


def _example_clashes(doc: Document | None, intents: Mapping[str, tuple[str, ...]]
                     ) -> list[Problem]:
    """Examples with no words, or that are another intent's sentence."""
    if doc is None:
        return []
    problems = []
    owner = {sentence: name for name, sentences in intents.items() for sentence in sentences}
    for name, texts in (doc.data.get("intents") or {}).items():
        for index, text in enumerate(texts if name in intents else ()):
            sentence = normalize(text)
            other = owner.setdefault(sentence, name)
            if not sentence or other != name:
                why = f"is also a sentence of '{other}'" if sentence else "has no words"
                problems.append(doc.problem(("intents", name, index), f"example '{text}' {why}"))
    return problems


def _words(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(filter(None, map(normalize, items))))


def _context(doc: Document) -> ContextRules:
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
        hedges=frozenset(_words(rules.get("hedges", []))),
        things=_words(rules.get("things", [])),
        thing_links=frozenset(_words(rules.get("thing_links", []))),
        onset=_words(rules.get("onset", [])),
        naming=_words(rules.get("naming", [])),
        topic_before=_words(rules.get("topic_before", [])),
        topic_after=_words(rules.get("topic_after", [])),
        asides=_words(rules.get("asides", [])),
        said_for={said: word for word, ways in rules.get("said_for", {}).items()
                  for said in _words(ways)},
        left_out=frozenset(_words(rules.get("left_out", []))),
    )


def _lexicon(doc: Document) -> Lexicon:
    data = doc.data
    concepts = {
        name: Concept(name, _words(spec["terms"]), spec.get("domain", False),
                      spec.get("swap", True), spec.get("veto", False),
                      spec.get("task", False), spec.get("courtesy", False))
        for name, spec in data["concepts"].items()
    }
    numbers = {key: {normalize(word): value for word, value in (data.get(key) or {}).items()}
               for key in ("time_units", "quantities", "since")}
    return Lexicon(concepts, **numbers, under=_words(data.get("under", [])),
                   frequency=_words(data.get("frequency", [])),
                   own_body=_own_body(data.get("own_body")),
                   not_muscle=_not_muscle(data.get("not_muscle")),
                   pronunciations=dict(data.get("pronunciations") or {}))


def _own_body(spec: dict | None) -> OwnBody:
    return OwnBody(_words(spec["words"]), tuple(spec["concepts"])) if spec else OwnBody()


def _not_muscle(spec: dict | None) -> NotMuscle:
    return NotMuscle(tuple(spec["concepts"]), tuple(spec["unless"])) if spec else NotMuscle()


def _body_problems(doc: Document, lexicon: Lexicon) -> list[Problem]:
    named = {("own_body", "concepts"): lexicon.own_body.concepts,
             ("not_muscle", "concepts"): lexicon.not_muscle.concepts,
             ("not_muscle", "unless"): lexicon.not_muscle.unless}
    return [doc.problem(path, f"no lexicon concept named '{concept}'")
            for path, concepts in named.items() for concept in concepts
            if concept not in lexicon.concepts]


def _intent_needs(doc: Document, lexicon: Lexicon) -> tuple[dict, list[Problem]]:
    """Intents that count only when the sentence names one of these lexicon concepts."""
    needs, problems = {}, []
    for name, intent in doc.data["intents"].items():
        for concept in intent.get("needs", ()):
            if concept not in lexicon.concepts:
                path = ("intents", name, "needs")
                problems.append(doc.problem(path, f"no lexicon concept named '{concept}'"))
        needs[name] = frozenset(intent.get("needs", ()))
    return {name: found for name, found in needs.items() if found}, problems


def _intent_kinds(doc: Document) -> tuple[dict[str, str], dict[str, str], list[Problem]]:
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


_SCHEMAS = (INTENTS_SCHEMA, DIALOGUE_SCHEMA, LEXICON_SCHEMA, RED_FLAGS_SCHEMA, EXAMPLES_SCHEMA)


def fingerprint(folder: Path) -> str:
    """A hash of the content files and of the schemas they were validated against: caches
    built from the content are keyed by it."""
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    digest.update(json.dumps(_SCHEMAS, sort_keys=True).encode())
    for name in (*CONTENT_FILES, *OPTIONAL_FILES):
        path = Path(folder) / name
        digest.update(name.encode() + b"\0" + (path.read_bytes() if path.is_file() else b""))
    return digest.hexdigest()[:20]


# --- entry points ---------------------------------------------------------------------------


def default_folder() -> Path:
    """The content shipped with the package, or `intents/` of a source checkout."""
    return data_folder("intents")


_CACHED = ("intents", "swapped", "flags", "examples", "references")


class _Expansions(NamedTuple):
    """What the content's YAML expands to, cached by its fingerprint."""

    intents: dict[str, list[str]]
    swapped: dict[str, list[str]]
    flags: dict[str, list[str]]
    examples: dict[str, list[str]]  # normalised, as `_examples` gives them
    references: dict[str, dict[str, list[str]]]
    problems: list[Problem]


def _cache_path(content_fingerprint: str) -> Path:
    """Where the expansion of exactly this content is cached."""
    return cache_dir() / f"content-{content_fingerprint}.json"


def _cached_expansions(content_fingerprint: str,
                       docs: Mapping[str, Document]) -> _Expansions | None:
    """The expansion cached for exactly this content, or None. It is written only for content
    that passed every check, so content that has one is not validated again: validating
    takes a sixth of a `voiceskill ask`."""
    path = _cache_path(content_fingerprint)
    cached = read_json(path)
    try:
        whole = bool(cached) and _whole_expansions(cached, docs)
    except (KeyError, TypeError, AttributeError):  # YAML of another shape: validate it
        whole = False
    if not whole:
        return None
    keep_recent(path, "content")
    return _Expansions(**{key: cached[key] for key in _CACHED}, problems=[])


def _expand(content_fingerprint: str, folder: Path, docs: Mapping[str, Document],
            lexicon: Lexicon) -> _Expansions:
    """Expanded sample sentences, their lexicon swaps, the red-flag phrases and the examples
    (normalised, checked against the sentences); cached by the content's fingerprint, since
    expanding takes longer than answering a question. examples.yaml, the largest file, is
    read and validated only to build the cache: its bytes are in the fingerprint."""
    path = _cache_path(content_fingerprint)
    examples_doc = read_yaml(folder / EXAMPLES_FILE) if (folder / EXAMPLES_FILE).exists() else None
    if examples_doc and (problems := schema_problems(examples_doc, EXAMPLES_SCHEMA)):
        raise ContentError(problems)
    budget = ExpansionBudget()
    intents, problems = _expand_intents(docs[INTENTS_FILE], lexicon, budget)
    flags, flag_problems = flag_phrases(docs[RED_FLAGS_FILE], budget)
    examples, references, example_problems = _examples(examples_doc, intents,
                                                       docs[RED_FLAGS_FILE])
    problems += flag_problems + _example_clashes(examples_doc, intents) + example_problems
    swapped = {name: swapped_sentences(sentences, lexicon) for name, sentences in intents.items()}
    made = _Expansions(intents, swapped, flags, examples, references, problems)
    if not problems:
        write_atomic(path, json.dumps({key: getattr(made, key) for key in _CACHED}).encode())
        keep_recent(path, "content")
    return made


def _whole_expansions(cached: dict, docs: Mapping[str, Document]) -> bool:
    """Whether a cached expansion holds, for every intent and every red flag of the content and
    nothing else, a list of sentences, and examples only of those: a damaged or doctored one
    is rebuilt from the YAML, never blamed on it."""
    intents = set(docs[INTENTS_FILE].data["intents"])
    flags = set(docs[RED_FLAGS_FILE].data["flags"])
    expected = {"intents": intents, "swapped": intents,
                "flags": flag_phrase_keys(docs[RED_FLAGS_FILE])}
    return set(cached) == set(_CACHED) and all(
        isinstance(table := cached[key], dict) and set(table) == names
        and all(_texts(texts) for texts in table.values())
        for key, names in expected.items()
    ) and (isinstance(examples := cached["examples"], dict) and set(examples) <= intents
           and all(_texts(texts) for texts in examples.values())
           ) and (isinstance(references := cached["references"], dict)
                  and set(references) <= flags
                  and all(isinstance(kinds, dict) and all(_texts(texts)
                                                          for texts in kinds.values())
                          for kinds in references.values()))


def _texts(texts: object) -> bool:
    return isinstance(texts, list) and all(isinstance(text, str) for text in texts)


def load_content(folder: Path | None = None, *, strict: bool = True) -> Content:
    """Read, validate and expand the YAML in `folder`; raise ContentError listing every problem.

    With strict=False, content whose shape is sound but whose tree is flawed (dangling or
    unreachable nodes, bad triage) is returned with its `problems`, so a reviewer can see them.
    """
    folder = Path(folder) if folder else default_folder()
    if not folder.is_dir():
        raise ContentError([Problem(folder, 1, "content folder not found")])
    docs = {name: read_yaml(folder / name) for name in CONTENT_FILES}
    intents_doc, dialogue_doc = docs[INTENTS_FILE], docs[DIALOGUE_FILE]
    lexicon_doc, flags_doc = docs[LEXICON_FILE], docs[RED_FLAGS_FILE]
    content_fingerprint = fingerprint(folder)
    cached = _cached_expansions(content_fingerprint, docs)
    if cached is None:
        problems = schema_problems(intents_doc, INTENTS_SCHEMA)
        problems += schema_problems(dialogue_doc, DIALOGUE_SCHEMA)
        problems += schema_problems(lexicon_doc, LEXICON_SCHEMA)
        problems += schema_problems(flags_doc, RED_FLAGS_SCHEMA)
        if problems:
            raise ContentError(problems)
    lexicon = _lexicon(lexicon_doc)
    if body_problems := _body_problems(lexicon_doc, lexicon):
        raise ContentError(body_problems)
    intents, swapped, phrases, examples, references, problems = cached or _expand(
        content_fingerprint, folder, docs, lexicon)
    actions, answers, kind_problems = _intent_kinds(intents_doc)
    needs, need_problems = _intent_needs(intents_doc, lexicon)
    problems += kind_problems + need_problems
    nodes = _build_nodes(dialogue_doc.data)
    problems += tree_problems(dialogue_doc, nodes, intents, flags_doc, lexicon)
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
        examples={name: tuple(texts) for name, texts in examples.items()},
    )
