"""Understanding one utterance: its intent, the red flags in it, and what it answers.

- The intent comes from a linear classifier over words, lexicon concepts and the sentence's
  embedding (`classifier.py`), with rejection: below `threshold`, or a medical question that names
  nothing of this skill's subject (no `domain` concept), is fallback.
- Control commands ("stop", "goodbye") count only when the utterance is essentially the
  command, so "bye" misheard at the start of "I can hardly breathe" does not end the call,
  and says one of the command's own words: a piece of the skill's own answer heard back
  ("massage", "gently stretch it") never stops it. A yes/no answer is never taken from a
  question ("are you listening to me all the time"), unless it is an answer's own sample
  ("could be").
- Red flags are found with their assertion status (`redflags.py`): present ones escalate,
  denied, past and asked-about ones do not; one in a sentence that does not read as telling
  of a sign happening (`similar_signs.py`) is asked about first.  A sign no phrase names but
  a clause means (`similar_signs.py`) is only *possible*: the dialogue asks before
  escalating.
- For yes/no questions: the answer (yes, no, unknown) and any duration in days.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from voiceskill.content import Content
from voiceskill.content.schema import FALLBACK, OUTCOMES
from voiceskill.nlu.classifier import ConceptFinder, features, load_or_train, model_path
from voiceskill.nlu.durations import days_in
from voiceskill.nlu.embedding import SentenceEncoder, shared_encoder
from voiceskill.nlu.redflags import PRESENT, Finding, RedFlagSpotter
from voiceskill.nlu.similar_signs import (
    ESCALATING,
    SIMILARITY_FLOOR,
    SimilarSigns,
    index_path,
)
from voiceskill.text import normalize, tokens

DEFAULT_THRESHOLD = 0.2
MIN_ASR_CONFIDENCE = 0.5
"""Measured on flite fixtures: keeps clean accuracy and cuts false accepts in noise
(bench/speech_accuracy.py)."""
COMMAND_THRESHOLD = 0.5
"""Commands and yes/no answers must be clearly that: a wrong "stop" or "no" costs more than
asking again."""
CLEAR_QUESTION = 0.5
"""A question of the skill's this sure is answered, not met with "Did you say ...?" for a
sign found only by meaning, unless the sign is said nearly in a flag's own words (at least
STRONG_SIMILARITY): "how come my wee has gone the colour of coffee" asks and says a sign
(measurements in docs/understanding.md)."""
STRONG_SIMILARITY = 0.75
SURE_OF_SUBJECT = 0.9
"""A question of the skill's the classifier is this sure of keeps its subject beside a thing's
name (a `veto` concept): "should I film the twitch on my phone for the doctor", "in my
language it is one word for both". Said of a pet or a phone itself, the classifier is far
less sure (the out-of-domain sets of bench/understanding.py). A request for another task
(`task` concepts: "remind me to phone the doctor about my cramps") is never answered."""
SAID_FLOOR = 0.1
"""A sign the phrase rules find in a sentence that reads this unlikely to tell of one
happening (`SimilarSigns.said_happening`: a story, a figure of speech, a question) is asked
about ("Did you say ...?") instead of escalated (docs/understanding.md has the measurements).
Not when the rules find two different signs happening: a figure of speech or a story names
one ("I nearly died laughing"), a person describing what is happening often names several
("on a new antipsychotic, gone rigid, high fever, confused")."""
SURELY_SAID = 0.95
"""A sentence that reads this likely to tell of a sign happening now (`said_happening`) and
is nearest a flag's phrases is asked about, even in words no phrase shares."""
MAX_CHARACTERS = 1000
"""A spoken question is far shorter; longer typed text is refused, not cut (a cut could drop
the "no" or the sign that matters)."""
COMMAND_EXTRA_WORDS = 2
"""A command may carry a few words more than its longest sample ("okay that's enough stop"),
not a whole question ("bye, I wanted to ask why my legs cramp at night")."""


@dataclass(frozen=True)
class Understanding:
    """What the user meant.

    `flags` are red flags said to be happening now; `asked_flags` were only asked about;
    `possible_flags` were found by meaning alone, to be confirmed before escalating.
    When the recogniser was unsure (`heard_clearly` False) the intent is fallback, as
    nothing may be answered on a guess, and `guess` keeps what the classifier made of the
    words, so the skill can ask again instead.
    """

    text: str
    intent: str
    confidence: float
    flags: tuple[str, ...] = ()
    asked_flags: tuple[str, ...] = ()
    possible_flags: tuple[str, ...] = ()
    concepts: frozenset[str] = field(default_factory=frozenset)
    answer: str | None = None
    days: float | None = None
    heard_clearly: bool = True
    guess: str = FALLBACK

    @property
    def definite(self) -> bool:
        """Whether something was made out for sure: a red flag the phrase rules found, however
        it was heard, or an intent or a duration heard clearly. A stray sound, a half-heard
        word, or a sign found by meaning alone (two words decoded from the skill's own voice,
        "my cold", were asked about as someone not responding) is not."""
        # A red flag said to be happening sets the intent however it was heard; other intents
        # and days are only taken from words heard clearly.
        return (self.intent != FALLBACK or bool(self.flags) or bool(self.asked_flags)
                or self.days is not None)


class IntentMatcher:
    """Intent classification with rejection, red flags with ConText, yes/no answers."""

    def __init__(self, content: Content, threshold: float = DEFAULT_THRESHOLD,
                 encoder: SentenceEncoder | None = None):
        self.threshold = threshold
        self._content = content
        self._encoder = encoder or shared_encoder()
        self._finder = ConceptFinder(content.lexicon)
        self._model = load_or_train(content, self._finder, self._encoder)
        self._spotter = RedFlagSpotter(content.red_flags, content.context)
        self._similar = SimilarSigns(content, self._spotter, self._encoder)
        self._command_length = {
            name: max(len(tokens(s)) for s in content.intents[name]) + COMMAND_EXTRA_WORDS
            for name in content.actions
        }
        self._command_samples = {name: frozenset(" ".join(tokens(s)) for s in content.intents[name])
                                 for name in content.actions}
        self._command_words = _own_words(content, self._command_samples)
        self._answer_samples = frozenset(" ".join(tokens(s)) for name in content.answers
                                         for s in content.intents[name])
        self._spoken = _spoken_text(content)
        outcome = {flag.name: content.nodes[flag.goto].outcome for flag in content.red_flags}
        self._emergency_flags = frozenset(n for n, o in outcome.items() if o == OUTCOMES[-1])
        self._escalating_flags = frozenset(n for n, o in outcome.items() if o in ESCALATING)
        self._graver_emergencies: dict[str, set[str]] = {}  # milder flag -> emergencies
        for flag in content.red_flags:
            for milder in flag.becomes.values():
                if flag.name in self._emergency_flags:
                    self._graver_emergencies.setdefault(milder, set()).add(flag.name)

    @staticmethod
    def needs_building(content: Content) -> bool:
        """Whether the first IntentMatcher for this content trains its models (a minute or
        two, once), so a front-end can say so before it starts."""
        fingerprint = SentenceEncoder.fingerprint
        return not (model_path(content, fingerprint).is_file()
                    and index_path(content, fingerprint).is_file())

    def understand(self, transcript: str, asr_confidence: float | None = None) -> Understanding:
        """`asr_confidence` (0..1, from the recogniser) below MIN_ASR_CONFIDENCE marks the
        turn as not heard clearly: the dialogue then asks instead of answering."""
        said = transcript[:MAX_CHARACTERS]
        text = normalize(said)
        findings = self._spotter.spot(said)
        present = tuple(f.flag for f in findings if f.status == PRESENT)
        asked = tuple(f.flag for f in findings if f.status == "hypothetical")
        words = tokens(text)
        concepts = self._finder.find(words)
        guess, confidence, possible = FALLBACK, 0.0, ()
        if words:
            meaning = self._encoder.encode([text])[0]
            guess, confidence = self._classify(words, concepts, meaning)
            passing = self._spotter.said_in_passing(said, findings) & self._escalating_flags
            in_passing = tuple(name for name in present if name in passing)
            present = tuple(name for name in present if name not in in_passing)
            alarms = tuple(name for name in present if name in self._escalating_flags)
            if len(alarms) == 1 and self._similar.said_happening(meaning) < SAID_FLOOR:
                present = tuple(name for name in present if name not in alarms)
                possible = self._doubted(alarms, words, guess, confidence)
            elif " ".join(words) not in self._command_samples.get(guess, ()):
                # A command said in its own words ("slow down") is not searched for signs.
                possible = self._possible_signs(said, meaning, findings, guess, confidence)
            possible = tuple(dict.fromkeys(in_passing + possible))
        clear = asr_confidence is None or asr_confidence >= MIN_ASR_CONFIDENCE
        intent = self._flag_intent(present) or (guess if clear else FALLBACK)
        return Understanding(
            text=text,
            intent=intent,
            confidence=round(confidence, 3),
            flags=present,
            asked_flags=asked,
            possible_flags=possible,
            concepts=frozenset(concepts),
            answer=self._content.answers.get(intent),
            days=days_in(text, self._content.lexicon) if text and clear else None,
            heard_clearly=clear,
            guess=guess,
        )

    def _doubted(self, present: tuple[str, ...], words: list[str], guess: str,
                 confidence: float) -> tuple[str, ...]:
        """The signs to ask about, of those the rules found in a sentence that does not read
        as telling of one ("a fit of the giggles"): all of them, unless it is asked as a
        question, clearly one of the skill's, and none is an emergency sign; that question is
        then answered ("do I need my GP or am I wasting their time"). A statement the
        classifier is as sure of ("i keep getting to one side when i walk", misheard) is
        asked about."""
        asked = words[0] in self._content.context.question_starts
        if asked and self._clearly_a_question(guess, confidence) and not (
                self._emergency_flags.intersection(present)):
            return ()
        return present

    def _possible_signs(self, said: str, meaning: np.ndarray, findings: tuple[Finding, ...],
                        guess: str, confidence: float) -> tuple[str, ...]:
        """Signs found by meaning alone, to be confirmed: when the rules found none, or only
        less severe ones said to be happening ("her hand's gone dead" said outright beside
        words that only mean she cannot speak); beside an urgent sign only an emergency one
        is looked for."""
        if any(finding.status != PRESENT for finding in findings):
            return ()
        floor = (STRONG_SIMILARITY if self._clearly_a_question(guess, confidence)
                 else SIMILARITY_FLOOR)
        said_milder = {finding.flag for finding in findings}
        if said_milder & self._emergency_flags:
            return ()
        # An emergency the rules found creeping up, and so met as its milder sign
        # (`becomes`), is not asked about again.
        judged = set().union(*(self._graver_emergencies.get(name, ()) for name in said_milder))
        # Nor is a graver sign looked for in the words that said the milder one: "my calf is
        # swollen, hot to the touch" is a sign of a clot, not of heatstroke.
        explained = frozenset().union(*(finding.words for finding in findings))
        if said_milder & self._escalating_flags:
            return self._similar.find(said, meaning, floor, explained,
                                      among=self._emergency_flags - judged)
        found = self._similar.find(said, meaning, floor, explained)
        # A sentence that reads surely as telling of a sign, in words that share none with a
        # flag's phrases ("my head keeps getting pulled round"), is asked about as the nearest.
        if not found and self._similar.said_happening(meaning) >= SURELY_SAID:
            found = tuple(filter(None, [self._similar.nearest(meaning, floor)]))
        return tuple(name for name in found if name not in judged)

    def _clearly_a_question(self, intent: str, confidence: float) -> bool:
        """Clearly one of the skill's questions ("could my new tablets cause cramps?"): a
        sign found only by meaning is then asked about only when said nearly in a flag's own
        words (STRONG_SIMILARITY); one said in a sign's own words still is (the rules, which
        run first)."""
        route = self._content.routes.get(intent)
        return (route is not None and confidence >= CLEAR_QUESTION
                and self._content.nodes[route].outcome != OUTCOMES[-1])

    def _flag_intent(self, present: tuple[str, ...]) -> str | None:
        """For an emergency sign, the intent whose route is an emergency: an emergency
        reported in any words, whichever emergency node answers it, is reported as the
        emergency intent.  A less severe sign ("it keeps coming back") leaves the question
        its own intent; the sign still decides the answer."""
        content = self._content
        emergency = OUTCOMES[-1]
        if not self._emergency_flags.intersection(present):
            return None
        return next((intent for intent, node in content.routes.items()
                     if content.nodes[node].outcome == emergency), None)

    def _classify(self, words: list[str], concepts: list[str],
                  meaning: np.ndarray) -> tuple[str, float]:
        probabilities = self._model.probabilities(features(words, concepts), meaning)
        ranked = sorted(zip(self._model.classes, probabilities, strict=True),
                        key=lambda pair: -pair[1])
        excluded = 0.0  # probability of intents that cannot apply to these words
        for intent, probability in ranked:
            given = probability / max(1e-9, 1.0 - excluded)  # given the others are ruled out
            if given < self.threshold:
                break
            if self._fits(intent, words, concepts, given):
                return intent, float(given)
            excluded += probability
        return FALLBACK, float(ranked[0][1])

    def _fits(self, intent: str, words: list[str], concepts: list[str],
              probability: float) -> bool:
        """Commands must be short and clear; a medical answer needs the sentence to name its
        subject, and nothing that says it is about something else."""
        content = self._content
        found = set(concepts)
        if intent in content.actions:
            # "tell us a joke, go on" asks for a joke, not for more
            length = len(words) - self._finder.courtesy_words(words)
            return (length <= self._command_length[intent] and probability >= COMMAND_THRESHOLD
                    and self._said_as_command(intent, words)
                    and not self._about_something_else(words, found))
        if intent in content.answers:
            # "are you listening to me all the time" asks; "could be" is an answer
            return probability >= COMMAND_THRESHOLD and (
                words[0] not in content.context.question_starts
                or " ".join(words) in self._answer_samples)
        if intent == FALLBACK:
            return True
        sure = intent in content.routes and probability >= SURE_OF_SUBJECT
        if self._about_something_else(words, found, sure):
            return False
        if intent not in content.routes:
            # Answered only where a node expects it ("what do I do while I wait", after an
            # emergency), and never for a sentence about this skill's subject.
            return not self._finder.domain & found
        needs = content.needs.get(intent)
        if needs and not needs & found:
            return False
        return bool(self._finder.domain & found)

    def _about_something_else(self, words: list[str], found: set[str],
                              sure: bool = False) -> bool:
        """Whether the sentence asks for another task (a reminder, a joke), a complaint that is
        not of muscles ("my back itches", however sure the classifier is of a back), or names
        something this skill is not about (a pet, a phone) other than where on the speaker's
        own body ("my lower back" in the van) or beside a question the classifier is `sure` of."""
        finder = self._finder
        if finder.task & found or (finder.not_muscle & found and not finder.muscle & found):
            return True
        return (bool(finder.veto & found) and not sure and not finder.names_own_body(words))

    def _said_as_command(self, intent: str, words: list[str]) -> bool:
        """A command is one of its samples, or says one of its own words and is no piece of
        what the skill says itself (the live loop hears its own answers' residue)."""
        said = " ".join(words)
        if said in self._command_samples[intent]:
            return True
        return bool(self._command_words[intent] & set(words)) and f" {said} " not in self._spoken


def _own_words(content: Content, samples: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
    """Each command's words, without the light words (pronouns, "to be", fillers) and the
    courtesy terms any sentence may carry."""
    courtesy = {word for concept in content.lexicon.concepts.values() if concept.courtesy
                for term in concept.terms for word in tokens(term)}
    light = content.context.light_words | courtesy
    return {name: frozenset(word for sample in sentences for word in sample.split()) - light
            for name, sentences in samples.items()}


def _spoken_text(content: Content) -> str:
    """Everything the skill may say, normalized, one text per line, padded with spaces so
    that " words " is found only as whole words."""
    nodes = [text for node in content.nodes.values()
             for text in (node.say, node.more, node.ask) if text]
    texts = [*nodes, *content.messages.values(), content.disclaimer,
             *(flag.confirm for flag in content.red_flags)]
    return "".join(f" {' '.join(tokens(text))} \n" for text in texts)
