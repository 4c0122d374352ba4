"""Acoustic echo cancellation for the live loop: the skill hears the user, not itself.

The skill knows exactly what it plays, so that signal (the reference) is removed from the
microphone with speexdsp's echo canceller: an adaptive filter learns the path from the
speaker to the microphone (delay, level, room reflections) and subtracts its estimate, then
speexdsp's preprocessor suppresses the echo the filter left. speexdsp is Xiph's library,
packaged by Debian and most distributions (libspeexdsp1); it is reached through ctypes, since
no maintained Python binding builds against it.

Alignment: `PlaybackReference` puts each answer on the microphone's sample clock. When
playback starts, the answer is placed at the number of samples the microphone has captured
so far plus the output latency (the sound leaves the speaker that much later); when it is
cut off, the rest is dropped. The canceller then pairs each microphone block with the
reference samples of the same instant, however late the loop processes the block. What the
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

    def __init__(self, clock: Callable[[], int] = lambda: 0, tail_s: float = ECHO_TAIL_S):
        self.reference = PlaybackReference(clock)
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

    def process(self, mic: np.ndarray, position: int) -> np.ndarray:
        """`mic`, recorded from sample `position` of the microphone's clock, less the echo."""
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
        self._mic, self._ref = self._mic[whole:], self._ref[whole:]
        return cleaned

    def close(self) -> None:
        if self._echo:
            self._lib.speex_preprocess_state_destroy(self._pre)
            self._lib.speex_echo_state_destroy(self._echo)
            self._echo = self._pre = None

    def __del__(self) -> None:
        self.close()


class PlaybackReference:
    """What the speaker is playing, on the microphone's sample clock (thread-safe).

    `clock()` tells how many samples the microphone has captured so far; the speaker calls
    `started` when an answer begins to play and `stopped` if it is cut off; the loop asks
    `take(position, n)` for the reference of microphone samples position..position+n.
    """

    def __init__(self, clock: Callable[[], int]) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._start = 0  # where the current answer sits on the microphone's clock
        self._samples = np.zeros(0, dtype=np.int16)

    def started(self, samples: np.ndarray, rate: int, latency_s: float) -> None:
        played = samples if rate == SAMPLE_RATE else soxr.resample(samples, rate, SAMPLE_RATE)
        with self._lock:
            self._start = self._clock() + round(latency_s * SAMPLE_RATE)
            self._samples = np.asarray(played, dtype=np.int16)

    def stopped(self, latency_s: float) -> None:
        """The answer was cut off now: what was buffered but not yet heard never plays."""
        with self._lock:
            heard = self._clock() + round(latency_s * SAMPLE_RATE) - self._start
            self._samples = self._samples[: max(0, heard)]

    def take(self, position: int, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int16)
        with self._lock:
            begin = position - self._start
            lo, hi = max(0, begin), min(len(self._samples), begin + n)
            if hi > lo:
                out[lo - begin : hi - begin] = self._samples[lo:hi]
        return out
