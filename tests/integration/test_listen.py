"""`voiceskill listen` end to end on virtual devices: questions played into a virtual microphone,
answers captured from the virtual speaker and checked against what `say -o` renders; each
conversation ends with a signal (the other ways the loop ends: test_listen_exit.py, a file of
its own so that the two test workers share these real-time tests)."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from helpers import conversation, ends_cleanly, fixture, listeners
from virtual_audio import (
    active_span,
    fell_quiet,
    find_signal,
    played_through,
    rendered,
)

pytestmark = pytest.mark.audio_devices


@pytest.fixture
def listener(virtual_audio):
    with listeners(virtual_audio) as start:
        yield start


def recorded(path: Path) -> np.ndarray:
    return sf.read(path, dtype="int16")[0]


def at_16k(path: Path) -> np.ndarray:
    samples, rate = sf.read(path, dtype="float32")
    return (soxr.resample(samples, rate, 16_000) * 32767).astype(np.int16)


def test_question_is_answered_aloud_repeated_cut_off_by_stop_and_a_signal_ends_it(
        listener, virtual_audio, tmp_path):
    """One listener for all of it (each start costs the greeting): "repeat" is asked once the
    answer has been said in full, which is what the first part waits for anyway, and "stop"
    while the repeated answer plays. --save-audio keeps what is said (it was ignored)."""
    live = listener("--save-audio", str(tmp_path / "answers"))
    recording = virtual_audio.record_speaker(tmp_path / "speaker.wav")
    turn = live.ask(fixture("spasm_relief__1__flite-slt.wav"))
    assert turn["intent"] == "spasm_relief"
    assert turn["outcome"] == "self_care"
    answer = rendered(turn["answer"], tmp_path)
    recording.wait_until("played the whole answer", played_through(answer), context=live.explain)
    recording.wait_until("fell quiet", fell_quiet, context=live.explain)
    assert find_signal(recorded(recording.stop()), answer).correlation > 0.5
    assert turn["timings_ms"]["to_first_audio"] > 0
    _greeting, saved = sorted((tmp_path / "answers").iterdir())  # the greeting is said first
    assert find_signal(at_16k(saved), answer).correlation > 0.9

    recording = virtual_audio.record_speaker(tmp_path / "repeated.wav")
    again = live.ask(fixture("repeat__1__flite-slt.wav"))
    assert again["intent"] == "repeat"
    assert again["answer"] == turn["answer"]
    stop = live.ask(fixture("stop__1__flite-slt.wav"))  # spoken while the answer plays
    # cut off, or (if stop fails) at the end
    recording.wait_until("fell quiet", fell_quiet, context=live.explain)
    assert stop["intent"] == "stop"
    assert stop["answer"] == ""
    assert "to_first_audio" not in stop["timings_ms"]  # it was the answer's before, negative
    assert active_span(recorded(recording.stop())) < 0.8 * active_span(answer)

    ends_cleanly(live, signal.SIGINT)


def test_triage_by_voice_with_yes_and_no_and_a_signal_ends_it(listener):
    """The status stream (--status-json) tells each turn as it goes, one JSON object a line:
    listening, hearing, heard (the words), answering (the intent), until stopped; the lines
    people see on stderr stay as they were."""
    live = listener()
    turns = [live.ask(wav) for wav in conversation("triage_see_doctor__slt")]
    assert [t["intent"] for t in turns] == ["when_to_see_doctor", "no", "no", "no", "yes"]
    assert turns[-1]["outcome"] == "see_doctor"

    ends_cleanly(live, signal.SIGTERM)
    events = live.events
    assert all(isinstance(e["event"], str) and isinstance(e["time"], float) for e in events)
    assert {e["event"] for e in events} <= STATUS_EVENTS, events
    assert [e["time"] for e in events] == sorted(e["time"] for e in events)
    names = [e["event"] for e in events]
    assert names.index("listening") < names.index("hearing") < names.index("heard")
    assert heard_then_answered(events) == [(t["transcript"], t["intent"]) for t in turns]
    assert f'heard "{turns[0]["transcript"]}"' in live.status


STATUS_EVENTS = {"listening", "hearing", "hearing_own_voice", "heard", "ignored", "answering",
                 "answer_stopped", "answer_played", "recognition_failed", "error", "stopped"}


def heard_then_answered(events: list[dict]) -> list[tuple[str, str]]:
    """(words, intent) of each answering event and the heard event before it."""
    pairs, heard = [], None
    for event in events:
        if event["event"] == "heard":
            heard = event["text"]
        elif event["event"] == "answering":
            pairs.append((heard, event["intent"]))
    return pairs


def test_devices_lists_the_virtual_devices(virtual_audio):
    result = subprocess.run([sys.executable, "-m", "voiceskill", "devices"], env=virtual_audio.env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "default input" in result.stdout and "default output" in result.stdout
