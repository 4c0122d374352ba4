"""Speech out: pyttsx3 (espeak-ng) renders the answer, we play it and can cut it off at once.

Rendering: pyttsx3 with its espeak driver writes each answer to a temporary
WAV (save_to_file + runAndWait), which we read and delete. pyttsx3 is not used
to play: its say() plays through a blocking `aplay` that stop() cannot
interrupt. Its driver is also racy in a long-lived engine (a changed rate is
applied only sometimes, runAndWait returns before the WAV is written) and
prints to stdout, so it runs in a helper process, `voiceskill.tts.worker`,
that renders each request in a freshly forked engine, checks the settings
espeak-ng really used and that the WAV is complete, and is killed and
restarted if it hangs. See worker.py. The worker starts with the Speaker
(so a missing pyttsx3 or espeak-ng raises TtsUnavailable right away) and
stops with Speaker.close(), garbage collection or interpreter exit.

Playback is ours, through sounddevice in short blocks, checking a stop flag
between blocks.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import select
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import soundfile as sf
import soxr

from voiceskill import devices
from voiceskill.audio import fade_out
from voiceskill.errors import UserError

BLOCK_S = 0.03
"""Playback block length: stop() takes effect within about one block."""
FADE_S = 0.03
"""An answer cut off fades out over this, rather than stopping with a click."""
LATENCY_S = 0.2
"""Output buffer: generous, so a busy CPU (speech recognition) causes no dropouts.
stop() still takes effect within a block: the answer fades out (FADE_S) and what is buffered
after it is silence."""

SAMPLE_RATE = 22_050
"""What pyttsx3's espeak driver writes."""
WORKER_START_TIMEOUT_S = 10.0
"""How long the worker may take to import pyttsx3 and load espeak-ng."""
WORKER_GRACE_S = 2.0
"""How much longer than its own timeout the worker may take to answer before it is killed."""


@dataclass(frozen=True)
class VoiceSettings:
    rate: int = 165
    """Words per minute; the "slower" command passes a lower rate per call."""
    voice: str | None = None
    """espeak-ng voice: id, language or name (substring), e.g. "en-gb"; None: default.
    An unknown voice raises TtsUnavailable when the Speaker is made."""
    volume: float = 1.0


@dataclass(frozen=True)
class SpeechAudio:
    samples: np.ndarray
    """int16 mono."""
    sample_rate: int

    @property
    def duration_s(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass(frozen=True)
class VoiceInfo:
    id: str
    """pyttsx3's voice id, e.g. "gmw/en-us"."""
    name: str
    language: str


class PlaybackListener(Protocol):
    """Told exactly what is played and when (the live loop's echo canceller needs it)."""

    def started(self, samples: np.ndarray, rate: int, heard_at: float) -> None:
        """`samples` at `rate` will be heard from PortAudio stream time `heard_at` on."""

    def stopped(self, played: int, faded: int) -> None:
        """The answer was cut off: only its first `played` samples are heard, the last
        `faded` of them fading out (audio.fade_out)."""


class TtsUnavailable(UserError):
    """Speech synthesis failed; the message is one line, fit to show the user."""


def encode_wav(audio: SpeechAudio) -> bytes:
    """`audio` as the bytes of a 16-bit WAV file."""
    buffer = io.BytesIO()
    sf.write(buffer, audio.samples, audio.sample_rate, subtype="PCM_16", format="WAV")
    return buffer.getvalue()


class Speaker:
    """Renders and speaks answers; one speak() at a time, stop() from any thread.

    If no output device can be used, speak() renders and returns without
    playing: `can_play` is then False and `warning` says why, so the caller
    can print the answer instead. Raises TtsUnavailable when pyttsx3 or
    espeak-ng is missing or `settings.voice` matches no voice. close() (or
    garbage collection, or interpreter exit) stops the speech worker. `timeout_s`
    bounds each render and may be changed between them.
    """

    def __init__(
        self,
        settings: VoiceSettings,
        output_device: int | str | None = None,
        play: bool = True,
        timeout_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self._output_spec = output_device
        self._play = play
        self.timeout_s = timeout_s
        self._stop = threading.Event()
        self._playing = threading.Event()
        self._output_checked = False
        self._device: int | None = None
        self._warning: str | None = None
        self._worker = _Worker()
        self._finalizer = weakref.finalize(self, self._worker.close)
        self._worker.start()
        self._voice_id: str | None = None
        self.playback_listener: PlaybackListener | None = None
        if settings.voice:
            voices = _voices_from(self._worker.request({"op": "voices"}, timeout_s))
            self._voice_id = match_voice(voices, settings.voice).id

    @property
    def worker_pid(self) -> int | None:
        """The process id of the speech worker, None while none runs: the process its
        supervision (restart, kill on timeout, close) is about, for whoever watches it."""
        return self._worker.pid

    def close(self) -> None:
        """Stop the speech worker; a later render starts a new one."""
        self._worker.close()

    def __enter__(self) -> Speaker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def render(self, text: str, rate: int | None = None) -> SpeechAudio:
        """Synthesise `text`; raises TtsUnavailable on failure or timeout."""
        if not text.strip():  # pyttsx3 writes no file at all for empty input
            return SpeechAudio(np.zeros(0, dtype=np.int16), SAMPLE_RATE)
        with tempfile.TemporaryDirectory(prefix="voiceskill-tts-") as tmp:
            path = Path(tmp) / "speech.wav"
            request = {
                "op": "render",
                "text": text,
                "path": str(path),
                "rate": rate or self.settings.rate,
                "voice": self._voice_id,
                "volume": self.settings.volume,
            }
            self._worker.request(request, self.timeout_s)
            samples, sample_rate = sf.read(path, dtype="int16")
        return SpeechAudio(samples, sample_rate)

    def speak(
        self, text: str, rate: int | None = None,
        on_first_audio: Callable[[], None] | None = None,
        on_rendered: Callable[[SpeechAudio], None] | None = None,
        stop: threading.Event | None = None,
    ) -> bool:
        """Say `text`, blocking; False if stop() cut it off, or `stop` was set.

        `stop` is this answer's own stop flag, for a caller that says it from a thread of its
        own: made before that thread starts, it cuts the answer off even when it was set before
        speak() began (stop() is a no-op until then, as when silent; a Ctrl-C or SIGTERM that
        came as the thread started was lost, and the whole answer was played before the
        program could end). `on_rendered` gets the audio before it plays (to save the very
        sound that is played, without synthesising it again); `on_first_audio` is called once
        the first block is handed to the device (the live loop measures its latency with it).
        Raises TtsUnavailable if synthesis fails; playback problems never raise, they turn
        `can_play` off and set `warning`.
        """
        self._stop = stop = stop if stop is not None else threading.Event()
        if stop.is_set():  # cut off before it began: not rendered (listen, ending, waited for it)
            return False
        audio = self.render(text, rate)
        if on_rendered is not None:
            on_rendered(audio)
        if stop.is_set():
            return False
        if not self.can_play or len(audio.samples) == 0:
            return True
        return self._play_audio(audio, on_first_audio, stop)

    def stop(self) -> None:
        """Cut the current answer off (thread-safe); a no-op when silent."""
        self._stop.set()

    @property
    def speaking(self) -> bool:
        """True while audio is being played."""
        return self._playing.is_set()

    @property
    def can_play(self) -> bool:
        """Whether speak() makes a sound; False with play=False or no output device."""
        if self._play and not self._output_checked:
            self._output_checked = True
            try:
                self._device = devices.find_device(self._output_spec, kind="output")
            except devices.DeviceError as exc:
                self._warning = str(exc)
        return self._play and self._warning is None

    @property
    def warning(self) -> str | None:
        """One line saying why answers are not played aloud, or None."""
        return self._warning

    def _play_audio(self, audio: SpeechAudio, on_first_audio: Callable[[], None] | None,
                    stop: threading.Event) -> bool:
        sd = devices.sounddevice()
        try:
            samples, rate = self._fit_device(sd, audio)
            block = max(1, int(rate * BLOCK_S))
            with sd.OutputStream(
                samplerate=rate, channels=1, dtype="int16", device=self._device, latency=LATENCY_S
            ) as stream:
                self._playing.set()
                listener = self.playback_listener
                if listener is not None:
                    listener.started(samples, rate, stream.time + stream.latency)
                for start in range(0, len(samples), block):
                    if stop.is_set():
                        # Faded out and followed by silence, not dropped: an answer cut off
                        # in the middle of a sound clicks, and where the sound ends must be
                        # known to the sample for the echo canceller. Whatever the device
                        # buffers (LATENCY_S) and drops on closing is then only silence.
                        fade = fade_out(samples[start : start + round(rate * FADE_S)])
                        if listener is not None:  # before the microphone hears the end
                            listener.stopped(start + len(fade), len(fade))
                        stream.write(fade)
                        stream.write(np.zeros(round(rate * 2 * LATENCY_S), dtype=np.int16))
                        return False
                    stream.write(samples[start : start + block])
                    if start == 0 and on_first_audio is not None:
                        on_first_audio()
            return True
        except sd.PortAudioError as exc:
            self._warning = " ".join(f"audio output failed: {exc}".split())
            return True
        finally:
            self._playing.clear()

    def _fit_device(self, sd: Any, audio: SpeechAudio) -> tuple[np.ndarray, int]:
        """Resample when the device (e.g. a raw hw: device) refuses espeak's 22.05 kHz."""
        try:
            sd.check_output_settings(
                self._device, channels=1, dtype="int16", samplerate=audio.sample_rate
            )
            return audio.samples, audio.sample_rate
        except sd.PortAudioError:
            rate = int(sd.query_devices(self._device, "output")["default_samplerate"])
            return soxr.resample(audio.samples, audio.sample_rate, rate), rate


def list_voices(timeout_s: float = 10.0) -> list[VoiceInfo]:
    """The voices pyttsx3 offers (espeak-ng's); raises TtsUnavailable."""
    worker = _Worker()
    try:
        worker.start()
        return _voices_from(worker.request({"op": "voices"}, timeout_s))
    finally:
        worker.close()


def match_voice(voices: list[VoiceInfo], wanted: str) -> VoiceInfo:
    """Exact id, language or name first, then a substring of id or name."""
    key = wanted.lower().replace("_", " ")
    for matches in (
        lambda v: v.id.lower() == key,
        lambda v: v.language.lower() == key,
        lambda v: v.name.lower() == key,
        lambda v: key in v.id.lower() or key in v.name.lower(),
    ):
        found = [v for v in voices if matches(v)]
        if found:
            return found[0]
    raise TtsUnavailable(f"no espeak-ng voice matches {wanted!r}")


def _voices_from(answer: dict[str, Any]) -> list[VoiceInfo]:
    return [VoiceInfo(id, name, language) for id, name, language in answer["voices"]]


class _Worker:
    """The `voiceskill.tts.worker` process, spoken to in JSON lines (protocol: worker.py).

    Thread-safe; restarted when it died, killed when it does not answer in time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._buffer = b""

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start the worker unless it runs; raises TtsUnavailable if it cannot load pyttsx3."""
        with self._lock:
            self._ensure_started()

    def request(self, request: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Send one request and return the worker's successful answer, or TtsUnavailable."""
        line = json.dumps({**request, "timeout": timeout_s}).encode() + b"\n"
        with self._lock:
            for attempt in (1, 2):  # a worker that died meanwhile is restarted once
                process = self._ensure_started()
                try:
                    assert process.stdin is not None
                    process.stdin.write(line)
                    process.stdin.flush()
                    answer = self._read_answer(timeout_s + WORKER_GRACE_S)
                    break
                except (BrokenPipeError, EOFError):
                    self._kill()
                    if attempt == 2:
                        raise TtsUnavailable("speech synthesis failed: the worker exited") from None
                except TimeoutError:
                    self._kill()
                    message = f"speech synthesis timed out after {timeout_s:g} s"
                    raise TtsUnavailable(message) from None
        if not answer.get("ok"):
            raise TtsUnavailable(answer.get("error") or "speech synthesis failed")
        return answer

    def close(self) -> None:
        """Let the worker exit (it stops when its stdin closes); kill it if it lingers."""
        with self._lock:
            process, self._process = self._process, None
            if process is None:
                return
            with contextlib.suppress(OSError):
                assert process.stdin is not None
                process.stdin.close()
            try:
                process.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdout is not None:
                process.stdout.close()

    def _ensure_started(self) -> subprocess.Popen[bytes]:
        if self._process is not None and self._process.poll() is None:
            return self._process
        self._kill()
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
        try:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "voiceskill.tts.worker"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                env=env,
            )
        except OSError as exc:
            raise TtsUnavailable(f"text-to-speech unavailable: {exc}") from exc
        self._buffer = b""
        try:
            ready = self._read_answer(WORKER_START_TIMEOUT_S)
        except (EOFError, TimeoutError):
            self._kill()
            raise TtsUnavailable(
                "text-to-speech unavailable: the speech worker did not start"
            ) from None
        if not ready.get("ok"):
            self._kill()
            raise TtsUnavailable(ready.get("error") or "text-to-speech unavailable")
        return self._process

    def _read_answer(self, timeout_s: float) -> dict[str, Any]:
        """The next JSON line; EOFError if the worker exited, TimeoutError if it is silent."""
        assert self._process is not None and self._process.stdout is not None
        fd = self._process.stdout.fileno()
        deadline = time.monotonic() + timeout_s
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def _kill(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            process.kill()
        process.wait()
        for pipe in (process.stdin, process.stdout):
            with contextlib.suppress(OSError):
                if pipe is not None:
                    pipe.close()
