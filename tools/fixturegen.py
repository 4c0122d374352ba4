"""Reproducible spoken test questions for voiceskill, synthesised with flite and espeak-ng.

Tests and benchmarks need the same audio on every machine without anyone recording it, so
this module holds the texts (one list of phrasings per intent, plus multi-turn
conversations), renders them with CMU flite's natural-sounding Arctic voices (most of the set:
real users are human) and with espeak-ng's formant voices (a minority of hard, robotic
voices in several English accents), and adds noise deterministically. Run it to regenerate
audio_fixtures/ (WAVs + manifest.csv):

    python tools/fixturegen.py --out audio_fixtures

Benchmarks import it for the full noise grid, which is not committed:

    sys.path.insert(0, "tools"); import fixturegen
    noisy = fixturegen.add_noise(samples, "babble", snr_db=5, seed=1)

All audio is 16 kHz mono int16. SNR is speech RMS over its active frames (20 ms frames above
-40 dBFS) against noise RMS over the whole signal; `active_rms` and `measure_snr` implement
that one definition so generator, tests and benchmarks agree.
"""

from __future__ import annotations

import argparse
import csv
import functools
import hashlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf
import soxr

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_RATE = 16_000
PEAK_DBFS = -3.0
PAD_SECONDS = 0.3
FRAME_MS = 20
ACTIVE_DBFS = -40.0  # a frame louder than this counts as speech when measuring SNR
TRIM_DBFS = -50.0  # the synthesiser's own leading/trailing silence is cut below this, then padded

# Every phrasing is rendered by two flite voices, picked with their rate and pitch from a hash
# of the row so the choice never drifts. For phrasing 1 of each intent one of the two is
# always FIRST_VOICE at flite's default settings: the stable baseline that gets the noisy
# copies and sorts first among the renderings of its text. Phrasings 2 and up add one
# espeak-ng voice; phrasing 1 has none, which keeps the committed set under ~30 MB (every
# intent still has espeak-ng renderings, since each has at least two phrasings).
FAMILIES = ("flite", "espeak")

# flite (Debian package `flite` 2.2): the CMU Arctic voices built into the binary. All four
# output 16 kHz. `kal` (8 kHz) and `awb_time` (a talking clock) are left out.
FLITE_VOICES = ("slt", "rms", "awb", "kal16")  # US female, US male, Scottish male, US diphone
FIRST_VOICE = "slt"
FLITE_PER_PHRASING = 2  # different voices
# duration_stretch scales every segment's duration (1.2 = 20% slower); flite's defaults are
# 1.0, except kal16 which sets 1.1 itself.
FLITE_STRETCHES = ("0.85", "0.9", "0.95", "1.0", "1.05", "1.1", "1.15", "1.2")
# int_f0_target_mean (Hz) moves the voice's mean pitch; varied by up to 10% around the mean
# measured on its default output. rms ignores it (and f0_shift): its output is byte-identical
# whatever is set, so rms is only varied in rate.
FLITE_F0_MEANS = {"slt": 170, "awb": 128, "kal16": 95}
FLITE_F0_STEPS = (0.9, 0.95, 1.0, 1.05, 1.1)
# flite reads an all-capitals word as a word ("ALS" -> "alz"); people spell these out.
FLITE_SPELLINGS = {"ALS": "A L S", "GP": "G P", "MND": "M N D"}

# espeak-ng's own voices and variants (the mbrola ones need extra packages): one per phrasing.
ESPEAK_VOICES = (
    "en-us",
    "en-gb-x-rp",
    "en-gb-scotland",
    "en-029",
    "en-us-nyc",
    "en-gb-x-gbclan",
    "en-us+f3",
    "en+f4",
    "en+m3",
    "en-gb-x-gbcwmd",
)
ESPEAK_RATES = tuple(range(140, 191, 10))  # words per minute
ESPEAK_PITCHES = tuple(range(35, 66, 5))  # espeak-ng 0-99, 50 is the voice's default

NOISE_KINDS = ("white", "pink", "babble")
COMMITTED_SNR_DB = 10  # the noisy subset in the repo; benchmarks make the rest with add_noise

# --- texts -------------------------------------------------------------------------------
# Spoken the way a person at home would say them. Non-emergency texts avoid the dialogue's
# red-flag phrases (weakness, numbness, "more than a week", ...) so their expected intent is
# not overridden by an escalation. The first phrasing of each intent is the plainest one:
# it is the one that gets the committed noisy copies.

PHRASES: dict[str, tuple[str, ...]] = {
    "twitch_vs_spasm": (
        "what's the difference between a twitch and a spasm",
        "is this a muscle twitch or is it a spasm",
        "how can I tell if my leg is twitching or cramping",
        "are twitches and cramps the same thing",
        "my arm keeps jumping is that a twitch or a spasm",
    ),
    "twitch_causes": (
        "why does my eyelid keep twitching",
        "what causes muscle twitches",
        "my thigh has been twitching all day what's causing it",
        "how come my muscles twitch when I'm trying to sleep",
        "what makes a muscle start twitching on its own",
    ),
    "spasm_causes": (
        "what causes muscle spasms",
        "why do I keep getting cramps in my legs at night",
        "why did my calf suddenly cramp up",
        "what makes a muscle go into a spasm",
        "I got a cramp in my foot while swimming why does that happen",
    ),
    "twitch_serious": (
        "is muscle twitching something serious",
        "could my twitching be a sign of ALS",
        "I'm worried these twitches mean nerve damage",
        "can twitching be a sign of muscular dystrophy",
        "should I be worried about my eyelid twitching",
    ),
    "spasm_relief": (
        "how do I stop a cramp in my calf",
        "my calf cramped up how do I make it stop",
        "what can I do to relieve a muscle spasm",
        "should I stretch it or massage it when I get a cramp",
        "I have a cramp in my foot right now what do I do",
    ),
    "spasm_prevention": (
        "how can I prevent muscle cramps",
        "what can I do so I don't get spasms when I run",
        "does drinking more water help stop cramps",
        "should I warm up and stretch to avoid cramps",
        "how do I keep my legs from cramping at night",
    ),
    "when_to_see_doctor": (
        "should I see a doctor about my twitching",
        "when do I need to see a doctor for muscle cramps",
        "is this twitch bad enough to go to the doctor",
        "do I need to get my spasms checked out",
        "when should I worry and call my doctor",
    ),
    "doctor_visit": (
        "what will the doctor do about my twitching",
        "what tests will the doctor run",
        "what happens at the doctor's appointment for muscle spasms",
        "how will my doctor figure out what's causing it",
        "what should I tell my doctor about my cramps",
    ),
    "back_spasm": (
        "why does my lower back keep spasming",
        "I've got a spasm in my back what causes that",
        "can a herniated disc cause back spasms",
        "could spinal stenosis be why my back cramps up",
        "my back seized up when I bent over to pick something up",
    ),
    "medication": (
        "could my medication be causing my twitching",
        "I started a new medicine and now my muscles twitch",
        "I think my pills are making my legs cramp",
        "can medicines cause muscle spasms",
        "should I stop taking my medication if it makes me twitch",
    ),
    "nutrition": (
        "could a vitamin deficiency cause muscle twitching",
        "can my diet cause cramps",
        "am I missing a vitamin or mineral that makes me cramp",
        "what foods help stop muscle cramps",
        "should I take supplements for my twitching",
    ),
    "emergency": (
        "I can't breathe",
        "I have chest pain",
        "my whole body is jerking and I can't stop it",
        "I think I'm having a seizure",
        "I have a stiff neck and a high fever",
        "I hit my head and now my muscles are twitching",
    ),
    # control
    "repeat": ("say that again", "could you repeat that please", "sorry what did you say"),
    "slower": ("slow down please", "can you speak more slowly"),
    "stop": ("stop", "okay stop talking"),
    "help": ("what can you do", "help", "what questions can I ask you"),
    "more": ("tell me more", "go on"),
    "yes": ("yes", "yeah I do", "yes my legs feel weak"),
    "no": ("no", "nope not really"),
    "back": ("go back", "take me back to the last question"),
    "start_over": ("start over", "let's start again"),
    "goodbye": ("goodbye", "thanks that's all bye"),
    # out of domain: the skill must reject these, not answer them
    "fallback": (
        "what's the weather like tomorrow",
        "play some jazz music",
        "set a timer for ten minutes",
        "wake me up at seven tomorrow",
        "tell me a joke",
        "who won the football game last night",
        "how long do I boil an egg",
        "what's in the news today",
        "add milk to my shopping list",
        "call my sister",
        "what is a normal blood pressure",
        "how do I treat a sunburn",
        "how do I get rid of hiccups",
        "turn off the living room lights",
        "what's a good recipe for dinner",
        "how many calories are in a banana",
        "what time does the pharmacy close",
        "is it going to rain this weekend",
    ),
}

# Expected `outcome` of a single-turn text heard as the first turn of a fresh conversation,
# only where the design makes it certain: red flags escalate from anywhere.
SINGLE_TURN_OUTCOMES: dict[str, str] = {"yes my legs feel weak": "urgent"}
INTENT_OUTCOMES: dict[str, str] = {"emergency": "emergency"}


class Turn(NamedTuple):
    """One spoken turn of a conversation and what the skill should make of it."""

    text: str
    intent: str
    outcome: str = ""  # empty: no advice on this turn, or not certain


# Every conversation is rendered once per voice here (ids like triage_urgent__slt), one voice
# throughout each rendering.
CONVERSATION_VOICES = ("slt", "rms")

# Triage after `when_to_see_doctor`: Q1 nerve signs (yes -> urgent), Q2 lasting/worse
# (yes -> see_doctor), Q3 painful/not easing (yes -> see_doctor), Q4 medicine/diet
# (yes -> see_doctor, no -> self_care). Emergencies win at any point.
CONVERSATIONS: dict[str, tuple[Turn, ...]] = {
    "triage_self_care": (
        Turn("should I see a doctor about my twitching", "when_to_see_doctor"),
        Turn("no", "no"),
        Turn("nope", "no"),
        Turn("no it isn't", "no"),
        Turn("no it hasn't", "no"),
        Turn("no", "no"),
        Turn("no I don't think so", "no", "self_care"),
    ),
    "triage_urgent": (
        Turn("my eyelid keeps twitching do I need to see a doctor", "when_to_see_doctor"),
        Turn("yes my legs feel weak", "yes", "urgent"),
    ),
    "triage_see_doctor": (
        Turn("when should I see a doctor about my cramps", "when_to_see_doctor"),
        Turn("no", "no"),
        Turn("nope", "no"),
        Turn("no", "no"),
        Turn("yes it has", "yes", "see_doctor"),
    ),
    "triage_emergency": (
        Turn("do I need to see a doctor about these spasms", "when_to_see_doctor"),
        Turn("no", "no"),
        Turn("wait I can't breathe", "emergency", "emergency"),
    ),
    "repeat_goodbye": (
        Turn("what's the difference between a twitch and a spasm", "twitch_vs_spasm"),
        Turn("sorry can you say that again", "repeat"),
        Turn("okay thanks goodbye", "goodbye"),
    ),
    "slower_then_question": (
        Turn("how do I stop a cramp in my leg", "spasm_relief"),
        Turn("slow down please", "slower"),
        Turn("what causes muscle spasms", "spasm_causes"),
    ),
}

# Babble: several voices reading news-like text at once. Nothing here touches the domain or
# a red flag, so babble cannot smuggle a keyword into the recogniser. Three natural flite
# talkers and two espeak-ng ones, like a room with people and a television.
BABBLE_SENTENCES = (
    "The city council approved the new budget for road repairs on Tuesday evening.",
    "Shares in the technology sector rose slightly after a quiet morning of trading.",
    "Forecasters expect clear skies across the north with light winds from the west.",
    "The museum will open its new gallery of modern sculpture early next spring.",
    "Train services between the two stations will run on a reduced timetable this weekend.",
    "The local football club signed a young striker from a team in the second division.",
    "Farmers say the late harvest has pushed up the price of apples and pears.",
    "A new bridge over the river is due to be finished by the end of the year.",
    "The library is extending its opening hours during the school holidays.",
    "Officials announced plans to plant five thousand trees along the main avenue.",
    "The orchestra played to a full house at the concert hall on Saturday night.",
    "Volunteers cleaned up the beach and collected more than two hundred bags of litter.",
)
BABBLE_VOICES = (  # (family, voice, rate, pitch) as in the manifest
    ("flite", "rms", "1.0", ""),
    ("espeak", "en+f4", "160", "60"),
    ("flite", "awb", "0.95", "128"),
    ("flite", "slt", "1.05", "187"),
    ("espeak", "en-gb-scotland", "175", "40"),
)


# --- voices and rows ---------------------------------------------------------------------


@dataclass(frozen=True)
class Voice:
    """A synthesiser voice with its rate and pitch, as written in the manifest.

    espeak: rate in words per minute, pitch 0-99. flite: rate is duration_stretch (1.2 =
    slower), pitch is int_f0_target_mean in Hz; empty means the voice's own default.
    """

    family: str  # "flite" or "espeak"
    name: str  # the synthesiser's own name: "slt", "en-us+f3"
    rate: str
    pitch: str

    @property
    def tag(self) -> str:
        """The voice in the manifest and in file names: 'flite-slt', 'espeak-en-us_f3'."""
        return f"{self.family}-{self.name.replace('+', '_')}"


@dataclass(frozen=True)
class Row:
    """One manifest line; field order is the CSV column order."""

    file: str
    text: str
    intent: str
    outcome: str
    voice: str
    rate: str
    pitch: str
    condition: str
    conversation: str
    turn: str
    family: str


MANIFEST_COLUMNS = tuple(Row.__dataclass_fields__)


def stable_int(*parts: object) -> int:
    """A hash of `parts` that is the same in every process (unlike hash()), for choices/seeds."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


def choose(options: tuple, *key: object) -> object:
    """One of `options`, always the same for the same `key`."""
    return options[stable_int(*key) % len(options)]


def pick_espeak(name: str, key: str) -> Voice:
    """espeak-ng voice `name` with a rate and pitch chosen from `key`."""
    rate = choose(ESPEAK_RATES, key, name, "rate")
    pitch = choose(ESPEAK_PITCHES, key, name, "pitch")
    return Voice("espeak", name, str(rate), str(pitch))


def pick_flite(name: str, key: str) -> Voice:
    """flite voice `name` with a duration_stretch and (if it takes one) a mean F0 from `key`."""
    pitch = ""
    if name in FLITE_F0_MEANS:
        pitch = str(round(FLITE_F0_MEANS[name] * choose(FLITE_F0_STEPS, key, name, "pitch")))
    return Voice("flite", name, choose(FLITE_STRETCHES, key, name, "rate"), pitch)


def by_hash(names: Iterable[str], key: str) -> list[str]:
    """`names` in an order fixed by `key`: a deterministic shuffle."""
    return sorted(names, key=lambda name: stable_int(key, name))


def voices_for(intent: str, n: int) -> list[Voice]:
    """The voices for phrasing `n` of `intent`, flite first.

    Phrasing 1 (the plainest, also the one with noisy copies): FIRST_VOICE at flite's defaults
    and one other flite voice. Later phrasings: two flite voices and one espeak-ng voice.
    """
    key = f"{intent}__{n}"
    if n == 1:
        first = Voice("flite", FIRST_VOICE, "", "")
        others = by_hash([name for name in FLITE_VOICES if name != FIRST_VOICE], key)
        picked = [pick_flite(name, key) for name in others[: FLITE_PER_PHRASING - 1]]
        return [first, *picked]
    picked = [pick_flite(name, key) for name in by_hash(FLITE_VOICES, key)[:FLITE_PER_PHRASING]]
    return [*picked, pick_espeak(by_hash(ESPEAK_VOICES, key)[0], key)]


# --- rendering ---------------------------------------------------------------------------


def command(text: str, voice: Voice, path: Path) -> list[str]:
    """The synthesiser command line that writes `text` in `voice` to `path`."""
    if voice.family == "espeak":
        args = ["espeak-ng", "-v", voice.name, "-s", voice.rate, "-p", voice.pitch]
        return [*args, "-w", str(path), text]
    if voice.family != "flite":
        raise ValueError(f"unknown voice family {voice.family!r}")
    args = ["flite", "-voice", voice.name]
    if voice.rate:
        args += ["--setf", f"duration_stretch={voice.rate}"]
    if voice.pitch:
        args += ["--setf", f"int_f0_target_mean={voice.pitch}"]
    spoken = " ".join(spell_out(word) for word in text.split())
    return [*args, "-t", spoken, "-o", str(path)]


def spell_out(word: str) -> str:
    """`word` as flite should read it: FLITE_SPELLINGS letter by letter, punctuation kept."""
    bare = word.rstrip(",.?!")
    return FLITE_SPELLINGS.get(bare, bare) + word[len(bare) :]


def tts(text: str, voice: Voice) -> tuple[np.ndarray, int]:
    """Raw synthesiser output for `text` as float samples in [-1, 1] and its sample rate."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "out.wav"
        subprocess.run(command(text, voice, path), check=True, capture_output=True)
        samples, rate = sf.read(path, dtype="float64", always_2d=True)
    return samples.mean(axis=1), rate


def frame_rms(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS of consecutive `frame`-sample frames (the last partial frame included)."""
    padded = np.pad(samples, (0, -len(samples) % frame))
    return np.sqrt(np.mean(padded.reshape(-1, frame) ** 2, axis=1))


def trim_silence(samples: np.ndarray, rate: int = SAMPLE_RATE) -> np.ndarray:
    """Cut leading/trailing frames quieter than TRIM_DBFS below the peak, so padding is exact."""
    frame = rate * 10 // 1000
    loud = np.flatnonzero(frame_rms(samples, frame) > np.abs(samples).max() * db(TRIM_DBFS))
    if loud.size == 0:
        return samples
    return samples[loud[0] * frame : (loud[-1] + 1) * frame]


def db(value_db: float) -> float:
    """Decibels to a linear amplitude ratio."""
    return float(10 ** (value_db / 20))


def to_int16(samples: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to int16, rounding and clipping."""
    return np.clip(np.round(samples * 32768), -32768, 32767).astype(np.int16)


def as_float(samples: np.ndarray) -> np.ndarray:
    """int16 or float samples as float64 in [-1, 1] (floats are taken as full scale 1.0)."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        return samples.astype(np.float64) / 32768
    return samples.astype(np.float64)


def synthesize(text: str, voice: Voice) -> np.ndarray:
    """`text` spoken by `voice`: 16 kHz mono int16, peak at PEAK_DBFS, PAD_SECONDS each side."""
    raw, rate = tts(text, voice)
    if rate != SAMPLE_RATE:
        raw = soxr.resample(raw, rate, SAMPLE_RATE, quality="HQ")
    speech = trim_silence(raw)
    speech = speech * (db(PEAK_DBFS) / np.abs(speech).max())
    pad = np.zeros(round(PAD_SECONDS * SAMPLE_RATE))
    return to_int16(np.concatenate([pad, speech, pad]))


# --- noise -------------------------------------------------------------------------------


def rms(samples: np.ndarray) -> float:
    """Root mean square of int16 or float samples, in full-scale units."""
    return float(np.sqrt(np.mean(as_float(samples) ** 2)))


def active_rms(samples: np.ndarray) -> float:
    """Speech RMS over the 20 ms frames above ACTIVE_DBFS, so padding and pauses don't count.

    Falls back to the plain RMS when no frame is that loud (very quiet input).
    """
    x = as_float(samples)
    frame = SAMPLE_RATE * FRAME_MS // 1000
    loud = frame_rms(x, frame) > db(ACTIVE_DBFS)
    if not loud.any():
        return rms(x)
    frames = np.pad(x, (0, -len(x) % frame)).reshape(-1, frame)[loud]
    return float(np.sqrt(np.mean(frames**2)))


def white_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Gaussian white noise, unit variance."""
    return rng.standard_normal(n)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f (pink) noise: white noise whose spectrum is scaled by 1/sqrt(f) in the FFT domain."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0  # no DC offset
    return np.fft.irfft(spectrum, n)


def babble_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """`n` samples of the babble bed from a random start, looped when the bed is shorter."""
    bed = babble_bed()
    start = int(rng.integers(len(bed)))
    return np.take(bed, np.arange(start, start + n), mode="wrap")


@functools.lru_cache(maxsize=1)
def babble_bed() -> np.ndarray:
    """The babble bed (float, unit RMS), rendered once and cached in memory and in /tmp.

    The file cache is keyed by the sentences, voices and synthesiser versions, so editing any
    of them re-renders instead of reusing a stale bed.
    """
    versions = [
        subprocess.run([program, "--version"], capture_output=True, text=True).stdout
        for program in ("espeak-ng", "flite")
    ]
    key = stable_int(BABBLE_SENTENCES, BABBLE_VOICES, versions, SAMPLE_RATE, PEAK_DBFS)
    cache = Path(tempfile.gettempdir()) / f"voiceskill-babble-{key:016x}.npy"
    if cache.exists():
        return np.load(cache)
    bed = render_babble()
    partial = cache.with_suffix(f".{os.getpid()}.npy")
    np.save(partial, bed)
    os.replace(partial, cache)  # atomic: parallel test workers never read half a file
    return bed


def render_babble() -> np.ndarray:
    """Sum the babble voices, each reading every sentence in its own order, offset in time."""
    tracks = []
    for i, voice in enumerate(BABBLE_VOICES):
        order = BABBLE_SENTENCES[i * 2 :] + BABBLE_SENTENCES[: i * 2]
        speech = [as_float(synthesize(text, Voice(*voice))) for text in order]
        track = np.concatenate(speech)
        tracks.append(track / active_rms(track))
    length = max(len(track) for track in tracks)
    bed = np.zeros(length)
    for i, track in enumerate(tracks):
        shift = i * length // len(tracks)
        bed += np.take(track, np.arange(shift, shift + length), mode="wrap")
    return bed / rms(bed)


NOISE_MAKERS = {"white": white_noise, "pink": pink_noise, "babble": babble_noise}


def make_noise(kind: str, n: int, seed: int) -> np.ndarray:
    """`n` samples of noise `kind` with unit RMS, the same for the same seed."""
    if kind not in NOISE_MAKERS:
        raise ValueError(f"unknown noise kind {kind!r}; use one of {', '.join(NOISE_KINDS)}")
    noise = NOISE_MAKERS[kind](n, np.random.default_rng(seed))
    return noise / rms(noise)


def add_noise(samples: np.ndarray, kind: str, snr_db: float, seed: int) -> np.ndarray:
    """`samples` (int16, or float in [-1, 1]) plus `kind` noise at `snr_db`, as int16.

    SNR = active_rms(speech) / rms(noise). When the mix would clip, speech and noise are
    scaled down together, which keeps the SNR (use measure_snr, which allows for that gain).
    The noise's chance component along the speech is removed first (well under 1% of its
    energy), so the two are exactly uncorrelated: otherwise speech-like babble, by chance
    correlated with the speech, throws measure_snr's estimate of that gain off by up to 1 dB
    at negative SNRs.
    """
    speech = as_float(samples)
    level = active_rms(speech)
    if level == 0:
        raise ValueError("cannot set an SNR against silent input")
    noise = make_noise(kind, len(speech), seed)
    noise -= speech * (np.dot(noise, speech) / np.dot(speech, speech))
    mix = speech + noise * (level / (db(snr_db) * rms(noise)))
    peak = np.abs(mix).max()
    if peak > db(-0.1):
        mix *= db(-0.1) / peak
    return to_int16(mix)


def measure_snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR (dB) of `noisy` against the `clean` it was made from, as add_noise defines it.

    The gain add_noise may have applied against clipping is estimated by least squares and
    undone before the noise (noisy - clean) is measured.
    """
    s, y = as_float(clean), as_float(noisy)
    gain = float(np.dot(y, s) / np.dot(s, s))
    return 20 * float(np.log10(active_rms(s) / rms(y / gain - s)))


# --- far field ---------------------------------------------------------------------------

# sox's reverb (Freeverb) settings for a speaker some metres away: reverberance %, HF damping %,
# room scale %, stereo depth %, pre-delay ms, wet gain dB. The dry path is kept (a listener
# hears the direct sound too), so these are the level of direct against reflected sound.
REVERB_ROOMS: dict[str, tuple[int, ...]] = {
    "small": (30, 60, 40, 0, 5, -3),  # a bedroom at 1-2 m
    "living": (50, 50, 80, 0, 10, 0),  # a living room at 3 m
    "large": (80, 30, 100, 0, 20, 0),  # a hall or open-plan room, far off
}


def reverberate(samples: np.ndarray, room: str) -> np.ndarray:
    """`samples` (16 kHz int16) heard across `room` (a REVERB_ROOMS key), as int16.

    Run through the sox binary: the tail is kept, and the result is scaled back to the
    input's peak so speech level, and so the SNR of noise added afterwards, stay comparable.
    """
    settings = [str(v) for v in REVERB_ROOMS[room]]
    raw = ["-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed", "-b", "16", "-c", "1"]
    result = subprocess.run(
        ["sox", *raw, "-", *raw, "-", "gain", "-6", "reverb", *settings],
        input=np.asarray(samples, dtype=np.int16).tobytes(), capture_output=True, check=True,
    )
    wet = np.frombuffer(result.stdout, dtype=np.int16).astype(np.float64)
    peak = np.abs(wet).max()
    if peak == 0:
        return wet.astype(np.int16)
    return to_int16(wet * (np.abs(as_float(samples)).max() / peak))


# --- the fixture set ---------------------------------------------------------------------


class Job(NamedTuple):
    """One WAV to write: its manifest row and how to make its audio."""

    row: Row
    voice: Voice
    noise: tuple[str, float, int] | None = None  # (kind, snr_db, seed) over the clean render


def single_turn_jobs() -> Iterator[Job]:
    """Every phrasing in its voices (clean), plus noisy copies of each intent's phrasing 1."""
    for intent, texts in PHRASES.items():
        for n, text in enumerate(texts, start=1):
            outcome = SINGLE_TURN_OUTCOMES.get(text, INTENT_OUTCOMES.get(intent, ""))
            for index, voice in enumerate(voices_for(intent, n)):
                file = f"clean/{intent}__{n}__{voice.tag}.wav"
                clean = Job(make_row(file, text, intent, outcome, voice), voice)
                yield clean
                if n == 1 and index == 0:  # FIRST_VOICE at its defaults
                    yield from noisy_jobs(clean)


def noisy_jobs(clean: Job) -> Iterator[Job]:
    """`clean` at COMMITTED_SNR_DB in each noise kind, seeded by the noisy file's name."""
    name = Path(clean.row.file).name
    for kind in NOISE_KINDS:
        condition = f"{kind}_{COMMITTED_SNR_DB}"
        file = f"noisy/{condition}/{name}"
        noisy = Row(**{**asdict(clean.row), "file": file, "condition": condition})
        yield Job(noisy, clean.voice, (kind, COMMITTED_SNR_DB, stable_int(file) % 2**32))


def conversation_jobs() -> Iterator[Job]:
    """Each turn of each conversation as its own WAV, once per CONVERSATION_VOICES voice."""
    for name in CONVERSATION_VOICES:
        for conv, turns in CONVERSATIONS.items():
            conv_id = f"{conv}__{name}"
            voice = pick_flite(name, conv_id)
            for number, turn in enumerate(turns, start=1):
                file = f"conversations/{conv_id}__t{number}.wav"
                row = make_row(file, *turn, voice, conversation=conv_id, turn=number)
                yield Job(row, voice)


def make_row(file: str, text: str, intent: str, outcome: str, voice: Voice, **where: object) -> Row:
    """A clean manifest row; `where` may set condition, conversation and turn.

    `file` is relative to the fixture directory until `write_all` roots it.
    """
    fields = {"condition": "clean", "conversation": "", "turn": ""}
    fields.update({key: str(value) for key, value in where.items()})
    fields["family"] = voice.family
    return Row(file, text, intent, outcome, voice.tag, voice.rate, voice.pitch, **fields)


def all_jobs() -> list[Job]:
    """Every fixture, in manifest order."""
    return [*single_turn_jobs(), *conversation_jobs()]


def manifest_prefix(out: Path) -> str:
    """How manifest paths start: relative to the repo root when `out` is inside the repo."""
    out = out.resolve()
    try:
        return out.relative_to(REPO_ROOT).as_posix()
    except ValueError:
        return out.name


def clear_wavs(out: Path) -> None:
    """Delete the WAVs this script owns, so a removed phrasing leaves no stale file behind."""
    for sub in ("clean", "noisy", "conversations"):
        for path in (out / sub).rglob("*.wav"):
            path.unlink()


def write_wav(path: Path, samples: np.ndarray) -> None:
    """16 kHz mono int16 WAV (PCM_16 headers are byte-identical across runs)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, samples, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def render(job: Job, cache: dict[tuple[str, Voice], np.ndarray]) -> np.ndarray:
    """The job's audio; clean renders are cached so noisy copies reuse the same speech."""
    key = (job.row.text, job.voice)
    if key not in cache:
        cache[key] = synthesize(job.row.text, job.voice)
    if job.noise is None:
        return cache[key]
    kind, snr_db, seed = job.noise
    return add_noise(cache[key], kind, snr_db, seed)


def write_all(out: Path, jobs: Iterable[Job] | None = None) -> list[Row]:
    """Regenerate every WAV and manifest.csv under `out`; returns the manifest rows."""
    jobs = all_jobs() if jobs is None else list(jobs)
    clear_wavs(out)
    prefix = manifest_prefix(out)
    cache: dict[tuple[str, Voice], np.ndarray] = {}
    rows = []
    for job in jobs:
        write_wav(out / job.row.file, render(job, cache))
        rows.append(Row(**{**asdict(job.row), "file": f"{prefix}/{job.row.file}"}))
    write_manifest(out / "manifest.csv", rows)
    return rows


def write_manifest(path: Path, rows: Iterable[Row]) -> None:
    """manifest.csv with MANIFEST_COLUMNS, '\\n' line ends for stable diffs."""
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows([getattr(r, column) for column in MANIFEST_COLUMNS] for r in rows)


def read_manifest(path: Path = REPO_ROOT / "audio_fixtures" / "manifest.csv") -> list[dict]:
    """The manifest rows as dicts (for benchmarks and tests)."""
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def summary(rows: list[Row]) -> str:
    """Files per condition and per intent (clean), for the command's output."""
    lines = []
    for condition in sorted({r.condition for r in rows}):
        lines.append(f"{condition}: {sum(r.condition == condition for r in rows)} files")
        for family in FAMILIES:
            count = sum(r.condition == condition and r.family == family for r in rows)
            lines.append(f"  {family}: {count}")
    lines.append("files per voice:")
    for voice in sorted({r.voice for r in rows}):
        lines.append(f"  {voice}: {sum(r.voice == voice for r in rows)}")
    clean = [r for r in rows if r.condition == "clean" and not r.conversation]
    lines.append("clean single-turn files per intent:")
    for intent in PHRASES:
        lines.append(f"  {intent}: {sum(r.intent == intent for r in clean)}")
    conv = [r for r in rows if r.conversation]
    count = len({r.conversation for r in conv})
    lines.append(f"conversations: {count} ({len(conv)} turn files)")
    return "\n".join(lines)


# --- the realistic held-out set's spoken subset --------------------------------------------
# bench/realistic/ holds questions phrased the way people talk, written apart from the sample
# sentences. A fixed subset of each file is spoken by the four flite voices in turn, each at a
# rate and pitch picked as for the main set, into <out>/realistic/ with its own manifest. A
# fresh set of the same shape (bench/realistic_blind…) is spoken the same way, into a
# temporary folder, by `bench/understanding.py --spoken` (nothing of it is kept).

REALISTIC_TEXTS = REPO_ROOT / "bench" / "realistic"
REALISTIC_SUBSET = {  # file -> (items spoken, the column that is the label)
    "everyday.csv": (80, "intents"),
    "emergency.csv": (70, "concept"),
    "urgent.csv": (20, "concept"),
    "nonalarm.csv": (20, "kind"),
    "out_of_domain.csv": (30, ""),  # every one expects the fallback
}
REALISTIC_COLUMNS = ("file", "source", "text", "label", "voice", "rate", "pitch")


def realistic_jobs(texts: Path = REALISTIC_TEXTS) -> Iterator[tuple[dict[str, str], Voice]]:
    """(manifest row, voice) for the subset of the set in `texts`: per file the first items in
    a hash order, spoken in file order, the voices taking turns so that each file is spread
    over all of them."""
    for source, (count, label_column) in REALISTIC_SUBSET.items():
        with (texts / source).open(newline="", encoding="utf-8") as handle:
            rows = list(csv.DictReader(handle))
        picked = sorted(by_hash(range(len(rows)), source)[:count])
        for turn, index in enumerate(picked):
            number = index + 1  # the item's row in the file, header not counted
            key = f"{source}__{number}"
            voice = pick_flite(FLITE_VOICES[turn % len(FLITE_VOICES)], key)
            yield (
                {
                    "file": f"realistic/{Path(source).stem}__{number:03d}__{voice.tag}.wav",
                    "source": source,
                    "text": rows[index]["text"],
                    "label": rows[index][label_column] if label_column else "fallback",
                    "voice": voice.tag,
                    "rate": voice.rate,
                    "pitch": voice.pitch,
                },
                voice,
            )


def write_realistic(out: Path, texts: Path = REALISTIC_TEXTS) -> list[dict[str, str]]:
    """Regenerate <out>/realistic/ (WAVs + manifest.csv) from the set in `texts`; returns the
    manifest rows."""
    folder = out / "realistic"
    for path in folder.glob("*.wav"):
        path.unlink()
    prefix = manifest_prefix(out)
    rows = []
    for row, voice in realistic_jobs(texts):
        write_wav(out / row["file"], synthesize(row["text"], voice))
        rows.append({**row, "file": f"{prefix}/{row['file']}"})
    with (folder / "manifest.csv").open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, REALISTIC_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=REPO_ROOT / "audio_fixtures", help="fixture directory"
    )
    parser.add_argument(
        "--realistic",
        action="store_true",
        help="only the spoken subset of bench/realistic/, into <out>/realistic/",
    )
    args = parser.parse_args(argv)
    if args.realistic:
        rows = write_realistic(args.out)
        print(f"wrote {len(rows)} files and {args.out / 'realistic' / 'manifest.csv'}")
        return 0
    rows = write_all(args.out)
    print(summary(rows))
    print(f"wrote {len(rows)} files and {args.out / 'manifest.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
