"""Intent matching on paraphrases the matcher never saw, and red-flag spotting."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from voiceskill.content import load_content, normalize
from voiceskill.nlu import IntentMatcher

HELDOUT = Path(__file__).parents[1] / "bench" / "heldout_text.csv"


@pytest.fixture(scope="module")
def matcher() -> IntentMatcher:
    return IntentMatcher(load_content())


def test_heldout_paraphrases_meet_the_accuracy_targets(matcher):
    rows = list(csv.DictReader(HELDOUT.open()))
    samples = {s for sentences in load_content().intents.values() for s in sentences}
    assert not [r["text"] for r in rows if normalize(r["text"]) in samples], "held-out leaked"
    results = [(row["intent"], matcher.understand(row["text"]).intent) for row in rows]
    in_domain = [got == want for want, got in results if want != "fallback"]
    rejected = [got == "fallback" for want, got in results if want == "fallback"]
    assert sum(in_domain) / len(in_domain) >= 0.95
    assert sum(rejected) / len(rejected) >= 0.95


@pytest.mark.parametrize(
    ("text", "intent"),
    [
        ("how do i stop a cramp", "spasm_relief"),
        ("how do i stop the cramp", "spasm_relief"),  # substituted small word
        ("how i stop cramp", "spasm_relief"),  # dropped small words
        ("what causes muscle twitchin", "twitch_causes"),  # misheard ending
        ("when should i see the doctor about my twitches", "when_to_see_doctor"),
    ],
)
def test_tolerates_recognition_errors(matcher, text, intent):
    assert matcher.understand(text).intent == intent


@pytest.mark.parametrize("text", ["", "   ", "?!", "the the the the", "42"])
def test_nonsense_is_fallback(matcher, text):
    understanding = matcher.understand(text)
    assert understanding.intent == "fallback"
    assert 0.0 <= understanding.confidence <= 1.0


def test_emergency_is_spotted_inside_a_sentence_that_matches_nothing(matcher):
    text = "so anyway the thing is i can't breathe very well since this morning honestly"
    assert "emergency" in matcher.understand(text).flags


def test_an_unsure_recogniser_gets_fallback_but_never_hides_an_emergency(matcher):
    assert matcher.understand("how do i stop a cramp", asr_confidence=0.3).intent == "fallback"
    assert matcher.understand("how do i stop a cramp", asr_confidence=0.9).intent == "spasm_relief"
    unsure_emergency = matcher.understand("i can't breathe", asr_confidence=0.2)
    assert unsure_emergency.intent == "emergency"
    assert "emergency" in matcher.understand("yes i can't breathe", asr_confidence=0.1).flags
