"""`voiceskill listen` on virtual devices whose speaker is fed back into the microphone: the
echo canceller keeps the skill from answering or interrupting itself, and "stop" is still
heard (offline: tests/unit/live/test_echo.py; more on the echo path: test_listen_own_voice.py,
a file of its own so that the two test workers share these real-time tests)."""

from __future__ import annotations

import pytest
import soundfile as sf

from helpers import after_answer, fixture, listeners
from virtual_audio import active_span, rendered
from voiceskill.audio import SAMPLE_RATE


@pytest.mark.audio_devices
def test_listen_neither_interrupts_nor_answers_itself_and_still_hears_stop(echo_path, tmp_path):
    """Speaker fed back into the microphone 6 dB down: two answers play out whole with no turn
    of their own; "stop" over the third cuts it off."""

    with listeners(echo_path) as start:
        live = start()
        for question in ("spasm_relief__1__flite-slt.wav", "twitch_causes__1__flite-slt.wav"):
            since = len(live.events)
            turn = live.ask(fixture(question))
            live.wait_for("answer_played", since)
            after_answer(live)
            assert live.turns.empty(), f"answered itself: {live.turns.get()}"
            assert not [e for e in live.events if e["event"] == "answer_stopped"], live.explain()
            assert turn["answer"]
        recording = echo_path.record_speaker_echo(tmp_path / "speaker.wav")
        first = live.ask(fixture("twitch_vs_spasm__1__flite-slt.wav"))
        recording.wait_until(  # past the canceller's first second
            "played 2 s of the answer", lambda heard: active_span(heard) >= 2 * SAMPLE_RATE,
            context=lambda: f"{first} | {live.explain()}")
        echo_path.play_into_mic(fixture("stop__1__flite-slt.wav"))
        live.wait_for("answer_played")
        heard = sf.read(recording.stop(), dtype="int16")[0]
        assert active_span(heard) < 0.8 * active_span(rendered(first["answer"], tmp_path))
