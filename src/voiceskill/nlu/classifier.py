"""Intent classification that generalises beyond the nearest sample sentence.

A linear model (scikit-learn's logistic regression) is trained on the expanded sample
sentences of `intents/`, with lexicon terms swapped in.  It sees each sentence two ways:

- its words: words, word pairs (with a start marker, so "why ..." and "... why" differ) and
  the lexicon concepts found in it, as TF-IDF features: "my calf locked up" shares the
  concepts `body_part` and `spasm` with "my leg has a cramp";
- its meaning: the sentence embedding (`embedding.py`), so "me leg's gone solid" is near
  "my leg has a cramp" although they share no word.  This is what carries phrasing nobody
  wrote a template for (docs/understanding.md has the measurements).

Training takes a minute, so the model is cached by the content's fingerprint and the
embedding model's, as plain arrays: answering a question needs only numpy (importing
scikit-learn alone would cost most of the start-up budget of `voiceskill ask`).
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from voiceskill.cache import cache_dir, keep_recent, load_arrays, write_atomic
from voiceskill.content import Content
from voiceskill.content.model import Lexicon
from voiceskill.nlu.embedding import DIMENSION, SentenceEncoder
from voiceskill.text import tokens

log = logging.getLogger(__name__)
MAX_SAMPLES_PER_INTENT = 1500
REGULARISATION_C = 4.0
EXAMPLE_WEIGHT = 5.0
"""How much more a sentence written as someone would say it (examples.yaml) counts in
training than one expanded from a template: there are few of them, and they carry the
phrasing templates lack."""


class ConceptFinder:
    """Lexicon concepts in a normalized sentence, longest term first."""

    def __init__(self, lexicon: Lexicon):
        self._concept_of = {" ".join(tokens(term)): concept.name
                            for concept in lexicon.concepts.values() for term in concept.terms}
        self._longest = max((len(t.split()) for t in self._concept_of), default=1)
        self.domain = frozenset(name for name, c in lexicon.concepts.items() if c.domain)
        self.veto = frozenset(name for name, c in lexicon.concepts.items() if c.veto)
        self.task = frozenset(name for name, c in lexicon.concepts.items() if c.task)
        self.courtesy = frozenset(name for name, c in lexicon.concepts.items() if c.courtesy)
        self._own_words = frozenset(lexicon.own_body.words)
        self._body = frozenset(lexicon.own_body.concepts)
        self.not_muscle = frozenset(lexicon.not_muscle.concepts)
        self.muscle = frozenset(lexicon.not_muscle.unless)

    def find(self, words: list[str]) -> list[str]:
        return [concept for concept, _ in self._spans(words)]

    def names_own_body(self, words: list[str]) -> bool:
        """Whether the sentence names the speaker's own body ("my lower back"): a veto word
        beside it (the van, the kitchen) is then only where it happened."""
        return any(self._term_at(words, index + 1)[0] in self._body
                   for index, word in enumerate(words) if word in self._own_words)

    def courtesy_words(self, words: list[str]) -> int:
        """How many of `words` are only politeness ("please", "could you")."""
        return sum(size for concept, size in self._spans(words) if concept in self.courtesy)

    def _spans(self, words: list[str]) -> list[tuple[str, int]]:
        """Each term found, as (its concept, its length in words)."""
        found, index = [], 0
        while index < len(words):
            concept, size = self._term_at(words, index)
            if concept:
                found.append((concept, size))
                index += size
            else:
                index += 1
        return found

    def _term_at(self, words: list[str], index: int) -> tuple[str | None, int]:
        """The concept of the longest term starting at `index`, and its length in words."""
        for size in range(min(self._longest, len(words) - index), 0, -1):
            concept = self._concept_of.get(" ".join(words[index : index + size]))
            if concept:
                return concept, size
        return None, 0


def features(words: list[str], concepts: list[str]) -> list[str]:
    """The classifier's view of a sentence."""
    marked = ["<s>", *words]
    return ([f"w:{w}" for w in words]
            + [f"b:{a}_{b}" for a, b in itertools.pairwise(marked)]
            + [f"c:{c}" for c in concepts])


@dataclass(frozen=True)
class LinearModel:
    """Multinomial logistic regression weights over word features and the embedding."""

    classes: tuple[str, ...]
    vocabulary: dict[str, int]
    idf: np.ndarray
    coef: np.ndarray  # classes x word features
    meaning_coef: np.ndarray  # classes x embedding dimensions
    intercept: np.ndarray

    def probabilities(self, feats: list[str], meaning: np.ndarray) -> np.ndarray:
        """TF-IDF with sublinear tf and l2 norm, as scikit-learn computed it in training,
        beside the (unit-length) sentence embedding."""
        counts: dict[int, int] = {}
        for feat in feats:
            column = self.vocabulary.get(feat)
            if column is not None:
                counts[column] = counts.get(column, 0) + 1
        scores = self.intercept + self.meaning_coef @ meaning
        if counts:
            columns = np.fromiter(counts, dtype=np.int64)
            values = np.array([1.0 + math.log(n) for n in counts.values()]) * self.idf[columns]
            values /= np.linalg.norm(values)
            scores += self.coef[:, columns] @ values
        scores = np.exp(scores - scores.max())
        return scores / scores.sum()

    def save(self, path: Path) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, classes=np.array(self.classes), idf=self.idf, coef=self.coef,
                 meaning_coef=self.meaning_coef, intercept=self.intercept,
                 vocabulary=np.array(json.dumps(self.vocabulary, sort_keys=True)))
        write_atomic(path, buffer.getvalue())

    @classmethod
    def load(cls, path: Path) -> LinearModel:
        """The model cached at `path`; ValueError unless every array has the shape, type and
        finite values answering needs (a damaged or doctored file is rebuilt, never used)."""
        return load_arrays(
            path, lambda data: cls(tuple(str(c) for c in data["classes"]),
                                   json.loads(str(data["vocabulary"])), data["idf"],
                                   data["coef"], data["meaning_coef"], data["intercept"]),
            cls._whole, "intent model")

    def _whole(self) -> bool:
        classes = len(self.classes)
        if not (classes and isinstance(self.vocabulary, dict)):
            return False
        words = len(self.vocabulary)
        shapes = ((self.idf, (words,)), (self.coef, (classes, words)),
                  (self.meaning_coef, (classes, DIMENSION)), (self.intercept, (classes,)))
        return (set(self.vocabulary.values()) == set(range(words))  # each column once
                and all(array.shape == shape and array.dtype.kind == "f"
                        and np.isfinite(array).all() for array, shape in shapes))


def train(content: Content, finder: ConceptFinder, encoder: SentenceEncoder) -> LinearModel:
    """Fit on the sample sentences (evenly thinned to MAX_SAMPLES_PER_INTENT per intent) and
    on every example, weighted EXAMPLE_WEIGHT."""
    from scipy.sparse import csr_matrix, hstack
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    texts, labels, weights = [], [], []
    for intent, sentences in content.training_sentences().items():
        step = max(1, math.ceil(len(sentences) / MAX_SAMPLES_PER_INTENT))
        examples = content.examples.get(intent, ())
        for sentence, weight in [*((s, 1.0) for s in sentences[::step]),
                                 *((s, EXAMPLE_WEIGHT) for s in examples)]:
            texts.append(sentence)
            labels.append(intent)
            weights.append(weight)

    def analyse(text: str) -> list[str]:
        words = tokens(text)
        return features(words, finder.find(words))

    vectorizer = TfidfVectorizer(analyzer=analyse, sublinear_tf=True)
    words = vectorizer.fit_transform(texts)
    meanings = encoder.encode(texts)
    model = LogisticRegression(C=REGULARISATION_C, max_iter=3000, class_weight="balanced")
    model.fit(hstack([words, csr_matrix(meanings)]).tocsr(), labels, sample_weight=weights)
    width = words.shape[1]
    return LinearModel(tuple(str(c) for c in model.classes_),
                       {feat: int(col) for feat, col in vectorizer.vocabulary_.items()},
                       vectorizer.idf_.astype(np.float32),
                       model.coef_[:, :width].astype(np.float32),
                       model.coef_[:, width:].astype(np.float32),
                       model.intercept_.astype(np.float32))


def model_path(content: Content, encoder_fingerprint: str) -> Path:
    """Where the model for exactly this content, embedding model and way of training is
    cached (a model trained with other settings is not this one)."""
    settings = f"{MAX_SAMPLES_PER_INTENT}-{REGULARISATION_C:g}-{EXAMPLE_WEIGHT:g}"
    return cache_dir() / f"intents-{content.fingerprint}-{encoder_fingerprint}-{settings}.npz"


def load_or_train(content: Content, finder: ConceptFinder,
                  encoder: SentenceEncoder) -> LinearModel:
    """The cached model for exactly this content and embedding model, trained and cached on
    first use."""
    path = model_path(content, encoder.fingerprint)
    try:
        model = LinearModel.load(path)
    except (OSError, ValueError, KeyError, EOFError):  # missing, damaged or old: train again
        log.info("training the intent classifier for this content (once; about a minute)")
        model = train(content, finder, encoder)
        model.save(path)
    keep_recent(path, "intents")
    return model
