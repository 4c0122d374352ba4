"""WAV reading and voice activity detection on real audio files made in tmp_path."""

from __future__ import annotations

import re
import shutil
import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr

from helpers import ROOT, manifest_rows
from voiceskill.audio import (
    SAMPLE_RATE,
    AudioError,
    UtteranceDetector,
    read_wav_chunks,
    split_utterances,
    trim_silence,
)
from voiceskill.live.echo import EchoCanceller


@pytest.fixture(scope="module")
def voice(tmp_path_factory) -> tuple[np.ndarray, int]:
    """An espeak-ng recording (float samples, 22.05 kHz) of a spoken question."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    path = tmp_path_factory.mktemp("voice") / "question.wav"
    text = "how do i relieve a muscle spasm"
    subprocess.run(["espeak-ng", "-v", "en-us", "-s", "150", "-w", str(path), text], check=True)
    samples, rate = sf.read(path, dtype="float64")
    return samples, rate


def _read_all(path: Path) -> np.ndarray:
    return np.concatenate(list(read_wav_chunks(path)))


def _reference(samples: np.ndarray, rate: int) -> np.ndarray:
    return soxr.resample(samples, rate, SAMPLE_RATE)


@pytest.mark.parametrize(
    ("rate", "channels", "subtype"),
    [
        (8000, 1, "PCM_16"),
        (22050, 2, "PCM_16"),
        (44100, 1, "PCM_16"),
        (48000, 2, "PCM_24"),
        (16000, 1, "PCM_24"),
        (44100, 1, "PCM_32"),
        (48000, 1, "FLOAT"),
        (32000, 2, "FLOAT"),
    ],
)
def test_common_wav_layouts_become_16khz_mono_int16(tmp_path, voice, rate, channels, subtype):
    samples, voice_rate = voice
    source = soxr.resample(samples, voice_rate, rate) * 0.8
    left_only = np.column_stack([source, np.zeros_like(source)]) if channels == 2 else source
    path = tmp_path / f"{rate}-{channels}-{subtype}.wav"
    sf.write(path, left_only, rate, subtype=subtype)

    chunks = list(read_wav_chunks(path))
    assert all(c.dtype == np.int16 and c.ndim == 1 for c in chunks)
    assert {len(c) for c in chunks[:-1]} == {1600} and 0 < len(chunks[-1]) <= 1600
    got = np.concatenate(chunks) / 32768.0
    want = _reference(source, rate) * (0.5 if channels == 2 else 1.0)  # stereo is averaged
    assert abs(len(got) - len(want)) <= 2
    n = min(len(got), len(want))
    assert np.corrcoef(got[:n], want[:n])[0, 1] > 0.99
    assert np.std(got) == pytest.approx(np.std(want), rel=0.05)


def test_16khz_mono_pcm16_passes_through_unchanged(tmp_path):
    samples = np.random.default_rng(0).integers(-32768, 32767, 16000 * 3 + 123, dtype=np.int16)
    path = tmp_path / "plain.wav"
    sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16")
    assert np.array_equal(_read_all(path), samples)


def test_chunk_length_follows_chunk_ms(tmp_path):
    path = tmp_path / "one-second.wav"
    sf.write(path, np.zeros(44100), 44100)
    assert [len(c) for c in read_wav_chunks(path, chunk_ms=250)] == [4000] * 4


def _wav_bytes(tmp_path: Path) -> bytes:
    path = tmp_path / "source.wav"
    sf.write(path, np.zeros(16000, dtype=np.int16), SAMPLE_RATE, subtype="PCM_16")
    return path.read_bytes()


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("empty.wav", lambda wav: b"", "contains no audio"),
        ("header-only.wav", lambda wav: wav[:44], "contains no audio"),
        ("cut.wav", lambda wav: wav[:20], "truncated or corrupt WAV header"),
        ("riff.wav", lambda wav: wav[:10], "truncated WAV header"),
        ("notes.wav", lambda wav: b"these are my notes, not audio\n" * 10, "not a WAV file"),
        ("song.mp3.wav", lambda wav: b"ID3\x03\x00" + bytes(500), "not a WAV file"),
    ],
)
def test_unusable_files_raise_one_line_audio_error_naming_the_file(tmp_path, name, make, problem):
    path = tmp_path / name
    path.write_bytes(make(_wav_bytes(tmp_path)))
    with pytest.raises(AudioError) as raised:
        read_wav_chunks(path)  # raised before any chunk is asked for
    message = str(raised.value)
    assert message == f"{path}: {problem}"
    assert "\n" not in message


def test_other_formats_missing_files_and_too_many_channels_are_refused(tmp_path):
    flac = tmp_path / "speech.flac"
    sf.write(flac, np.zeros(1600), SAMPLE_RATE)
    nine = tmp_path / "nine.wav"
    sf.write(nine, np.zeros((1600, 9)), SAMPLE_RATE, format="WAV")
    cases = {
        flac: "not a WAV file",
        nine: "has 9 channels, at most 8 are supported",
        tmp_path / "missing.wav": "no such file",
        tmp_path: "is a directory, not a WAV file",
    }
    for path, problem in cases.items():  # named as given, not by the last part alone
        with pytest.raises(AudioError, match=f"^{re.escape(f'{path}: {problem}')}$"):
            read_wav_chunks(path)


def test_truncated_data_gives_the_audio_that_is_there(tmp_path):
    full = _wav_bytes(tmp_path)  # 1 s at 16 kHz, 16-bit: 44-byte header + 32000 bytes
    path = tmp_path / "cut-short.wav"
    path.write_bytes(full[: 44 + 2 * 4000 + 1])  # header still claims 16000 frames
    assert len(_read_all(path)) == 4000


def test_ten_minutes_stream_in_bounded_memory(tmp_path):
    path = tmp_path / "long.wav"
    rng = np.random.default_rng(1)
    rate, seconds = 22050, 600
    with sf.SoundFile(path, "w", rate, 2, "PCM_16") as out:
        for _ in range(seconds // 10):
            out.write(rng.normal(0, 0.01, (rate * 10, 2)))
    assert path.stat().st_size > 50_000_000

    tracemalloc.start()
    total, sizes = 0, set()
    for chunk in read_wav_chunks(path):
        total += len(chunk)
        sizes.add(len(chunk))
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert abs(total - seconds * SAMPLE_RATE) <= 2
    assert max(sizes) == 1600
    assert peak < 2_000_000  # a few chunks, not the 19 MB of converted audio


def _speech_pause_speech(voice, pause_s: float) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """16 kHz int16: 0.5 s, speech, pause, speech, 0.7 s; low noise throughout.

    Also returns where each speech begins and ends, in seconds.
    """
    samples, rate = voice
    loud = np.flatnonzero(np.abs(samples) > 0.02)  # espeak-ng's own silence is cut off
    speech = _reference(samples[loud[0] : loud[-1] + 1], rate) * 0.5
    lead, pause, tail = (np.zeros(int(s * SAMPLE_RATE)) for s in (0.5, pause_s, 0.7))
    audio = np.concatenate([lead, speech, pause, speech, tail])
    audio += np.random.default_rng(2).normal(0, 0.001, len(audio))  # about -60 dBFS
    first = (0.5, 0.5 + len(speech) / SAMPLE_RATE)
    second = (first[1] + pause_s, first[1] + pause_s + len(speech) / SAMPLE_RATE)
    return np.round(audio * 32767).astype(np.int16), [first, second]


def test_detector_finds_both_utterances_around_a_one_second_pause(voice):
    audio, expected = _speech_pause_speech(voice, pause_s=1.0)
    detector = UtteranceDetector()
    events = []
    for start in range(0, len(audio), 1234):  # chunk size does not matter
        events += detector.process(audio[start : start + 1234])
    events += detector.flush()

    assert [e.kind for e in events if e.kind != "audio"] == ["start", "end", "start", "end"]
    utterances = [[]]
    for event in events:
        if event.kind == "audio":
            utterances[-1].append(event)
        elif event.kind == "end":
            utterances[-1].insert(0, event)
            utterances.append([])
    starts = [e.time_s for e in events if e.kind == "start"]
    found = zip(expected, starts, utterances[:-1], strict=True)
    for (begin, end), start_s, (end_event, *audio_events) in found:
        assert start_s == pytest.approx(begin, abs=0.15)
        assert end_event.time_s == pytest.approx(end, abs=0.15)
        assert 300 <= end_event.silence_ms <= 600  # the 0.5 s window, 90 % of it silence
        assert audio_events[0].time_s == start_s
        heard = sum(len(e.samples) for e in audio_events) / SAMPLE_RATE
        assert heard == pytest.approx(end_event.time_s - start_s, abs=0.05)


def test_a_comma_length_pause_does_not_split_an_utterance(voice):
    audio, _ = _speech_pause_speech(voice, pause_s=0.2)
    assert len(list(split_utterances([audio]))) == 1


def test_silence_and_noise_hold_no_utterance():
    noise = np.random.default_rng(3).normal(0, 30, SAMPLE_RATE * 5).astype(np.int16)
    detector = UtteranceDetector()
    assert detector.process(np.zeros(SAMPLE_RATE * 2, dtype=np.int16)) == []
    assert detector.process(noise) == []
    assert detector.flush() == []


def test_an_utterance_still_open_at_the_end_of_the_stream_is_closed(voice):
    audio, _ = _speech_pause_speech(voice, pause_s=1.0)
    cut = audio[: int(1.5 * SAMPLE_RATE)]  # stops in the middle of the first question
    utterances = list(split_utterances([cut]))
    assert len(utterances) == 1
    assert utterances[0].end_s == pytest.approx(1.5, abs=0.1)


def test_trim_silence_keeps_speech_and_the_pause_between(tmp_path, voice):
    audio, expected = _speech_pause_speech(voice, pause_s=1.0)
    path = tmp_path / "padded.wav"
    sf.write(path, audio, SAMPLE_RATE)
    trimmed = trim_silence(path)
    spoken = expected[1][1] - expected[0][0]
    assert len(trimmed) / SAMPLE_RATE == pytest.approx(spoken + 0.2, abs=0.2)

    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(SAMPLE_RATE * 2, dtype=np.int16), SAMPLE_RATE)
    assert len(trim_silence(quiet)) == 0


SHORT_REPLIES = [ROOT / r["file"] for r in manifest_rows(condition="clean")
                 if r["text"] in ("no", "yes", "stop", "nope")]
NOISE_FLOORS = (0, 1, 10, 50)  # sd of int16 samples: digital silence to a quiet room
OFFSETS = (0, 97, 211, 367)  # samples: where the reply falls on the detector's 30 ms frames


def _in_noise(sound: np.ndarray, offset: int, noise_sd: float) -> np.ndarray:
    """`sound` 1 s (plus `offset` samples) into 2 s of noise, as int16."""
    audio = np.concatenate([np.zeros(SAMPLE_RATE + offset), sound, np.zeros(SAMPLE_RATE)])
    audio += np.random.default_rng(offset).normal(0, noise_sd, len(audio)) if noise_sd else 0
    return np.clip(np.round(audio), -32768, 32767).astype(np.int16)


@pytest.mark.parametrize("noise_sd", NOISE_FLOORS)
def test_a_one_word_reply_is_one_utterance_in_quiet_and_noise_and_after_the_canceller(noise_sd):
    """A short "no" said in a quiet room was not heard at all: the VAD called 14-17 of its
    30 ms frames speech, and 16 of 17 had to be (CI, tests/integration/test_listen.py)."""
    assert len(SHORT_REPLIES) >= 20, "the manifest lists the one-word replies"
    missed = []
    for path in SHORT_REPLIES:
        sound, rate = sf.read(path, dtype="int16")
        assert rate == SAMPLE_RATE
        for offset in OFFSETS:
            audio = _in_noise(sound, offset, noise_sd)
            cancelled = EchoCanceller(SAMPLE_RATE).cancel(audio, np.zeros_like(audio))
            for heard, name in ((audio, "as said"), (cancelled, "after the canceller")):
                found = len(list(split_utterances([heard])))
                if found != 1:
                    missed.append(f"{path.name} at +{offset} {name}: {found} utterances")
    assert not missed, "\n".join(missed)


def _bursts() -> dict[str, np.ndarray]:
    """Short broadband noises (float, 16 kHz), all under 0.15 s, none of them speech."""
    rng = np.random.default_rng(5)
    t = np.arange(int(0.14 * SAMPLE_RATE)) / SAMPLE_RATE
    decay = np.exp(-t / 0.03)
    lowpassed = np.convolve(rng.normal(0, 1, len(t) + 15), np.ones(16) / 4, "valid")
    return {
        "click": np.r_[np.zeros(10), 30000, -30000, np.zeros(10)],
        "door slam": (20000 * np.sin(2 * np.pi * 60 * t) + rng.normal(0, 8000, len(t))) * decay,
        "cough": 10000 * lowpassed * np.hanning(len(t)),
        "0.14 s of white noise": rng.normal(0, 20000, len(t)),
        "0.1 s of white noise": rng.normal(0, 3000, int(0.1 * SAMPLE_RATE)),
    }


@pytest.mark.parametrize("noise_sd", NOISE_FLOORS)
def test_a_click_slam_or_cough_starts_no_utterance(noise_sd):
    """The VAD goes on calling frames speech for a while after a bang: those are not counted
    as the sound the start rule needs."""
    # every 20 samples across a 30 ms frame: at +300, 0.14 s of white noise and the frames
    # the VAD calls speech after it make 10 of 12
    started = [f"{name} at +{offset}" for name, burst in _bursts().items()
               for offset in range(0, 480, 20)
               if list(split_utterances([_in_noise(burst, offset, noise_sd)]))]
    assert not started, f"taken for speech: {started}"


def test_a_question_said_in_quiet_is_cut_from_its_first_sound():
    """Needing 16 of 17 frames of speech, the detector began some questions up to 1 s late,
    after a consonant or a pause broke the run: "I have a stiff neck and high fever" was heard
    as "if neck and high fever"."""
    late = []
    for row in manifest_rows(condition="clean", conversation=""):
        sound, _ = sf.read(ROOT / row["file"], dtype="int16")
        first_sound_s = 1 + np.flatnonzero(np.abs(sound) > 100)[0] / SAMPLE_RATE
        starts = [u.start_s for u in split_utterances([_in_noise(sound, 0, 0)])]
        if len(starts) != 1 or starts[0] - first_sound_s > 0.35:
            late.append(f"{row['file']}: {starts} for sound from {first_sound_s:.2f} s")
    assert not late, "\n".join(late)
