"""The text form every matcher uses: lower-case words, and the same words with contractions
opened. The classifier, the lexicon, the red flags, the recogniser's domain model and the live
loop's wake phrase all compare text in this form."""

from __future__ import annotations

import functools
import re


def normalize(text: str) -> str:
    """Lower-case words only, the form both the matcher and the recogniser see; a dropped g
    written as such is put back ("twitchin'" is "twitching")."""
    text = text.lower().replace("’", "'")
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    words = (_with_g(word).strip("'") for word in text.split())
    return " ".join(word for word in words if word)


def _with_g(word: str) -> str:
    """"gaspin'" -> "gasping"; a quoted word ("'cousin'") or a short one ("win'") is left."""
    dropped = len(word) >= 5 and word.endswith("in'") and not word.startswith("'")
    return word[:-1] + "g" if dropped else word


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
    return opened(normalize(text))


def opened(normalized: str) -> list[str]:
    """`tokens` of a text already normalized, as the content's expanded phrases are: not
    normalizing them again halves the time the red-flag patterns take to make."""
    return [part for word in normalized.split() for part in _opened(word)]


@functools.lru_cache(maxsize=65536)
def _opened(word: str) -> tuple[str, ...]:
    """One normalized word with its contraction opened; cached, as the red-flag phrases
    (tens of thousands) are tokenized at every start."""
    word = UNAPOSTROPHISED.get(word, word)
    for ending, full in CONTRACTIONS.items():
        if word.endswith(ending) and len(word) > len(ending) and word != "let's":
            return word[: -len(ending)], full
    return (word,)
