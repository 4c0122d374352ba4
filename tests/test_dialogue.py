"""Typed conversations through the real content, matcher and dialogue tree."""

from __future__ import annotations

import pytest

from voiceskill.content import load_content
from voiceskill.pipeline import Skill


@pytest.fixture(scope="module")
def skill() -> Skill:
    return Skill(load_content())


def talk(skill: Skill, *texts: str):
    conversation = skill.conversation()
    return [skill.text_turn(conversation, text).reply for text in texts]


@pytest.mark.parametrize(
    ("answers", "outcome"),
    [
        (["no", "no", "no", "no"], "self_care"),
        (["yes"], "urgent"),
        (["yes, and my legs feel weak"], "urgent"),
        (["no", "yes"], "see_doctor"),
        (["no", "no", "yes it hurts a lot"], "see_doctor"),
        (["nope", "not really", "no", "yes i think so"], "see_doctor"),
    ],
)
def test_triage_reaches_outcome(skill, answers, outcome):
    replies = talk(skill, "when should I see a doctor about my twitching", *answers)
    assert [r.outcome for r in replies[:-1]] == [None] * len(answers)
    assert replies[-1].outcome == outcome
    assert replies[-1].node.startswith("advice_")


def test_volunteered_red_flag_escalates_before_being_asked(skill):
    replies = talk(skill, "what causes muscle twitching", "no, but my legs feel weak")
    assert replies[-1].outcome == "urgent"


def test_negated_red_flag_does_not_escalate(skill):
    replies = talk(skill, "should I see a doctor", "no, I don't have any numbness or tingling")
    assert replies[-1].node == "triage_lasting"


@pytest.mark.parametrize(
    "emergency",
    ["I can't breathe", "I have chest pain", "my whole body is jerking", "I hit my head"],
)
def test_emergency_in_the_middle_of_triage_escalates(skill, emergency):
    replies = talk(skill, "should I see a doctor", "no", emergency)
    assert replies[-1].intent in {"emergency", "no", "fallback", "yes"}
    assert replies[-1].outcome == "emergency"
    assert "emergency" in replies[-1].answer.lower()


def test_repeat_says_the_last_answer_again(skill):
    first, again = talk(skill, "what is the difference between a twitch and a spasm", "repeat")
    assert again.intent == "repeat"
    assert again.answer == first.answer


def test_slower_lowers_the_rate_for_the_rest_of_the_conversation(skill):
    replies = talk(skill, "how do I stop a cramp", "slower", "how do I prevent cramps")
    assert replies[0].rate_scale == 1.0
    assert replies[1].rate_scale < 1.0
    assert replies[2].rate_scale == replies[1].rate_scale
    assert replies[1].answer.endswith(replies[0].answer)


def test_back_returns_to_the_previous_node(skill):
    replies = talk(skill, "what causes cramps", "yes", "go back")
    assert replies[1].node == "spasm_relief"
    assert replies[2].node == "spasm_causes"


def test_start_over_returns_to_the_welcome(skill):
    replies = talk(skill, "should I see a doctor", "no", "start over", "no")
    assert replies[2].node == skill.content.start
    assert replies[3].outcome is None


def test_stop_is_silent_and_stays_ready(skill):
    replies = talk(skill, "how do I stop a cramp", "stop", "repeat")
    assert replies[1].answer == ""
    assert replies[1].node == replies[0].node
    assert replies[2].answer == replies[0].answer


def test_goodbye_ends_the_conversation(skill):
    assert talk(skill, "goodbye")[-1].end


def test_help_and_fallback_say_what_it_can_do(skill):
    help_reply, fallback = talk(skill, "what can you do", "play some jazz")
    assert "twitch" in help_reply.answer
    assert fallback.intent == "fallback"
    assert fallback.answer == skill.content.messages["fallback"]


def test_fallback_in_triage_asks_the_question_again(skill):
    replies = talk(skill, "should I see a doctor", "what's the weather like")
    assert replies[1].intent == "fallback"
    assert replies[1].node == "triage_nerve_signs"
    assert skill.content.nodes["triage_nerve_signs"].ask in replies[1].answer


def test_disclaimer_is_spoken_once_per_conversation(skill):
    replies = talk(skill, "what causes twitching", "how do I stop a cramp", "what causes cramps")
    disclaimer = skill.content.disclaimer
    assert sum(disclaimer in r.answer for r in replies) == 1
    assert disclaimer in talk(skill, "how do I stop a cramp")[0].answer


def test_more_gives_the_longer_form_once(skill):
    replies = talk(skill, "what causes cramps", "tell me more", "tell me more")
    assert replies[1].answer == skill.content.nodes["spasm_causes"].more
    assert replies[2].answer == skill.content.messages["nothing_more"]
