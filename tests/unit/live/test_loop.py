"""The live loop's decisions in process, without audio devices: what it does with a
recognised turn, and how long it lets one utterance run (the real recogniser and content)."""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import pytest

from helpers import ROOT
from voiceskill.asr import MAX_TURN_S, Transcript, create_recognizer, transcribe_file
from voiceskill.audio import SAMPLE_RATE, VadEvent, read_wav_chunks
from voiceskill.content import load_content
from voiceskill.live import Status, _Loop, command_recognizer
from voiceskill.pipeline import Skill

CLEAN = ROOT / "audio_fixtures" / "clean"


@pytest.fixture(scope="module")
def skill() -> Skill:
    content = load_content()
    return Skill(content, recognizer=create_recognizer("pocketsphinx",
                                                       content.domain_sentences()))


def loop(skill: Skill) -> _Loop:
    args = argparse.Namespace(wake=None, json=True, echo_cancel=False)
    return _Loop(skill, args, Status(), None)


def turns(out: str) -> list[dict]:
    return [json.loads(line) for line in out.splitlines()]


def test_an_out_of_domain_reply_to_did_you_say_is_answered_not_dropped(skill, capsys):
    """The confirmation was cleared by the turn, and only then was the turn found 'not for
    me': the skill said nothing and the question was gone."""
    live = loop(skill)
    live._answer([Transcript("i can't breathe", (), 0.3, True)], time.perf_counter(), 0.0, 0.0)
    live._answer([Transcript("play some jazz music", (), 0.9, True)],
                 time.perf_counter(), 0.0, 0.0)
    asked, answered = turns(capsys.readouterr().out)
    assert asked["answer"].startswith("Did you say")
    assert answered["transcript"] == "play some jazz music" and answered["answer"]


def test_out_of_domain_speech_with_no_question_pending_is_let_pass(skill, capsys):
    loop(skill)._answer([Transcript("play some jazz music", (), 0.9, True)],
                        time.perf_counter(), 0.0, 0.0)
    captured = capsys.readouterr()
    assert captured.out == "" and "ignored (not for me)" in captured.err


def test_an_utterance_is_cut_at_the_cap_replay_and_serve_use(skill, capsys):
    """Speech the detector never hears end (a TV, a long monologue) is answered once it
    reaches MAX_TURN_S, and what goes on is the next utterance: listen had no cap."""
    question = np.concatenate(list(read_wav_chunks(CLEAN / "spasm_relief__1__flite-slt.wav")))
    pause = np.zeros(SAMPLE_RATE // 2, dtype=np.int16)
    speech = np.tile(np.concatenate([question, pause]),
                     int(MAX_TURN_S * SAMPLE_RATE / (len(question) + len(pause))) + 2)
    live = loop(skill)
    live._recognise(VadEvent("start", 0.0))
    block = SAMPLE_RATE // 2
    for start in range(0, len(speech), block):
        samples = speech[start : start + block]
        live._keep_enhanced(samples)  # as run() does before the detector's events
        live._recognise(VadEvent("audio", start / SAMPLE_RATE, samples))
    heard = [line for line in capsys.readouterr().err.splitlines() if line.startswith("heard")]
    assert len(heard) == 1  # at the cap, with no end of speech
    live._recognise(VadEvent("end", len(speech) / SAMPLE_RATE, silence_ms=500.0))
    assert any(line.startswith("heard") for line in capsys.readouterr().err.splitlines())


def test_a_question_about_a_sign_in_words_no_intent_has_is_answered(skill, capsys):
    """The dialogue answers it with what to do if it happens, under the fallback intent: the
    loop took that for 'not for me' and said nothing."""
    loop(skill)._answer([Transcript("what are the signs of a stroke", (), 0.9, True)],
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
    live._answer(readings, time.perf_counter(), 0.0, 0.0)
    (turn,) = turns(capsys.readouterr().out)
    assert turn["intent"] == "stop"
