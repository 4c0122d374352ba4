"""Speech out: espeak-ng renders the answer, we play it and can cut it off at once.

Why not pyttsx3 (its espeak driver, 2.99): it plays through a blocking `aplay`
that stop() cannot interrupt, runAndWait can hang, it prints to stdout, and it
is racy: it drives espeak-ng asynchronously and its own endLoop() calls
espeak_Cancel() while property changes are still queued, so a requested rate
is applied at random (alternating 200/110 wpm gave either duration for either
rate) and runAndWait() returns before the WAV is written.

So each answer is rendered by the `espeak-ng` program (the engine pyttsx3
wraps on Linux) into a temporary WAV, deleted once read: deterministic, killed
on timeout, nothing printed, no shared engine state (~20 ms for two
sentences). Playback is ours, through sounddevice in short blocks, checking a
stop flag between blocks.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from voiceskill import devices

BLOCK_S = 0.03
"""Playback block length: stop() takes effect within about one block."""
LATENCY_S = 0.2
"""Output buffer: generous, so a busy CPU (speech recognition) causes no dropouts.
stop() is still immediate: abort() discards whatever is buffered."""

ESPEAK = "espeak-ng"
ESPEAK_SAMPLE_RATE = 22_050


@dataclass(frozen=True)
class VoiceSettings:
    rate: int = 165
    """Words per minute; the "slower" command passes a lower rate per call."""
    voice: str | None = None
    """espeak-ng voice: id, language or name (substring), e.g. "en-gb"; None: default."""
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
    """What espeak-ng's -v accepts, e.g. "gmw/en-US"."""
    name: str
    language: str


class TtsUnavailable(Exception):
    """Speech synthesis failed; the message is one line, fit to show the user."""


class Speaker:
    """Renders and speaks answers; one speak() at a time, stop() from any thread.

    If no output device can be used, speak() renders and returns without
    playing: `can_play` is then False and `warning` says why, so the caller
    can print the answer instead.
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
        self._timeout_s = timeout_s
        self._voice_id: str | None = None
        self._stop = threading.Event()
        self._playing = threading.Event()
        self._output_checked = False
        self._device: int | None = None
        self._warning: str | None = None

    def render(self, text: str, rate: int | None = None) -> SpeechAudio:
        """Synthesise `text`; raises TtsUnavailable on failure or timeout."""
        if not text.strip():  # espeak-ng writes no file at all for empty input
            return SpeechAudio(np.zeros(0, dtype=np.int16), ESPEAK_SAMPLE_RATE)
        args = ["-s", str(rate or self.settings.rate), "-a", str(round(self.settings.volume * 100))]
        if self.settings.voice:
            args += ["-v", self._voice()]
        with tempfile.TemporaryDirectory(prefix="voiceskill-tts-") as tmp:
            path = Path(tmp) / "speech.wav"
            _espeak([*args, "-b", "1", "--stdin", "-w", str(path)], text, self._timeout_s)
            samples, sample_rate = sf.read(path, dtype="int16")
        return SpeechAudio(samples, sample_rate)

    def save(self, text: str, path: Path, rate: int | None = None) -> None:
        """Write the spoken `text` to a 16-bit WAV file."""
        audio = self.render(text, rate)
        sf.write(path, audio.samples, audio.sample_rate, subtype="PCM_16", format="WAV")

    def speak(self, text: str, rate: int | None = None) -> bool:
        """Say `text`, blocking; False if stop() cut it off.

        Raises TtsUnavailable if synthesis fails; playback problems never
        raise, they turn `can_play` off and set `warning`.
        """
        self._stop.clear()
        audio = self.render(text, rate)
        if self._stop.is_set():
            return False
        if not self.can_play or len(audio.samples) == 0:
            return True
        return self._play_audio(audio)

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

    def _voice(self) -> str:
        if self._voice_id is None:
            assert self.settings.voice
            self._voice_id = match_voice(list_voices(self._timeout_s), self.settings.voice).id
        return self._voice_id

    def _play_audio(self, audio: SpeechAudio) -> bool:
        sd = devices.sounddevice()
        try:
            samples, rate = self._fit_device(sd, audio)
            block = max(1, int(rate * BLOCK_S))
            with sd.OutputStream(
                samplerate=rate, channels=1, dtype="int16", device=self._device, latency=LATENCY_S
            ) as stream:
                self._playing.set()
                for start in range(0, len(samples), block):
                    if self._stop.is_set():
                        stream.abort()  # drops what is still buffered
                        return False
                    stream.write(samples[start : start + block])
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
    """The voices espeak-ng offers; raises TtsUnavailable."""
    voices = []
    # Columns: Pty Language Age/Gender VoiceName File [Other Languages]
    for line in _espeak(["--voices"], "", timeout_s).splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5:
            voices.append(VoiceInfo(fields[4], fields[3].replace("_", " "), fields[1]))
    return voices


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


def _espeak(args: list[str], text: str, timeout_s: float) -> str:
    """Run espeak-ng with `text` on stdin; its stdout, or TtsUnavailable."""
    try:
        result = subprocess.run(
            [ESPEAK, *args], input=text.encode(), capture_output=True, timeout=timeout_s
        )
    except FileNotFoundError as exc:
        raise TtsUnavailable("text-to-speech unavailable: espeak-ng is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise TtsUnavailable(f"speech synthesis timed out after {timeout_s:g} s") from exc
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip().splitlines() or ["no message"]
        raise TtsUnavailable(f"espeak-ng failed: {message[-1]}")
    return result.stdout.decode(errors="replace")
