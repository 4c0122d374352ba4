"""The parts of loaded content: nodes of the dialogue tree, red flags with their ConText
rules, and the lexicon's concepts (the whole, `Content`, is built in `voiceskill.content`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field


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
    phrases: tuple[str, ...]  # expanded and normalized (text.normalize)
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
    together: tuple[tuple[str, ...], ...] = ()
    """Parts said in one turn, in any order and at any distance ("I quit the booze on Monday
    ... I keep hearing voices"): a cause, which may be told as past, then signs happening."""
    together_templates: tuple[tuple[str, ...], ...] = ()  # the parts as written
    by_meaning: bool = True
    """Whether a sentence only meaning it is asked about ("Did you say ...?"). Not for a sign
    that is a matter of how long it lasted, which only words say: an ordinary cramp "locked
    solid right now" reads near "a cramp that won't ease for an hour"."""


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
    hedges: frozenset[str] = frozenset()  # may part a negation from its word: "can't even"
    things: tuple[str, ...] = ()  # subjects that are no person: a phone, a pet
    thing_links: frozenset[str] = frozenset()  # words between such a subject and its sign
    onset: tuple[str, ...] = ()  # "since": a time said after it dates a start, not an end
    naming: tuple[str, ...] = ()  # "what is": a sign named right after it is asked about
    topic_before: tuple[str, ...] = ()  # "a lecture on": a sign named right after is a subject
    topic_after: tuple[str, ...] = ()  # "lecture": a sign named right before it is a subject
    asides: tuple[str, ...] = ()  # "anyway": what was said before it is by the way
    # a word as some say it, for the word a phrase has: {"me": "my"} ("a cramp in me chest")
    said_for: Mapping[str, str] = field(default_factory=dict)
    # words some leave out of a phrase: "pain in middle of chest" is "in the middle of my chest"
    left_out: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Concept:
    name: str
    terms: tuple[str, ...]
    domain: bool = False
    swap: bool = True
    veto: bool = False
    task: bool = False
    courtesy: bool = False


@dataclass(frozen=True)
class OwnBody:
    """One of `words` right before a term of one of `concepts` names the speaker's own body
    ("my lower back"): a veto concept beside it is only where it happened."""

    words: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()


@dataclass(frozen=True)
class NotMuscle:
    """Complaints of the body that are not its muscles' (an itch, a mole, a tooth): a sentence
    naming one of `concepts` asks about something else, on the speaker's own body too, unless
    it also names one of `unless` ("my leg itches and twitches")."""

    concepts: tuple[str, ...] = ()
    unless: tuple[str, ...] = ()


@dataclass(frozen=True)
class Lexicon:
    """Lay words grouped into concepts, and the words that say how long something lasted."""

    concepts: Mapping[str, Concept]
    time_units: Mapping[str, float] = field(default_factory=dict)
    quantities: Mapping[str, float] = field(default_factory=dict)
    since: Mapping[str, float] = field(default_factory=dict)
    under: tuple[str, ...] = ()
    frequency: tuple[str, ...] = ()
    own_body: OwnBody = field(default_factory=OwnBody)
    not_muscle: NotMuscle = field(default_factory=NotMuscle)
    pronunciations: Mapping[str, str] = field(default_factory=dict)
