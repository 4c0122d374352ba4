"""Red flags as clinical assertions: is a sign said to be happening now, or denied, past or
only asked about?

This is the ConText algorithm (Chapman et al., 2009; NegEx's successor): trigger phrases mark
the signs in their scope as negated, historical or hypothetical.  The trigger lexicon lives in
`intents/red_flags.yaml`.  medspaCy implements the same algorithm on spaCy, but importing it
costs more than the whole start-up budget of `voiceskill ask` (see README), so this is a small
implementation of just what the skill needs, on the words the recogniser can produce.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import snowballstemmer

from voiceskill.content.expand import together_key
from voiceskill.content.model import ContextRules, RedFlag
from voiceskill.content.schema import LASTING_STATUSES
from voiceskill.text import opened, tokens

PRESENT = "present"
_STEMMER = snowballstemmer.stemmer("english")


@functools.cache
def stem(word: str) -> str:
    """The word's Snowball stem; remembered, as the phrases repeat a few thousand words."""
    return _STEMMER.stemWord(word)


Forms = frozenset[tuple[str, str]]
Pattern = tuple[tuple[Forms, ...], str, tuple[int, ...]]  # word forms, flag, gap after each
Numbered = tuple[int, Pattern]  # a pattern and its place in the content
WORDS_AFTER_ASIDE = 3  # "..., anyway what helps": a change of subject has something after it
LIGHT_WORDS_PER_GAP = 3  # light words skipped in one gap at most: a clause, not a paragraph
HEDGES_AFTER_NEGATION = 2  # "can't really even swallow"; more is no longer one thought
TOPIC_REACH = 1  # "a lecture on newborn seizures"; further on, a sign is said, not named
CLAUSE_PUNCTUATION = re.compile(r"[.,;:!?()\n]+|\s-\s")
# "Fever? No. Stiff neck? No.": a question answered no on its own is a denial of what it asks.
ANSWERED_NO = re.compile(r"([^.,;:!?()\n]+)\?\s*(?:no|nope|nah|not really)\s*(?=[.,;:!\n]|$)",
                         re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One red flag found in what the user said, with its assertion status."""

    flag: str
    status: str  # present | negated | historical | hypothetical
    words: frozenset[int] = field(default=frozenset(), compare=False)  # where it was said


@dataclass(frozen=True)
class _Trigger:
    prefix: str  # f(orward), b(ackward), q(uestion-backward)
    status: str
    start: int
    end: int


class RedFlagSpotter:
    """Finds every red-flag phrase in a transcript and decides its status with ConText."""

    def __init__(self, flags: tuple[RedFlag, ...], rules: ContextRules):
        self._rules = rules
        self._becomes = {flag.name: flag.becomes for flag in flags}
        # A flag with its own max_gap is made of two things said together: a cause, a sign.
        self._two_part = frozenset(flag.name for flag in flags if flag.max_gap is not None)
        self._negation_words = {t for t in rules.forward["negated"] if " " not in t}
        # Phrases are grouped by their first word's stem and turned into patterns only when a
        # sentence holds that stem: `voiceskill ask` reads one sentence, and making patterns
        # of all the tens of thousands of phrases would cost it a third of its start-up.
        # Under each stem, the phrases of one flag and gap share one list: a tuple for each
        # of the ~90,000 phrases would hold more memory than the phrases themselves.
        self._phrases_by_first_stem: dict[str, dict[tuple[str, int], list[str]]] = {}
        # A part of a flag's `together` is spotted like a flag of its own, under its key.
        self._parts = {flag.name: tuple(together_key(flag.name, part)
                                        for part in range(len(flag.together)))
                       for flag in flags if flag.together}
        for flag in flags:
            gap = rules.max_gap if flag.max_gap is None else flag.max_gap
            lists = [(flag.name, flag.phrases, gap)]
            lists += [(key, part, rules.max_gap) for key, part
                      in zip(self._parts.get(flag.name, ()), flag.together, strict=True)]
            for name, phrases, gap in lists:
                # Phrases come normalized and start with a few hundred words: each first word
                # is tokenized and stemmed once, not each of the ~100,000 phrases.
                lists_by_first_word: dict[str, list[str] | None] = {}
                for phrase in phrases:
                    word = phrase.partition(" ")[0]
                    if word not in lists_by_first_word:
                        first = opened(word)[:1]
                        lists_by_first_word[word] = self._phrases_by_first_stem.setdefault(
                            stem(first[0]), {}).setdefault((name, gap), []) if first else None
                    if (same_start := lists_by_first_word[word]) is not None:
                        same_start.append(phrase)
        self._patterns: dict[str, dict[str | None, tuple[Numbered, ...]]] = {}
        forward = [(status, tuple(tokens(t))) for status, triggers in rules.forward.items()
                   for t in triggers]
        forward += [(PRESENT, tuple(tokens(t))) for t in rules.present]
        backward = [(status, tuple(tokens(t))) for status, triggers in rules.backward.items()
                    for t in triggers]
        question_backward = [("hypothetical", tuple(tokens(t))) for t in rules.question_backward]
        # Every trigger under its first word, in the order triggers are listed: a sentence's
        # words are looked up, not compared with each of the hundreds of triggers.
        self._triggers_by_first: dict[str, list[tuple[str, str, tuple[str, ...]]]] = {}
        for prefix, table in (("f", forward), ("b", backward), ("q", question_backward)):
            for status, trigger in table:
                if trigger:
                    self._triggers_by_first.setdefault(trigger[0], []).append(
                        (prefix, status, trigger))
        self._pseudo = _Sequences(rules.pseudo)
        # "now and then" says how often, it does not end the clause at "now"
        self._unsplit = _Sequences([*rules.pseudo, *(t for status in LASTING_STATUSES
                                                     for table in (rules.forward, rules.backward)
                                                     for t in table[status])])
        self._decoys = _Sequences(rules.decoys)
        self._things = [tuple(tokens(t)) for t in rules.things]
        self._onset = _Sequences(rules.onset)
        self._naming = _Sequences(rules.naming)
        self._topic_before = _Sequences(rules.topic_before)
        self._topic_after = _Sequences(rules.topic_after)
        self._terminators = _Sequences(rules.terminators)
        self._asides = _Sequences(rules.asides)

    def spot(self, text: str) -> tuple[Finding, ...]:
        """Every red flag mentioned, each once, with the most reassuring status only when
        no mention of it is present: one "I can't breathe" outweighs any denial."""
        words, starts = self.words_and_clauses(text)
        found: dict[str, Finding] = {}
        for finding in self._in_sentence(words, starts):
            earlier = found.get(finding.flag)
            if earlier is not None and earlier.status == finding.status == PRESENT:
                found[finding.flag] = Finding(finding.flag, PRESENT, earlier.words | finding.words)
            elif earlier is None or finding.status == PRESENT:
                found[finding.flag] = finding
        for flag, keys in self._parts.items():
            parts = [found.pop(key, None) for key in keys]
            said = found.get(flag)
            if (said is None or said.status != PRESENT) and self._said_together(parts):
                found[flag] = Finding(flag, PRESENT, frozenset().union(*(p.words for p in parts)))
        return tuple(found.values())

    @staticmethod
    def _said_together(parts: list[Finding | None]) -> bool:
        """Whether every part of a `together` flag was said: its cause happening or told as
        past ("I quit drinking on Monday"), its signs happening now."""
        cause, *signs = parts
        return (cause is not None and cause.status in (PRESENT, "historical")
                and all(sign is not None and sign.status == PRESENT for sign in signs))

    def said_in_passing(self, text: str, findings: tuple[Finding, ...]) -> frozenset[str]:
        """The signs said to be happening only before a change of subject, with the real
        question after it ("a bloke on the telly had a seizure, anyway my eyelid twitches"):
        told in passing, so asked about rather than escalated on."""
        words, _ = self.words_and_clauses(text)
        turns = [i + size for i in range(len(words))
                 if (size := self._asides.longest_at(words, i))
                 and len(words) - (i + size) >= WORDS_AFTER_ASIDE]
        if not turns:
            return frozenset()
        return frozenset(f.flag for f in findings
                         if f.status == PRESENT and f.words and max(f.words) < turns[-1])

    def words_and_clauses(self, text: str) -> tuple[list[str], list[int]]:
        """The words, and where each clause begins: after punctuation and after terminator
        words ("but", "and now").  A clause ends a trigger's scope, not a sign's phrase:
        "burning up, she can't bend her neck" is one sign.  A question answered "no" on its
        own is read as denied ("fever? no." as "no fever")."""
        words: list[str] = []
        starts = [0]
        for part in CLAUSE_PUNCTUATION.split(ANSWERED_NO.sub(r"no \1.", text)):
            clause = tokens(part)
            hidden = self._unsplit.covered(clause)  # "for a while" ends nothing
            for index in range(len(clause)):
                size = self._terminators.longest_at(clause, index)
                if size and index not in hidden:
                    starts.append(len(words) + index + size)
            words += clause
            starts.append(len(words))
        return words, sorted(set(starts))

    def _in_sentence(self, words: list[str], starts: list[int]) -> list[Finding]:
        """Phrases are matched on word stems ("squeezed" = "squeezing"), except on words
        that are part of a trigger ("last year" is not "lasted for years"); triggers and
        decoys on the words as said."""
        findings = []
        triggers = self._triggers(words)
        decoyed = self.decoyed(words)
        in_trigger = {i for t in triggers for i in range(t.start, t.end)}
        said_for = self._rules.said_for  # "me chest" is "my chest"
        forms = [_forms(word, stemmed=i not in in_trigger)
                 | (_forms(said_for[word], stemmed=i not in in_trigger) if word in said_for
                    else frozenset())
                 for i, word in enumerate(words)]
        light = [word in self._rules.light_words for word in words]
        hedge = [word in self._rules.hedges for word in words]
        stems = [stem(said_for.get(word, word)) for word in words]
        in_sentence = set(stems) | {stem(word) for word in words}
        signs = []
        for start, first in enumerate(stems):
            patterns = sorted(entry for second, group in self._patterns_from(first).items()
                              if second is None or second in in_sentence for entry in group)
            for _, (phrase, flag, gaps) in patterns:
                matched = _phrase_positions(forms, light, hedge, start, phrase, gaps)
                if (matched and not decoyed.intersection(matched)
                        and not self._said_of_a_thing(words, starts, matched[0])):
                    signs.append((flag, matched))
        for flag, matched in signs:
            # words that say something else: another sign, or a decoy ("breathing's fine")
            elsewhere = decoyed.union(*(other for name, other in signs if name != flag))
            status = self._status(words, triggers, starts, matched,
                                  two_part=flag in self._two_part,
                                  elsewhere=elsewhere - set(matched))
            said = frozenset(matched)
            if status in LASTING_STATUSES:  # happening, maybe as a milder sign
                becomes = self._becomes.get(flag, {})  # a part is itself
                findings.append(Finding(becomes.get(status, flag), PRESENT, said))
            else:
                findings.append(Finding(flag, status, said))
        return findings

    def decoyed(self, words: list[str]) -> set[int]:
        """The positions of words inside a decoy ("breathing fine", "a fit of the giggles"):
        no sign is said in them."""
        return self._decoys.covered(words)

    def _said_of_a_thing(self, words: list[str], starts: list[int], first: int) -> bool:
        """Whether the sign's subject, just before it in its clause, is no person: "my phone
        had a seizure", "the app's unresponsive", "the dog is out cold".  Only linking words
        ("is", "has", "got", "completely") may stand between: "the dog bit me and i can't
        breathe" names a person before the sign, so it still counts."""
        clause = max(s for s in starts if s <= first)
        end = first
        while end > clause and words[end - 1] in self._rules.thing_links:
            end -= 1
        return any(end - len(thing) >= clause and tuple(words[end - len(thing):end]) == thing
                   for thing in self._things)

    def status_of(self, words: list[str], starts: list[int], positions: list[int]) -> str:
        """The ConText status of a sign said by the words at `positions` (in order), for a
        sign found some other way than by a phrase (one that comes and goes is happening)."""
        status = self._status(words, self._triggers(words), starts, positions)
        return PRESENT if status in LASTING_STATUSES else status

    def _patterns_from(self, first_stem: str) -> dict[str | None, tuple[Numbered, ...]]:
        """The phrases beginning with a word of this stem, as word forms to match, by the stem
        of their second word (None for one word): a sentence is matched only against those
        whose second word it holds. Each is numbered in the content's order, which decides
        which of two mentions of a sign counts. Made once. A negation in a phrase binds to the
        next word ("not breathing", but not "not having trouble breathing"); inflections of
        one phrase make one pattern. A phrase with `left_out` words inside it is also matched
        without them (`_leaving_out`)."""
        made = self._patterns.get(first_stem)
        if made is None:
            numbered: dict[Pattern, tuple[int, str | None]] = {}  # number, second word's stem
            for (flag, gap), phrases in self._phrases_by_first_stem.get(first_stem, {}).items():
                for said in map(opened, phrases):  # phrases come normalized
                    close = [self.negates(word) for word in said[:-1]]
                    shorter = self._leaving_out(said, close)
                    for words, shut in ((said, close), *([shorter] if shorter else [])):
                        pattern = (tuple(_forms(word, stemmed=True) for word in words), flag,
                                   tuple(0 if tight else gap for tight in shut))
                        second = stem(words[1]) if len(words) > 1 else None
                        numbered.setdefault(pattern, (len(numbered), second))
            groups: dict[str | None, list[Numbered]] = {}
            for pattern, (number, second) in numbered.items():
                groups.setdefault(second, []).append((number, pattern))
            made = {second: tuple(group) for second, group in groups.items()}
            self._patterns[first_stem] = made
        return made

    def _leaving_out(self, words: list[str],
                     close: list[bool]) -> tuple[list[str], list[bool]] | None:
        """The phrase without the `left_out` words inside it ("pain in middle of chest"), or
        None if it has none, and which of its words must be followed at once by the next:
        those after a negation, and those a left-out word stood behind; else, shorter, it
        would match words said apart ("losing my train of thought and feel foggy on ..." is
        no "losing feeling on"). One it starts or ends with stays: "can't wake my" without
        it would be "can't wake" ("I can't wake up early")."""
        kept, kept_close = [], []
        for at, (word, shut) in enumerate(zip(words, [*close, False], strict=True)):
            if word in self._rules.left_out and 0 < at < len(words) - 1:
                kept_close[-1] = True
                continue
            kept.append(word)
            kept_close.append(shut)
        return (kept, kept_close[:-1]) if len(kept) < len(words) else None

    def negates(self, word: str) -> bool:
        """Whether the word is a negation, as said or in a word it is said for ("cyah")."""
        word = self._rules.said_for.get(word, word)
        return word in self._negation_words or word.endswith("n't") or word == "cannot"

    def _status(self, words: list[str], triggers: list[_Trigger], starts: list[int],
                matched: list[int], two_part: bool = False,
                elsewhere: frozenset[int] | set[int] = frozenset()) -> str:
        """ConText: the nearest trigger before the sign, any after it in its clause, and any
        between its words ("my chest doesn't hurt", "dark urine mean after") or taking in its
        last word ("bleeding in my first pregnancy"), except, in a
        `two_part` sign, a time or denial that is about its cause (`_then_now`). A denial
        after it is about the nearest thing before it: not about this sign when words `elsewhere`
        (another sign, a decoy) come between ("my calf is warm and swollen, breathing's
        normal"); a denial that is part of another sign is that sign's own ("she's not making
        sense, she hit her head"), and one before a sign said by its own negation is about
        something else ("he's not moving and he won't answer")."""
        start, end = matched[0], matched[-1] + 1
        window = self._rules.window
        first = max(s for s in starts if s <= start)
        last = min((s for s in starts if s >= end), default=len(words))
        is_question = words[first] in self._rules.question_starts if first < len(words) else False
        gaps = set(range(start, end)) - set(matched)
        inside = [t for t in triggers if set(range(t.start, t.end)) <= gaps]
        # So does one the sign's phrase ends inside ("bleeding in my first pregnancy").
        inside += [t for t in triggers if t.start in gaps and t.end >= end
                   and set(range(t.start, end - 1)) <= gaps]
        # A denial after the sign's own negation agrees with it: "can't feel nothing down
        # there" is "can't feel anything".
        said_not = min((i for i in matched if self.negates(words[i])), default=len(words))
        inside = [t for t in inside if t.status != "negated" or t.start < said_not]
        statuses = {t.status for t in inside
                    if t.status != PRESENT and (t.prefix != "q" or is_question)
                    and not self._dates_a_start(words, first, t)
                    and not (two_part and self._then_now(t, inside, starts))}
        # A trigger that starts before the sign counts even when the sign's phrase takes in
        # its last words ("what are the signs" + "signs of a stroke"); a time after an onset
        # word dates a start ("since my fall last week my leg has gone numb").
        before = [t for t in triggers if t.prefix == "f" and first <= t.start < start
                  and start - t.end < window and not self._dates_a_start(words, first, t)
                  and not (t.status == "negated"
                           and (elsewhere.intersection(range(t.start, t.end))
                                or self.negates(words[start])))]
        # "how it comes and goes" words never hide a nearer question or denial before them
        # ("can a cramp sometimes be a heart attack").
        forward = max((t for t in before if t.status not in LASTING_STATUSES),
                      key=lambda t: t.end, default=None)
        if forward is not None and forward.status != PRESENT:
            statuses.add(forward.status)
        statuses.update(t.status for t in before if t.status in LASTING_STATUSES)
        for trigger in triggers:
            if not (end <= trigger.start and trigger.end <= last
                    and trigger.start - end < window):
                continue
            if self._dates_a_start(words, start, trigger):
                continue
            if (trigger.prefix == "b" and trigger.status == "negated"
                    and elsewhere.intersection(range(end, trigger.end))):
                continue
            asks = trigger.prefix == "q" and is_question and forward is None
            if trigger.prefix == "b" or asks:
                statuses.add(trigger.status)
        if self._said_over_after(words, triggers, starts, last):
            statuses.add("historical")
        if start > first and self._naming.longest_at(words, first) == start - first:
            statuses.add("hypothetical")  # "what's serotonin syndrome?": the sign is asked about
        if self._named_as_a_topic(words, first, last, start, end):
            statuses.add("hypothetical")
        for status in ("negated", "historical", "hypothetical", *LASTING_STATUSES):
            if status in statuses:
                return status
        return PRESENT

    def _named_as_a_topic(self, words: list[str], first: int, last: int, start: int,
                          end: int) -> bool:
        """Whether the sign is named as what a lesson, a story or a job is about, right
        before or after it in its clause ("a lecture on newborn seizures", "the serotonin
        syndrome lecture"): talked about, not said.  Only `TOPIC_REACH` words may stand
        between, so "a book about tetanus my jaw is locked" still says the locked jaw."""
        before = any(size and 0 <= start - (index + size) <= TOPIC_REACH
                     for index in range(first, start)
                     if (size := self._topic_before.longest_at(words, index)))
        return before or (end < last and self._topic_after.longest_at(words, end) > 0)

    def _dates_a_start(self, words: list[str], start: int, trigger: _Trigger) -> bool:
        """Whether a time follows an `onset` word ("since", "started") said from `start` on:
        from the sign's first word for a time after the sign ("my neck keeps twisting since I
        started the tablets yesterday"), from its clause's first for a time between the sign's
        words ("I started a cholesterol pill last month and now my thighs ache"). Either tells
        when it began, and it is still happening; "I started having fits years ago" does not."""
        return trigger.status == "historical" and any(
            self._onset.longest_at(words, index) for index in range(start, trigger.start))

    @staticmethod
    def _then_now(trigger: _Trigger, inside: list[_Trigger], starts: list[int]) -> bool:
        """Whether a time or a denial said between the cause and the sign of a two-part sign
        ends its clause where one that says the sign is happening now begins: it dates or
        denies something about the cause ("he got a new medicine yesterday and now his jaw
        keeps pulling", "a deep cut, I never had the jab, now my jaw is shut"), not the sign
        ("stung as a child and swelled up, but today I'm asking about cramps" is past)."""
        if trigger.status not in ("historical", "negated"):
            return False
        following = min(s for s in starts if s >= trigger.end)  # len(words) is always one
        return any(t.status == PRESENT and t.start <= following <= t.end for t in inside)

    def _said_over_after(self, words: list[str], triggers: list[_Trigger], starts: list[int],
                         clause: int) -> bool:
        """Whether the clause at `clause` is only a backward "it is over" trigger ("..., all
        better now"): it speaks of the clause before it.  A denial does not count that way:
        "he hit his head, seems fine" must still escalate.  A lone terminator ("..., but
        that's all gone") is passed over."""
        end = min((s for s in starts if s > clause), default=len(words))
        lone = self._terminators.longest_at(words, clause) == end - clause
        if clause < end < len(words) and lone:
            clause, end = end, min((s for s in starts if s > end), default=len(words))
        return any(
            trigger.prefix == "b" and trigger.status == "historical"
            and clause <= trigger.start and trigger.end <= end
            and all(word in self._rules.light_words
                    for word in [*words[clause:trigger.start], *words[trigger.end:end]])
            for trigger in triggers)

    def _triggers(self, words: list[str]) -> list[_Trigger]:
        """Every trigger in the sentence; pseudo-triggers ("not sure") hide their words,
        unless a longer trigger starts with them ("a while" is no terminator, "a while back"
        is the past)."""
        triggers = []
        index = 0
        while index < len(words):
            pseudo = self._pseudo.longest_at(words, index)
            longer = [_Trigger(prefix, status, index, index + len(trigger))
                      for prefix, status, trigger in self._triggers_by_first.get(words[index], ())
                      if len(trigger) > pseudo
                      and tuple(words[index : index + len(trigger)]) == trigger]
            triggers.extend(longer)
            index += pseudo if pseudo and not longer else 1
        return triggers


@functools.cache
def _forms(word: str, stemmed: bool) -> Forms:
    """What a word can match: itself, and, where stems count, any word of the same stem."""
    return frozenset({("word", word), ("stem", stem(word))} if stemmed
                     else {("word", word)})


def _phrase_positions(forms: list[Forms], light: list[bool], hedge: list[bool], start: int,
                      phrase: tuple[Forms, ...], gaps: tuple[int, ...]) -> list[int]:
    """Where the words of `phrase` are, if they follow `start` in order, each at most its gap
    of other words after the one before; else [].  Light words ("i", "am", "all") are not
    counted in a gap, up to LIGHT_WORDS_PER_GAP of them, so "my arm is aching and i am all
    clammy" is as near as "arm aching, clammy"; a gap of 0 (after a negation) stays 0 but
    for up to HEDGES_AFTER_NEGATION hedges ("can't even swallow" is "can't swallow", "not
    having trouble breathing" is not "not breathing")."""
    if not forms[start] & phrase[0]:
        return []
    positions = [start]
    for wanted, gap in zip(phrase[1:], gaps, strict=True):
        found, counted, skipped = None, 0, 0
        for index in range(positions[-1] + 1, len(forms)):
            if forms[index] & wanted:
                found = index
                break
            if gap and light[index] and skipped < LIGHT_WORDS_PER_GAP:
                skipped += 1
                continue
            if not gap and hedge[index] and skipped < HEDGES_AFTER_NEGATION:
                skipped += 1
                continue
            counted += 1
            if counted > gap:
                break
        if found is None:
            return []
        positions.append(found)
    return positions


class _Sequences:
    """Word sequences (triggers, decoys, terminators), looked up by their first word: a
    sentence's words are looked up, not compared with each of the hundreds of sequences."""

    def __init__(self, texts: Iterable[str]):
        self._by_first: dict[str, list[tuple[str, ...]]] = {}
        for sequence in dict.fromkeys(tuple(tokens(text)) for text in texts):
            if sequence:
                self._by_first.setdefault(sequence[0], []).append(sequence)

    def longest_at(self, words: list[str], index: int) -> int:
        """Length of the longest sequence starting at words[index], or 0."""
        candidates = self._by_first.get(words[index], ()) if index < len(words) else ()
        return max((len(s) for s in candidates if tuple(words[index:index + len(s)]) == s),
                   default=0)

    def covered(self, words: list[str]) -> set[int]:
        """The positions of `words` that are part of one of the sequences."""
        return {position for index in range(len(words))
                for position in range(index, index + self.longest_at(words, index))}
