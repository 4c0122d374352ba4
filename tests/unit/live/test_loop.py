"""The live loop's decisions in process, without audio devices: what it does with a
recognised turn, and how long it lets one utterance run, heard from a recording (the real
recogniser, voice detector and content)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import weakref

import numpy as np
import pytest
import soundfile as sf

from helpers import ROOT
from voiceskill.asr import MAX_TURN_S, Transcript, create_recognizer, transcribe_file
from voiceskill.audio import SAMPLE_RATE, trim_silence
from voiceskill.content import load_content
from voiceskill.devices import DeviceError
from voiceskill.live import BLOCK_S, Loop, Status, command_recognizer, listen
from voiceskill.live.echo import EchoCanceller
from voiceskill.pipeline import Skill

CLEAN = ROOT / "audio_fixtures" / "clean"


@pytest.fixture(scope="module")
def skill() -> Skill:
    content = load_content()
    return Skill(content, recognizer=create_recognizer("pocketsphinx",
                                                       content.domain_sentences()))


def loop(skill: Skill) -> Loop:
    args = argparse.Namespace(wake=None, json=True, echo_cancel=False)
    return Loop(skill, args, Status(), None)


def turns(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_an_out_of_domain_reply_to_did_you_say_is_answered_not_dropped(skill, capsys):
    """The confirmation was cleared by the turn, and only then was the turn found 'not for
    me': the skill said nothing and the question was gone."""
    live = loop(skill)
    live.answer([Transcript("i can't breathe", (), 0.3, True)], time.perf_counter(), 0.0, 0.0)
    live.answer([Transcript("play some jazz music", (), 0.9, True)],
                 time.perf_counter(), 0.0, 0.0)
    asked, answered = turns(capsys.readouterr().out)
    assert asked["answer"].startswith("Did you say")
    assert answered["transcript"] == "play some jazz music" and answered["answer"]


def test_out_of_domain_speech_with_no_question_pending_is_let_pass(skill, capsys):
    loop(skill).answer([Transcript("play some jazz music", (), 0.9, True)],
                        time.perf_counter(), 0.0, 0.0)
    captured = capsys.readouterr()
    assert captured.out == "" and "ignored (not for me)" in captured.err


class Recording:
    """A microphone that plays `samples` in the loop's blocks and is then gone: Loop.run ends
    with DeviceError, as when a microphone is unplugged."""

    def __init__(self, samples: np.ndarray):
        self.samples, self.block_position, self._next = samples, 0, 0

    def read(self, timeout: float) -> np.ndarray:
        if self._next >= len(self.samples):
            raise DeviceError("the recording is over")
        self.block_position = self._next
        self._next += round(BLOCK_S * SAMPLE_RATE)
        return self.samples[self.block_position : self._next]


def test_an_utterance_is_cut_at_the_cap_replay_and_serve_use(skill, capsys):
    """Speech the detector never hears end (a TV, a long monologue: here a question said over
    and over without a pause) is answered once it reaches MAX_TURN_S, and what goes on is the
    next utterance, answered at its end: listen had no cap, and answered once."""
    question = trim_silence(CLEAN / "spasm_relief__1__flite-slt.wav", keep_s=0.0)
    speech = np.tile(question, int(MAX_TURN_S * SAMPLE_RATE / len(question)) + 2)
    silence = np.zeros(SAMPLE_RATE, dtype=np.int16)  # then the end of speech is heard
    with pytest.raises(DeviceError):
        loop(skill).run(Recording(np.concatenate([speech, silence])))
    heard = [line for line in capsys.readouterr().err.splitlines() if line.startswith("heard")]
    assert len(heard) == 2, heard  # at the cap, with no end of speech; then the rest


def test_a_question_about_a_sign_in_words_no_intent_has_is_answered(skill, capsys):
    """The dialogue answers it with what to do if it happens, under the fallback intent: the
    loop took that for 'not for me' and said nothing."""
    loop(skill).answer([Transcript("what are the signs of a stroke", (), 0.9, True)],
                        time.perf_counter(), 0.0, 0.0)
    (turn,) = turns(capsys.readouterr().out)
    assert "emergency" in turn["answer"]


def test_a_command_said_in_a_barge_in_is_read_with_the_commands_own_model_too(skill, capsys):
    """'okay stop talking' in a Scottish voice: the full model hears "he's got", which said
    over the answer is half heard, and the answer went on; the commands' own model hears it."""
    wav = CLEAN / "stop__2__espeak-en-gb-scotland.wav"
    live = loop(skill)
    live.over_answer = True
    readings = [transcribe_file(recognizer, wav)
                for recognizer in (skill.recognizer, command_recognizer(skill.content, None))]
    live.answer(readings, time.perf_counter(), 0.0, 0.0)
    (turn,) = turns(capsys.readouterr().out)
    assert turn["intent"] == "stop"


def test_over_the_answer_a_command_is_taken_only_if_the_user_rose_over_its_echo(skill, capsys):
    """At the end of an answer what the canceller left of its echo was heard "bye" (a
    goodbye) and ended the session, the questions after it lost: over the answer or its echo,
    a command or a yes/no answer (the content's actions and answers, a word or two) is taken
    only from speech that rose over the echo as it began (EchoCanceller.rise_db), the user's;
    a question made out is answered either way (one asked as the answer ends)."""
    live = loop(skill)
    live.over_answer, live.talked_over = True, False
    live.answer([Transcript("what causes muscle twitches", (), 0.9, True)],
                time.perf_counter(), 0.0, 0.0)
    for text in ("yes", "goodbye", "stop"):  # it asked "Do you want to know ...?"
        live.answer([Transcript(text, (), 0.9, True)], time.perf_counter(), 0.0, 0.0)
    assert not live.conversation.ended
    live.talked_over = True
    for text in ("yes", "goodbye"):
        live.answer([Transcript(text, (), 0.9, True)], time.perf_counter(), 0.0, 0.0)
    assert live.conversation.ended
    assert [turn["intent"] for turn in turns(capsys.readouterr().out)] == [
        "twitch_causes", "yes", "goodbye"]


def test_a_question_asked_as_an_answer_ends_is_heard_whole_through_the_canceller(skill, capsys):
    """A real recording from bench/echo_path.py at load average 5: the microphone (left) and
    what the speaker played (right), the last 6 s of an answer and the question asked as it
    ended, its first 0.15 s over the answer's last echo. The loop cancels the echo and
    recognises the question from the filter's output: through speexdsp's residual-echo
    suppressor too (what the voice detector hears) it was "are twitches and cramps i'm sick",
    the question the bench lost at load, with the echo exactly where the reference had it."""
    recorded, rate = sf.read(ROOT / "tests" / "data" / "echo_question_as_answer_ends.flac",
                             dtype="int16")
    silence = np.zeros((rate, 2), dtype=np.int16)  # then the end of speech is heard
    mic, played = np.concatenate([recorded, silence]).T
    live = loop(skill)
    canceller = EchoCanceller(rate, position_at=lambda stream_time: round(stream_time * rate))
    canceller.reference.started(played, rate, heard_at=0.0)  # looked for as it plays
    live._echo_canceller = lambda microphone: canceller
    with pytest.raises(DeviceError):
        live.run(Recording(mic))
    assert canceller.reference.echo_found
    assert [turn["transcript"] for turn in turns(capsys.readouterr().out)] == [
        "are twitches and cramps the same thing"]


class SignalledInACallback(Recording):
    """Silence, with SIGTERM handled inside a weakref callback as the first block is read (a
    callback runs wherever the object it watches is freed): the exception the handler raises
    is swallowed there. Gone after 10 s of blocks, as if unplugged."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        pass

    def position_at(self, stream_time: float) -> int:
        return 0

    def read(self, timeout: float) -> np.ndarray:
        if self._next == 0:
            watched = type("Watched", (), {})()
            kept = weakref.ref(watched, lambda ref: os.kill(os.getpid(), signal.SIGTERM))
            del watched, kept  # never reached as the exception would have it: swallowed
        return super().read(timeout)


def test_a_sigterm_whose_exception_is_swallowed_still_ends_listen(skill, monkeypatch):
    """Python swallows an exception raised inside a __del__ or weakref callback ("Exception
    ignored in ..."): a SIGTERM handled there was lost, and listen ran on until killed."""
    swallowed = []
    monkeypatch.setattr(sys, "unraisablehook", swallowed.append)
    args = argparse.Namespace(wake=None, json=True, echo_cancel=False, log_dir=None)
    microphone = SignalledInACallback(np.zeros(10 * SAMPLE_RATE, dtype=np.int16))
    assert listen(skill, args, microphone, Status()) == 0  # 2: the microphone "unplugged"
    assert [type(s.exc_value).__name__ for s in swallowed] == ["_Stop"]  # how it was lost
    assert microphone._next < SAMPLE_RATE  # at the next block
