"""`voiceskill listen` on the echo path (its speaker fed back into the microphone): the skill's
own voice, come back by a path the canceller has not learned, does not cut its answer off,
a question asked as soon as it stops talking is heard whole, and a goodbye said then ends
the session (see also test_listen_echo.py)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from helpers import after_answer, fixture, listeners, stopped
from virtual_audio import played_through, rendered, trimmed
from voiceskill.audio import SAMPLE_RATE
from voiceskill.content import load_content


@pytest.mark.audio_devices
def test_listen_is_not_cut_off_by_its_own_voice_come_back_another_way(echo_path, tmp_path):
    """The answer's own voice also reaching the microphone by a path the canceller has not
    learned (a late reflection, 6 dB under the echo it knows) leaves what the voice detector
    takes for speech. The answer was cut off on it (the self-interruptions of
    bench/echo_path.py); the microphone is no louder against what is played than before,
    so it plays on, and what was heard is not taken for a turn."""

    with listeners(echo_path) as start:
        live = start()
        recording = echo_path.record_speaker_echo(tmp_path / "speaker.wav")
        turn = live.ask(fixture("twitch_vs_spasm__1__flite-slt.wav"))
        since = len(live.events)
        said = rendered(turn["answer"], tmp_path)
        # Its first half: it starts as late as rendering it takes (seconds on a loaded
        # machine), and must end while the answer plays, as a reflection would.
        reflection = tmp_path / "reflection.wav"
        sf.write(reflection, (said[: len(said) // 2] * 10 ** (-12 / 20)).astype(np.int16),
                 SAMPLE_RATE)
        echo_path.play_into_mic(reflection)
        assert not live.named("answer_played", since), "the reflection outlasted the answer"
        recording.wait_until("played the answer", played_through(said),
                             context=live.explain)
        live.wait_for("answer_played", since)
        after_answer(live)
        heard = [e["event"] for e in live.events[since:]]
        assert "hearing" in heard or "hearing_own_voice" in heard, heard  # what this is about
        assert "answer_stopped" not in heard, heard
        assert "answering" not in heard, f"answered itself: {live.explain()}"
        assert live.turns.empty(), f"answered itself: {live.turns.get()}"


@pytest.mark.audio_devices
def test_a_question_asked_as_the_skill_stops_talking_is_answered(echo_path, tmp_path):
    """Through the echo path, each question starts as soon as the speaker has played the last
    sound of what the skill said before (within about 0.2 s: the time to see it and start
    paplay), while its echo may still be heard: first the greeting `listen` starts with, over
    which the canceller is still learning the room, then the first answer. Both are heard
    from their first word, and no answer is cut off."""

    content = load_content()
    with listeners(echo_path) as start:
        recording = echo_path.record_speaker_echo(tmp_path / "speaker.wav")
        live = start(ready="")
        said = content.nodes[content.start].say
        for question, intent, text in (
                ("spasm_relief__1__flite-slt.wav", "spasm_relief",
                 "how do I stop a cramp in my calf"),
                ("twitch_causes__1__flite-slt.wav", "twitch_causes",
                 "why does my eyelid keep twitching")):
            recording.wait_until("played it all", played_through(rendered(said, tmp_path)),
                                 context=lambda: " | ".join(live.status))
            turn = live.ask(trimmed(fixture(question), tmp_path))
            assert turn["intent"] == intent, " | ".join(live.status)
            # every word heard (the recogniser may mistake one: the start of this recording
            # alone is heard as "can do I stop ..."); before, the first was lost
            assert len(turn["transcript"].split()) >= len(text.split()), " | ".join(live.status)
            said = turn["answer"]
        assert not [line for line in live.status if "answer stopped" in line], live.status


@pytest.mark.audio_devices
def test_a_goodbye_said_as_the_skill_stops_talking_ends_the_session(echo_path, tmp_path):
    """Over an answer or its echo a command is taken only from speech that rose over the echo
    (what the canceller left of an answer's end was heard "bye" and ended a session). Said as
    soon as the speaker has played the answer's last sound, while its echo may still be heard,
    a goodbye is the user's and ends the session: the rise stood still after the answer's last
    sample, and the goodbye was let pass."""
    with listeners(echo_path) as start:
        live = start()
        recording = echo_path.record_speaker_echo(tmp_path / "speaker.wav")
        turn = live.ask(fixture("twitch_causes__1__flite-slt.wav"))
        said = rendered(turn["answer"], tmp_path)
        recording.wait_until("played the answer", played_through(said), context=live.explain)
        echo_path.play_into_mic(trimmed(fixture("goodbye__1__flite-slt.wav"), tmp_path))
        assert live.next_turn()["intent"] == "goodbye", live.explain()
        assert live.wait() == 0
        assert stopped(live) == ("goodbye", 0)
