"""Echo cancellation with the real speexdsp on the skill's real spoken answers, offline (the
same through `voiceskill listen` on virtual devices: tests/integration/test_listen_echo.py
and test_listen_own_voice.py)."""

from __future__ import annotations

import ctypes
import gc
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from fixturegen import reverberate
from helpers import ROOT
from voiceskill.audio import SAMPLE_RATE, UtteranceDetector, fade_out, trim_silence
from voiceskill.live.echo import (
    ALIGN_AFTER_S,
    ECHO_LAG_S,
    ECHO_TAIL_S,
    FOLLOW_RANGE_S,
    FRAME_S,
    OWN_VOICE_CORRELATION,
    SOUND_LEVEL,
    EchoCanceller,
    EchoCancellerUnavailable,
    PlaybackReference,
)

ANSWER = ("A twitch is a small flicker in a single muscle. A spasm is a group of muscles "
          "suddenly tightening and staying tight, which can hurt and make the muscle feel hard.")
USER = ROOT / "audio_fixtures" / "clean" / "stop__1__flite-slt.wav"


@pytest.fixture(scope="module")
def answer(tmp_path_factory) -> np.ndarray:
    """The answer as the skill says it (`voiceskill say -o`), at 16 kHz."""
    out = tmp_path_factory.mktemp("echo") / "answer.wav"
    subprocess.run([sys.executable, "-m", "voiceskill", "say", "-o", str(out), ANSWER],
                   check=True, capture_output=True, timeout=60)
    samples, rate = sf.read(out, dtype="float32")
    return (soxr.resample(samples, rate, SAMPLE_RATE) * 32767).astype(np.int16)


def echo_of(played: np.ndarray, delay_s: float = 0.06, gain: float = 0.5,
            room: str | None = "small") -> np.ndarray:
    """`played` heard back through a room (None: straight from the speaker), later and
    quieter."""
    heard = (reverberate(played, room) if room else played).astype(np.float64) * gain
    delayed = np.concatenate([np.zeros(round(delay_s * SAMPLE_RATE)), heard])[: len(played)]
    return delayed.astype(np.int16)


def cancel(canceller: EchoCanceller, mic: np.ndarray, played: np.ndarray) -> np.ndarray:
    return np.concatenate([canceller.cancel(mic[i : i + 480], played[i : i + 480])
                           for i in range(0, len(mic), 480)])


def level_db(samples: np.ndarray) -> float:
    return 10 * np.log10(np.mean(samples.astype(np.float64) ** 2) + 1.0)


def test_the_echo_is_cut_by_20_db_once_the_room_is_learned(answer):
    played = np.concatenate([answer, answer])  # a first answer to learn the room on
    mic = echo_of(played)
    canceller = EchoCanceller(SAMPLE_RATE)
    out = cancel(canceller, mic, played)
    second = slice(len(answer), len(out))
    assert level_db(mic[second]) - level_db(out[second]) >= 20
    assert canceller.converged


def test_the_user_talking_over_the_answer_comes_through(answer):
    played = np.concatenate([answer, answer])
    user = sf.read(USER, dtype="int16")[0]
    at = len(answer) + SAMPLE_RATE
    mic = echo_of(played).astype(np.int32)
    mic[at : at + len(user)] += user
    out = cancel(EchoCanceller(SAMPLE_RATE), mic.astype(np.int16), played)
    spoken = slice(at, at + len(user))
    before = slice(at - len(user), at)
    assert level_db(out[spoken]) - level_db(out[before]) >= 15  # the user stands out
    assert level_db(user) - level_db(out[spoken]) <= 6  # and is not suppressed much


def test_what_is_left_of_a_learned_echo_is_not_taken_for_the_user(answer):
    """Three questions, each answered, heard as one stream: once the room is learned no
    utterance starts over an answer. The residue the filter leaves is quiet, but the voice
    detector, settled on the silence between turns, goes by the shape of speech."""
    mic, played, answers = [], [], []
    for question in ("spasm_relief", "twitch_causes", "twitch_vs_spasm"):
        asked = sf.read(ROOT / "audio_fixtures" / "clean" / f"{question}__1__flite-slt.wav",
                        dtype="int16")[0]
        pause = np.zeros(round(0.8 * SAMPLE_RATE), np.int16)
        for heard, playing in ((pause, False), (asked, False), (pause, False), (answer, True)):
            start = sum(map(len, mic))
            mic.append(echo_of(heard, room=None) if playing else heard)
            played.append(heard if playing else np.zeros_like(heard))
        answers.append((start / SAMPLE_RATE, (start + len(answer)) / SAMPLE_RATE))
    out = cancel(EchoCanceller(SAMPLE_RATE), np.concatenate(mic), np.concatenate(played))
    starts = [event.time_s for event in UtteranceDetector().process(out) if event.kind == "start"]
    learned = answers[1:]
    assert not [at for at in starts if any(begin <= at < end for begin, end in learned)]


def test_speexdsp_s_own_warning_never_reaches_the_terminal(answer, capfd, caplog):
    """An echo the filter learned stops coming back (the speaker went quiet): speexdsp resets
    its filter and prints a warning to file descriptor 2 from C. It is logged at debug level,
    and nothing reaches the terminal."""
    canceller = EchoCanceller(SAMPLE_RATE)
    cancel(canceller, echo_of(answer), answer)
    with caplog.at_level("DEBUG", logger="voiceskill.live.echo"):
        cancel(canceller, np.zeros_like(answer), answer)
    assert capfd.readouterr().err == ""
    assert any("acting funny" in record.getMessage() for record in caplog.records)


def test_without_speexdsp_one_clear_error_and_nothing_left_to_clean_up(monkeypatch):
    """libspeexdsp missing (it is installed here, so its loader is made to fail as ctypes does):
    the error says how to install it, and the half-built canceller's clean-up raised
    AttributeError ('Exception ignored in ... __del__') because no speexdsp state was ever made."""
    def missing(name):
        raise OSError(f"{name}: cannot open shared object file")

    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    monkeypatch.setattr(ctypes, "CDLL", missing)
    with pytest.raises(EchoCancellerUnavailable, match="apt-get install libspeexdsp1"):
        EchoCanceller(SAMPLE_RATE)
    gc.collect()
    assert not unraisable, [str(u.exc_value) for u in unraisable]


def test_the_canceller_is_not_settled_before_it_has_heard_the_room(answer):
    canceller = EchoCanceller(SAMPLE_RATE)
    canceller.reference.started(answer, SAMPLE_RATE, heard_at=0.0)
    mic = echo_of(answer)
    canceller.process(mic[:4800], 0)
    assert not canceller.settled  # 0.3 s in: its echo cannot be told from the user yet
    for i in range(4800, len(mic), 480):
        canceller.process(mic[i : i + 480], i)
    assert canceller.settled


def test_the_reference_is_found_where_the_echo_really_is(answer):
    """The device said the sound would be heard at sample 0; it came 0.3 s later."""
    reference = PlaybackReference(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    reference.started(answer, SAMPLE_RATE, heard_at=0.0)
    late, before = round(0.3 * SAMPLE_RATE), round(0.2 * SAMPLE_RATE)
    mic = np.concatenate([np.zeros(before + late, np.int16), answer // 2])[: before + SAMPLE_RATE]
    reference.align(mic, mic_end=SAMPLE_RATE)  # the microphone from -0.2 s to 1 s
    assert reference.aligned
    assert reference.start == late - round(ECHO_LAG_S * SAMPLE_RATE)


def test_an_answer_said_as_the_microphone_starts_is_found_too(answer):
    """The greeting starts with the loop: the device says it is heard 0.15 s into the
    microphone's clock, and as on the virtual devices it comes sooner (0.02 s in), so the
    range looked through begins before the microphone's first sample."""
    reference = PlaybackReference(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    reference.started(answer, SAMPLE_RATE, heard_at=0.15)
    mic = np.concatenate([np.zeros(round(0.02 * SAMPLE_RATE), np.int16), answer // 2])
    reference.align(mic[:SAMPLE_RATE], mic_end=SAMPLE_RATE)
    assert reference.echo_found
    assert reference.start == round(0.02 * SAMPLE_RATE) - round(ECHO_LAG_S * SAMPLE_RATE)


def play_until_looked_for(canceller: EchoCanceller, answer: np.ndarray, heard_at: float,
                          late_s: float, mic_end: int) -> tuple[np.ndarray, int]:
    """Silence from `mic_end` (where the microphone the canceller was given so far ends) until
    the device says `answer` is heard (`heard_at`), then its echo `late_s` later, in 50 ms
    blocks until the canceller has looked for it. Returns the rest of the microphone signal
    and the position it starts at."""
    start = round(heard_at * SAMPLE_RATE)
    canceller.process(np.zeros(start - mic_end, np.int16), mic_end)
    canceller.reference.started(answer, SAMPLE_RATE, heard_at=heard_at)
    mic = np.concatenate([np.zeros(round(late_s * SAMPLE_RATE), np.int16), echo_of(answer)])
    step = round(0.05 * SAMPLE_RATE)
    for i in range(0, len(mic), step):
        canceller.process(mic[i : i + step], start + i)
        if canceller.reference.aligned:
            return mic[i + step :], start + i + step
    raise AssertionError("the echo was never looked for")


def echo_start(heard_at: float, late_s: float) -> int:
    """Where the reference goes for an answer heard `late_s` after `heard_at` in echo_of's room."""
    return round((heard_at + late_s + 0.06) * SAMPLE_RATE) - round(ECHO_LAG_S * SAMPLE_RATE)


def test_the_next_answer_is_looked_for_sooner_where_the_last_echo_was(answer):
    """The device says each answer is heard at once; it is heard 0.1 s later every time. The
    first answer's echo is found 0.8 s in; the second's already 0.35 s in, where expected."""
    canceller = EchoCanceller(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    found_after_s, mic_end = [], 0  # after the echo began
    for heard_at in (1.0, 15.0):
        rest, position = play_until_looked_for(canceller, answer, heard_at, 0.1, mic_end)
        found_after_s.append(position / SAMPLE_RATE - (heard_at + 0.1 + 0.06))
        assert canceller.reference.start == echo_start(heard_at, 0.1), heard_at
        canceller.process(rest, position)
        mic_end = position + len(rest)
    assert found_after_s[0] >= ALIGN_AFTER_S - 0.2
    assert found_after_s[1] <= found_after_s[0] - 0.25


def test_the_start_of_an_answer_is_cancelled_too(answer):
    """The microphone is held back until the echo is found, then given back cancelled: the
    second answer's first 0.35 s (its echo found where the first one's was) is cut by 20 dB,
    not let through to sound like the user starting to speak."""
    canceller = EchoCanceller(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    starts = (0.48, 12.0)  # on block boundaries
    length = round(14 * SAMPLE_RATE) + len(answer)
    played, mic = np.zeros(length, np.int16), np.zeros(length, np.int16)
    for at in starts:
        begin = round(at * SAMPLE_RATE)
        played[begin : begin + len(answer)] = answer
    mic[:] = echo_of(played)
    out, block = [], 480
    for i in range(0, length - block, block):
        for at in starts:
            if i == round(at * SAMPLE_RATE):
                canceller.reference.started(answer, SAMPLE_RATE, heard_at=at)
        out.append(canceller.process(mic[i : i + block], i))
        assert sum(map(len, out)) <= i + block  # never ahead of the microphone
    cleaned = np.concatenate(out)
    first = slice(round(12.06 * SAMPLE_RATE), round(12.41 * SAMPLE_RATE))
    assert level_db(mic[first]) - level_db(cleaned[first]) >= 20


def test_an_echo_that_moved_is_looked_for_afresh(answer):
    """The second answer is heard 0.2 s later than the first: not where expected, so it is
    looked for again over the whole range, found, and the room learned anew."""
    canceller = EchoCanceller(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    rest, position = play_until_looked_for(canceller, answer, 1.0, 0.0, 0)
    canceller.process(rest, position)
    assert canceller.converged
    play_until_looked_for(canceller, answer, 16.0, 0.2, position + len(rest))
    assert not canceller.converged  # the room it knew is not this one
    assert canceller.reference.start == echo_start(16.0, 0.2)


def test_an_echo_that_slips_mid_answer_is_followed(answer):
    """Two answers back to back; 2 s into the second the echo comes 10 samples (0.6 ms)
    later, as when a buffer slips: the answer is moved with it, and the room the filter
    learned still cancels the echo."""
    canceller = EchoCanceller(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    played = np.concatenate([answer, answer])
    echo = echo_of(played)
    slip = len(answer) + 2 * SAMPLE_RATE
    mic = np.concatenate([np.zeros(SAMPLE_RATE, np.int16), echo[:slip],
                          np.zeros(10, np.int16), echo[slip:]])
    canceller.reference.started(played, SAMPLE_RATE, heard_at=1.0)
    before = None
    out = []
    for i in range(0, len(mic) - 480, 480):
        out.append(canceller.process(mic[i : i + 480], i))
        if i + 480 <= SAMPLE_RATE + slip:
            before = canceller.reference.start
    cleaned = np.concatenate(out)
    assert canceller.reference.start == before + 10
    after = slice(SAMPLE_RATE + slip + SAMPLE_RATE // 2, SAMPLE_RATE + slip + 3 * SAMPLE_RATE // 2)
    assert level_db(mic[after]) - level_db(cleaned[after]) >= 20


@pytest.mark.parametrize("jump_s", [0.134, -0.05])
def test_an_echo_that_jumps_mid_answer_is_found_again(answer, jump_s):
    """2 s into the second of two answers back to back the device runs dry for 134 ms (the
    player late with its next block on a busy machine) and plays the rest that much later, or
    skips 50 ms ahead: the answer is moved with its echo, and the room the filter learned
    cancels it again. Only slips of 2 ms were followed: the rest of the answer went
    uncancelled, and "stop" said over it was heard mixed with its words. The next answer,
    played afresh, is looked for where the echo was before the jump."""
    canceller = EchoCanceller(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    played = np.concatenate([answer, answer])
    echo = echo_of(played)
    at, jump = len(answer) + 2 * SAMPLE_RATE, round(jump_s * SAMPLE_RATE)
    mic = np.concatenate([np.zeros(SAMPLE_RATE, np.int16), echo[:at],
                          np.zeros(max(jump, 0), np.int16), echo[at - min(jump, 0) :]])
    canceller.reference.started(played, SAMPLE_RATE, heard_at=1.0)
    out = [canceller.process(mic[i : i + 480], i) for i in range(0, len(mic) - 480, 480)]
    cleaned = np.concatenate(out)
    assert canceller.reference.start == echo_start(1.0, 0.0) + jump
    after = slice(SAMPLE_RATE + at + SAMPLE_RATE // 2, SAMPLE_RATE + at + 3 * SAMPLE_RATE // 2)
    assert level_db(mic[after]) - level_db(cleaned[after]) >= 20
    heard_at = len(mic) / SAMPLE_RATE + 1.0
    _, looked_at = play_until_looked_for(canceller, answer, heard_at, 0.0, 480 * len(out))
    assert canceller.reference.start == echo_start(heard_at, 0.0)
    assert looked_at - round(heard_at * SAMPLE_RATE) <= round(0.5 * SAMPLE_RATE)  # where expected
    assert canceller.converged  # the room it learned is still the room


def test_the_canceller_never_adds_what_the_microphone_did_not_hear(answer):
    """The room learned on a first answer, the second's echo stops coming back 2 s in (a
    device that dropped what it buffered, or ran dry) while its reference goes on: what the
    filter would take away is then added, the answer's own words at about the echo's level.
    On the echo path they were heard mixed with a "stop" said over the answer ("can you",
    "stop that lot") and after it. Nothing louder than what the microphone heard comes out."""
    played = np.concatenate([answer, answer])
    mic = echo_of(played)
    gone = len(answer) + 2 * SAMPLE_RATE
    mic[gone:] = 0
    out = cancel(EchoCanceller(SAMPLE_RATE), mic, played)
    after = slice(gone + 480, gone + SAMPLE_RATE)
    assert level_db(out[after]) <= level_db(mic[after]) + 1


def test_once_the_echo_has_passed_the_recogniser_hears_the_microphone_itself(answer):
    """After an answer, the filter's length of silent reference later, there is nothing left
    to take away, but the filter still weakens what is under about 150 Hz (speexdsp's DC
    notch): a question asked as an answer ended was heard "... i'm done" from the filter,
    "... the same thing" from the microphone (tests/unit/live/test_loop.py)."""
    user = sf.read(USER, dtype="int16")[0]
    played = np.concatenate([answer, np.zeros(len(user) + SAMPLE_RATE, np.int16)])
    mic = echo_of(played).astype(np.int32)
    mic[len(answer) + SAMPLE_RATE // 10 :][: len(user)] += user  # over the echo's tail
    mic = mic.astype(np.int16)
    canceller, heard = EchoCanceller(SAMPLE_RATE), []
    for i in range(0, len(mic), 480):
        canceller.cancel(mic[i : i + 480], played[i : i + 480])
        heard.append(canceller.unsuppressed)
    heard = np.concatenate(heard)[round(FRAME_S * SAMPLE_RATE) :]  # a frame late
    tail_end = len(answer) + round(ECHO_TAIL_S * SAMPLE_RATE)
    assert np.array_equal(heard[tail_end:], mic[tail_end : len(heard)])
    within_tail = slice(len(answer), tail_end)
    assert not np.array_equal(heard[within_tail], mic[within_tail])  # cancelled there


def test_an_echo_that_stays_put_is_not_moved_by_the_user_talking_over_it(answer):
    canceller = EchoCanceller(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    played = np.concatenate([answer, answer])
    user = sf.read(USER, dtype="int16")[0]
    mic = np.concatenate([np.zeros(SAMPLE_RATE, np.int16), echo_of(played)]).astype(np.int32)
    for at in range(2 * SAMPLE_RATE, len(mic) - len(user), 3 * SAMPLE_RATE):
        mic[at : at + len(user)] += user
    mic = np.clip(mic, -32768, 32767).astype(np.int16)
    canceller.reference.started(played, SAMPLE_RATE, heard_at=1.0)
    starts = set()
    for i in range(0, len(mic) - 480, 480):
        canceller.process(mic[i : i + 480], i)
        if canceller.reference.aligned:
            starts.add(canceller.reference.start)
    assert starts == {echo_start(1.0, 0.0)}


def found_at_zero(answer: np.ndarray) -> PlaybackReference:
    """`answer`, its echo already found where the device said (ECHO_LAG_S after sample 0)."""
    reference = PlaybackReference(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    reference.started(answer, SAMPLE_RATE, heard_at=0.0)
    reference.aligned = reference.echo_found = True
    return reference


def slipped_echo(answer: np.ndarray, slip: int, noise_power: float = 0.0) -> np.ndarray:
    """What the microphone hears: the answer's echo `slip` samples later than it was found,
    with white noise (the user, the room) `noise_power` times as strong."""
    echo = np.concatenate([np.zeros(round(ECHO_LAG_S * SAMPLE_RATE) + slip), answer / 2])
    power = np.mean(echo[: len(answer)] ** 2) * noise_power
    noise = np.random.default_rng(0).normal(0, np.sqrt(power), len(echo))
    return (echo + noise)[: len(answer)].astype(np.int16)


def test_a_slip_is_followed_only_while_the_echo_is_clear_and_not_at_the_end(answer):
    answer = answer[: np.flatnonzero(np.abs(answer) > 300)[-1]]  # ending in speech
    mic = slipped_echo(answer, 10)
    middle = len(answer) // 2
    assert found_at_zero(answer).follow(mic[:middle], middle) == 10
    end = len(answer) - round(0.1 * SAMPLE_RATE)  # the device may drop the end
    assert found_at_zero(answer).follow(mic[:end], end) == 0
    noisy = slipped_echo(answer, 10, noise_power=2.0)  # the echo matches ~0.55 at best
    assert found_at_zero(answer).follow(noisy[:middle], middle) == 0
    cut_off = found_at_zero(answer)
    cut_off.stopped(played=len(answer) - SAMPLE_RATE, faded=480)
    assert cut_off.follow(mic[:middle], middle) == 0


def test_a_slip_is_followed_only_to_a_clear_peak(answer):
    """Slipped just beyond the 2 ms looked through, the echo's best match is at the range's
    edge: not followed there, but to where the wider look finds it. Slipped half a sample, it
    matches two lags about equally: the answer stays put."""
    answer = answer[: np.flatnonzero(np.abs(answer) > 300)[-1]]
    middle = len(answer) // 2
    slip = round(FOLLOW_RANGE_S * SAMPLE_RATE) + 2
    beyond = slipped_echo(answer, slip)
    assert found_at_zero(answer).follow(beyond[:middle], middle) == slip
    between = (answer.astype(float) + np.concatenate([[0.0], answer[:-1]])) / 2
    half = slipped_echo(between.astype(np.int16), 0)
    assert found_at_zero(answer).follow(half[:middle], middle) == 0


def test_speech_begun_before_the_canceller_settled_stays_suspect(answer):
    canceller = EchoCanceller(SAMPLE_RATE)
    canceller.reference.started(answer, SAMPLE_RATE, heard_at=0.0)
    mic = echo_of(answer)
    for i in range(0, len(mic), 480):
        canceller.process(mic[i : i + 480], i)
    assert canceller.settled
    assert not canceller.settled_at(round(0.2 * SAMPLE_RATE))  # it may have been the echo
    assert canceller.settled_at(len(mic) - 480)


def test_with_no_echo_at_all_the_microphone_is_trusted_once_that_is_known(answer):
    """A headset: the microphone never hears the answer."""
    canceller = EchoCanceller(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    canceller.process(np.zeros(SAMPLE_RATE, np.int16), 0)
    canceller.reference.started(answer, SAMPLE_RATE, heard_at=1.0)
    room = (np.random.default_rng(0).normal(0, 30, SAMPLE_RATE)).astype(np.int16)
    canceller.process(room[: SAMPLE_RATE // 2], SAMPLE_RATE)
    assert not canceller.settled  # not known yet
    canceller.process(room[SAMPLE_RATE // 2 :], SAMPLE_RATE * 3 // 2)
    assert not canceller.reference.echo_found
    assert canceller.settled


def test_an_answer_cut_off_is_expected_in_the_echo_as_it_was_played(answer):
    """Cut off after 0.5 s (at 22.05 kHz), the last 30 ms fading out: so is the reference."""
    reference = PlaybackReference(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    played = soxr.resample(answer, SAMPLE_RATE, 22050)
    reference.started(played, 22050, heard_at=0.0)
    reference.stopped(played=round(0.5 * 22050), faded=round(0.03 * 22050))
    heard = reference.take(0, SAMPLE_RATE)
    whole = soxr.resample(played, 22050, SAMPLE_RATE).astype(np.int16)
    fade = slice(round(0.47 * SAMPLE_RATE), SAMPLE_RATE // 2)
    assert np.array_equal(heard[: fade.start], whole[: fade.start])
    assert np.array_equal(heard[fade], fade_out(whole[fade]))
    assert not heard[SAMPLE_RATE // 2 :].any()


def rises(canceller: EchoCanceller, mic: np.ndarray, onsets: list[int]) -> list[float]:
    """`mic` through the canceller in the live loop's 30 ms blocks; for speech beginning at
    each of `onsets`, its rise over the echo (EchoCanceller.rise_db) as the voice detector
    starts it, 0.3 s in."""
    block, rises = 480, {}
    for i in range(0, len(mic) - block, block):
        canceller.process(mic[i : i + block], i)
        for onset in onsets:
            if i <= onset + round(0.3 * SAMPLE_RATE) < i + block:
                rises[onset] = canceller.rise_db(onset)
    return [rises[onset] for onset in onsets]


def test_speech_just_after_an_answer_rises_over_it_and_the_answer_s_late_end_does_not(answer):
    """A goodbye said 0.1 s after the answer's last sound came back, while its echo may still
    be heard: the microphone rises over what was played (the level stopped being followed with
    the last sample played, and it rose 0 dB: a command not said over the echo for sure is
    not taken, so a real goodbye was lost). The answer's last 0.3 s coming back 0.15 s late (a
    device that ran dry as it ended, too near the end to be followed) is what the canceller
    leaves, heard as speech: it does not rise, wherever that speech is taken to begin (against
    the level 0.1 s before it, it rose 4.9 dB, the gap in the echo making its return rise)."""
    answer = answer[: np.flatnonzero(np.abs(answer) > SOUND_LEVEL)[-1] + 1]  # ends in a sound
    goodbye = trim_silence(ROOT / "audio_fixtures" / "clean" / "goodbye__1__flite-slt.wav",
                           keep_s=0.0)
    start, echo = SAMPLE_RATE, echo_of(np.concatenate([answer, np.zeros(SAMPLE_RATE, np.int16)]))
    end = start + round(0.06 * SAMPLE_RATE) + len(answer)  # where its last sound comes back
    said = end + round(0.1 * SAMPLE_RATE)
    user = np.concatenate([np.zeros(start, np.int16), echo]).astype(np.int32)
    user[said : said + len(goodbye)] += goodbye
    canceller = EchoCanceller(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    canceller.reference.started(answer, SAMPLE_RATE, heard_at=start / SAMPLE_RATE)
    assert rises(canceller, np.clip(user, -32768, 32767).astype(np.int16), [said])[0] >= 3.0

    late, cut = round(0.15 * SAMPLE_RATE), len(answer) - round(0.3 * SAMPLE_RATE)
    mic = np.concatenate([np.zeros(start, np.int16), echo[:cut], np.zeros(late, np.int16),
                          echo[cut:]])
    canceller = EchoCanceller(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    canceller.reference.started(answer, SAMPLE_RATE, heard_at=start / SAMPLE_RATE)
    onsets = list(range(start + cut, end + late + 1, 480))
    assert max(rises(canceller, mic, onsets)) < 3.0


@pytest.mark.parametrize("room", [None, "small", "living", "large"])
def test_the_answer_come_back_at_any_delay_is_told_for_it(answer, room):
    """Three seconds of the answer from 1.5 s in, 12 dB down, through a room or not, over a
    little noise (what the filter lets through of a late reflection, tests/unit/live/
    test_loop.py): it is the answer (measured 0.85-0.99)."""
    reference = PlaybackReference(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    reference.started(answer, SAMPLE_RATE, heard_at=0.0)
    part = answer[round(1.5 * SAMPLE_RATE) : round(4.5 * SAMPLE_RATE)]
    if room:
        part = reverberate(part, room)[: len(part)]
    noise = np.random.default_rng(0).normal(0, 100, len(part))
    assert reference.own_voice((part * 0.25 + noise).astype(np.int16)) >= OWN_VOICE_CORRELATION


def test_no_question_of_the_fixtures_is_told_for_the_answer(answer):
    """Other voices, some of them espeak's, saying the domain's words: at most 0.22 (a word's
    length of audio matches best), 0.08 at the median."""
    reference = PlaybackReference(SAMPLE_RATE, lambda t: round(t * SAMPLE_RATE))
    reference.started(answer, SAMPLE_RATE, heard_at=0.0)
    matches = {wav.name: reference.own_voice(sf.read(wav, dtype="int16")[0])
               for wav in sorted((ROOT / "audio_fixtures" / "clean").glob("*.wav"))}
    assert len(matches) > 200
    assert max(matches.values()) < OWN_VOICE_CORRELATION, max(matches.items(),
                                                                key=lambda m: m[1])
