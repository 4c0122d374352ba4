"""Intent recognition: score a transcript against the expanded sample sentences.

Matching uses rapidfuzz (C++ string similarity, vectorised over all samples at once) rather
than a trained classifier: the samples are already an exhaustive list of phrasings, the scores
are easy to explain ("87% like 'how do i stop a cramp'"), and it loads in milliseconds.
Two scorers are blended: token_sort_ratio, which punishes extra or missing words, and
token_set_ratio, which forgives a few dropped or inserted small words from the recogniser.
Below `threshold`, or when the nearest sample is an out-of-domain one, the intent is fallback.

Red flags are spotted separately, phrase by phrase, anywhere in the transcript, so an
emergency is caught even when the whole sentence matches nothing.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rapidfuzz import fuzz, process

from voiceskill.content import FALLBACK, Content, RedFlag, normalize

DEFAULT_THRESHOLD = 0.72
MIN_ASR_CONFIDENCE = 0.5
"""Measured on flite fixtures: keeps clean accuracy (98.8%) and cuts false accepts at 10 dB
SNR from 22-56% to 0% (bench/speech_accuracy.py)."""
EMERGENCY = "emergency"
FLAG_SIMILARITY = 88.0
NEGATION_WINDOW = 5
SHORTLIST = 200
TELLING_SPREAD = 0.25
LEADING_WORD_CONFIDENCE = 0.75


@dataclass(frozen=True)
class Understanding:
    """What the user meant: an intent with a 0..1 confidence, and any red flags spotted."""

    text: str
    intent: str
    confidence: float
    nearest: str
    flags: tuple[str, ...] = ()


def _telling_words(intents: dict[str, tuple[str, ...]]) -> set[str]:
    """Words found in few intents ("cramp", "weather"), unlike "the", "my" or "what"."""
    spread: dict[str, int] = {}
    for sentences in intents.values():
        for word in {w for s in sentences for w in s.split()}:
            spread[word] = spread.get(word, 0) + 1
    return {word for word, count in spread.items() if count <= len(intents) * TELLING_SPREAD}


class IntentMatcher:
    """Nearest-sample intent matching with rejection, plus red-flag phrase spotting."""

    def __init__(self, content: Content, threshold: float = DEFAULT_THRESHOLD):
        self.threshold = threshold
        self._samples = [s for sentences in content.intents.values() for s in sentences]
        self._owners = [name for name, sentences in content.intents.items() for _ in sentences]
        self._words = [set(sample.split()) for sample in self._samples]
        self._telling_words = _telling_words(content.intents)
        self._one_word_intents = {
            sample: name
            for name, sentences in content.intents.items()
            for sample in sentences
            if " " not in sample and name != FALLBACK
        }
        self._red_flags = content.red_flags
        self._negations = content.negations
        self._clause_breaks = content.clause_breaks

    def understand(self, transcript: str, asr_confidence: float | None = None) -> Understanding:
        """`asr_confidence` (0..1, from the recogniser) below MIN_ASR_CONFIDENCE rejects
        everything but an emergency: in noise, a misheard question must not get an answer."""
        text = normalize(transcript)
        flags = self.spot_red_flags(text)
        if not text:
            return Understanding(text, FALLBACK, 0.0, "", flags)
        index, score = self._nearest(text)
        intent = self._owners[index]
        unsure = asr_confidence is not None and asr_confidence < MIN_ASR_CONFIDENCE
        if unsure and intent != EMERGENCY:
            return Understanding(text, FALLBACK, round(asr_confidence, 3), "", flags)
        if score < self.threshold:
            intent = FALLBACK
            leading = self._one_word_intents.get(text.split()[0])
            if leading:  # "yes, and my legs feel weak": answered first, then more was said
                return Understanding(text, leading, LEADING_WORD_CONFIDENCE, text.split()[0], flags)
        return Understanding(text, intent, round(score, 3), self._samples[index], flags)

    def _nearest(self, text: str) -> tuple[int, float]:
        """Best sample by blended score; token_set is only computed for the closest few.

        token_set_ratio scores 100 whenever one word set contains the other ("the" vs "stop
        the"), so it only counts when the text shares a telling word with the sample.
        """
        sort = process.cdist([text], self._samples, scorer=fuzz.token_sort_ratio, workers=1)[0]
        shortlist = np.argpartition(sort, -SHORTLIST)[-SHORTLIST:]
        words = set(text.split()) & self._telling_words
        common = np.array([
            fuzz.token_set_ratio(text, self._samples[i]) if words & self._words[i] else sort[i]
            for i in shortlist
        ])
        blended = (0.6 * sort[shortlist] + 0.4 * common) / 100.0
        best = int(np.argmax(blended))
        return int(shortlist[best]), float(blended[best])

    def spot_red_flags(self, text: str) -> tuple[str, ...]:
        """Names of the red flags whose phrases occur in `text`, unless negated just before."""
        words = text.split()
        return tuple(flag.name for flag in self._red_flags if self._flag_present(flag, words))

    def _flag_present(self, flag: RedFlag, words: list[str]) -> bool:
        for phrase in flag.phrases:
            size = len(phrase.split())
            for start in range(len(words) - size + 1):
                window = " ".join(words[start : start + size])
                if fuzz.ratio(phrase, window) >= FLAG_SIMILARITY and not self._negated(
                    words, start
                ):
                    return True
        return False

    def _negated(self, words: list[str], start: int) -> bool:
        """A negation shortly before the phrase, in the same clause, cancels it."""
        for word in reversed(words[max(0, start - NEGATION_WINDOW) : start]):
            if word in self._clause_breaks:
                return False
            if word in self._negations or word.endswith("n't"):
                return True
        return False
