"""Speech out with the real espeak-ng: rendering in-process, playback on virtual devices."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from virtual_audio import SAMPLE_RATE, VirtualAudio, active_span, find_signal
from voiceskill import tts
from voiceskill.tts import Speaker, TtsUnavailable, VoiceInfo, VoiceSettings, match_voice

SRC = Path(__file__).resolve().parents[1] / "src"

SHORT_ANSWER = "A twitch is a small, brief movement of a muscle."
ANSWER = (
    "A twitch is a small, brief movement of a muscle that you usually cannot control. "
    "A spasm is a stronger, often painful tightening that can last seconds to minutes."
)
LONG_ANSWER = ANSWER + (
    " Most twitches are harmless and come from stress, caffeine or too little sleep."
    " See a doctor if the twitching spreads, lasts for weeks, or comes with weakness."
)

SPEAK = """
import json, sys, threading, time
from voiceskill.tts import Speaker, VoiceSettings

text, stop_after = sys.argv[1], float(sys.argv[2])
speaker = Speaker(VoiceSettings())

def stop_later():
    while not speaker.speaking:
        time.sleep(0.005)
    time.sleep(stop_after)
    speaker.stop()

if stop_after >= 0:
    threading.Thread(target=stop_later, daemon=True).start()
finished = speaker.speak(text)
print(json.dumps({"finished": finished, "can_play": speaker.can_play,
                  "warning": speaker.warning}))
"""

pytestmark = pytest.mark.skipif(shutil.which(tts.ESPEAK) is None, reason="needs espeak-ng")


@pytest.fixture(scope="module")
def speaker() -> Speaker:
    return Speaker(VoiceSettings(), play=False)


def test_render_gives_speech_of_plausible_length(speaker: Speaker) -> None:
    audio = speaker.render(ANSWER)
    words = len(ANSWER.split())
    expected_s = words / VoiceSettings().rate * 60
    assert audio.samples.dtype == np.int16 and audio.samples.ndim == 1
    assert 0.5 * expected_s < audio.duration_s < 2 * expected_s
    assert np.sqrt(np.mean(audio.samples.astype(np.float64) ** 2)) > 500


def test_lower_rate_makes_it_longer(speaker: Speaker) -> None:
    normal = speaker.render(ANSWER)
    slower = speaker.render(ANSWER, rate=125)
    assert slower.duration_s > 1.2 * normal.duration_s


def test_rate_changes_apply_every_time(speaker: Speaker) -> None:
    # pyttsx3's espeak driver applied a changed rate only sometimes.
    slow, fast, slow_again = (speaker.render(ANSWER, rate=r).duration_s for r in (110, 200, 110))
    assert slow == slow_again > fast


def test_save_writes_a_valid_wav(speaker: Speaker, tmp_path: Path) -> None:
    path = tmp_path / "answer.wav"
    speaker.save(ANSWER, path)
    info = sf.info(path)
    assert (info.format, info.subtype, info.channels) == ("WAV", "PCM_16", 1)
    assert info.frames == len(speaker.render(ANSWER).samples)


def test_empty_text_is_silence_not_an_error(speaker: Speaker) -> None:
    assert len(speaker.render("  ").samples) == 0
    assert speaker.speak("") is True


def test_nothing_is_printed(speaker: Speaker, tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    speaker.render(ANSWER)
    speaker.save(ANSWER, tmp_path / "answer.wav")
    speaker.speak(ANSWER)
    tts.list_voices()
    assert capfd.readouterr() == ("", "")


def test_voice_is_chosen_by_language_or_name() -> None:
    voices = tts.list_voices()
    assert match_voice(voices, "en-us").language == "en-us"
    assert match_voice(voices, "scotland").name == "English (Scotland)"
    british = Speaker(VoiceSettings(voice="en-gb"), play=False).render("Hello there.")
    american = Speaker(VoiceSettings(voice="en-us"), play=False).render("Hello there.")
    assert not np.array_equal(british.samples, american.samples)


def test_unknown_voice_is_a_one_line_error() -> None:
    voices = [VoiceInfo("gmw/en", "English (Great Britain)", "en-gb")]
    with pytest.raises(TtsUnavailable, match="no espeak-ng voice matches 'zz-top'"):
        match_voice(voices, "zz-top")


def test_timeout_is_reported_not_hung() -> None:
    with pytest.raises(TtsUnavailable, match="timed out"):
        Speaker(VoiceSettings(), play=False, timeout_s=1e-6).render(LONG_ANSWER)


def test_missing_espeak_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tts, "ESPEAK", "/nonexistent/espeak-ng")
    with pytest.raises(TtsUnavailable, match="espeak-ng is not installed"):
        Speaker(VoiceSettings(), play=False).render(ANSWER)


# --- Playback, in a subprocess (sounddevice enumerates devices at import) -----


def run_speak(env: dict[str, str], text: str, stop_after: float = -1.0) -> dict:
    env = {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))}
    child = subprocess.run(
        [sys.executable, "-c", SPEAK, text, str(stop_after)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert child.returncode == 0, child.stderr
    assert child.stderr == ""
    *printed, last = child.stdout.splitlines()
    assert printed == []  # nothing but our own JSON line
    return json.loads(last)


def at_16k(audio: tts.SpeechAudio) -> np.ndarray:
    return soxr.resample(audio.samples, audio.sample_rate, SAMPLE_RATE)


@pytest.mark.audio_devices
def test_speak_plays_the_answer_to_the_speaker(
    virtual_audio: VirtualAudio, speaker: Speaker, tmp_path: Path
) -> None:
    recording = virtual_audio.record_speaker(tmp_path / "speaker.wav")
    outcome = run_speak(virtual_audio.env, SHORT_ANSWER)
    captured, _ = sf.read(recording.stop(), dtype="int16")

    assert outcome == {"finished": True, "can_play": True, "warning": None}
    expected = at_16k(speaker.render(SHORT_ANSWER))
    assert find_signal(captured, expected).correlation > 0.9
    assert active_span(captured) >= 0.95 * active_span(expected)


@pytest.mark.audio_devices
def test_stop_cuts_the_answer_off(
    virtual_audio: VirtualAudio, speaker: Speaker, tmp_path: Path
) -> None:
    recording = virtual_audio.record_speaker(tmp_path / "speaker.wav")
    outcome = run_speak(virtual_audio.env, LONG_ANSWER, stop_after=0.3)
    captured, _ = sf.read(recording.stop(), dtype="int16")

    assert outcome["finished"] is False
    full = active_span(at_16k(speaker.render(LONG_ANSWER)))
    played = active_span(captured)
    assert 0 < played < 1.0 * SAMPLE_RATE  # stopped 0.3 s in, far from the end
    assert played < 0.1 * full


@pytest.mark.audio_devices
def test_no_output_device_means_a_warning_not_an_error(virtual_audio: VirtualAudio) -> None:
    unreachable = {**virtual_audio.env, "PULSE_SERVER": "unix:/nonexistent/pulse.sock"}
    outcome = run_speak(unreachable, ANSWER)
    if outcome["can_play"]:
        pytest.skip("this machine has a real sound card")
    assert outcome["finished"] is True
    assert outcome["warning"] == "no audio output device found"


def test_missing_portaudio_means_a_warning_not_an_error(tmp_path: Path) -> None:
    (tmp_path / "sounddevice.py").write_text("raise OSError('PortAudio library not found')\n")
    outcome = run_speak({**os.environ, "PYTHONPATH": str(tmp_path)}, ANSWER)
    assert outcome["finished"] is True and outcome["can_play"] is False
    assert outcome["warning"].startswith("audio unavailable: PortAudio library not found")
    assert "\n" not in outcome["warning"]
