"""How long something has lasted, from words: "about ten days", "three weeks", "since Monday".

text2num turns number words into digits ("ten" -> "10"); the units, the quantity words it
leaves alone ("a couple of", "a few") and the "since ..." points in time come from the
lexicon (`intents/lexicon.yaml`), so they can be reviewed and extended without code.
"""

from __future__ import annotations

import re

from text_to_num import alpha2digit

from voiceskill.content.model import Lexicon

NUMBER = re.compile(r"^\d+(?:\.\d+)?$")
JUST_UNDER = 0.5
"""Days taken off a duration said to be "not quite" or "almost" that long."""


def days_in(text: str, lexicon: Lexicon) -> float | None:
    """The longest duration stated in `text` (normalized words), in days, or None."""
    words = alpha2digit(text, "en").split()
    found = [*_amounts(words, lexicon), *_since(text, lexicon)]
    return max(found, default=None)


def _amounts(words: list[str], lexicon: Lexicon):
    """"<quantity> <unit> [and a half]" anywhere in the words."""
    for index, word in enumerate(words):
        unit = lexicon.time_units.get(word)
        if unit is not None and not _said_as_frequency(words[:index], lexicon):
            half = 0.5 if words[index + 1 : index + 4] == ["and", "a", "half"] else 0.0
            days = (_quantity(words[:index], lexicon) + half) * unit
            yield days - JUST_UNDER if _said_under(words[:index], lexicon) else days


def _said_as_frequency(before: list[str], lexicon: Lexicon) -> bool:
    """ "every night", "twice a week", "most days": how often, not how long."""
    phrases = (phrase.split() for phrase in lexicon.frequency)
    return any(before[-len(phrase):] == phrase for phrase in phrases)


def _said_under(before: list[str], lexicon: Lexicon) -> bool:
    """ "not quite a week", "almost two weeks": an under-word within five words before."""
    near = f" {' '.join(before[-5:])} "
    return any(f" {phrase} " in near for phrase in lexicon.under)


def _quantity(before: list[str], lexicon: Lexicon) -> float:
    """The amount just before a unit: "10", "a couple of", "a few", "two and a half"."""
    half = 0.0
    if before[-3:] == ["and", "a", "half"]:
        half, before = 0.5, before[:-3]
    if before and NUMBER.match(before[-1]):
        return float(before[-1]) + half
    for size in (3, 2, 1):
        phrase = " ".join(before[-size:])
        if len(before) >= size and phrase in lexicon.quantities:
            return lexicon.quantities[phrase] + half
    return 1.0 + half


def _since(text: str, lexicon: Lexicon) -> list[float]:
    padded = f" {text} "
    return [days for point, days in lexicon.since.items() if f" since {point} " in padded]
