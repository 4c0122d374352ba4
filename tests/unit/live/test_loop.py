"""The live loop's decisions in process, without audio devices: what it does with a
recognised turn, and how long it lets one utterance run, heard from a recording (the real
recogniser, voice detector and content)."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import time
import weakref

import numpy as np
import pytest
import soundfile as sf
import soxr

from helpers import ROOT
from voiceskill.asr import MAX_TURN_S, Transcript, create_recognizer, transcribe_file
from voiceskill.audio import SAMPLE_RATE, trim_silence
from voiceskill.content import load_content
from voiceskill.devices import DeviceError
from voiceskill.live import BLOCK_S, Loop, Status, command_recognizer, listen
from voiceskill.live.echo import ECHO_TAIL_S, EchoCanceller
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
    the question the bench lost at load, with the echo exactly where the reference had it;
    and once the answer's echo had passed, the filter's low cut alone made its end "i'm done"."""
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
    [turn] = turns(capsys.readouterr().out)
    assert turn["transcript"].startswith("are twitches and cramps"), turn
    assert turn["transcript"].endswith("same thing"), turn  # its end, not "i'm sick"
    assert turn["intent"] == "twitch_vs_spasm", turn


def said(text: str, folder) -> np.ndarray:
    """`text` as the skill says it (`voiceskill say -o`), at 16 kHz."""
    out = folder / "said.wav"
    subprocess.run([sys.executable, "-m", "voiceskill", "say", "-o", str(out), text],
                   check=True, capture_output=True, timeout=60)
    samples, rate = sf.read(out, dtype="float32")
    return (soxr.resample(samples, rate, SAMPLE_RATE) * 32767).astype(np.int16)


@pytest.fixture(scope="module")
def spoken(skill, tmp_path_factory) -> tuple[np.ndarray, np.ndarray]:
    """The greeting, and the answer to "what's the difference between a twitch and a
    spasm", as the skill says them."""
    folder = tmp_path_factory.mktemp("spoken")
    nodes = skill.content.nodes
    return said(nodes[skill.content.start].say, folder), said(nodes["twitch_vs_spasm"].say, folder)


class Played(Recording):
    """A recording whose `plays` (microphone position, what the speaker plays from there)
    the loop's echo canceller is told of as the speaker would, a block before they are heard."""

    def __init__(self, samples: np.ndarray, canceller: EchoCanceller,
                 plays: list[tuple[int, np.ndarray]]):
        super().__init__(samples)
        self.canceller, self.plays = canceller, plays

    def read(self, timeout: float) -> np.ndarray:
        while self.plays and self._next >= self.plays[0][0] - round(BLOCK_S * SAMPLE_RATE):
            at, samples = self.plays.pop(0)
            self.canceller.reference.started(samples, SAMPLE_RATE, heard_at=at / SAMPLE_RATE)
        return super().read(timeout)


def over_the_answer(skill, spoken, heard_too: np.ndarray, at_s: float) -> list[dict]:
    """The loop on a microphone that hears the greeting, then the answer (each 6 dB down,
    40 ms late: the room the canceller learns) and `heard_too` from `at_s` into the answer;
    the status events it showed."""
    greeting, answer = spoken
    echo_at, delay = SAMPLE_RATE // 2, round(0.04 * SAMPLE_RATE)
    answer_at = echo_at + len(greeting) + 2 * SAMPLE_RATE
    mic = np.zeros(answer_at + len(answer) + 3 * SAMPLE_RATE)
    for at, played in ((echo_at, greeting), (answer_at, answer)):
        mic[at + delay : at + delay + len(played)] += played * 0.5
    extra_at = answer_at + round(at_s * SAMPLE_RATE)
    mic[extra_at : extra_at + len(heard_too)] += heard_too
    canceller = EchoCanceller(SAMPLE_RATE, position_at=lambda stream_time: round(
        stream_time * SAMPLE_RATE))
    events = io.StringIO()
    live = Loop(skill, argparse.Namespace(wake=None, json=True, echo_cancel=False),
                Status(events), None)
    live.greeting = ""  # the recording holds it
    live._echo_canceller = lambda microphone: canceller
    with pytest.raises(DeviceError):
        live.run(Played(np.clip(mic, -32768, 32767).astype(np.int16), canceller,
                        [(echo_at, greeting), (answer_at, answer)]))
    return [json.loads(line) for line in events.getvalue().splitlines()]


@pytest.mark.parametrize("late_s", [0.9, 1.35, 1.5, 1.65])
def test_the_answer_come_back_later_than_the_filter_reaches_is_not_a_turn(
        skill, spoken, late_s, capsys):
    """The own-voice listen test on a busy machine: the answer's first half 12 dB down (6 dB
    under its echo) comes back into the microphone as late as rendering it took there, more
    than the canceller's filter reaches (ECHO_TAIL_S; when idle, less, and the filter learns
    it). It passes the filter whole, does not rise over the echo, and was decoded as a
    garbled run of the answer's words, too garbled to be told for them: at these delays
    twitch_serious, twitch_vs_spasm, twitch_causes ('are twitchy muscle flickering article
    muscle ...') or a sign to confirm (dark urine), answered, and on the virtual devices the
    answer was cut off. It is the answer at one delay, and let pass."""
    assert late_s > ECHO_TAIL_S
    answer = spoken[1]
    reflection = answer[: len(answer) // 2] * 10 ** (-12 / 20)
    events = over_the_answer(skill, spoken, reflection, late_s)
    assert capsys.readouterr().out == ""  # no turn
    assert [e.get("reason") for e in events if e["event"] in ("ignored", "answering")] == [
        "own_voice"], events


def test_a_question_said_over_the_answer_without_rising_over_it_is_still_answered(
        skill, spoken, capsys):
    """Not the answer at any delay: said quietly (the microphone rises 2 dB over the echo,
    under BARGE_IN_RISE_DB), it is not judged the skill's own voice, and made out for sure,
    it is answered."""
    question = trim_silence(CLEAN / "emergency__1__flite-slt.wav", keep_s=0.0)
    events = over_the_answer(skill, spoken, question * 0.3, 2.5)
    assert not [e for e in events if e.get("reason") == "own_voice"], events
    assert [turn["intent"] for turn in turns(capsys.readouterr().out)] == ["emergency"]


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
