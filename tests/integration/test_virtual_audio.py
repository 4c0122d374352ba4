"""The virtual devices carry real audio to and from a sounddevice program."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import ROOT
from virtual_audio import SAMPLE_RATE, VirtualAudio, active_span, find_signal

pytestmark = pytest.mark.audio_devices

# Says "recording" once the first block has arrived, not when the stream was asked for: under
# load the stream can start late, and a question played at once lost its beginning. Stops once
# a sound was heard and 1 s of quiet followed it, or after `seconds` at most.
RECORD_DEFAULT_INPUT = """
import sys, threading, numpy as np, sounddevice as sd, soundfile as sf
out, seconds = sys.argv[1], float(sys.argv[2])
frames = int(seconds * 16000)
blocks, started, done = [], threading.Event(), threading.Event()
heard = {"frames": 0, "last_loud": None}
def arrived(data, count, time, status):
    blocks.append(data.copy())
    started.set()
    heard["frames"] += len(data)
    if np.abs(data.astype(np.int32)).max() > 300:
        heard["last_loud"] = heard["frames"]
    quiet_after_sound = heard["last_loud"] is not None and (
        heard["frames"] - heard["last_loud"] >= 16000)
    if heard["frames"] >= frames or quiet_after_sound:
        done.set()
with sd.InputStream(samplerate=16000, channels=1, dtype="int16", callback=arrived):
    started.wait(30)
    print("recording", flush=True)
    done.wait(60)
sf.write(out, np.concatenate(blocks)[:frames], 16000, subtype="PCM_16")
"""

FIND_DEVICES = """
import json
from voiceskill.devices import DeviceError, find_device, list_devices

def attempt(*args):
    try:
        return find_device(*args)
    except DeviceError as exc:
        return str(exc)

print(json.dumps({
    "devices": [d.name for d in list_devices()],
    "default": attempt(None, "output"),
    "by_name": attempt("PULSE", "input"),
    "by_index": attempt("0"),
    "unknown": attempt("no such card"),
    "bad_index": attempt(99, "output"),
}))
"""

PLAY_TO_DEFAULT_OUTPUT = """
import sys, sounddevice as sd, soundfile as sf
audio, rate = sf.read(sys.argv[1], dtype="int16")
sd.play(audio, rate)
sd.wait()
"""


SRC = ROOT / "src"


@pytest.fixture(scope="module")
def question_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken question from espeak-ng, converted to the devices' 16 kHz mono."""
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.skip("espeak-ng and sox are needed to synthesise the test question")
    directory = tmp_path_factory.mktemp("question")
    raw, wav = directory / "raw.wav", directory / "question.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(raw), "Why does my eyelid keep twitching?"], check=True
    )
    subprocess.run(["sox", str(raw), "-r", str(SAMPLE_RATE), "-c", "1", str(wav)], check=True)
    return wav


def test_program_records_the_virtual_microphone(
    virtual_audio: VirtualAudio, question_wav: Path, tmp_path: Path
) -> None:
    question, _ = sf.read(question_wav, dtype="int16")
    out = tmp_path / "heard.wav"
    seconds = len(question) / SAMPLE_RATE + 20.0  # at most: room for paplay to start late
    recorder = subprocess.Popen(
        [sys.executable, "-c", RECORD_DEFAULT_INPUT, str(out), str(seconds)],
        env=virtual_audio.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert recorder.stdout is not None
    assert recorder.stdout.readline().strip() == "recording"
    virtual_audio.play_into_mic(question_wav)
    _, stderr = recorder.communicate(timeout=30)
    assert recorder.returncode == 0, stderr

    heard, rate = sf.read(out, dtype="int16")
    assert rate == SAMPLE_RATE
    match = find_signal(heard, question)
    assert match.correlation > 0.99
    assert active_span(heard) >= 0.95 * active_span(question)


def test_program_playback_reaches_the_virtual_speaker(
    virtual_audio: VirtualAudio, question_wav: Path, tmp_path: Path
) -> None:
    question, _ = sf.read(question_wav, dtype="int16")
    recording = virtual_audio.record_speaker(tmp_path / "speaker.wav")
    player = subprocess.run(
        [sys.executable, "-c", PLAY_TO_DEFAULT_OUTPUT, str(question_wav)],
        env=virtual_audio.env, capture_output=True, text=True, timeout=30,
    )
    captured, rate = sf.read(recording.stop(), dtype="int16")
    assert player.returncode == 0, player.stderr

    assert rate == SAMPLE_RATE
    match = find_signal(captured, question)
    assert match.correlation > 0.99
    # handle_underrun false: the whole clip arrives, not a truncated one.
    assert active_span(captured) >= 0.95 * active_span(question)
    assert np.abs(captured).max() > 1000


def test_devices_are_found_by_name_and_index(virtual_audio: VirtualAudio) -> None:
    env = {**virtual_audio.env, "PYTHONPATH": str(SRC)}
    child = subprocess.run(
        [sys.executable, "-c", FIND_DEVICES], env=env, capture_output=True, text=True, timeout=30
    )
    assert child.returncode == 0, child.stderr
    found = json.loads(child.stdout)
    pulse = found["devices"].index("pulse")
    assert found["default"] is None  # PortAudio's default, which exists
    assert found["by_name"] == pulse
    assert found["by_index"] == 0
    assert found["unknown"] == "no audio device matches 'no such card'"
    assert found["bad_index"] == "no audio output device with index 99"


def test_a_daemon_that_ended_says_how_and_is_restarted(tmp_path: Path) -> None:
    """The shared devices outlive a daemon that dies during one test: that test's failure
    says how it ended, and the next test gets working devices (conftest.virtual_audio)."""
    with VirtualAudio() as audio:
        assert audio.ended() == ""
        audio.restart_if_ended()  # running: left alone
        first = audio.pactl("info")
        audio._daemon.kill()
        audio._daemon.wait()
        assert audio.ended().startswith("pulseaudio ended (killed by SIGKILL): ")
        audio.restart_if_ended()
        assert audio.ended() == ""
        assert audio.pactl("info") != first  # a new daemon: its socket is in a new folder
        recording = audio.record_speaker(tmp_path / "after.wav")
        assert sf.info(recording.stop()).samplerate == SAMPLE_RATE
