"""WAV input, conversion to 16 kHz mono int16, and voice activity detection.

Every engine in the pipeline takes 16 kHz mono 16-bit PCM, so files of any
common WAV layout are converted here, as a stream (soundfile reads blocks,
soxr resamples them): a long recording never has to fit in memory; raw PCM a
front-end received is converted by `PcmStream`.

Utterances are cut on pocketsphinx's WebRTC-based `Vad`, which calls each
30 ms frame speech or not.  An utterance starts when 0.3 s of the last
0.36 s is speech, 0.21 s of it with sound in it: a one-syllable "no" starts
one, a door slam (whose frames the VAD goes on calling speech for a while
after it) does not.  It ends after `silence_s` of non-speech (90 % of the
frames in that window), the rule of pocketsphinx's `Endpointer`.  The
default silence, the VAD mode and the start rule were chosen by measurement
(docs/measurements.md): long enough not to split a hesitant speaker, strict
enough not to take noise for speech.
"""

from __future__ import annotations

import io
import os
import select
import stat
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import soundfile
import soxr
from pocketsphinx import Vad

from voiceskill.errors import UserError

SAMPLE_RATE = 16000
MAX_CHANNELS = 8
DEFAULT_SILENCE_S = 0.5
DEFAULT_VAD_MODE = Vad.MEDIUM_STRICT
FRAME_S = 0.03  # the VAD's frame
START_FRAMES = 12  # the start rule looks at the last 0.36 s;
START_VOICED = 10  # at least this many of its frames are speech to the VAD,
START_SOUNDING = 7  # and at least this many of those carry sound: within
SOUNDING_DB = 30.0  # this much of the loudest frame of the 0.36 s
END_RATIO = 0.9  # an utterance ends when this much of the last `silence_s` is not speech

_WAV_MAGIC = (b"RIFF", b"RIFX", b"RF64")
_WAV_FORMATS = ("WAV", "WAVEX", "RF64")


class AudioError(UserError):
    """A file that cannot be used as audio; the message is one line naming the file."""


def read_wav_chunks(path: str | os.PathLike[str], chunk_ms: int = 100) -> Iterator[np.ndarray]:
    """Stream a WAV file as 16 kHz mono int16 chunks of `chunk_ms` (the last may be shorter).

    The file is opened and checked before this returns, so a bad file raises
    AudioError here, not halfway through a conversation.
    """
    if chunk_ms <= 0:
        raise ValueError("chunk_ms must be positive")
    if not os.fspath(path):  # Path("") would be the current folder
        raise AudioError("'': an empty name, not a WAV file")
    path = Path(path)
    wav = _open_wav(path)
    return _stream(wav, str(path), SAMPLE_RATE * chunk_ms // 1000)



class PcmStream:
    """Raw PCM chunks of one stream, in whatever rate, sample width and channel count a
    front-end received them, converted as they arrive to 16 kHz mono int16 (every channel
    averaged; the resampler keeps its state between chunks). ValueError, one line, for a chunk
    that is not usable PCM."""

    def __init__(self) -> None:
        self._format: tuple[int, int, int] | None = None
        self._resampler: soxr.ResampleStream | None = None

    def convert(self, pcm: bytes, rate: int, width: int, channels: int) -> np.ndarray:
        _check_pcm(pcm, rate, width, channels)
        if self._format != (rate, width, channels):
            self._format = (rate, width, channels)
            self._resampler = (None if rate == SAMPLE_RATE
                               else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="int16"))
        samples = _mono16(pcm, width, channels)
        if self._resampler is None:
            return samples
        return self._resampler.resample_chunk(samples)

    def flush(self) -> np.ndarray:
        """What the resampler still holds at the end of the stream."""
        if self._resampler is None:
            return np.zeros(0, dtype=np.int16)
        rest = self._resampler.resample_chunk(np.zeros(0, dtype=np.int16), last=True)
        self._format = self._resampler = None
        return rest


def _check_pcm(pcm: bytes, rate: int, width: int, channels: int) -> None:
    fields = (rate, width, channels)
    if not all(type(value) is int for value in fields):
        raise ValueError("rate, width and channels must be whole numbers")
    if not (1000 <= rate <= 384_000 and width in (1, 2, 3, 4) and 1 <= channels <= MAX_CHANNELS):
        raise ValueError(f"{rate} Hz, {width} bytes, {channels} channels")
    if not isinstance(pcm, bytes):
        raise ValueError("no audio payload")
    if len(pcm) % (width * channels):
        raise ValueError("payload is not a whole number of frames")


def _mono16(pcm: bytes, width: int, channels: int) -> np.ndarray:
    """16-bit samples (the top two bytes of wider ones; 8-bit PCM is unsigned), channels
    averaged."""
    if width == 1:
        samples = (np.frombuffer(pcm, np.uint8).astype(np.int16) - 128) << 8
    else:
        samples = np.frombuffer(pcm, np.uint8).reshape(-1, width)[:, -2:].copy().view("<i2")
        samples = samples.ravel()
    if channels > 1:
        samples = np.round(samples.reshape(-1, channels).mean(axis=1))
    return samples.astype(np.int16)

def _open_wav(path: Path) -> soundfile.SoundFile:
    name = str(path)  # as it was given: "63" or "null" alone would not say which file
    source = _open_once(path, name)
    try:
        _check_head(name, os.pread(source, 12, 0) if isinstance(source, int)
                    else source.getvalue()[:12])
    except (AudioError, OSError) as e:
        if isinstance(source, int):
            os.close(source)
        if isinstance(e, AudioError):
            raise
        raise AudioError(f"{name}: cannot be read ({e.strerror})") from None
    try:
        wav = soundfile.SoundFile(source)  # owns a descriptor from here, closed on failure too
    except (soundfile.SoundFileError, RuntimeError, OSError):
        raise AudioError(f"{name}: truncated or corrupt WAV header") from None
    problem = _format_problem(wav)
    if problem:
        wav.close()
        raise AudioError(f"{name}: {problem}")
    return wav


def _open_once(path: Path, name: str) -> int | io.BytesIO:
    """The file opened once: a regular file as a descriptor (libsndfile reads it from there),
    a pipe (process substitution, standard input) read into memory, because it can be read
    only once. Anything else (a device, a socket) is refused before reading."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise AudioError(f"{name}: no such file") from None
    except OSError as e:
        raise AudioError(f"{name}: cannot be read ({e.strerror})") from None
    keep = False
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise AudioError(f"{name}: is a directory, not a WAV file")
        if stat.S_ISFIFO(mode):
            return io.BytesIO(_read_pipe(descriptor, name))
        if not stat.S_ISREG(mode):
            raise AudioError(f"{name}: not a regular file or a pipe")
        os.set_blocking(descriptor, True)
        keep = True
        return descriptor
    except OSError as e:
        raise AudioError(f"{name}: cannot be read ({e.strerror})") from None
    finally:
        if not keep:
            os.close(descriptor)


def _check_head(name: str, head: bytes) -> None:
    if not head:
        raise AudioError(f"{name}: contains no audio")
    if head[:4] not in _WAV_MAGIC:
        raise AudioError(f"{name}: not a WAV file")
    if len(head) < 12:
        raise AudioError(f"{name}: truncated WAV header")
    if head[8:12] != b"WAVE":
        raise AudioError(f"{name}: not a WAV file")


MAX_PIPE_BYTES = 32 * 1024 * 1024
"""More than any WAV layout needs for the MAX_TURN_S a turn is cut to (48 kHz stereo float:
12 MB); what a pipe holds beyond this is not read."""
PIPE_TIMEOUT_S = 10.0


def _read_pipe(descriptor: int, name: str) -> bytes:
    """Up to MAX_PIPE_BYTES from a pipe opened without blocking; a FIFO nobody writes to gives
    nothing at once, and a writer that goes quiet for PIPE_TIMEOUT_S is given up on."""
    chunks, size = [], 0
    while size < MAX_PIPE_BYTES:
        try:
            chunk = os.read(descriptor, min(1 << 20, MAX_PIPE_BYTES - size))
        except BlockingIOError:
            if not select.select([descriptor], [], [], PIPE_TIMEOUT_S)[0]:
                silent = f"{name}: no data from the pipe for {PIPE_TIMEOUT_S:g} s"
                raise AudioError(silent) from None
            continue
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def _format_problem(wav: soundfile.SoundFile) -> str | None:
    if wav.format not in _WAV_FORMATS:
        return "not a WAV file"
    if wav.frames <= 0:
        return "contains no audio"
    if not 1 <= wav.channels <= MAX_CHANNELS:
        return f"has {wav.channels} channels, at most {MAX_CHANNELS} are supported"
    if not 1000 <= wav.samplerate <= 384000:
        return f"unsupported sample rate {wav.samplerate} Hz"
    return None


def _stream(wav: soundfile.SoundFile, name: str, out_len: int) -> Iterator[np.ndarray]:
    block = max(1, wav.samplerate * out_len // SAMPLE_RATE)
    resampler = None
    if wav.samplerate != SAMPLE_RATE:
        resampler = soxr.ResampleStream(wav.samplerate, SAMPLE_RATE, 1, dtype="float32")
    pending = np.zeros(0, dtype=np.int16)
    total = 0
    with wav:
        while True:
            try:
                data = wav.read(block, dtype="float32", always_2d=True)
                last = len(data) < block
                mono = np.ascontiguousarray(data.mean(axis=1, dtype=np.float32))
                if resampler is not None:
                    mono = resampler.resample_chunk(mono, last=last)
            except (soundfile.SoundFileError, RuntimeError, OSError, ValueError) as e:
                raise AudioError(f"{name}: cannot be read ({e})") from None
            if not np.isfinite(data).all():
                raise AudioError(f"{name}: contains invalid samples (NaN or infinity)")
            total += len(data)
            pending = np.concatenate([pending, _to_int16(mono)])
            while len(pending) >= out_len:
                yield pending[:out_len]
                pending = pending[out_len:]
            if last:
                break
    if total == 0:
        raise AudioError(f"{name}: contains no audio")
    if len(pending):
        yield pending


def _to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to int16, clipping; int16 -> float -> int16 is exact."""
    with np.errstate(over="ignore"):  # a huge finite sample (1e38) becomes inf, then clips
        scaled = np.rint(np.asarray(samples, dtype=np.float32) * 32768.0)
    return np.clip(scaled, -32768, 32767).astype(np.int16)


@dataclass(frozen=True, eq=False)
class VadEvent:
    """One step of an utterance: "start", then one or more "audio", then "end".

    `time_s` counts from the detector's first sample: where speech starts
    ("start"), where this audio begins ("audio"), where speech stopped
    ("end").  `samples` is the speech (16 kHz mono int16) of an "audio" event.
    `silence_ms` is the silence heard after the speech before the "end" was
    declared: the endpointing wait.
    """

    kind: Literal["start", "audio", "end"]
    time_s: float
    samples: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    silence_ms: float = 0.0


class UtteranceDetector:
    """Cut a live 16 kHz int16 stream into utterances.

    Feed chunks of any size to `process`; each call returns the events it
    completed, in order.  Speech reaches you about `silence_s` late, because
    that much must be heard to decide.
    """

    sample_rate = SAMPLE_RATE
    """The rate `process` takes: a live source (the microphone) records at it."""

    def __init__(self, silence_s: float = DEFAULT_SILENCE_S, *, vad_mode: int = DEFAULT_VAD_MODE):
        self._vad = Vad(vad_mode, self.sample_rate, FRAME_S)
        self._frame = self._vad.frame_bytes // 2
        self._window = int(silence_s / FRAME_S + 0.5)  # frames, rounded as pocketsphinx does
        if self._window < START_FRAMES:
            raise ValueError(f"silence_s must be at least {START_FRAMES * FRAME_S:.2f} s")
        self._end_voiced = int((1 - END_RATIO) * self._window + 0.5)  # ends below this
        # the last frames heard, oldest first: (samples, VAD says speech, level in dB)
        self._frames: deque[tuple[np.ndarray, bool, float]] = deque(maxlen=self._window)
        self._pending = np.zeros(0, dtype=np.int16)
        self._heard = 0  # samples given to the VAD
        self._open = False
        self._next_audio_s = 0.0

    def process(self, pcm: np.ndarray) -> list[VadEvent]:
        buf = np.concatenate([self._pending, np.asarray(pcm, dtype=np.int16)])
        whole = len(buf) - len(buf) % self._frame
        events: list[VadEvent] = []
        for i in range(0, whole, self._frame):
            self._step(buf[i : i + self._frame], events)
        self._pending = buf[whole:]
        return _merge_audio(events)

    def flush(self) -> list[VadEvent]:
        """End of the stream: close an utterance that is still open (the detector is then done).

        Its audio runs to its last frame of speech, or to the end of the stream if that frame
        is the last one heard."""
        events: list[VadEvent] = []
        self._heard += len(self._pending)
        if self._open:
            voiced = [i for i, (_, speech, _) in enumerate(self._frames) if speech]
            kept = [samples for samples, _, _ in self._frames][: voiced[-1] + 1 if voiced else 0]
            if voiced and voiced[-1] == len(self._frames) - 1:
                kept.append(self._pending)
            if kept:
                self._emit(np.concatenate(kept), events)
            events.append(self._end())
        self._frames.clear()
        self._pending = np.zeros(0, dtype=np.int16)
        return _merge_audio(events)

    def _step(self, samples: np.ndarray, events: list[VadEvent]) -> None:
        """One frame: pocketsphinx's Endpointer, but for the start rule."""
        level_db = 10 * np.log10(np.mean(samples.astype(np.float64) ** 2) + 1.0)
        self._frames.append((samples, self._vad.is_speech(samples.tobytes()), level_db))
        self._heard += len(samples)
        if not self._open and self._starts():
            # it starts a frame before the first speech in the window, as pocketsphinx's did
            while len(self._frames) > START_FRAMES or not self._frames[1][1]:
                self._frames.popleft()
            self._open = True
            self._next_audio_s = (self._heard - len(self._frames) * self._frame) / SAMPLE_RATE
            events.append(VadEvent("start", self._next_audio_s))
        if not self._open or len(self._frames) < self._window:
            return  # the end rule needs the whole window; speech reaches you that late
        ending = sum(speech for _, speech, _ in self._frames) < self._end_voiced
        self._emit(self._frames.popleft()[0], events)
        if ending:
            events.append(self._end())

    def _starts(self) -> bool:
        recent = list(self._frames)[-START_FRAMES:]
        voiced = [level for _, speech, level in recent if speech]
        loudest = max(level for _, _, level in recent)
        sounding = sum(level >= loudest - SOUNDING_DB for level in voiced)
        return len(voiced) >= START_VOICED and sounding >= START_SOUNDING

    def _emit(self, samples: np.ndarray, events: list[VadEvent]) -> None:
        events.append(VadEvent("audio", self._next_audio_s, samples))
        self._next_audio_s += len(samples) / SAMPLE_RATE

    def _end(self) -> VadEvent:
        self._open = False
        end = self._next_audio_s
        return VadEvent("end", end, silence_ms=max(0.0, self._heard / SAMPLE_RATE - end) * 1000)


def fade_out(samples: np.ndarray) -> np.ndarray:
    """`samples` (int16) falling linearly to silence: the end of an answer cut off."""
    return (samples * np.linspace(1, 0, len(samples))).astype(np.int16)


def _merge_audio(events: list[VadEvent]) -> list[VadEvent]:
    merged: list[VadEvent] = []
    for event in events:
        if event.kind == "audio" and merged and merged[-1].kind == "audio":
            samples = np.concatenate([merged[-1].samples, event.samples])
            merged[-1] = VadEvent("audio", merged[-1].time_s, samples)
        else:
            merged.append(event)
    return merged


@dataclass(frozen=True, eq=False)
class Utterance:
    start_s: float
    end_s: float
    samples: np.ndarray


def split_utterances(
    chunks: Iterable[np.ndarray], silence_s: float = DEFAULT_SILENCE_S
) -> Iterator[Utterance]:
    """The utterances in a stream of 16 kHz int16 chunks (e.g. from read_wav_chunks)."""
    detector = UtteranceDetector(silence_s)

    def events() -> Iterator[VadEvent]:
        for chunk in chunks:
            yield from detector.process(chunk)
        yield from detector.flush()

    start, parts = 0.0, []
    for event in events():
        if event.kind == "start":
            start, parts = event.time_s, []
        elif event.kind == "audio":
            parts.append(event.samples)
        else:
            yield Utterance(start, event.time_s, np.concatenate(parts))


def trim_silence(
    path: str | os.PathLike[str], silence_s: float = DEFAULT_SILENCE_S, keep_s: float = 0.1
) -> np.ndarray:
    """The file as 16 kHz int16 from its first speech to its last, plus `keep_s` either side.

    Pauses between utterances stay.  A file without speech gives an empty
    array: silence is valid audio, not an error.
    """
    detector = UtteranceDetector(silence_s)
    parts: list[np.ndarray] = []
    events: list[VadEvent] = []
    for chunk in read_wav_chunks(path):
        parts.append(chunk)
        events += [e for e in detector.process(chunk) if e.kind != "audio"]
    events += detector.flush()
    starts = [e.time_s for e in events if e.kind == "start"]
    ends = [e.time_s for e in events if e.kind == "end"]
    if not starts:
        return np.zeros(0, dtype=np.int16)
    audio = np.concatenate(parts)
    first = max(0, int((starts[0] - keep_s) * SAMPLE_RATE))
    return audio[first : int((ends[-1] + keep_s) * SAMPLE_RATE)]
