"""Acoustic echo cancellation for the live loop: the skill hears the user, not itself.

The skill knows exactly what it plays, so that signal (the reference) is removed from the
microphone with speexdsp's echo canceller: an adaptive filter learns the path from the
speaker to the microphone (delay, level, room reflections) and subtracts its estimate, then
speexdsp's preprocessor suppresses the echo the filter left. That output is what the voice
detector and the barge-in levels go by; the recogniser hears the filter's output before the
suppressor (`unsuppressed`): with the echo exactly where the reference had it, a question asked
as an answer ended was heard "are twitches and cramps i'm sick" through the suppressor, "... the
same thing" without it (docs/measurements.md, echo round 6). speexdsp is Xiph's library,
packaged by Debian and most distributions (libspeexdsp1); it is reached through ctypes, since
no maintained Python binding builds against it.

Alignment: `PlaybackReference` puts each answer on the microphone's sample clock. PortAudio
stamps every microphone block with the time it was recorded and tells when a sample written
to the speaker will be heard (stream time + output latency), on one clock for all streams: the
answer is placed at the microphone sample recorded at that instant; when it is cut off, the
rest is dropped. That estimate can be wrong by more than half a second from one answer to the
next on the same device, so the echo is also found in the microphone signal by
cross-correlation ALIGN_AFTER_S into each answer, and the answer is moved to ECHO_LAG_S
before it. The correction found is kept for the next answer, whose echo is then looked for
sooner (VERIFY_AFTER_S in) and only near where it is expected; the filter that learned the
room cancels it from there on (and learns it afresh if the echo has moved). The canceller
pairs each microphone block with the reference samples of the same instant, however late the
loop processes the block. What the latency estimate misses (device buffering, the distance to
the microphone) the filter covers: it spans ECHO_TAIL_S.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys
import threading
from collections.abc import Callable

import numpy as np
import soxr

from voiceskill.audio import fade_out
from voiceskill.errors import UserError

log = logging.getLogger(__name__)

FRAME_S = 0.01  # speexdsp works on 10 ms frames
ECHO_TAIL_S = 0.5  # echo path the filter can model: unmeasured output buffering + room
_SET_SAMPLING_RATE = 24  # speex_echo.h
_SET_NOISE_SUPPRESS = 18  # speex_preprocess.h
_SET_ECHO_STATE = 24
# The preprocessor suppresses residual echo only with its denoiser on; noise is the front-end's
# job, so the denoiser may take off no more than this (dB).
NOISE_SUPPRESS_DB = -3
# The filter starts knowing nothing of the room and takes a second or so of playback to learn
# it; until then, speech heard over an answer may be the answer itself.
SETTLED_ERLE_DB = 10.0
SETTLE_LIMIT_S = 2.0  # no echo path to learn (a headset): trust the microphone after this
ALIGN_AFTER_S = 0.8  # microphone heard into an answer before its echo is looked for
# The same, when the last answer's echo tells where to expect it: the filter, which knows the
# room, then cancels from this point; what the microphone heard before it is held back and
# given back cancelled (bench/echo_path.py: no self-interruption with the detector's 0.3 s
# start rule).
VERIFY_AFTER_S = 0.35
# A short stretch of voiced speech also matches itself a pitch period or two away: the echo
# where it is expected must match about as well as it did when it was found.
VERIFY_SHARE = 0.8
ALIGN_REFERENCE_S = 0.5  # at most this much of the answer's start is looked for
MOVED_S = 0.02  # an echo further than this from where the last one was: the room changed
# How far the echo may be from where the device said (a device may play as soon as written,
# though it reports its latency).
MAX_EARLY_S, MAX_LATE_S = 0.35, 0.6
NEAR_S = 0.05  # how far from where the last answer's echo says (further: looked for afresh)
ECHO_LAG_S = 0.01  # where the echo is put, after the reference: the filter is causal
SOUND_LEVEL = 300  # a sample of an answer louder than this is sound, not its silence
# While an answer plays, its echo is looked for again every FOLLOW_EVERY_S in the last
# FOLLOW_S of the microphone, within FOLLOW_RANGE_S of where it was. A delay that slips by a
# fraction of a millisecond (two clocks, a buffer) leaves the filter's room a few samples off,
# and it cancels far less until it has learned it again; moving the answer instead keeps the
# room it learned.
FOLLOW_EVERY_S, FOLLOW_S, FOLLOW_RANGE_S = 0.02, 0.2, 0.002
FOLLOW_BETTER = 1.05  # how much better the echo must match where it moved to than where it was
# and how well, against the match when it was found (the user talking over the answer lowers
# the match where the echo really is).
FOLLOW_SHARE = 0.6
# A device that ran dry (the player late with its next block: a busy CPU) plays the rest of
# the answer that much later, and one that skips ahead plays it sooner: a jump far beyond the
# range above, after which the filter cancels nothing. When the echo is no longer where it
# was, it is looked for within FOLLOW_JUMP_S either way, and followed where it matches about
# as well as when it was found (VERIFY_SHARE) and FOLLOW_JUMP_BETTER times better than where
# it was: a stretch of speech also matches other stretches of the answer, less well.
FOLLOW_JUMP_S, FOLLOW_JUMP_BETTER = 0.3, 2.0
# The end of an answer, and an answer cut off, are not followed: a device may drop the last
# of what it buffered when the stream closes, and the echo then matches well where it is not.
FOLLOW_END_S = 0.3
# Normalised correlation of the answer with what the microphone heard at the best lag for the
# echo to count as found: well under a plain echo's, well over the user's own speech.
ECHO_CORRELATION = 0.3
# What the filter let through of an utterance heard over an answer, as much like the answer at
# one delay as this (normalised correlation: a quarter of its energy or more is the answer),
# is the skill's own voice come back by a path the filter does not model (a reflection or a
# second speaker later than ECHO_TAIL_S), not the user: decoded, it was a run of the answer's
# words too garbled to be told for them ('are twitchy muscle flickering ...'), now and then
# taken for a question or a red flag, and the answer was cut off. Measured: such reflections
# 0.55-0.90 (tests/unit/live/test_loop.py, through a room too), the fixtures' questions at most
# 0.36 (a word's length of audio), 0.08 at the median.
OWN_VOICE_CORRELATION = 0.5
_POWER_SMOOTHING = 0.98  # per 10 ms frame: about half a second
# What the filter and suppressor leave of the echo is quiet but still speech, and the voice
# detector, which listens for the shape of speech more than its level, took it for the user
# and cut answers off. A frame this far under the microphone's level over the last half
# second is silenced: the user talking over the answer is far louder.
RESIDUAL_GATE_DB = 20.0
# Speech over an answer rises over its echo when the microphone, against what is played, is
# louder than at its loudest between RISE_SINCE_S and BEFORE_SPEECH_S before the speech began:
# against one moment, a gap in the echo (a device that ran dry) made its return rise as much
# as the user's voice (tests/unit/live/test_echo.py).
BEFORE_SPEECH_S, RISE_SINCE_S = 0.1, 0.6
TRACE_S, TRACE_STEP_S = 1.5, 0.1  # what `trace` tells of the last frames, and in what steps


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
    """speexdsp's echo canceller and residual-echo suppressor over a mono int16 stream
    recorded at `rate`.

    The live loop gives the speaker `reference` as its playback listener and passes each
    microphone block to `process` with its position on the microphone's clock.  `cancel`
    takes the reference samples directly (benchmarks).  Output is aligned on 10 ms frames: it
    lags by less than one frame.
    """

    def __init__(self, rate: int, position_at: Callable[[float], int] = lambda t: 0,
                 tail_s: float = ECHO_TAIL_S):
        self.rate = rate
        self._frame = round(rate * FRAME_S)
        self.reference = PlaybackReference(rate, position_at)
        self._echo = None  # until speexdsp has made it: close() has nothing to free before
        self._lib = lib = _load_speexdsp()
        self._tail = round(tail_s * self.rate)  # samples: the filter's length
        self._echo = lib.speex_echo_state_init(self._frame, self._tail)
        c_rate = ctypes.c_int(rate)
        lib.speex_echo_ctl(self._echo, _SET_SAMPLING_RATE, ctypes.byref(c_rate))
        self._pre = lib.speex_preprocess_state_init(self._frame, self.rate)
        suppress = ctypes.c_int(NOISE_SUPPRESS_DB)
        lib.speex_preprocess_ctl(self._pre, _SET_NOISE_SUPPRESS, ctypes.byref(suppress))
        lib.speex_preprocess_ctl(self._pre, _SET_ECHO_STATE, ctypes.c_void_p(self._echo))
        self._mic = np.zeros(0, dtype=np.int16)
        self._ref = np.zeros(0, dtype=np.int16)
        self._out = np.zeros(self._frame, dtype=np.int16)
        # what the recogniser gets of the last frame: the filter's output, or the microphone
        # once no echo is left to take away
        self._for_recogniser = np.zeros(self._frame, dtype=np.int16)
        self._reference_silent = self._tail  # samples since the reference last sounded
        # what the filter alone made of the samples process() or cancel() returned last
        self.unsuppressed = np.zeros(0, dtype=np.int16)
        self._library_says = _CapturedStderr()
        self._mic_power = self._out_power = 1.0  # over frames with something played
        self._heard_power = self._played_power = 1.0  # over those and the echo's tail
        self._frame_before = 1.0  # the power of the last microphone frame
        self._history = np.zeros(0, dtype=np.int16)  # the last microphone samples, raw
        self._history_end = 0  # microphone position just after them
        self.played_s = 0.0  # playback heard so far: what the filter has had to learn from
        self.converged = False
        self._answer_seen = 0  # the answer the two below are about
        self._answer_energy = [1.0, 1.0]  # microphone, cleaned; over that answer
        self._settled_from: int | None = 0  # microphone position it settled at in that answer
        self._held: list[np.ndarray] = []  # microphone blocks held back until the echo is found
        self._held_from = 0  # the position of the first
        self._next_follow = 0  # microphone position at which the echo is next looked for
        # (microphone position, heard_over_played_db) after each block over the last 3 s
        self._levels: collections.deque[tuple[int, float]] = collections.deque(maxlen=100)
        # (microphone, cleaned, played) power of the last frames, for the debug log
        self._recent: collections.deque[tuple[float, float, float]] = collections.deque(
            maxlen=round(TRACE_S / FRAME_S))

    @property
    def erle_db(self) -> float:
        """Echo return loss enhancement over the last half second of playback (dB)."""
        return 10 * float(np.log10(self._mic_power / self._out_power))

    @property
    def heard_over_played_db(self) -> float:
        """How loud the microphone is against what is played, over the last half second of
        playback and of the answer's echo (dB): the echo path's gain while the microphone hears
        only the echo, more while someone talks over it. Unlike the ERLE it does not depend on
        how well the filter is doing: a filter that lost the room leaves more of the echo, but
        the echo itself is no louder. Followed through the answer's pauses and past its end
        while its echo may still be heard (PlaybackReference.heard_at): what is played falls
        silent, so the user speaking there rises over it, what comes back of the answer
        itself hardly (followed only while something played, it stood still after the last
        sample, and a goodbye said just after an answer rose 0 dB)."""
        return 10 * float(np.log10(self._heard_power / self._played_power))

    @property
    def answer_erle_db(self) -> float:
        """Echo return loss enhancement over the current (or last) answer so far (dB): the
        energy the microphone heard while it played over the energy left after cancelling."""
        return 10 * float(np.log10(self._answer_energy[0] / self._answer_energy[1]))

    def rise_db(self, position: int) -> float | None:
        """How much louder the microphone is now against what is played than at its loudest
        from RISE_SINCE_S to BEFORE_SPEECH_S before microphone `position`, where speech began
        (None if the canceller heard nothing then): the user's voice adds to the echo, while
        what the canceller leaves of the echo, even of one that came back late, is no louder
        than the echo was."""
        first, last = (position - round(s * self.rate) for s in (RISE_SINCE_S, BEFORE_SPEECH_S))
        before = [level for at, level in self._levels if first <= at <= last]
        return self.heard_over_played_db - max(before) if before else None

    def trace(self) -> str:
        """The microphone's, the output's and the reference's level (dB) over the last
        TRACE_S, in TRACE_STEP_S steps, oldest first: for the debug log."""
        frames = np.array(self._recent).reshape(-1, 3)
        step = round(TRACE_STEP_S / FRAME_S)
        levels = [10 * np.log10(frames[i : i + step].mean(0)) for i in range(0, len(frames), step)]
        return " ".join(f"{mic:.0f}/{out:.0f}/{played:.0f}" for mic, out, played in levels)

    @property
    def settled(self) -> bool:
        """Whether the filter has learned the room (or had ample time to): speech heard over
        an answer is then the user's, not the answer's echo."""
        if not self.reference.aligned:
            return False
        return self.converged or not self.reference.echo_found or self.played_s >= SETTLE_LIMIT_S

    def settled_at(self, position: int) -> bool:
        """Whether it had settled by microphone `position` of the current answer: speech
        that began earlier may be the answer's echo, even if the canceller has learned it since."""
        return self._settled_from is not None and position >= self._settled_from

    def process(self, mic: np.ndarray, position: int) -> np.ndarray:
        """`mic`, recorded from sample `position` of the microphone's clock, less the echo.

        At the start of an answer the microphone is held back until the answer's echo has been
        found (VERIFY_AFTER_S or ALIGN_AFTER_S in), then given back cancelled all at once: a
        reference even a millisecond off would teach the filter a wrong room, and the echo let
        through meanwhile would sound like the user starting to speak."""
        mic = np.asarray(mic, dtype=np.int16)
        self.unsuppressed = np.zeros(0, dtype=np.int16)
        cleaned = self._process(mic, position)
        self._levels.append((position, self.heard_over_played_db))
        return cleaned

    def _process(self, mic: np.ndarray, position: int) -> np.ndarray:
        keep = round((ALIGN_AFTER_S + MAX_EARLY_S + 0.5) * self.rate)
        self._history = np.concatenate([self._history, mic])[-keep:]
        self._history_end = position + len(mic)
        reference = self.reference
        if reference.aligned:
            if self._history_end >= self._next_follow:
                self._next_follow = self._history_end + round(FOLLOW_EVERY_S * self.rate)
                reference.follow(self._history, self._history_end)
            return self._cancel_from(position, mic)
        if not self._held:
            self._held_from = position
        self._held.append(mic)
        due = reference.start + round(reference.align_after_s * self.rate)
        if self._history_end < due:
            return np.zeros(0, dtype=np.int16)
        if reference.align(self._history, self._history_end) > MOVED_S * self.rate:
            self.converged, self.played_s = False, 0.0  # what it learned is the wrong room
        if not reference.aligned:  # not where the last echo said: looked for again, later
            return np.zeros(0, dtype=np.int16)
        held, self._held = np.concatenate(self._held), []
        return self._cancel_from(self._held_from, held)

    def _cancel_from(self, position: int, mic: np.ndarray) -> np.ndarray:
        if self._answer_seen != self.reference.answers:
            self._answer_seen = self.reference.answers
            self._answer_energy, self._settled_from = [1.0, 1.0], None
        settled_before = self.settled
        if self.reference.echo_found:
            played = self.reference.take(position, len(mic))
        else:  # no echo path (a headset): a filter with nothing to learn only distorts speech
            played = np.zeros(len(mic), dtype=np.int16)
        cleaned = self.cancel(mic, played, echo_heard=self.reference.heard_at(position))
        if self._settled_from is None and (settled_before or self.settled):
            self._settled_from = position if settled_before else position + len(mic)
        return cleaned

    def cancel(self, mic: np.ndarray, played: np.ndarray, echo_heard: bool = False) -> np.ndarray:
        """`mic` less the echo of `played`, the reference samples of the same instant.
        `echo_heard`: an answer's echo may be heard there, though `played` may be silent (a
        pause, the echo's tail)."""
        if len(mic) != len(played):
            raise ValueError("microphone and reference blocks must be the same length")
        self._mic = np.concatenate([self._mic, np.asarray(mic, dtype=np.int16)])
        self._ref = np.concatenate([self._ref, np.asarray(played, dtype=np.int16)])
        frame = self._frame
        whole = len(self._mic) - len(self._mic) % frame
        cleaned = np.empty(whole, dtype=np.int16)
        self.unsuppressed = np.empty(whole, dtype=np.int16)
        with self._library_says:
            for i in range(0, whole, frame):
                cleaned[i : i + frame], self.unsuppressed[i : i + frame] = self._cancel_frame(
                    self._mic[i : i + frame], self._ref[i : i + frame], echo_heard)
        self._mic, self._ref = self._mic[whole:], self._ref[whole:]
        return cleaned

    def _cancel_frame(self, mic: np.ndarray, played: np.ndarray,
                      echo_heard: bool) -> tuple[np.ndarray, np.ndarray]:
        """One frame less the echo: after the suppressor, and from the filter alone (both a
        frame late: the suppressor's output lags by one). Once the reference has been silent
        for the filter's whole length the filter has nothing left to take away, and the
        second is the microphone itself: the filter also weakens what is under about 150 Hz
        (speexdsp's DC notch), and a question asked as an answer ended was "are twitches and
        cramps i'm done" from the filter, "... the same thing" from the microphone."""
        rec, ref = np.ascontiguousarray(mic), np.ascontiguousarray(played)
        self._lib.speex_echo_cancellation(self._echo, rec.ctypes.data, ref.ctypes.data,
                                          self._out.ctypes.data)
        self._reference_silent = 0 if ref.any() else self._reference_silent + len(ref)
        filtered = self._for_recogniser
        self._for_recogniser = (rec if self._reference_silent >= self._tail else self._out).copy()
        self._lib.speex_preprocess_run(self._pre, self._out.ctypes.data)
        # Cancelling only takes away: a frame louder than the microphone (this frame or the
        # one before: the output lags by a frame) holds what the filter wrongly took for the
        # echo, the answer's own words, and is brought down to the microphone's level. Not
        # the frame for the recogniser: so scaled, the first words of a question asked over
        # the echo's last 0.15 s tipped it to "are twitches and cramps i'm done".
        heard, self._frame_before = max(_power(rec), self._frame_before), _power(rec)
        out_power = _power(self._out)
        if out_power > heard:
            self._out[:] = self._out * np.sqrt(heard / out_power)
        self._recent.append((_power(rec), _power(self._out), _power(ref)))
        if echo_heard or ref.any():
            keep = _POWER_SMOOTHING
            self._heard_power = keep * self._heard_power + (1 - keep) * _power(rec)
            self._played_power = keep * self._played_power + (1 - keep) * _power(ref)
        if ref.any():
            out_power = self._track(rec, self._out)
            if out_power * 10 ** (RESIDUAL_GATE_DB / 10) < self._mic_power:
                silence = np.zeros(len(rec), dtype=np.int16)  # after _track: its figures
                return silence, silence
        return self._out.copy(), filtered

    def _track(self, mic: np.ndarray, out: np.ndarray) -> float:
        """Add one frame to the ERLE figures; returns the cleaned frame's power."""
        keep = _POWER_SMOOTHING
        mic_power, out_power = _power(mic), _power(out)
        self._mic_power = keep * self._mic_power + (1 - keep) * mic_power
        self._out_power = keep * self._out_power + (1 - keep) * out_power
        self._answer_energy[0] += mic_power
        self._answer_energy[1] += out_power
        self.played_s += FRAME_S
        if self.played_s >= 0.5 and self.erle_db >= SETTLED_ERLE_DB:
            self.converged = True
        return out_power

    def close(self) -> None:
        if self._echo:
            self._lib.speex_preprocess_state_destroy(self._pre)
            self._lib.speex_echo_state_destroy(self._echo)
            self._echo = self._pre = None
            self._library_says.close()

    def __del__(self) -> None:
        self.close()


class _CapturedStderr:
    """Around calls into a C library: what it writes to file descriptor 2 is logged at debug
    level instead of reaching the user's terminal. speexdsp prints a warning there when its
    filter diverges and it resets itself ("The echo canceller started acting funny and got
    slapped (reset)..."), e.g. when an echo it had learned stops coming back."""

    def __init__(self) -> None:
        self._file = os.memfd_create("voiceskill-library-stderr", os.MFD_CLOEXEC)

    def __enter__(self) -> None:
        with contextlib.suppress(AttributeError, ValueError):
            sys.stderr.flush()  # Python's own messages go out before the swap
        self._saved = os.dup(2)
        os.dup2(self._file, 2)

    def __exit__(self, *exc_info: object) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)
        if os.lseek(self._file, 0, os.SEEK_CUR):
            said = os.pread(self._file, os.lseek(self._file, 0, os.SEEK_CUR), 0)
            os.ftruncate(self._file, 0)
            os.lseek(self._file, 0, os.SEEK_SET)
            for line in said.decode(errors="replace").splitlines():
                log.debug("speexdsp: %s", line)

    def close(self) -> None:
        os.close(self._file)


def _correlation(longer: np.ndarray, shorter: np.ndarray) -> np.ndarray:
    """The absolute cross-correlation of `shorter` at every offset into `longer`, by FFT:
    circular over the next power of two, so offset -k is at index size - k."""
    size = 1 << int(np.ceil(np.log2(len(longer) + len(shorter))))
    return np.abs(np.fft.irfft(
        np.fft.rfft(longer, size) * np.conj(np.fft.rfft(shorter, size)), size))


def _match(longer: np.ndarray, shorter: np.ndarray,
           offsets: int) -> tuple[np.ndarray, int, float]:
    """Where `shorter` best matches `longer`, among its first `offsets` offsets into it: the
    absolute cross-correlation at each offset, the best one, and the normalised correlation
    there (1.0 for an exact, scaled copy)."""
    scores = _correlation(longer, shorter)[:offsets]
    if len(scores) == 0:
        return scores, 0, 0.0
    best = int(np.argmax(scores))
    part = longer[best : best + len(shorter)]
    norms = np.linalg.norm(part) * np.linalg.norm(shorter[: len(part)])
    return scores, best, float(scores[best] / norms) if norms else 0.0


def _power(samples: np.ndarray) -> float:
    return float(np.mean(samples.astype(np.float64) ** 2)) + 1.0


class PlaybackReference:
    """What the speaker is playing, on the microphone's sample clock (thread-safe).

    `rate` is the microphone's and `position_at(t)` maps a stream time to the microphone
    sample recorded then (the answer is resampled to that rate and clock); the speaker
    calls `started` when an answer begins to play and `stopped` if it is cut off; the loop asks
    `take(position, n)` for the reference of microphone samples position..position+n.
    """

    def __init__(self, rate: int, position_at: Callable[[float], int]) -> None:
        self.rate = rate
        self._position_at = position_at
        self._lock = threading.Lock()
        self._estimate = 0  # where the device said the current answer would be heard
        self._correction: int | None = None  # echo found - estimate, from the last echo found
        self._jumped_by = 0  # how far the current answer's echo jumped (FOLLOW_JUMP_S)
        self._found_correlation = 1.0  # how well that echo matched the answer when found
        self._cut_off = False
        self._samples = np.zeros(0, dtype=np.int16)
        self._answer_rate = self.rate  # the rate the answer came at
        self.aligned = True  # whether the current answer was looked for in the microphone
        self.echo_found = False  # and found there
        self.answers = 0  # answers played so far

    def started(self, samples: np.ndarray, rate: int, heard_at: float) -> None:
        """`samples` will be heard from stream time `heard_at` on."""
        played = samples if rate == self.rate else soxr.resample(samples, rate, self.rate)
        with self._lock:
            self._estimate = self._position_at(heard_at)
            self._samples = np.asarray(played, dtype=np.int16)
            self._answer_rate = rate
            self._cut_off = False  # whether stopped() cut it: its end is then not followed
            self._jumped_by = 0  # a device that ran dry delays that answer, not the next
            self.aligned = False
            self.answers += 1

    @property
    def start(self) -> int:
        """Where the current answer sits on the microphone's clock: where the device said it
        would be heard, moved as the last echo found says."""
        return self._estimate + (self._correction or 0) + self._jumped_by

    @property
    def expected(self) -> bool:
        """Whether an earlier answer's echo tells where this one's is, before it is looked for."""
        return self._correction is not None

    @property
    def align_after_s(self) -> float:
        return VERIFY_AFTER_S if self.expected else ALIGN_AFTER_S

    def align(self, mic: np.ndarray, mic_end: int) -> int:
        """Find the answer's echo in `mic` (raw, ending at position `mic_end`) and move the
        answer to ECHO_LAG_S before it; without a clear echo (no echo path) it stays put.
        Returns how far it moved (samples)."""
        with self._lock:
            self.aligned = True
            self.echo_found = False
            start = self.start
            heard_s = (mic_end - start) / self.rate
            length = round(min(ALIGN_REFERENCE_S, heard_s - 0.1) * self.rate)
            reference = self._samples[:length].astype(float)
            early_s, late_s = (NEAR_S, NEAR_S) if self.expected else (MAX_EARLY_S, MAX_LATE_S)
            # looked for from `first` on: not before the microphone's first sample (an answer
            # said as the loop starts, the greeting) nor before the history kept
            first = max(start - round(early_s * self.rate), mic_end - len(mic))
            window = mic[first - (mic_end - len(mic)) :].astype(float)
            if len(reference) == 0 or not reference.any():
                self.echo_found = True  # cannot tell: assume the worst
                return 0
            offsets = start + round(late_s * self.rate) - first
            scores, best, correlation = _match(window, reference, offsets)
            if len(scores) == 0:
                return 0
            move = first + best - start - round(ECHO_LAG_S * self.rate)
            log.debug("answer %d at %.2f s: its echo %.0f ms from there, correlation %.2f",
                      self.answers, start / self.rate, move * 1000 / self.rate,
                      correlation)
            if self.expected and correlation < VERIFY_SHARE * self._found_correlation:
                self._correction, self.aligned = None, False  # look again, wider and later
                return 0
            if correlation < ECHO_CORRELATION:
                return 0  # the microphone heard something else: the user, the room
            if not self.expected:
                self._found_correlation = correlation
            self._correction = start + move - self._estimate
            self.echo_found = True
            return abs(move)

    def follow(self, mic: np.ndarray, mic_end: int) -> int:
        """Move the answer by what its echo has slipped since it was found, judged on the last
        FOLLOW_S of `mic` (raw, ending at `mic_end`). Returns the move (samples). Followed at
        once: waiting for a second look to agree let the filter diverge."""
        with self._lock:
            reach, length = round(FOLLOW_RANGE_S * self.rate), round(FOLLOW_S * self.rate)
            first = mic_end - length - self.start - round(ECHO_LAG_S * self.rate) - reach
            end = len(self._samples) - round(FOLLOW_END_S * self.rate)
            if (not self.echo_found or self._cut_off or len(mic) < length or first < 0
                    or first + length + 2 * reach > end):
                return 0
            heard = mic[-length:].astype(float)
            reference = self._samples[first : first + length + 2 * reach].astype(float)
            scores, best, correlation = _match(reference, heard, 2 * reach + 1)  # lag 0 at reach
            if correlation < FOLLOW_SHARE * self._found_correlation or best in (0, 2 * reach):
                move = self._jumped(heard, first + reach, end)
                self._jumped_by += move
            elif scores[best] < FOLLOW_BETTER * scores[reach]:
                return 0  # no clear peak: a stray match, not a slip
            else:
                move = reach - best
                self._correction = (self._correction or 0) + move
            if move:
                log.debug("answer %d: its echo slipped %+d samples at %.2f s", self.answers,
                          move, mic_end / self.rate)
            return move

    def _jumped(self, heard: np.ndarray, expected: int, end: int) -> int:
        """How far the echo jumped (samples, later is positive) if `heard` (the microphone's
        last FOLLOW_S) matches the answer clearly elsewhere within FOLLOW_JUMP_S of where it
        was expected (`expected`, an index into the answer); else 0: the user talking over
        it, or a pause in the answer."""
        jump = round(FOLLOW_JUMP_S * self.rate)
        first, last = max(0, expected - jump), min(end, expected + jump + len(heard))
        if last - first <= len(heard):
            return 0
        reference = self._samples[first:last].astype(float)
        here = expected - first
        if _power(reference[here : here + len(heard)]) < _power(heard):
            return 0  # a pause in the answer there: what is heard may be the room's tail
        scores, best, correlation = _match(reference, heard, last - first - len(heard) + 1)
        if (correlation < VERIFY_SHARE * self._found_correlation
                or scores[best] < FOLLOW_JUMP_BETTER * scores[here]):
            return 0
        return here - best

    def stopped(self, played: int, faded: int) -> None:
        """The answer was cut off: only its first `played` samples (at the rate it was started
        with) are heard, the last `faded` of them fading out."""
        scale = self.rate / self._answer_rate
        with self._lock:
            end, fade = round(played * scale), round(faded * scale)
            self._samples = self._samples[:end].copy()
            self._samples[end - fade : end] = fade_out(self._samples[end - fade : end])
            self._cut_off = True

    @property
    def sound_end(self) -> int:
        """The microphone position just after the echo of the answer's last sound (what the
        answer ends with under SOUND_LEVEL, its trailing silence, not counted)."""
        with self._lock:
            loud = np.flatnonzero(np.abs(self._samples) > SOUND_LEVEL)
            last = int(loud[-1]) + 1 if len(loud) else 0
            return self.start + round(ECHO_LAG_S * self.rate) + last

    def heard_at(self, position: int) -> bool:
        """Whether the microphone may still hear the answer at `position`: until its last
        sample has come back through the room (a filter's length after it)."""
        with self._lock:
            end = self.start + len(self._samples) + round(ECHO_TAIL_S * self.rate)
        return self.answers > 0 and position < end

    def own_voice(self, heard: np.ndarray) -> float:
        """How much `heard` (what the filter let through of an utterance) is the current
        answer, at whatever delay: the normalised correlation at the offset where it matches
        best, either polarity (1.0 for a scaled copy; the square root of the share of `heard`'s
        energy that is the answer when only part of it is; near 0 for the user's voice)."""
        with self._lock:
            answer = self._samples.astype(np.float64)
        heard = heard.astype(np.float64)
        n, norm = len(heard), float(np.linalg.norm(heard))
        if n == 0 or not norm or not answer.any():
            return 0.0
        scores = _correlation(answer, heard)
        offsets = np.arange(-(n - 1), len(answer))  # of the answer where `heard` begins
        energy = np.concatenate([[0.0], np.cumsum(answer**2)])
        overlap = np.sqrt(np.maximum(0.0, energy[np.clip(offsets + n, 0, len(answer))]
                                     - energy[np.clip(offsets, 0, len(answer))]))
        # where the answer is all but silent under `heard`, rounding is all the score is
        loud = overlap > np.sqrt(n)
        return float(np.max(scores[offsets % len(scores)][loud] / (norm * overlap[loud]),
                            initial=0.0))

    def take(self, position: int, n: int) -> np.ndarray:
        out = np.zeros(n, dtype=np.int16)
        with self._lock:
            begin = position - self.start
            lo, hi = max(0, begin), min(len(self._samples), begin + n)
            if hi > lo:
                out[lo - begin : hi - begin] = self._samples[lo:hi]
        return out
