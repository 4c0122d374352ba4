"""Red flags found by meaning, for signs said in words no phrase rule knows.

The phrase rules (`redflags.py`) escalate on the words someone might use; people use others
("the corner of his mouth won't move").  Each clause of what was said, and the whole of it,
is compared as a sentence embedding (`embedding.py`) with every flag's phrases and with
sentences that are not a sign: the flags' denied, asked-about and past examples, ordinary
questions of this skill, and each phrase with its negation taken out ("can breathe"), as
embeddings hardly see "not".  A clause is a *possible* sign when

- it is nearer one flag's phrases than to anything else, and at least SIMILARITY_FLOOR;
- it shares a distinctive word with that flag's phrases (a word ordinary questions rarely
  use), so a sentence is never a sign by its tone alone;
- the ConText rules say that word is happening now, not denied, past or asked about.

Only flags that escalate (urgent or emergency) are looked for, and not one that is a matter
of how long it lasted (`by_meaning`).  A possible sign is never escalated on: the dialogue
asks "Did you say ...?" (the flag's `confirm`), so a false alarm costs one question and a
true one one turn.

The same sentences also teach whether something *reads as* a sign said to be happening
(`said_happening`): a logistic regression on the embedding, from the flags' present examples
and references against their denied, asked-about and past examples, their not-a-sign
references ("I had a fit of the giggles") and the domain's example questions. The phrase
rules find the words; this judges the whole sentence, which phrase lists never finish doing.
"""

from __future__ import annotations

import hashlib
import heapq
import io
import itertools
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiceskill.cache import cache_dir, keep_recent, load_arrays, write_atomic
from voiceskill.content import Content
from voiceskill.nlu.embedding import DIMENSION, SentenceEncoder
from voiceskill.nlu.redflags import PRESENT, RedFlagSpotter, stem
from voiceskill.text import tokens

log = logging.getLogger(__name__)
SIMILARITY_FLOOR = 0.5
PHRASES_PER_FLAG = 150
ORDINARY_SENTENCES = 3000
COMMON_WORD_SHARE = 0.02
"""A word found in more of the ordinary sentences than this ("my", "leg", "cramp") says
nothing about which sign is meant."""
INDEX_FORMAT = "8"  # bump when what build_index makes changes, so old caches are not read
NOT_A_SIGN = -1
AMONG_MARGIN = 0.1
"""How much less near than a span's nearest of all its nearest wanted flag may be: beside an
urgent sign said outright, an emergency meant nearly as clearly is still asked about."""
ESCALATING = ("urgent", "emergency")
SAID_C = 4.0  # the assertion model's regularisation (scikit-learn's C)
ANSWERED_SENTENCES = 1500  # of its sentences, also learned said after a yes or a no
INABILITY_REACH = 3
"""How far before a sign's word a "not" may be part of the sign ("not able to speak")."""
OPPOSITES = {"can't": "can", "cannot": "can", "won't": "will", "couldn't": "could"}


@dataclass(frozen=True)
class SignIndex:
    """Embedded sentences labelled with the flag they say, or NOT_A_SIGN, sorted by label,
    and each flag's distinctive word stems."""

    flags: tuple[str, ...]
    vectors: np.ndarray  # sentences x dimensions, unit length
    labels: np.ndarray  # sentences, ascending: NOT_A_SIGN, then flag indices
    distinctive: tuple[frozenset[str], ...]
    after_negation: tuple[frozenset[str], ...]  # "not:speak": stems a phrase puts after a negation
    said_coef: np.ndarray  # dimensions: the assertion model's weights
    said_intercept: np.ndarray  # one value

    def save(self, path: Path) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, flags=np.array(self.flags), vectors=self.vectors, labels=self.labels,
                 distinctive=np.array([" ".join(sorted(d)) for d in self.distinctive]),
                 after_negation=np.array([" ".join(sorted(d)) for d in self.after_negation]),
                 said_coef=self.said_coef, said_intercept=self.said_intercept)
        write_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> SignIndex:
        """The index cached at `path`; ValueError unless its arrays have the shapes, types and
        values `find` relies on (a damaged or doctored file is rebuilt, never used)."""
        return load_arrays(
            path, lambda data: cls(
                tuple(str(f) for f in data["flags"]), data["vectors"], data["labels"],
                tuple(frozenset(str(d).split()) for d in data["distinctive"]),
                tuple(frozenset(str(d).split()) for d in data["after_negation"]),
                data["said_coef"], data["said_intercept"]),
            cls._whole, "sign index")

    def _whole(self) -> bool:
        vectors, labels = self.vectors, self.labels
        return (len(self.flags) == len(self.distinctive) == len(self.after_negation)
                and vectors.ndim == 2 and vectors.shape[1:] == (DIMENSION,)
                and len(vectors) > 0 and vectors.dtype.kind == "f" and np.isfinite(vectors).all()
                and labels.shape == (len(vectors),) and labels.dtype.kind == "i"
                and bool(np.all(labels[1:] >= labels[:-1]))  # ascending: one block per label
                and labels[0] >= NOT_A_SIGN and labels[-1] < len(self.flags)
                and self.said_coef.shape == (DIMENSION,) and self.said_intercept.shape == ()
                and all(a.dtype.kind == "f" and np.isfinite(a).all()
                        for a in (self.said_coef, self.said_intercept)))


class SimilarSigns:
    """Possible red flags in a transcript, found by meaning and asserted by ConText."""

    def __init__(self, content: Content, spotter: RedFlagSpotter, encoder: SentenceEncoder):
        self._spotter = spotter
        self._encoder = encoder
        path = index_path(content, encoder.fingerprint)
        try:
            self._index = SignIndex.load(path)
        except (OSError, ValueError, KeyError, EOFError):  # missing or damaged: build again
            log.info("embedding the red-flag phrases for this content (once)")
            self._index = build_index(content, spotter, encoder)
            self._index.save(path)
        keep_recent(path, "signs")
        labels = self._index.labels
        self._any_distinctive = frozenset().union(*self._index.distinctive)
        self._blocks = np.flatnonzero(np.r_[True, labels[1:] != labels[:-1]])
        self._block_labels = labels[self._blocks]

    def nearest(self, meaning: np.ndarray, floor: float = SIMILARITY_FLOOR) -> str | None:
        """The flag whose phrases are nearest to a sentence of this `meaning`, or None below
        `floor` or when it is most like something that is not a sign."""
        scores = np.maximum.reduceat(self._index.vectors @ meaning, self._blocks)
        top = int(np.argmax(scores))
        label = int(self._block_labels[top])
        return None if label == NOT_A_SIGN or scores[top] < floor else self._index.flags[label]

    def said_happening(self, meaning: np.ndarray) -> float:
        """How likely (0..1) a sentence of this `meaning` tells of a sign happening now, as
        opposed to a question, a denial, the past or a figure of speech."""
        score = float(self._index.said_coef @ meaning + self._index.said_intercept)
        return 1.0 / (1.0 + np.exp(-score))

    def find(self, transcript: str, meaning: np.ndarray, floor: float = SIMILARITY_FLOOR,
             explained: frozenset[int] = frozenset(),
             among: frozenset[str] | None = None) -> tuple[str, ...]:
        """The flags the transcript may be saying are happening; `meaning` is the embedding
        of the whole transcript, and its clauses, when there are several, are embedded here.
        Words at `explained` positions were read as another sign, and words of a decoy
        ("I'm breathing fine") as none: they are no evidence of this one. With `among`, only
        those flags are looked for: in each span the nearest of them, if no more than
        AMONG_MARGIN further than the nearest of all."""
        words, starts = self._spotter.words_and_clauses(transcript)
        stems = [stem(word) for word in words]
        ignored = explained | self._spotter.decoyed(words)
        clauses = [(a, b) for a, b in itertools.pairwise(starts) if b > a]
        if len(clauses) < 2:
            clauses = []
        # A clause with no distinctive word of any flag can show none (below), so it is not
        # embedded: on long turns that is most of the time understanding takes.
        clauses = [(a, b) for a, b in clauses
                   if any(stems[i] in self._any_distinctive and i not in ignored
                          for i in range(a, b))]
        spans = [(0, len(words)), *clauses]
        vectors = np.vstack([meaning, self._encoder.encode([" ".join(words[a:b])
                                                            for a, b in clauses])])
        best = np.maximum.reduceat(vectors @ self._index.vectors.T, self._blocks, axis=1)
        found = []
        wanted = (None if among is None else
                  np.isin(self._block_labels, [self._index.flags.index(n) for n in among]))
        for (first, last), scores in zip(spans, best, strict=False):
            top = int(np.argmax(scores))
            if wanted is not None:
                nearest = int(np.argmax(np.where(wanted, scores, -np.inf)))
                if scores[top] - scores[nearest] > AMONG_MARGIN:
                    continue
                top = nearest
            label = int(self._block_labels[top])
            if label == NOT_A_SIGN or scores[top] < floor:
                continue
            distinctive = self._index.distinctive[label]
            positions = [i for i in range(first, last)
                         if stems[i] in distinctive and i not in ignored]
            # "not able to speak": the "not" is part of the sign, as in the flag's phrases,
            # when said the same way ("never felt pain like this" is not "no pain")
            negated = self._index.after_negation[label]
            positions = sorted({*positions, *(i - k for i in positions
                                              for k in range(1, INABILITY_REACH + 1)
                                              if i - k >= first
                                              and self._spotter.negates(words[i - k])
                                              and _negated(words[i - k], stems[i]) in negated)})
            if positions and self._spotter.status_of(words, starts, positions) == PRESENT:
                found.append(self._index.flags[label])
        return tuple(dict.fromkeys(found))


def index_path(content: Content, encoder_fingerprint: str) -> Path:
    """Where the index for exactly this content, embedding model and way of building it is
    cached."""
    settings = (f"{INDEX_FORMAT}-{PHRASES_PER_FLAG}-{ORDINARY_SENTENCES}-{SAID_C:g}-"
                f"{ANSWERED_SENTENCES}")
    return cache_dir() / f"signs-{content.fingerprint}-{encoder_fingerprint}-{settings}.npz"


def build_index(content: Content, spotter: RedFlagSpotter,
                encoder: SentenceEncoder) -> SignIndex:
    """Embed every flag's phrases and the sentences that are not a sign; learn from the
    sentences (not the phrases, which are fragments) how a sign said to be happening reads."""
    flags = tuple(flag.name for flag in content.red_flags)
    # (text, label, said): `said` is what the assertion model learns the text as, None: nothing
    labelled: list[tuple[str, int, bool | None]] = []
    for label, flag in enumerate(content.red_flags):
        # A flag that does not escalate is nothing to confirm; one only words can say
        # (`by_meaning` false) is never asked about by meaning.
        sign = (label if content.nodes[flag.goto].outcome in ESCALATING and flag.by_meaning
                else NOT_A_SIGN)
        labelled += [(text, sign, None) for text in thinned(flag.phrases, PHRASES_PER_FLAG)]
        labelled += [(text, sign, True) for text in [*flag.examples.get("present", ()),
                                                      *flag.references.get("present", ())]]
        unsaid = [*(t for kind in ("negated", "question", "past")
                    for t in flag.examples.get(kind, ())),
                  *flag.references.get("not_a_sign", ())]
        labelled += [(text, NOT_A_SIGN, False) for text in unsaid]
        labelled += [(text, NOT_A_SIGN, None)
                     for text in filter(None, map(_without_negation, flag.phrases))]
    samples, examples = _ordinary_sentences(content, spotter)
    ordinary = thinned(samples, ORDINARY_SENTENCES)
    labelled += [(text, NOT_A_SIGN, None) for text in ordinary]
    labelled += [(text, NOT_A_SIGN, False) for text in examples]
    ordinary_words = _common_stems(ordinary) | _trigger_stems(content)
    distinctive = tuple(
        frozenset(stem(w) for p in flag.phrases for w in tokens(p)) - ordinary_words
        for flag in content.red_flags)
    after_negation = tuple(frozenset(pair for pair in _after_negation(flag.phrases, spotter)
                                     if pair.split(":")[1] in distinctive[i])
                           for i, flag in enumerate(content.red_flags))
    labelled.sort(key=lambda item: item[1])  # stable: each label's sentences in one block
    vectors = encoder.encode([text for text, _, _ in labelled])
    answered = as_answers(content, [(text, said) for text, _, said in labelled
                                    if said is not None])
    learned = [said for _, _, said in labelled] + [said for _, said in answered]
    coef, intercept = _train_said(
        np.vstack([vectors, encoder.encode([text for text, _ in answered])]), learned)
    return SignIndex(flags, vectors, np.array([label for _, label, _ in labelled], np.int32),
                     distinctive, after_negation, coef, intercept)


def as_answers(content: Content, sentences: list[tuple[str, bool]]
              ) -> list[tuple[str, bool]]:
    """Some of `sentences` said after a yes or a no ("yes and my chest hurts", "no but ..."):
    a sign is told in answer to a triage question as often as on its own, and the assertion
    model must not learn that an answer word makes a sentence an answer, not a sign."""
    replies = [sample for intent in content.answers for sample in content.intents[intent]]
    if not replies:
        return []
    chosen = heapq.nsmallest(ANSWERED_SENTENCES, sentences, key=lambda pair: _draw(pair[0]))
    return [(f"{_pick(replies, 'reply ' + text)} {_pick(('and', 'but', ''), 'joint ' + text)} "
             f"{text}", said) for text, said in chosen]


def _train_said(vectors: np.ndarray, said: list[bool | None]) -> tuple[np.ndarray, np.ndarray]:
    """Logistic regression weights for "a sign said to be happening" on the sentences whose
    `said` is known; with no sentence of one kind (a small content), every sentence reads as
    even odds, so nothing the rules find is doubted and nothing unfound is taken as sure."""
    known = [i for i, value in enumerate(said) if value is not None]
    targets = np.array([said[i] for i in known], dtype=int)
    if len(set(targets)) < 2:
        return np.zeros(DIMENSION, np.float32), np.array(0.0, np.float32)
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression(C=SAID_C, max_iter=3000, class_weight="balanced")
    model.fit(vectors[known], targets)
    return model.coef_[0].astype(np.float32), np.array(model.intercept_[0], np.float32)


def _ordinary_sentences(content: Content, spotter: RedFlagSpotter
                        ) -> tuple[list[str], list[str]]:
    """The domain's questions that name no sign said to be happening: sample sentences
    (thinned) and the examples of examples.yaml (every one kept, as they are few and word
    things as nobody's template does)."""
    questions = frozenset(intent for intent, node in content.routes.items()
                          if content.nodes[node].outcome != "emergency")
    samples = [sentence for intent, texts in content.training_sentences().items()
               if intent in questions for sentence in texts]
    examples = [sentence for intent, texts in content.examples.items()
                if intent in questions for sentence in texts]

    def unsaid(sentences: list[str]) -> list[str]:
        return [s for s in sentences if not any(f.status == PRESENT for f in spotter.spot(s))]

    return unsaid(thinned(samples, 3 * ORDINARY_SENTENCES)), unsaid(examples)


def _common_stems(sentences: list[str]) -> frozenset[str]:
    counts: dict[str, int] = {}
    for sentence in sentences:
        for word_stem in {stem(word) for word in tokens(sentence)}:
            counts[word_stem] = counts.get(word_stem, 0) + 1
    limit = COMMON_WORD_SHARE * len(sentences)
    return frozenset(word_stem for word_stem, count in counts.items() if count > limit)


def _trigger_stems(content: Content) -> frozenset[str]:
    """The words of the ConText triggers: they say how a sign is meant, never which."""
    rules = content.context
    phrases = [*rules.terminators, *rules.pseudo, *rules.present, *rules.question_starts,
               *rules.question_backward,
               *(t for table in (rules.forward, rules.backward) for ts in table.values()
                 for t in ts)]
    return frozenset(stem(word) for phrase in phrases for word in tokens(phrase))


def _after_negation(phrases: tuple[str, ...], spotter: RedFlagSpotter) -> set[str]:
    """The stems that follow a negation within INABILITY_REACH words in some phrase, each
    with that negation (`_negated`)."""
    found = set()
    for phrase in phrases:
        words = tokens(phrase)
        for i, word in enumerate(words):
            if spotter.negates(word):
                following = words[i + 1 : i + 1 + INABILITY_REACH]
                found.update(_negated(word, stem(w)) for w in following)
    return found


def _negated(negation: str, word_stem: str) -> str:
    """ "not:speak" for "can't speak", "not able to speak" or "cannot speak" alike; "no:pain"
    and "never:pain" apart, as "no pain" denies what "never felt pain like this" tells."""
    kind = "not" if negation in ("not", "cannot") or negation.endswith("n't") else negation
    return f"{kind}:{word_stem}"


def _without_negation(phrase: str) -> str:
    """ "can't breathe" -> "can breathe": the phrase's opposite, or "" if it has no "not"."""
    words = tokens(phrase)
    opened = [OPPOSITES.get(w, w[:-3] if w.endswith("n't") else w) for w in words
              if w not in ("not", "no", "never")]
    return " ".join(opened) if opened != words else ""


def thinned(items, most: int) -> list:
    """At most `most` of `items`: those whose text draws lowest (`_draw`). Expansions come in
    combinatorial order, so every n-th would keep some words and never others."""
    items = list(items)
    return heapq.nsmallest(most, items, key=_draw) if len(items) > most else items


def _draw(text: str) -> bytes:
    """A sentence's place in every draw, from its text alone: one sentence added to the
    content changes at most one sentence drawn, where a seeded random draw would draw anew,
    and the assertion model, retrained on other sentences, would move on unrelated ones."""
    return hashlib.blake2b(text.encode(), digest_size=8).digest()


def _pick(options, text: str):
    """One of `options`, the same for the same `text` every time (`_draw`)."""
    return options[int.from_bytes(_draw(text), "big") % len(options)]
