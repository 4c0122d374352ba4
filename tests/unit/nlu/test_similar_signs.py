"""Red flags by meaning (similar_signs.py) on a small content of its own: a sign said in words
no phrase has is a *possible* sign, to be confirmed; the ConText rules still decide whether
it is happening."""

from __future__ import annotations

import shutil

import pytest

from helpers import TESTS
from voiceskill.content import load_content
from voiceskill.dialogue import Conversation
from voiceskill.nlu import IntentMatcher
from voiceskill.nlu.similar_signs import as_answers, thinned

SIGNS = TESTS / "content" / "signs"


@pytest.fixture(scope="module")
def matcher() -> IntentMatcher:
    return IntentMatcher(load_content(SIGNS))


SAID_IN_OTHER_WORDS = "his words are all garbled and one side of his mouth sags"


def test_a_sign_in_other_words_is_possible_not_present(matcher):
    heard = matcher.understand(SAID_IN_OTHER_WORDS)
    assert heard.flags == () and heard.possible_flags == ("stroke",)


def test_a_possible_sign_is_confirmed_by_name_then_escalated(matcher):
    content = load_content(SIGNS)
    conversation = Conversation(content)
    ask = conversation.respond(matcher.understand(SAID_IN_OTHER_WORDS))
    assert ask.answer == "Did you say his face or speech suddenly changed?"
    assert ask.outcome is None
    assert conversation.respond(matcher.understand("yes")).outcome == "emergency"


@pytest.mark.parametrize("text", [
    "his words are not garbled and his mouth is fine",   # denied
    "his words were garbled and his mouth sagged years ago",  # past
    "is it bad if his words are garbled and his mouth sags",  # asked about
])
def test_a_denied_past_or_asked_about_meaning_is_not_a_sign(matcher, text):
    assert matcher.understand(text).possible_flags == ()


def test_a_not_is_part_of_the_sign_only_where_the_phrases_negate_that_word(matcher):
    """"not able to talk" says the sign ("can't talk" is a phrase); "not weak" denies it."""
    assert matcher.understand("he is not able to talk at all").possible_flags == ("stroke",)
    assert matcher.understand("his left arm has definitely not gone weak").possible_flags == ()


def test_what_the_rules_found_is_not_second_guessed(matcher):
    """A sign the phrases found keeps the status they gave it: no confirmation on top."""
    heard = matcher.understand("he cannot talk")
    assert heard.flags == ("stroke",) and heard.possible_flags == ()
    assert matcher.understand("no, he can talk").possible_flags == ()


def test_a_flag_that_does_not_escalate_is_never_confirmed(matcher):
    assert matcher.understand("it has lasted months").possible_flags == ()


def test_a_sign_only_words_can_say_is_never_confirmed_by_meaning(tmp_path):
    """`by_meaning: false` (a cramp that has lasted an hour): a sentence only meaning it is not
    asked about, while its phrases still escalate."""
    shutil.copytree(SIGNS, tmp_path / "signs")
    flags = tmp_path / "signs" / "red_flags.yaml"
    confirm = '    confirm: "Did you say his face or speech suddenly changed?"\n'
    flags.write_text(flags.read_text().replace(confirm, confirm + "    by_meaning: false\n"))
    words_only = IntentMatcher(load_content(tmp_path / "signs"))
    assert words_only.understand(SAID_IN_OTHER_WORDS).possible_flags == ()
    assert words_only.understand("he cannot talk").flags == ("stroke",)


def test_each_sign_is_nearest_its_own_phrases(matcher):
    """The index keeps each embedded phrase with its own flag (none drift to another)."""
    content = load_content(SIGNS)
    for flag in content.red_flags:
        if content.nodes[flag.goto].outcome != "emergency":
            continue
        for phrase in flag.phrases:
            vector = matcher._encoder.encode([phrase])
            assert matcher._similar.nearest(vector[0]) == flag.name, phrase


GRAVER_BESIDE_MILDER = ("it has lasted for weeks but his words are all garbled and one side of "
                        "his mouth sags")


def test_a_graver_sign_meant_beside_a_milder_one_said_is_possible(matcher):
    """The rules find only the milder sign; the emergency one the clause means is possible."""
    heard = matcher.understand(GRAVER_BESIDE_MILDER)
    assert heard.flags == ("lasting",) and heard.possible_flags == ("stroke",)


def test_the_graver_sign_is_confirmed_first_and_a_no_answers_the_milder_one(matcher):
    content = load_content(SIGNS)
    conversation = Conversation(content)
    ask = conversation.respond(matcher.understand(GRAVER_BESIDE_MILDER))
    assert ask.answer == "Did you say his face or speech suddenly changed?"
    denied = conversation.respond(matcher.understand("no"))
    assert denied.node == "later"
    conversation = Conversation(content)
    conversation.respond(matcher.understand(GRAVER_BESIDE_MILDER))
    assert conversation.respond(matcher.understand("yes")).outcome == "emergency"


def test_one_sentence_more_changes_at_most_one_sentence_drawn():
    """The assertion model is retrained on every content change: a new draw each time would
    move what it says of sentences nothing changed."""
    sentences = [f"my calf cramps when I do thing number {n}" for n in range(400)]
    before = set(thinned(sentences, 100))
    after = set(thinned([*sentences, "one sentence more"], 100))
    assert len(before - after) <= 1 and len(after - before) <= 1


def test_a_sentence_is_said_after_the_same_answer_whatever_else_is_learned():
    content = load_content(SIGNS)
    assert content.answers  # else nothing is said after an answer, and this proves nothing
    sentences = [(f"my leg jumps at {n} o'clock", True) for n in range(50)]
    before = set(as_answers(content, sentences))
    assert before <= set(as_answers(content, [("one sentence more", False), *sentences]))
