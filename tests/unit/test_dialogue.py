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
        (["no", "no", "no", "no", "no", "no"], "self_care"),
        (["yes"], "urgent"),
        (["yes, and my legs feel weak"], "urgent"),
        (["my fingers feel a bit tingly"], "urgent"),              # a sign named = yes
        (["no", "no", "no", "yes"], "see_doctor"),
        (["no", "no", "no", "about ten days"], "see_doctor"),      # a duration in words
        (["no", "no", "no", "3 weeks"], "see_doctor"),
        (["nope", "not really", "no", "only two days", "no", "I take statins"], "see_doctor"),
    ],
)
def test_triage_reaches_outcome(skill, answers, outcome):
    replies = talk(skill, "when should I see a doctor about my twitching", *answers)
    assert [r.outcome for r in replies[:-1]] == [None] * len(answers)
    assert replies[-1].outcome == outcome
    assert replies[-1].node.startswith("advice_")


def test_a_short_duration_is_a_no_to_the_week_question(skill):
    replies = talk(skill, "should I see a doctor", "no", "no", "no", "about three days")
    assert replies[-1].node == "triage_returning"


@pytest.mark.parametrize("unsure", ["I don't know", "not sure", "maybe"])
def test_unknown_is_never_no(skill, unsure):
    """Asked again once, then the careful branch, said why; never the reassuring one."""
    first, second = talk(skill, "should I see a doctor", unsure, unsure)[1:]
    assert first.node == "triage_weakness" and first.outcome is None
    assert skill.content.nodes["triage_weakness"].ask in first.answer
    assert second.outcome == "urgent"
    assert second.answer.startswith(skill.content.messages["unsure_move_on"])


def test_four_unknowns_never_end_in_self_care(skill):
    replies = talk(skill, "should I see a doctor", *["I don't know"] * 4)
    assert "self_care" not in [r.outcome for r in replies]


def test_pain_alone_does_not_send_a_cramp_to_the_doctor(skill):
    reply = talk(skill, "I have a cramp in my calf and it really hurts, what do I do")[-1]
    assert reply.outcome == "self_care"
    assert not [n for n in skill.content.nodes.values() if n.ask and "pain" in n.ask.lower()]


def test_volunteered_red_flag_escalates_before_being_asked(skill):
    replies = talk(skill, "what causes muscle twitching", "no, but my legs feel weak")
    assert replies[-1].outcome == "urgent"


def test_negated_red_flag_does_not_escalate(skill):
    replies = talk(skill, "should I see a doctor", "no, I don't have any numbness or tingling")
    assert replies[-1].node == "triage_walking"


@pytest.mark.parametrize(
    "emergency",
    ["I can't breathe", "I have chest pain", "my whole body is jerking", "I hit my head"],
)
def test_emergency_in_the_middle_of_triage_escalates(skill, emergency):
    replies = talk(skill, "should I see a doctor", "no", emergency)
    assert replies[-1].intent == "emergency"
    assert replies[-1].outcome == "emergency"
    assert replies[-1].answer == skill.content.nodes["emergency"].say


def test_repeat_says_the_last_answer_again(skill):
    first, again = talk(skill, "what is the difference between a twitch and a spasm", "repeat")
    assert again.intent == "repeat"
    assert again.answer == first.answer


def test_slower_lowers_the_rate_for_the_rest_of_the_conversation(skill):
    replies = talk(skill, "how do I stop a cramp", "slower", "how do I prevent cramps", "slower")
    assert replies[0].rate_scale == 1.0
    assert replies[1].rate_scale < 1.0
    assert replies[2].rate_scale == replies[1].rate_scale
    assert replies[3].rate_scale == replies[1].rate_scale  # does not stack
    assert replies[1].answer.endswith(replies[0].answer)


@pytest.mark.parametrize("command", ["slow down", "slower please"])
def test_a_command_in_its_own_words_is_obeyed_not_asked_about(skill, command):
    """"slow down" once read by meaning as maybe trouble swallowing: "Did you say ...?"."""
    first, slower = talk(skill, "how do I stop a cramp", command)
    assert slower.intent == "slower" and slower.rate_scale < 1.0
    assert slower.answer.endswith(first.answer)


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
    assert replies[1].node == "triage_weakness"
    assert skill.content.nodes["triage_weakness"].ask in replies[1].answer


def test_disclaimer_is_spoken_once_per_conversation(skill):
    replies = talk(skill, "what causes twitching", "how do I stop a cramp", "what causes cramps")
    disclaimer = skill.content.disclaimer
    assert sum(disclaimer in r.answer for r in replies) == 1
    assert disclaimer in talk(skill, "how do I stop a cramp")[0].answer


def test_more_gives_the_longer_form_once(skill):
    replies = talk(skill, "what causes cramps", "tell me more", "tell me more")
    assert replies[1].answer == skill.content.nodes["spasm_causes"].more
    assert replies[2].answer == skill.content.messages["nothing_more"]


def test_an_unsure_red_flag_is_confirmed_before_escalating(skill):
    conversation = skill.conversation()
    heard = skill.matcher.understand("i can't breathe", asr_confidence=0.2)
    question = conversation.respond(heard)
    assert question.outcome is None and question.answer.startswith("Did you say")
    assert conversation.awaiting_answer
    assert conversation.respond(skill.matcher.understand("yes")).outcome == "emergency"
    conversation = skill.conversation()
    conversation.respond(heard)
    denied = conversation.respond(skill.matcher.understand("no"))
    assert denied.outcome is None
    assert denied.answer == skill.content.messages["not_confirmed"]


def test_an_unclear_question_is_asked_again_not_answered(skill):
    conversation = skill.conversation()
    reply = conversation.respond(skill.matcher.understand("how do i stop a cramp", 0.3))
    assert reply.outcome is None
    assert reply.answer == skill.content.messages["reask"]


def test_a_question_about_a_red_flag_is_not_an_alarm(skill):
    reply = talk(skill, "what if I get chest pain?")[-1]
    assert reply.outcome is None
    assert reply.answer == skill.content.messages["asked_about_red_flag"]


@pytest.mark.parametrize(("text", "outcome"), [
    ("please call an ambulance", "emergency"),
    ("I don't need an ambulance, I just want to know why my calf cramps", "self_care"),
])
def test_only_a_red_flag_escalates_never_the_intent_alone(skill, text, outcome):
    reply = talk(skill, text)[-1]
    assert reply.outcome == outcome or (outcome == "self_care" and reply.outcome is None)


def test_over_its_own_voice_the_skill_answers_only_what_it_made_out_for_sure(skill):
    """The live loop's `over_answer`: a half-heard sound leaves the conversation as it was."""
    from voiceskill.asr import Transcript
    from voiceskill.pipeline import Ignored, TurnRecord

    conversation = skill.conversation()
    skill.text_turn(conversation, "how do I stop a cramp")  # ends offering more
    node = conversation.node
    half_heard = Transcript("ow", (), 0.2, True)
    assert skill.heard(conversation, half_heard, 0.0, over_answer=True) == Ignored("ow", True)
    assert conversation.node == node and conversation.awaiting_answer
    assert isinstance(skill.heard(conversation, half_heard, 0.0), TurnRecord)  # else answered
    stop = skill.heard(conversation, Transcript("stop", (), 0.9, True), 0.0, over_answer=True)
    assert stop.reply.intent == "stop"


def test_over_its_own_voice_a_sign_found_by_meaning_alone_is_not_made_out(skill):
    """Two words decoded from a reflection of the answer, "not moving", mean someone not
    responding to the sign index alone (no rule finds them): over the answer that is not
    asked about; said on its own, it is."""
    from voiceskill.asr import Transcript
    from voiceskill.pipeline import Ignored

    conversation = skill.conversation()
    skill.text_turn(conversation, "how do I stop a cramp")
    heard = Transcript("not moving", (), 0.99, True)
    assert skill.heard(conversation, heard, 0.0, over_answer=True) == Ignored("not moving", True)
    asked = skill.heard(conversation, heard, 0.0).reply
    assert asked.answer in {flag.confirm for flag in skill.content.red_flags}


def test_over_its_own_voice_a_run_of_the_answers_words_is_its_echo(skill):
    """A reflection of the answer decoded as its own words reads as a question of the skill's
    (how to ease a cramp): over that answer it is ignored; a sign the rules find still counts."""
    from voiceskill.asr import Transcript
    from voiceskill.pipeline import Ignored, TurnRecord

    conversation = skill.conversation()
    skill.text_turn(conversation, "how do I stop a cramp")
    echo = Transcript("stretch the muscle and massage it", (), 0.99, True)
    assert skill.heard(conversation, echo, 0.0, over_answer=True) == Ignored(echo.text, True)
    assert isinstance(skill.heard(conversation, echo, 0.0), TurnRecord)  # said after: answered
    skill.text_turn(conversation, "how do I stop a cramp")
    sign = Transcript("gently stretch the muscle and massage the area that often helps a "
                      "spasm ease I can't breathe", (), 0.99, True)  # the answer's, nearly
    assert skill.heard(conversation, sign, 0.0, over_answer=True).reply.outcome == "emergency"


def test_a_question_about_a_sign_is_answered_before_any_route(skill):
    """"is a fever with a stiff neck serious?" names an intent's words too ("serious"): the
    question about the sign wins, so it is not answered with reassurance about twitches."""
    reply = talk(skill, "is a fever with a stiff neck serious?")[-1]
    assert reply.outcome is None
    assert reply.answer == skill.content.messages["asked_about_red_flag"]


@pytest.mark.parametrize("flag", [flag.name for flag in load_content().red_flags])
def test_every_question_about_a_sign_gets_what_to_do_at_its_urgency(skill, flag):
    """Each `question` example of red_flags.yaml is answered with what to do if it happens:
    the emergency wording for an emergency sign, the "today" wording for an urgent one
    (numbness is checked today; the emergency wording would over-alarm)."""
    content = skill.content
    sign = next(f for f in content.red_flags if f.name == flag)
    emergency = content.nodes[sign.goto].outcome == "emergency"
    expected = content.messages["asked_about_red_flag" if emergency
                                else "asked_about_urgent_sign"]
    for question in sign.examples.get("question", ()):
        assert talk(skill, question)[-1].answer == expected, question


def test_a_triage_answer_never_leaves_for_self_care(skill):
    """An answer the matcher takes for a self-care question is asked again, then the careful
    branch; it never gets stretching tips while weakness is being asked about."""
    first, second = talk(skill, "should I see a doctor", "how do I ease a cramp",
                         "how do I ease a cramp")[1:]
    assert first.node == "triage_weakness" and first.outcome is None
    assert second.outcome == "urgent"


@pytest.mark.parametrize("after", ["what's the weather like", "ok", "he's confused now"])
def test_after_an_emergency_the_instruction_stands(skill, after):
    """Something unclear, a bare "ok" or a less urgent sign does not replace it."""
    emergency, reply = talk(skill, "my dad collapsed and won't wake up", after)
    assert emergency.outcome == "emergency"
    assert reply.outcome == "emergency" and reply.answer == emergency.answer


@pytest.mark.parametrize(("follow_up", "intent"), [
    ("what do I do while I wait", "while_waiting"), ("he's okay now", "symptoms_gone")])
def test_after_an_emergency_follow_ups_get_short_safe_answers(skill, follow_up, intent):
    emergency, reply = talk(skill, "my dad collapsed and won't wake up", follow_up)
    assert reply.node == skill.content.nodes[emergency.node].on[intent]
    assert reply.outcome == "emergency"


def test_a_triage_answer_is_not_taken_for_a_sign_to_confirm(skill):
    confirmations = {flag.confirm for flag in skill.content.red_flags}
    conversation = skill.conversation()
    skill.text_turn(conversation, "should I see a doctor about my twitching")
    conversation.node = "triage_cause"
    reply = skill.text_turn(conversation, "I take statins").reply
    assert reply.answer not in confirmations and reply.node.startswith("advice_")


@pytest.mark.parametrize(("text", "outcome"), [
    # clinical review M11: occasional tingling or unsteadiness is a routine visit
    ("I get pins and needles in my foot sometimes", "see_doctor"),
    ("I lose my balance now and then", "see_doctor"),
    ("pins and needles in my foot", "urgent"),
    ("my fingers keep going numb on and off all week", "urgent"),  # keeps coming back
    # m13: gradual slurring or choking on drinks is same-day care, not an ambulance
    ("my speech has got a bit slurred over the past few weeks", "urgent"),
    ("I choke on my drinks now and then", "urgent"),
    ("his speech is slurred", "emergency"),
    ("he is choking now", "emergency"),
    ("I get chest pain sometimes", "emergency"),  # no milder sign to become: stays itself
    ("can you sometimes get chest pain from a cramp", None),  # asked, not said
])
def test_a_sign_that_comes_and_goes_or_crept_up_is_met_as_its_milder_sign(skill, text,
                                                                          outcome):
    assert talk(skill, text)[0].outcome == outcome


def test_an_urgent_sign_is_advised_at_once_with_a_possible_graver_one_asked_after(skill):
    """A swollen calf said outright is same-day advice at once; the chest sign beside it,
    found only by meaning, is asked about after that advice, and a yes escalates."""
    content = skill.content
    text = "my calf is swollen and now I feel like an elephant is on me"
    first, yes = talk(skill, text, "yes")
    flags = {flag.name: flag for flag in content.red_flags}
    assert first.outcome == "urgent" and first.node == flags["dvt"].goto
    assert first.answer.startswith(content.nodes[first.node].say)
    assert first.answer.endswith(flags["chest_pain"].confirm)
    assert yes.outcome == "emergency"
    first, no = talk(skill, text, "no")
    assert no.outcome is None and no.node == first.node
