"""Red flags as clinical assertions: is a sign said to be happening now, or denied, past or
only asked about?

This is the ConText algorithm (Chapman et al., 2009; NegEx's successor): trigger phrases mark
the signs in their scope as negated, historical or hypothetical.  The trigger lexicon lives in
`intents/red_flags.yaml`.  medspaCy implements the same algorithm on spaCy, but importing it
costs more than the whole start-up budget of `voiceskill ask` (see README), so this is a small
implementation of just what the skill needs, on the words the recogniser can produce.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from voiceskill.content import ContextRules, RedFlag, tokens

PRESENT = "present"
CLAUSE_PUNCTUATION = re.compile(r"[.,;:!?()\n]+|\s-\s")


@dataclass(frozen=True)
class Finding:
    """One red flag found in what the user said, with its assertion status."""

    flag: str
    status: str  # present | negated | historical | hypothetical
    words: str


@dataclass(frozen=True)
class _Trigger:
    status: str
    start: int
    end: int


class RedFlagSpotter:
    """Finds every red-flag phrase in a transcript and decides its status with ConText."""

    def __init__(self, flags: tuple[RedFlag, ...], rules: ContextRules):
        self._rules = rules
        self._by_first_word: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        for flag in flags:
            for phrase in flag.phrases:
                words = tuple(tokens(phrase))
                self._by_first_word.setdefault(words[0], []).append((words, flag.name))
        self._forward = [(status, tuple(tokens(t))) for status, triggers in rules.forward.items()
                         for t in triggers]
        self._forward += [(PRESENT, tuple(tokens(t))) for t in rules.present]
        self._backward = [(status, tuple(tokens(t))) for status, triggers
                          in rules.backward.items() for t in triggers]
        self._question_backward = [("hypothetical", tuple(tokens(t)))
                                   for t in rules.question_backward]
        self._pseudo = [tuple(tokens(t)) for t in rules.pseudo]
        self._terminators = [tuple(tokens(t)) for t in rules.terminators]

    def spot(self, text: str) -> tuple[Finding, ...]:
        """Every red flag mentioned, each once, with the most reassuring status only when
        no mention of it is present: one "I can't breathe" outweighs any denial."""
        found: dict[str, Finding] = {}
        for clause in self._clauses(text):
            for finding in self._in_clause(clause):
                earlier = found.get(finding.flag)
                if earlier is None or finding.status == PRESENT:
                    found[finding.flag] = finding
        return tuple(found.values())

    def _clauses(self, text: str) -> list[list[str]]:
        """Punctuation and terminator words ("but", "now") end a trigger's scope."""
        clauses = []
        for part in CLAUSE_PUNCTUATION.split(text):
            words = tokens(part)
            current: list[str] = []
            index = 0
            while index < len(words):
                size = _match_at(words, index, self._terminators)
                if size:
                    clauses.append(current)
                    current, index = [], index + size
                else:
                    current.append(words[index])
                    index += 1
            clauses.append(current)
        return [clause for clause in clauses if clause]

    def _in_clause(self, words: list[str]) -> list[Finding]:
        findings = []
        for start, word in enumerate(words):
            for phrase, flag in self._by_first_word.get(word, ()):
                end = self._phrase_end(words, start, phrase)
                if end is not None:
                    status = self._status(words, start, end, phrase)
                    findings.append(Finding(flag, status, " ".join(words[start:end])))
        return findings

    def _phrase_end(self, words: list[str], start: int, phrase: tuple[str, ...]) -> int | None:
        """Where `phrase` ends if its words follow `start` in order, each within max_gap."""
        position = start
        for word in phrase[1:]:
            window = words[position + 1 : position + 2 + self._rules.max_gap]
            if word not in window:
                return None
            position += 1 + window.index(word)
        return position + 1

    def _status(self, words: list[str], start: int, end: int, phrase: tuple[str, ...]) -> str:
        triggers = self._triggers(words)
        gap_words = [w for w in words[start:end] if w not in phrase]
        if any(_match_at(gap_words, i, [t for s, t in self._forward if s == "negated"])
               for i in range(len(gap_words))):
            return "negated"  # "my chest doesn't hurt"
        window = self._rules.window
        before = [t for t in triggers if t.end <= start and start - t.end < window]
        forward = max((t for t in before if t.status.startswith("f:")),
                      key=lambda t: t.end, default=None)
        statuses = set()
        if forward is not None and forward.status != f"f:{PRESENT}":
            statuses.add(forward.status[2:])
        is_question = words[0] in self._rules.question_starts
        for trigger in triggers:
            if trigger.start >= end and trigger.start - end < window:
                if trigger.status.startswith("b:"):
                    statuses.add(trigger.status[2:])
                elif trigger.status == "q:hypothetical" and is_question and forward is None:
                    statuses.add("hypothetical")
        for status in ("negated", "historical", "hypothetical"):
            if status in statuses:
                return status
        return PRESENT

    def _triggers(self, words: list[str]) -> list[_Trigger]:
        """Every trigger in the clause, longest first at each position; pseudo-triggers
        ("not sure") hide the words they cover."""
        triggers = []
        index = 0
        while index < len(words):
            pseudo = _match_at(words, index, self._pseudo)
            if pseudo:
                index += pseudo
                continue
            for prefix, table in (("f:", self._forward), ("b:", self._backward),
                                  ("q:", self._question_backward)):
                for status, trigger in table:
                    if tuple(words[index : index + len(trigger)]) == trigger:
                        triggers.append(_Trigger(prefix + status, index, index + len(trigger)))
            index += 1
        return triggers


def _match_at(words: list[str], index: int, phrases: list[tuple[str, ...]]) -> int:
    """Length of the longest of `phrases` starting at words[index], or 0."""
    sizes = [len(p) for p in phrases if tuple(words[index : index + len(p)]) == p]
    return max(sizes, default=0)
