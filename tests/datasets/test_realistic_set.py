"""The realistic held-out sets (bench/realistic/, bench/realistic_blind/) stay held out and
well formed.

It measures how the skill copes with questions phrased the way people talk, so it is only worth
anything while none of it leaks into the sample sentences the matcher and recogniser are built
from: every item is checked, normalised, against every expanded sample, exactly and as a near
copy. The shapes and minimum sizes are checked too, so a benchmark reading the files can trust
them.
"""

from __future__ import annotations

import csv
import math
from bisect import bisect_left, bisect_right
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import pytest
import soundfile as sf
from rapidfuzz import fuzz, process

from helpers import ROOT
from voiceskill.content import load_content
from voiceskill.text import normalize

REALISTIC = ROOT / "bench" / "realistic"
# The sets that report how well the skill understands people: realistic/ and the blind sets.
# A realistic_dev* set is for finding misses only, and may overlap the samples.
HELD_OUT_SETS = sorted(folder for folder in REALISTIC.parent.glob("realistic*/")
                       if not folder.name.startswith("realistic_dev"))
NEAR_COPY = 97  # fuzz.ratio at or above this is a copy with a word ending or article changed


class Shape(NamedTuple):
    columns: tuple[str, ...]
    minimum: int  # rows
    spoken: str  # the column holding what a person says
    unique: tuple[str, ...]  # the columns no two rows share


FILES = {
    "everyday.csv": Shape(("text", "intents", "situation"), 170, "text", ("text",)),
    "emergency.csv": Shape(("text", "concept"), 70, "text", ("text",)),
    "urgent.csv": Shape(("text", "concept"), 45, "text", ("text",)),
    "nonalarm.csv": Shape(("text", "kind"), 60, "text", ("text",)),
    "triage.csv": Shape(
        ("question", "answer", "expected", "days"), 40, "answer", ("question", "answer")
    ),
    "out_of_domain.csv": Shape(("text", "situation"), 60, "text", ("text",)),
}
OPTIONAL_COLUMNS = {"days"}

# The vocabularies of the labels (these are concepts of the set, not intent names).
EMERGENCY_CONCEPTS = {
    "breathing",
    "chest_pain",
    "stroke",
    "seizure",
    "unresponsive",
    "worst_headache",
    "fever_stiff_neck",
    "head_injury",
    "fainting",
    "swallowing_choking",
    "tetanus",
    "rhabdo",
    "bite_sting",
    "overdose",
}
URGENT_CONCEPTS = {"weakness", "numbness", "tingling", "walking", "balance", "confusion", "wasting"}
NONALARM_KINDS = {"denial": 12, "question": 12, "past": 12, "mention": 12}
TRIAGE_QUESTIONS = {"signs", "lasting", "worse", "cause"}
TRIAGE_ANSWERS = {"yes", "no", "unknown"}
MIN_PER_EMERGENCY_CONCEPT = 3
MIN_PER_INTENT = 10


def read(name: str, folder: Path = REALISTIC) -> list[dict[str, str]]:
    with (folder / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def content():
    return load_content()


@pytest.mark.parametrize("name", FILES)
def test_file_shape(name):
    shape = FILES[name]
    with (REALISTIC / name).open(newline="", encoding="utf-8") as handle:
        assert tuple(next(csv.reader(handle))) == shape.columns
    rows = read(name)
    assert len(rows) >= shape.minimum, f"{name}: {len(rows)} rows, need {shape.minimum}"
    for number, row in enumerate(rows, start=2):
        required = [c for c in shape.columns if c not in OPTIONAL_COLUMNS]
        assert None not in row and all((row[c] or "").strip() for c in required), (
            f"{name}:{number}: bad row {row}"
        )
    keys = Counter(tuple(row[c] for c in shape.unique) for row in rows)
    assert not [key for key, n in keys.items() if n > 1], f"{name}: duplicate rows"


SHORT_ANSWER = 3
# Rows a set's author wrote independently that are word for word a sample sentence that existed
# before the set was written (the samples were not changed to match them). They are seen items,
# and the set's README says so; every other row must still be unseen.
COINCIDENT = {"realistic_blind8": {"what can you do", "when should i see a doctor about twitching"},
              "realistic_blind9": {"what can you do"},
              # found by script when the set was added, in content written before it
              # (its writer never saw the content)
              "realistic_blind42": {
                "are muscle relax ants any good for spasms",
                "are you a doctor or what",
                "can i take ibuprofen for a back spasm",
                "help",
                "how do i stop a cramp",
                "how do you say thank you in tagalog",
                "how does this work",
                "how much water should i drink to stop cramps",
                "how tall is the eiffel tower",
                "is muscle twitching a sign of something serious",
                "lumbago",
                "play some bob marley",
                "should i rest or keep moving with a back spasm",
                "spell necessary for me",
                "tell me what you can help with",
                "what are the signs of a stoke",
                "what can you do",
                "what do you know about",
                "what sort of questions do you answer",
                "what's in the news today",
              },
              "realistic_blind43": {
                "are you a doctor or what are you",
                "can my medication cause muscle cramps",
                "can you help me with my muscles what do you do exactly",
                "cramp cramp what do i do",
                "help",
                "how do i stop a cramp right now",
                "how do i use you",
                "how does this work",
                "how long should a twitch last before i get it checked",
                "is twitching a sign of als",
                "my back's gone into spasm what do i do",
                "twitch versus spasm",
                "what can you do",
                "what causes a muscle spasm",
                "what vitamins are good for twitching",
                "when should i see a doctor about twitching",
                "when's the next bus into town",
                "why do i get cramps in my legs at night",
                "why does my eye keep twitching",
              },
              "realistic_blind44": {
                "can my medication cause muscle cramps",
                "does magnesium help cramps",
                "help",
                "how do i stop a cramp",
                "how tall is the eiffel tower",
                "is muscle twitching a sign of als",
                "put radio two on",
                "should i be worried about twitching",
                "tell me what you can help with",
                "twitch or spasm",
                "what can i take for cramps",
                "what can you do",
                "what causes muscle spasms",
                "what's in the news today",
                "what's the difference between a twitch and a spasm",
                "when should i see a doctor about twitching",
                "why does my eye keep twitching",
              },
              "realistic_blind45": {
                "help",
                "how tall is the eiffel tower",
                "twitch serious or not",
                "what are you for",
                "what can i ask you",
                "what can you do",
                "what kind of questions do you answer",
                "what's in the news today",
              },
              "realistic_blind46": {
                "could twitching be ms",
                "help",
                "how do i stop a cramp",
                "how do i stop getting cramps",
                "how does this work",
                "i can't get to sleep at night any tips",
                "is a spasm just a really big twitch",
                "is twitching a sign of something serious",
                "play some bob marley",
                "put radio two on",
                "what brings on a muscle spasm",
                "what can i ask you",
                "what can you do",
                "what causes twitching",
                "what do you know about",
                "what foods stop twitching",
                "what sort of questions do you answer",
                "when should i see a doctor about twitching",
                "why do i get cramps in my legs at night",
                "why does my eye keep twitching",
              },
              "realistic_blind47": {
                "back spasm help",
                "call my daughter",
                "can my tablets give me muscle cramps",
                "help",
                "how does this work",
                "is magnesium good for twitching",
                "my back's gone into spasm what do i do",
                "salt tablets for cramps good idea or not",
                "what brings on a muscle spasm",
                "what's in the news today",
                "what's the capital of ghana",
                "when should i see a doctor about twitching",
                "why does my eyelid keep jumping",
              },
              "realistic_blind48": {
                "good morning",
                "heat or ice for a cramp",
                "help",
                "how many calories in a samosa",
                "is eye twitching serious",
                "what can you do",
                "what foods stop twitching",
                "what is causing muscle spasms",
                "what medicine is good for muscle spasms",
                "when should i see a doctor about cramps",
              },
              "realistic_blind50": {
                "are you a doctor or what",
                "cramp cramp what do i do",
                "help",
                "how do i ease a back spasm",
                "how do i prevent muscle spasms",
                "how tall is the eiffel tower",
                "is twitching a sign of something serious",
                "play radio two",
                "twitch or spasm",
                "what are the signs of a stroke",
                "what are you for",
                "what can you do",
                "what causes muscle spasms",
                "what do you know about",
                "what's the news",
                "when should i see a doctor about twitching",
                "why does my eye keep twitching",
              },
              "realistic_blind51": {
                "are you a doctor or what",
                "can my blood pressure pills give me cramps",
                "can you tell me what you're able to help with",
                "do i need to go to the gp for my cramps",
                "help",
                "how do i stop a cramp right now",
                "how long should a twitch last before i get it checked",
                "how tall is the eiffel tower",
                "i can't get to sleep at night any tips",
                "is a twitch the same thing as a spasm or are they different",
                "my back's gone into spasm what do i do",
                "my ear feels blocked after swimming",
                "play some reggae",
                "should i rest or keep moving with a back spasm",
                "spell necessary",
                "what can i ask you",
                "what can you do",
                "what causes muscle spasms",
                "what causes twitches",
                "what helps with a muscle spasm",
                "what sort of questions do you answer",
                "what's in the news today",
                "what's the capital of ghana",
                "when should i see a doctor about a twitch",
                "why does my eye keep twitching",
              },
              "realistic_blind52": {
                "are you a doctor or what",
                "help",
                "how many teaspoons in a tablespoon",
                "is there a way to prevent muscle spasms",
                "my back's gone into spasm what do i do",
                "my daughter set you up for me what do i do now",
                "play radio two",
                "should i be worried about my eyelid twitching",
                "should i rest or keep moving with a back spasm",
                "twitch versus spasm",
                "what can you do",
                "what causes twitching",
                "what sort of questions do you answer",
                "what triggers a cramp",
                "what's the reason for spasms",
                "when is a cramp bad enough for the doctor",
                "when should i see a doctor about twitching",
              },
              "realistic_blind53": {
                "are you a doctor or what are you",
                "do bananas really help with cramp",
                "good night",
                "he's choking",
                "help",
                "how can i stop getting cramps",
                "how do i prevent muscle spasms",
                "how do i stop a cramp",
                "how tall is the eiffel tower",
                "is muscle twitching a sign of something serious",
                "play some reggae",
                "play the latest episode of my podcast",
                "should i rest or keep moving with a back spasm",
                "should i take magnesium for cramps",
                "turn the lights off in the living room",
                "twitch versus spasm",
                "what can i ask you",
                "what can you do",
                "what causes muscle spasms",
                "what causes muscle twitches",
                "what medicine for cramp",
                "what questions should i ask the doctor about my spasms",
                "what sort of questions do you answer",
                "what's the difference between a twitch and a spasm",
                "what's the news today",
                "when should i see a doctor about twitching",
                "why does my back spasm when i sneeze",
                "why does my eye keep twitching",
                "will they do blood tests for cramps",
              },
              "realistic_blind54": {
                "could twitching be als",
                "does drinking more water prevent cramp",
                "heat or ice for a spasm",
                "help",
                "i can't get to sleep at night any tips",
                "is magnesium good for twitching",
                "play some reggae",
                "should i rest or keep moving with a back spasm",
                "twitch or spasm",
                "what are you for",
                "what can i ask you",
                "what can you do",
                "what sort of questions can you answer",
                "when should i see a doctor about twitching",
              },
              "realistic_blind55": {
                "are you a doctor or what",
                "help",
                "i can't get to sleep at night any tips",
                "is a spasm basically just a really big twitch",
                "is my twitch serious",
                "put radio two on",
                "twitch or spasm",
                "what are you for",
                "what can you do",
                "what kind of questions do you answer",
                "when's the next bus into town",
              },
              "realistic_blind49": {
                "are you a doctor or what",
                "can my tablets cause muscle twitching",
                "help",
                "hot or cold for spasm",
                "how do i stop a cramp right now",
                "i don't know what to say to you",
                "me back's gone into spasm what do i do",
                "what can you do",
                "what causes muscle spasms",
                "what vitamins are good for twitching",
                "when should i see a doctor about twitching",
              },
              "realistic_blind41": {
                "are you a doctor or what",
                "can my blood pressure tablets cause cramps",
                "help",
                "how do i know if my twitches are the bad kind",
                "how do i stop a cramp",
                "how do i talk to you",
                "how does this work",
                "how long does a back spasm last",
                "is muscle twitching a sign of als",
                "my asthma inhaler makes my hands shaky and twitchy is that normal",
                "my back's gone into spasm what do i do",
                "should i rest or keep moving with a back spasm",
                "turn the big light off",
                "what are you for",
                "what can i ask you",
                "what can i take for cramp",
                "what can you do",
                "what causes muscle spasms",
                "what's in the news today",
                "when should i see a doctor about twitching",
                "why do i get cramp in me legs at night",
                "why does my eye keep twitching",
              },
              "realistic_blind40": {
                "does magnesium help cramps",
                "help",
                "is twitching a sign of als",
                "should i be worried about my eyelid twitch",
                "stretch it or rub it which is better for cramp",
                "what can you do",
                "what do you do if someone is choking",
                "what makes a muscle twitch",
                "what medicine is good for muscle spasm",
                "what's in the news",
                "when should i see a doctor about twitching",
                "why do i keep getting cramps in me legs at night",
              },
              "realistic_blind39": {
                "are muscle relaxants any good for cramps",
                "can heatstroke cause cramps",
                "help",
                "is muscle twitching a sign of something serious",
                "sing me a song",
                "what are the signs of meningitis",
                "what can you do",
                "what causes muscle spasms",
                "what do you know about",
                "what kind of questions do you answer",
                "what's a normal blood pressure",
                "what's the news today",
                "when should i see a doctor about twitching",
              },
              "realistic_blind38": {
                "are muscle relaxants any good for spasms",
                "can i take ibuprofen for a back spasm",
                "can my tablets give me cramps",
                "help",
                "how can i stop getting cramps",
                "how do i stop a cramp",
                "is eye twitching serious",
                "play some reggae",
                "what are you for",
                "what can you do",
                "what's the score in the cricket",
                "what's the weather like tomorrow",
                "when should i see a doctor about twitching",
                "why do i get cramps in my legs at night",
                "why does my eye keep twitching",
                "will they do blood tests for cramps",
              },
              "realistic_blind37": {
                "are you a doctor or what are you",
                "can my tablets cause cramps",
                "help",
                "how do i get rid of a cold fast",
                "how do i use you",
                "is eye twitching serious",
                "put radio two on",
                "turn the lights off in the living room",
                "what are my options",
                "what can you do",
                "what causes muscle spasms",
                "what do you know about",
                "what's the news today",
                "when should i see a doctor about twitching",
              },
              "realistic_blind36": {
                "can my blood pressure tablets cause cramps",
                "help",
                "how tall is the eiffel tower",
                "is eye twitching serious",
                "what can i do to prevent muscle spasms",
                "what can you do",
                "what causes muscle twitching",
                "what's in the news today",
                "when should i see a doctor about twitching",
              },
              "realistic_blind35": {
                "he's on the floor shaking all over and his eyes have rolled back",
                "how do i use you",
                "how tall is the eiffel tower",
                "options please",
                "play some reggae",
                "should i keep a diary of the twitches before my appointment",
                "what can i ask you",
                "what can you do",
                "what causes muscle spasms",
                "what foods stop cramps",
                "what kind of questions do you answer",
                "what's the news today",
                "when should i see a doctor about twitching",
              },
              "realistic_blind34": {
                "add milk and eggs to my shopping list",
                "help",
                "how do i get rid of a cold fast",
                "how tall is the eiffel tower",
                "play some reggae",
                "what can you do",
                "what's a normal blood pressure reading",
                "what's the news today",
              },
              "realistic_blind33": {
                "what can you do",
                "when's the next bus into town",
              },
              "realistic_blind32": {
                "help",
                "how do i get a red wine stain out of the carpet",
                "what can you help me with",
              },
              "realistic_blind31": {
                "spell necessary for me",
                "what can you help me with",
                "when should i see a doctor about a twitch",
              },
              "realistic_blind30": {
                "how many teaspoons in a tablespoon",
              },
              "realistic_blind29": {
                "are muscle relaxants any good for cramps",
                "do bananas actually help with cramps",
                "i'm vegan could i be missing something that causes cramps",
                "what can you help me with",
              },
              "realistic_blind27": {
                "should i keep a diary of the twitches before my appointment",
                "what can you do",
                "what kind of questions do you answer",
                "when should i see a doctor about twitching",
              },
              "realistic_blind26": {
                "salt tablets for cramps good idea or no",
              },
              "realistic_blind25": {
                "convert fifty dollars to pounds",
              },
              "realistic_blind24": {
                "does magnesium actually help with cramps",
                "turn the lights off in the lounge",
                "what sort of questions do you answer",
                "what's in the news today",
                "when is diwali this year",
              },
              "realistic_blind23": {
                "help",
                "how do i get a red wine stain out of the carpet",
                "what can you help me with",
                "when should i see a doctor about twitching",
              },
              "realistic_blind22": {
                "what can you help me with",
                "what's a good film to watch tonight",
              },
              "realistic_blind21": {
                "help",
                "is intermittent fasting safe",
                "what sort of things do you know about",
              },
              "realistic_blind20": {
                "can my tablets be causing muscle cramps",
                "help",
                "should i keep a diary of the twitches before my appointment",
                "what can you help me with",
                "when should i see a doctor about a twitch",
              },
              "realistic_blind19": {
                "spell necessary for me",
                "turn the lights off in the living room",
              },
              "realistic_blind18": {
                "help",
                "sing me a song",
                "what can you help me with",
              },
              "realistic_blind17": {
                "be honest with me can twitching mean motor neurone disease",
                "turn the lights off in the living room",
                "what can you help me with",
                "what's the best sunscreen for kids",
                "when should i see a doctor about a twitch",
              },
              "realistic_blind16": {
                "are muscle relaxants any good for cramps",
                "can i take ibuprofen for a back spasm",
                "how can you help me",
                "will they do blood tests for cramps",
              },
              "realistic_blind15": {
                "my cat's tail keeps twitching is she annoyed with me",
              },
              "realistic_blind14": {
                "since starting the cholesterol tablets my thighs ache all the time",
              },
              "realistic_blind13": {
                "are muscle relaxants any good for spasms",
                "what can you do",
                "what do you know about",
                "when should i see a doctor about twitching",
              },
              "realistic_blind12": {
                "are there any tablets that stop twitching",
                "how do i know if my twitching is the harmless kind",
                "what's good for dandruff",
              },
              "realistic_blind10": {
                "can i still go to work with a back spasm",
                "can my blood pressure tablets give me cramps",
                "is it ice or heat for a muscle spasm",
                "should i be eating bananas for leg cramps", "twitching versus spasms",
                "what can you do", "what rhymes with cramp", "who won the cricket last night"}}


class Samples:
    """Everything the matcher, the recogniser's language model and the sign index are built
    from: the expanded sample sentences, the examples, the red-flag phrases and the flags'
    examples and references, normalised; also in order of length."""

    def __init__(self, content):
        built_from = [*content.domain_sentences().values(), *content.examples.values(),
                      *(texts for flag in content.red_flags
                        for texts in (*flag.examples.values(), *flag.references.values()))]
        self.all = {normalize(s) for sentences in built_from for s in sentences}
        self._by_length = sorted(self.all, key=len)
        self._lengths = [len(sample) for sample in self._by_length]

    def near_copy(self, text: str) -> str | None:
        """A sample within NEAR_COPY of `text` by fuzz.ratio, if any.

        fuzz.ratio of texts of lengths a and b is at most 100 * 2 * min(a, b) / (a + b), so
        only samples of about the same length can be that near: the same answer as comparing
        with every sample, without comparing with the many that cannot match.
        """
        shortest = math.floor(len(text) * NEAR_COPY / (200 - NEAR_COPY))
        longest = math.ceil(len(text) * (200 - NEAR_COPY) / NEAR_COPY)
        choices = self._by_length[bisect_left(self._lengths, shortest):
                                  bisect_right(self._lengths, longest)]
        near = process.extractOne(text, choices, scorer=fuzz.ratio, score_cutoff=NEAR_COPY)
        return near[0] if near else None


@pytest.fixture(scope="module")
def samples(content) -> Samples:
    return Samples(content)


@pytest.mark.parametrize("folder", HELD_OUT_SETS, ids=[folder.name for folder in HELD_OUT_SETS])
def test_nothing_is_copied_from_the_sample_sentences(samples, folder):
    """Short triage answers ("maybe", "not sure") are a closed class the content must list, so
    answers of up to SHORT_ANSWER words are exempt; everything else must be unseen."""
    copied = []
    for name, shape in FILES.items():
        if not (folder / name).is_file():  # the blind set has no triage answers
            continue
        for row in read(name, folder):
            text = normalize(row[shape.spoken])
            if name == "triage.csv" and len(text.split()) <= SHORT_ANSWER:
                continue
            if text in COINCIDENT.get(folder.name, ()):
                continue
            near = samples.near_copy(text)
            if text in samples.all or near:
                copied.append(f"{name}: {row[shape.spoken]!r} ~ {near or text!r}")
    assert not copied, "realistic items found among the sample sentences:\n" + "\n".join(copied)


def test_everyday_labels_are_domain_intents_of_the_content(content):
    rows = read("everyday.csv")
    labels = Counter(label for row in rows for label in row["intents"].split("|"))
    unknown = set(labels) - set(content.intents)
    assert not unknown, f"not intents of the content: {sorted(unknown)}"
    assert "fallback" not in labels, "out-of-domain items belong in out_of_domain.csv"
    thin = {label: n for label, n in labels.items() if n < MIN_PER_INTENT}
    assert not thin, f"intents with fewer than {MIN_PER_INTENT} questions: {thin}"
    assert all(len(row["intents"].split("|")) <= 2 for row in rows)


def test_alarm_files_use_their_vocabularies():
    emergency = Counter(row["concept"] for row in read("emergency.csv"))
    assert set(emergency) == EMERGENCY_CONCEPTS
    assert min(emergency.values()) >= MIN_PER_EMERGENCY_CONCEPT, emergency
    assert set(Counter(row["concept"] for row in read("urgent.csv"))) == URGENT_CONCEPTS
    kinds = Counter(row["kind"] for row in read("nonalarm.csv"))
    assert set(kinds) == set(NONALARM_KINDS)
    assert all(kinds[kind] >= n for kind, n in NONALARM_KINDS.items()), kinds


def test_triage_answers_are_valid():
    rows = read("triage.csv")
    assert {row["question"] for row in rows} == TRIAGE_QUESTIONS
    assert {row["expected"] for row in rows} == TRIAGE_ANSWERS
    for row in rows:
        if row["days"]:
            assert row["days"].isdigit() and int(row["days"]) > 0, row
            assert row["expected"] != "unknown", f"a stated duration is an answer: {row}"


# --- the spoken subset (audio_fixtures/realistic/, made by tools/fixturegen.py --realistic) ---

SPOKEN = REALISTIC.parents[1] / "audio_fixtures" / "realistic"
SPOKEN_COLUMNS = ("file", "source", "text", "label", "voice", "rate", "pitch")
SPOKEN_MINIMUM = {
    "everyday.csv": 80,
    "emergency.csv": 70,
    "urgent.csv": 20,
    "nonalarm.csv": 20,
    "out_of_domain.csv": 30,
}
SPOKEN_VOICES = {"flite-slt", "flite-rms", "flite-awb", "flite-kal16"}
SPOKEN_MAX_BYTES = 25_000_000


@pytest.fixture(scope="module")
def spoken_rows() -> list[dict[str, str]]:
    with (SPOKEN / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert tuple(reader.fieldnames) == SPOKEN_COLUMNS
        return list(reader)


def test_every_spoken_item_is_a_readable_16_khz_mono_wav(spoken_rows):
    root = REALISTIC.parents[1]
    bad = []
    for row in spoken_rows:
        path = root / row["file"]
        try:
            info = sf.info(path)
        except (OSError, RuntimeError) as exc:
            bad.append(f"{row['file']}: {exc}")
            continue
        if (info.format, info.samplerate, info.channels) != ("WAV", 16_000, 1) or not info.frames:
            bad.append(f"{row['file']}: {info.format} {info.samplerate} Hz {info.channels} ch")
    assert not bad, "\n".join(bad)
    on_disk = {p.relative_to(root).as_posix() for p in SPOKEN.glob("*.wav")}
    assert on_disk == {row["file"] for row in spoken_rows}, "WAVs outside the manifest"
    assert sum(p.stat().st_size for p in SPOKEN.glob("*.wav")) < SPOKEN_MAX_BYTES


def test_spoken_items_come_from_the_set_with_their_labels(spoken_rows):
    label_of = {
        name: {row[FILES[name].spoken]: row.get(FILES[name].columns[1]) for row in read(name)}
        for name in SPOKEN_MINIMUM
    }
    label_of["out_of_domain.csv"] = dict.fromkeys(label_of["out_of_domain.csv"], "fallback")
    for row in spoken_rows:
        assert label_of[row["source"]].get(row["text"]) == row["label"], row
    per_source = Counter(row["source"] for row in spoken_rows)
    assert all(per_source[name] >= n for name, n in SPOKEN_MINIMUM.items()), per_source
    voices = Counter((row["source"], row["voice"]) for row in spoken_rows)
    assert {voice for _, voice in voices} == SPOKEN_VOICES
    assert all(voices[name, voice] for name in SPOKEN_MINIMUM for voice in SPOKEN_VOICES)
    assert len({row["rate"] for row in spoken_rows}) >= 2
