"""Speech out with the real pyttsx3 and espeak-ng: rendering, its worker, playback."""

from __future__ import annotations

import ctypes.util
import gc
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from helpers import ROOT
from virtual_audio import SAMPLE_RATE, VirtualAudio, active_span, find_signal
from voiceskill.tts import speaker as tts
from voiceskill.tts.speaker import Speaker, TtsUnavailable, VoiceInfo, VoiceSettings, match_voice

SRC = ROOT / "src"

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
from voiceskill.tts.speaker import Speaker, VoiceSettings

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

# An answer said from a thread (as `listen` says them), interrupted before that thread reaches
# Speaker.speak: on a busy machine it may be held back that long, and a Ctrl-C or SIGTERM
# that came then was lost (the whole answer played before `listen` could end).
SAY_INTERRUPTED_AS_IT_STARTS = """
import json, sys, threading
from voiceskill.pipeline import Responder
from voiceskill.tts.speaker import Speaker, VoiceSettings

speaker = Speaker(VoiceSettings())
interrupted, finished, rendered = threading.Event(), [], []
speak, render = speaker.speak, speaker.render
speaker.render = lambda *args, **kwargs: rendered.append(args) or render(*args, **kwargs)

def held_back(*args, **kwargs):  # the answer's thread, not yet run as far as speak()
    interrupted.wait()
    finished.append(speak(*args, **kwargs))

speaker.speak = held_back
voice = Responder(speaker)
voice.say(sys.argv[1], 165, background=True)
stopping = voice.interrupt()
interrupted.set()
voice.finish()
print(json.dumps({"stopping": stopping, "finished": finished, "rendered": len(rendered)}))
"""

# The same, the signal coming inside the thread's start(), before it has begun: finish()
# raised RuntimeError (`listen` ended with a traceback and status 1), and the thread, begun
# later, played the answer.
SAY_INTERRUPTED_INSIDE_START = """
import json, sys, threading
from voiceskill.pipeline import Responder
from voiceskill.tts.speaker import Speaker, VoiceSettings

speaker = Speaker(VoiceSettings())
finished, rendered = [], []
speak, render = speaker.speak, speaker.render
speaker.speak = lambda *args, **kwargs: finished.append(speak(*args, **kwargs))
speaker.render = lambda *args, **kwargs: rendered.append(args) or render(*args, **kwargs)
start, held = threading.Thread.start, []

def interrupted_start(thread):  # the signal's handler raises as start() begins
    held.append(thread)
    raise KeyboardInterrupt

threading.Thread.start = interrupted_start
voice = Responder(speaker)
try:
    voice.say(sys.argv[1], 165, background=True)
except KeyboardInterrupt:
    pass
threading.Thread.start = start
stopping = voice.interrupt()
voice.finish()
start(held[0])  # it begins only now
held[0].join()
print(json.dumps({"stopping": stopping, "finished": finished, "rendered": len(rendered)}))
"""

WORKER_PID = """
import sys
from voiceskill.tts.speaker import Speaker, VoiceSettings

speaker = Speaker(VoiceSettings(), play=False)
speaker.render("Hello there.")
print(speaker.worker_pid, flush=True)
if sys.argv[1] == "hang":
    sys.stdin.read()  # until killed
"""

# Makes the real pyttsx3 fail to find libespeak-ng, as on a machine without it.
NO_ESPEAK_LIBRARY = """
import ctypes

_load = ctypes.cdll.LoadLibrary

def _load_but_espeak(name, *args, **kwargs):
    if "espeak" in str(name):
        raise OSError(f"{name}: cannot open shared object file: No such file or directory")
    return _load(name, *args, **kwargs)

ctypes.cdll.LoadLibrary = _load_but_espeak
"""

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("pyttsx3") is None or ctypes.util.find_library("espeak-ng") is None,
    reason="needs pyttsx3 and libespeak-ng",
)


def worker_pids() -> set[int]:
    """Speech workers started by this test process."""
    found = subprocess.run(
        ["pgrep", "-P", str(os.getpid()), "-f", "voiceskill.tts.worker"],
        capture_output=True, text=True,
    )
    return {int(pid) for pid in found.stdout.split()}


def gone(pid: int) -> bool:
    """No such process any more (or only a zombie waiting for a reaper that is not ours)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def wait_until_gone(pid: int, patience_s: float = 10.0) -> bool:
    deadline = time.monotonic() + patience_s
    while not gone(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return gone(pid)


@pytest.fixture(scope="module", autouse=True)
def no_stray_workers() -> Iterator[None]:
    """Every Speaker's worker must be gone once the tests that made them are done."""
    yield
    gc.collect()
    assert worker_pids() == set()


@pytest.fixture(scope="module")
def speaker() -> Iterator[Speaker]:
    with Speaker(VoiceSettings(), play=False) as speaker:
        yield speaker


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


def test_alternating_rates_give_the_same_length_every_time(speaker: Speaker) -> None:
    # The race in pyttsx3 (espeak_Cancel while a rate change is queued) gave either
    # length for either rate; the worker checks the rate espeak-ng used and renders again.
    durations: dict[int, set[float]] = {200: set(), 110: set()}
    for _ in range(10):
        for rate in durations:
            durations[rate].add(speaker.render(ANSWER, rate=rate).duration_s)
    assert len(durations[200]) == len(durations[110]) == 1
    assert min(durations[110]) > 1.5 * max(durations[200])


def test_volume_is_applied() -> None:
    with Speaker(VoiceSettings(volume=0.3), play=False) as quiet:
        soft = quiet.render(SHORT_ANSWER).samples.astype(np.float64)
    with Speaker(VoiceSettings(), play=False) as normal:
        loud = normal.render(SHORT_ANSWER).samples.astype(np.float64)
    assert len(soft) == len(loud)
    assert np.sqrt(np.mean(soft**2)) < 0.5 * np.sqrt(np.mean(loud**2))


def test_a_rendered_answer_encodes_as_a_valid_wav(speaker: Speaker, tmp_path: Path) -> None:
    path = tmp_path / "answer.wav"
    path.write_bytes(tts.encode_wav(speaker.render(ANSWER)))
    info = sf.info(path)
    assert (info.format, info.subtype, info.channels) == ("WAV", "PCM_16", 1)
    assert info.frames == len(speaker.render(ANSWER).samples)


def test_empty_text_is_silence_not_an_error(speaker: Speaker) -> None:
    assert len(speaker.render("  ").samples) == 0
    assert speaker.speak("") is True


def test_nothing_is_printed(speaker: Speaker, capfd: pytest.CaptureFixture) -> None:
    # pyttsx3 prints "Audio saved to ..." after each file it writes.
    speaker.render(ANSWER)
    speaker.render(ANSWER, rate=110)
    speaker.speak(ANSWER)
    tts.list_voices()
    with Speaker(VoiceSettings(voice="en-us"), play=False) as american:
        american.render(SHORT_ANSWER)
    assert capfd.readouterr() == ("", "")


def test_voice_is_chosen_by_language_or_name() -> None:
    voices = tts.list_voices()  # pyttsx3's list: espeak-ng's voices
    assert len(voices) > 50
    assert match_voice(voices, "en-us").language == "en-us"
    assert match_voice(voices, "scotland").name == "English (Scotland)"
    british = Speaker(VoiceSettings(voice="en-gb"), play=False).render("Hello there.")
    american = Speaker(VoiceSettings(voice="en-us"), play=False).render("Hello there.")
    default = Speaker(VoiceSettings(), play=False).render("Hello there.")
    assert not np.array_equal(british.samples, american.samples)
    assert np.array_equal(british.samples, default.samples)  # espeak-ng's default is en-gb


def test_unknown_voice_is_a_one_line_error() -> None:
    voices = [VoiceInfo("gmw/en", "English (Great Britain)", "en-gb")]
    with pytest.raises(TtsUnavailable, match="no espeak-ng voice matches 'zz-top'"):
        match_voice(voices, "zz-top")
    with pytest.raises(TtsUnavailable, match=r"^no espeak-ng voice matches 'zz-top'$"):
        Speaker(VoiceSettings(voice="zz-top"), play=False)


def test_timeout_is_reported_not_hung() -> None:
    with pytest.raises(TtsUnavailable, match=r"^speech synthesis timed out after 1e-06 s$"):
        Speaker(VoiceSettings(), play=False, timeout_s=1e-6).render(LONG_ANSWER)


def test_a_hung_render_is_killed_and_the_next_one_works(monkeypatch: pytest.MonkeyPatch) -> None:
    with Speaker(VoiceSettings(), play=False, timeout_s=1e-6) as speaker:
        with pytest.raises(TtsUnavailable, match="timed out"):
            speaker.render(LONG_ANSWER)  # the worker kills the render it is waiting for
        worker = speaker.worker_pid
        monkeypatch.setattr(speaker, "timeout_s", 10.0)
        assert speaker.render(ANSWER).duration_s > 1
        assert speaker.worker_pid == worker  # the same worker carries on


def test_a_hung_worker_is_killed_and_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tts, "WORKER_GRACE_S", 0.1)
    with Speaker(VoiceSettings(), play=False) as speaker:
        speaker.render(SHORT_ANSWER)
        hung = speaker.worker_pid
        assert hung is not None
        os.kill(hung, signal.SIGSTOP)  # answers nothing from now on
        monkeypatch.setattr(speaker, "timeout_s", 0.2)
        with pytest.raises(TtsUnavailable, match=r"^speech synthesis timed out after 0\.2 s$"):
            speaker.render(SHORT_ANSWER)
        assert gone(hung)
        monkeypatch.setattr(speaker, "timeout_s", 10.0)
        assert len(speaker.render(SHORT_ANSWER).samples) > 0
        assert speaker.worker_pid not in (None, hung)


def test_a_dead_worker_is_restarted(speaker: Speaker) -> None:
    dead = speaker.worker_pid
    assert dead is not None
    os.kill(dead, signal.SIGKILL)
    assert len(speaker.render(SHORT_ANSWER).samples) > 0
    assert speaker.worker_pid != dead


def test_workers_stop_with_close_and_garbage_collection() -> None:
    before = worker_pids()
    speaker = Speaker(VoiceSettings(), play=False)
    first = speaker.worker_pid
    assert first in worker_pids()
    speaker.close()
    assert first not in worker_pids()
    speaker.render(SHORT_ANSWER)  # starts a new worker
    assert speaker.worker_pid in worker_pids()
    del speaker
    gc.collect()
    assert worker_pids() == before


def test_worker_stops_when_its_program_exits_or_dies() -> None:
    env = with_src(dict(os.environ))
    exited = subprocess.run(
        [sys.executable, "-c", WORKER_PID, "exit"],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert exited.returncode == 0, exited.stderr
    assert gone(int(exited.stdout))  # closed at interpreter exit, without close()

    program = subprocess.Popen(
        [sys.executable, "-c", WORKER_PID, "hang"], env=env, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, text=True,
    )
    assert program.stdout is not None
    worker = int(program.stdout.readline())
    program.kill()  # no chance to clean up: the worker sees its stdin close
    program.wait()
    program.stdin.close()
    program.stdout.close()
    assert wait_until_gone(worker)


def test_missing_pyttsx3_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "pyttsx3.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'pyttsx3'\", name='pyttsx3')\n"
    )
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(TtsUnavailable) as raised:
        Speaker(VoiceSettings(), play=False)
    message = str(raised.value)
    assert message.startswith("text-to-speech unavailable: pyttsx3 is not installed")
    assert "\n" not in message


def test_missing_espeak_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "sitecustomize.py").write_text(NO_ESPEAK_LIBRARY)
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    with pytest.raises(TtsUnavailable) as raised:
        tts.list_voices()
    message = str(raised.value)
    assert message.startswith("text-to-speech unavailable: espeak-ng is not installed")
    assert "\n" not in message


# --- Playback, in a subprocess (sounddevice enumerates devices at import) -----


def with_src(env: dict[str, str]) -> dict[str, str]:
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))}


def run_speak(env: dict[str, str], text: str, stop_after: float = -1.0) -> dict:
    env = with_src(env)
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
    assert 0 < played < 0.5 * full  # stopped 0.3 s in; however late under load, not at the end


def say_interrupted(script: str, virtual_audio: VirtualAudio,
                    tmp_path: Path) -> tuple[dict, np.ndarray]:
    """`script` run on LONG_ANSWER in a process of its own: what it printed last, and what
    the speaker played meanwhile."""
    recording = virtual_audio.record_speaker(tmp_path / "speaker.wav")
    child = subprocess.run(
        [sys.executable, "-c", script, LONG_ANSWER],
        env=with_src(virtual_audio.env), capture_output=True, text=True, timeout=120,
    )
    captured, _ = sf.read(recording.stop(), dtype="int16")
    assert child.returncode == 0, child.stderr
    return json.loads(child.stdout.splitlines()[-1]), captured


@pytest.mark.audio_devices
def test_an_answer_interrupted_as_its_thread_starts_is_not_played(
    virtual_audio: VirtualAudio, tmp_path: Path
) -> None:
    outcome, captured = say_interrupted(SAY_INTERRUPTED_AS_IT_STARTS, virtual_audio, tmp_path)
    assert outcome["stopping"] is True and outcome["finished"] == [False]  # it was played whole
    assert active_span(captured) == 0
    # nor rendered: `listen` ending waited for the render, which its temporary folder's removal
    # at exit made hang until the render's timeout (10 s)
    assert outcome["rendered"] == 0


@pytest.mark.audio_devices
def test_an_answer_interrupted_inside_its_threads_start_is_not_played(
    virtual_audio: VirtualAudio, tmp_path: Path
) -> None:
    outcome, captured = say_interrupted(SAY_INTERRUPTED_INSIDE_START, virtual_audio, tmp_path)
    assert outcome == {"stopping": False, "finished": [False], "rendered": 0}
    assert active_span(captured) == 0


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
