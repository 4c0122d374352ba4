"""Faults in the middle of a conversation: the turn is lost, the conversation is not."""

from __future__ import annotations

from helpers import ROOT, FailsOnce
from voiceskill.asr import create_recognizer
from voiceskill.content import load_content
from voiceskill.pipeline import Skill

CLEAN = ROOT / "audio_fixtures" / "clean"


def test_recogniser_error_mid_utterance_loses_only_that_turn():
    content = load_content()
    real = create_recognizer("pocketsphinx", content.domain_sentences())
    skill = Skill(content, recognizer=FailsOnce(real, utterance=2))
    conversation = skill.conversation()
    question = skill.audio_turn(conversation, CLEAN / "when_to_see_doctor__1__flite-slt.wav")
    assert question.error is None and question.reply.node == "triage_weakness"
    failed = skill.audio_turn(conversation, CLEAN / "yes__1__flite-slt.wav")
    assert failed.reply is None
    assert failed.error == "yes__1__flite-slt.wav: recognition failed (decoder failure)"
    assert conversation.node == "triage_weakness"  # the conversation is not corrupted
    answered = skill.audio_turn(conversation, CLEAN / "yes__1__flite-slt.wav")
    assert answered.reply.outcome == "urgent"
