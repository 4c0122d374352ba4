"""Acoustic echo cancellation for the live loop: the skill hears the user, not itself.

The skill knows exactly what it plays, so that signal (the reference) is removed from the
microphone with speexdsp's echo canceller: an adaptive filter learns the path from the
speaker to the microphone (delay, level, room reflections) and subtracts its estimate, then
speexdsp's preprocessor suppresses the echo the filter left. speexdsp is Xiph's library,
packaged by Debian and most distributions (libspeexdsp1); it is reached through ctypes, since
no maintained Python binding builds against it.

Alignment: `PlaybackReference` puts each answer on the microphone's sample clock. PortAudio
stamps every microphone block with the time it was recorded and tells when a sample written
to the speaker will be heard (stream time + output latency), on one clock for all streams: the
answer is placed at the microphone sample recorded at that instant; when it is cut off, the
rest is dropped. That estimate was measured right for one answer and 0.58 s early for the next
on the same PulseAudio device, so the echo is also found in the microphone signal by
cross-correlation ALIGN_AFTER_S into each answer, and the answer is moved to ECHO_LAG_S
before it. The canceller then pairs each microphone block with the reference samples of
the same instant, however late the loop processes the block. What the
latency estimate misses (device buffering, the distance to the microphone) the filter covers:
it spans ECHO_TAIL_S.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading
from collections.abc import Callable

import numpy as np
import soxr

from voiceskill.audio import SAMPLE_RATE
from voiceskill.errors import UserError

FRAME = SAMPLE_RATE // 100  # speexdsp works on 10 ms frames
ECHO_TAIL_S = 0.5  # echo path the filter can model: unmeasured output buffering + room
_SET_SAMPLING_RATE = 24  # speex_echo.h
_SET_NOISE_SUPPRESS = 18  # speex_preprocess.h
_SET_ECHO_STATE = 24
# The preprocessor suppresses residual echo only with its denoiser on; noise is the front-end's
# job, so the denoiser may take off no more than this (dB).
NOISE_SUPPRESS_DB = -3
# The filter starts knowing nothing of the room: measured with a small room's echo 6 dB under
# the playback, it removed 2-4 dB in the first 0.5 s and 10-20 dB after 1-1.5 s of playback.
# Until it has learned the room, speech heard over an answer may be the answer itself.
SETTLED_ERLE_DB = 10.0
SETTLE_LIMIT_S = 2.0  # no echo path to learn (a headset): trust the microphone after this
ALIGN_AFTER_S = 0.8  # microphone heard into an answer before its echo is looked for
ALIGN_REFERENCE_S = 0.5  # the start of the answer that is looked for
MAX_EARLY_S, MAX_LATE_S = 0.2, 0.6  # how far the echo may be from where it was expected
ECHO_LAG_S = 0.01  # where the echo is put, after the reference: the filter is causal
# Normalised correlation of the answer with what the microphone heard at the best lag for the
# echo to count as found: ~0.9 for a plain echo; speech of the user's is near 0.1.
ECHO_CORRELATION = 0.3
_POWER_SMOOTHING = 0.98  # per 10 ms frame: about half a second


class EchoCancellerUnavailable(UserError):
    """speexdsp is missing; the message says how to install it."""


def _load_speexdsp() -> ctypes.CDLL:
    name = ctypes.util.find_library("speexdsp")
    try:
        lib = ctypes.CDLL(name or "libspeexdsp.so.1")
    except OSError:
        raise EchoCancellerUnavailable(
            "echo cancellation needs libspeexdsp (apt-get install libspeexdsp1); "
            "or run with --no-echo-cancel"
        ) from None
    lib.speex_echo_state_init.restype = ctypes.c_void_p
    lib.speex_echo_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_echo_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_echo_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_echo_cancellation.argtypes = [ctypes.c_void_p] + [ctypes.c_void_p] * 3
    lib.speex_preprocess_state_init.restype = ctypes.c_void_p
    lib.speex_preprocess_state_init.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.speex_preprocess_state_destroy.argtypes = [ctypes.c_void_p]
    lib.speex_preprocess_ctl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p]
    lib.speex_preprocess_run.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    return lib


class EchoCanceller:
    """speexdsp's echo canceller and residual-echo suppressor over a 16 kHz int16 stream.

    The live loop gives the speaker `reference` as its playback listener and passes each
    microphone block to `process` with its position on the microphone's clock.  `cancel`
    takes the reference samples directly (benchmarks).  Output is FRAME-aligned: it lags by
    less than one 10 ms frame.
    """

    def __init__(self, position_at: Callable[[float], int] = lambda t: 0,
                 tail_s: float = ECHO_TAIL_S):
        self.reference = PlaybackReference(position_at)
        self._lib = lib = _load_speexdsp()
        self._echo = lib.speex_echo_state_init(FRAME, round(tail_s * SAMPLE_RATE))
        rate = ctypes.c_int(SAMPLE_RATE)
        lib.speex_echo_ctl(self._echo, _SET_SAMPLING_RATE, ctypes.byref(rate))
        self._pre = lib.speex_preprocess_state_init(FRAME, SAMPLE_RATE)
        suppress = ctypes.c_int(NOISE_SUPPRESS_DB)
        lib.speex_preprocess_ctl(self._pre, _SET_NOISE_SUPPRESS, ctypes.byref(suppress))
        lib.speex_preprocess_ctl(self._pre, _SET_ECHO_STATE, ctypes.c_void_p(self._echo))
        self._mic = np.zeros(0, dtype=np.int16)
        self._ref = np.zeros(0, dtype=np.int16)
        self._out = np.zeros(FRAME, dtype=np.int16)
        self._mic_power = self._out_power = 1.0
        self._history = np.zeros(0, dtype=np.int16)  # the last microphone samples, raw
        self._history_end = 0  # microphone position just after them
        self.played_s = 0.0  # playback heard so far: what the filter has had to learn from
        self.converged = False
        self._answer_energy = [1.0, 1.0]  # microphone, cleaned; over the current answer
        self._answer_seen = -1

    @property
    def erle_db(self) -> float:
        """Echo return loss enhancement over the last half second of playback (dB)."""
        return 10 * float(np.log10(self._mic_power / self._out_power))

    @property
    def answer_erle_db(self) -> float:
        """Echo return loss enhancement over the current (or last) answer so far (dB): the
        energy the microphone heard while it played over the energy left after cancelling."""
        return 10 * float(np.log10(self._answer_energy[0] / self._answer_energy[1]))

    @property
    def settled(self) -> bool:
        """Whether the filter has learned the room (or had ample time to): speech heard over
        an answer is then the user's, not the answer's echo."""
        if not self.reference.aligned:
            return False
        return self.converged or not self.reference.echo_found or self.played_s >= SETTLE_LIMIT_S

    def process(self, mic: np.ndarray, position: int) -> np.ndarray:
        """`mic`, recorded from sample `position` of the microphone's clock, less the echo."""
        mic = np.asarray(mic, dtype=np.int16)
        keep = round((ALIGN_AFTER_S + MAX_EARLY_S + 0.5) * SAMPLE_RATE)
        self._history = np.concatenate([self._history, mic])[-keep:]
        self._history_end = position + len(mic)
        if not self.reference.aligned and self._history_end >= self.reference.start + round(
                ALIGN_AFTER_S * SAMPLE_RATE):
            self.reference.align(self._history, self._history_end)
        if not self.reference.aligned:
            # Where the echo is, is not known yet: a reference in the wrong place would teach
            # the filter a wrong room, so it hears silence until then (and learns nothing).
            return self.cancel(mic, np.zeros(len(mic), dtype=np.int16))
        return self.cancel(mic, self.reference.take(position, len(mic)))

    def cancel(self, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
        """`mic` less the echo of `played`, the reference samples of the same instant."""
        if len(mic) != len(played):
            raise ValueError("microphone and reference blocks must be the same length")
        self._mic = np.concatenate([self._mic, np.asarray(mic, dtype=np.int16)])
        self._ref = np.concatenate([self._ref, np.asarray(played, dtype=np.int16)])
        whole = len(self._mic) - len(self._mic) % FRAME
        cleaned = np.empty(whole, dtype=np.int16)
        for i in range(0, whole, FRAME):
            rec = np.ascontiguousarray(self._mic[i : i + FRAME])
            ref = np.ascontiguousarray(self._ref[i : i + FRAME])
            self._lib.speex_echo_cancellation(self._echo, rec.ctypes.data, ref.ctypes.data,
                                              self._out.ctypes.data)
            self._lib.speex_preprocess_run(self._pre, self._out.ctypes.data)
            cleaned[i : i + FRAME] = self._out
            if ref.any():
                self._track(rec, self._out)
        self._mic, self._ref = self._mic[whole:], self._ref[whole:]
        return cleaned

    def _track(self, mic: np.ndarray, out: np.ndarray) -> None:
        keep = _POWER_SMOOTHING
        mic_power, out_power = _power(mic), _power(out)
        self._mic_power = keep * self._mic_power + (1 - keep) * mic_power
        self._out_power = keep * self._out_power + (1 - keep) * out_power
        if self._answer_seen != self.reference.answers:
            self._answer_seen, self._answer_energy = self.reference.answers, [1.0, 1.0]
        self._answer_energy[0] += mic_power
        self._answer_energy[1] += out_power
        self.played_s += FRAME / SAMPLE_RATE
        if self.played_s >= 0.5 and self.erle_db >= SETTLED_ERLE_DB:
            self.converged = True

    def close(self) -> None:
        if self._echo:
            self._lib.speex_preprocess_state_destroy(self._pre)
            self._lib.speex_echo_state_destroy(self._echo)
            self._echo = self._pre = None

    def __del__(self) -> None:
        self.close()


def _power(samples: np.ndarray) -> float:
    return float(np.mean(samples.astype(np.float64) ** 2)) + 1.0


class PlaybackReference:
    """What the speaker is playing, on the microphone's sample clock (thread-safe).

    `position_at(t)` maps a stream time to the microphone sample recorded then; the speaker
    calls `started` when an answer begins to play and `stopped` if it is cut off; the loop asks
    `take(position, n)` for the reference of microphone samples position..position+n.
    """

    def __init__(self, position_at: Callable[[float], int]) -> None:
        self._position_at = position_at
        self._lock = threading.Lock()
        self._start = 0  # where the current answer sits on the microphone's clock
        self._samples = np.zeros(0, dtype=np.int16)
        self.aligned = True  # whether the current answer was looked for in the microphone
        self.echo_found = False  # and found there
        self.answers = 0  # answers played so far

    def started(self, samples: np.ndarray, rate: int, heard_at: float) -> None:
        """`samples` will be heard from stream time `heard_at` on."""
        played = samples if rate == SAMPLE_RATE else soxr.resample(samples, rate, SAMPLE_RATE)
        with self._lock:
            self._start = self._position_at(heard_at)
            self._samples = np.asarray(played, dtype=np.int16)
            self.aligned = False
            self.answers += 1

    @property
    def start(self) -> int:
        return self._start

    def align(self, mic: np.ndarray, mic_end: int) -> None:
        """Find the answer's echo in `mic` (raw, ending at position `mic_end`) and move the
        answer to ECHO_LAG_S before it; without a clear echo (no echo path) it stays put."""
        with self._lock:
            self.aligned = True
            self.echo_found = False
            reference = self._samples[: round(ALIGN_REFERENCE_S * SAMPLE_RATE)].astype(float)
            early = round(MAX_EARLY_S * SAMPLE_RATE)
            begin = self._start - early - (mic_end - len(mic))
            window = mic[max(0, begin) :].astype(float)
            if begin < 0 or len(reference) == 0 or not reference.any():
                self.echo_found = True  # cannot tell: assume the worst
                return
            size = 1 << int(np.ceil(np.log2(len(window) + len(reference))))
            xcorr = np.abs(np.fft.irfft(
                np.fft.rfft(window, size) * np.conj(np.fft.rfft(reference, size)), size))
            xcorr = xcorr[: early + round(MAX_LATE_S * SAMPLE_RATE)]
            if len(xcorr) == 0:
                return
            best = int(np.argmax(xcorr))
            heard = window[best : best + len(reference)]
            norms = np.linalg.norm(heard) * np.linalg.norm(reference[: len(heard)])
            if not norms or xcorr[best] / norms < ECHO_CORRELATION:
                return  # the microphone heard something else: the user, the room
            lag = best - early  # echo start - expected start
            self._start += lag - round(ECHO_LAG_S * SAMPLE_RATE)
            self.echo_found = True

    def stopped(self, heard_until: float) -> None:
        """The answer was cut off: nothing after stream time `heard_until` plays."""
        with self._lock:
            heard = self._position_at(heard_until) - self._start
            self._samples = self._samples[: max(0, heard)]

    def heard_at(self, position: int) -> bool:
        """Whether the microphone may still hear the answer at `position`: until its last
        sample has come back through the room (a filter's length after it)."""
        with self._lock:
            end = self._start + len(self._samples) + round(ECHO_TAIL_S * SAMPLE_RATE)
        return self.answers > 0 and position < end

    def take(self, position: int, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int16)
        with self._lock:
            begin = position - self._start
            lo, hi = max(0, begin), min(len(self._samples), begin + n)
            if hi > lo:
                out[lo - begin : hi - begin] = self._samples[lo:hi]
        return out
