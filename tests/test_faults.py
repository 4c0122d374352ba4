"""Faults in the middle of a conversation: the turn is lost, the conversation is not."""

from __future__ import annotations

from pathlib import Path

from voiceskill.asr import create_recognizer
from voiceskill.content import load_content
from voiceskill.pipeline import Skill

ROOT = Path(__file__).parents[1]
CLEAN = ROOT / "audio_fixtures" / "clean"


class FailsOnce:
    """The real recogniser, made to fail once partway through its `utterance`-th utterance
    (fault injection: a real engine error cannot be produced on demand)."""

    def __init__(self, real, utterance: int):
        self.real, self.fail_in, self.utterances, self.fed = real, utterance, 0, 0
        self.name = real.name

    def start_utterance(self) -> None:
        self.utterances += 1
        self.fed = 0
        self.real.start_utterance()

    def feed(self, pcm):
        self.fed += 1
        if self.utterances == self.fail_in and self.fed == 3:
            raise RuntimeError("decoder failure")
        return self.real.feed(pcm)

    def end_utterance(self):
        return self.real.end_utterance()


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
