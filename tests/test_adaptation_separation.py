"""The acoustic adaptation (tools/adapt_acoustic.py) shares nothing with what measures it.

The speech benchmark and the tests hear the fixtures (audio_fixtures/) and the bench sets; a
transform learnt from any of their sentences or voices would flatter the figures it is judged
by. So no adaptation sentence may be, even nearly, a fixture text, a bench text or a sentence
the skill is built from, and no adaptation voice (nor its espeak-ng variant) may speak a fixture
or the fixtures' babble.
"""

from __future__ import annotations

import csv
from pathlib import Path

from rapidfuzz import fuzz, process

import adapt_acoustic
import fixturegen
from voiceskill.content import load_content, normalize

ROOT = Path(__file__).resolve().parents[1]
NEAR_COPY = 90  # fuzz.ratio: a sentence with a word or two changed


def adaptation_voices() -> set[fixturegen.Voice]:
    sentences = adapt_acoustic.sentences()
    return {adapt_acoustic.voice_for(s, copy) for s in sentences for copy in range(4)}


def manifests() -> list[Path]:
    return sorted((ROOT / "audio_fixtures").rglob("manifest.csv"))


def measured_texts() -> set[str]:
    """Every text cell of the fixture manifests and the bench sets, plus the fixture phrasings."""
    texts = set(fixturegen.BABBLE_SENTENCES)
    texts.update(t for phrasings in fixturegen.PHRASES.values() for t in phrasings)
    for path in [*manifests(), *sorted((ROOT / "bench").rglob("*.csv"))]:
        with path.open(encoding="utf-8") as handle:
            for row in csv.reader(handle):
                texts.update(cell for cell in row if len(cell.split()) >= 3)
    return {normalize(t) for t in texts}


def test_there_is_enough_adaptation_text_and_it_is_plain_words():
    sentences = adapt_acoustic.sentences()
    assert len(sentences) >= 200
    assert len(set(sentences)) == len(sentences)


def test_no_adaptation_sentence_is_a_fixture_or_bench_text_or_near_one():
    measured = sorted(measured_texts())
    for sentence in adapt_acoustic.sentences():
        match = process.extractOne(normalize(sentence), measured, scorer=fuzz.ratio)
        assert match[1] < NEAR_COPY, f"{sentence!r} is close to measured text {match[0]!r}"


def test_no_adaptation_sentence_is_one_the_skill_is_built_from():
    built = {normalize(s) for group in load_content().domain_sentences().values() for s in group}
    copied = [s for s in adapt_acoustic.sentences() if normalize(s) in built]
    assert not copied


def test_no_adaptation_voice_speaks_a_fixture_or_the_babble():
    fixture_tags = {fixturegen.Voice(*v).tag for v in fixturegen.BABBLE_VOICES}
    for path in manifests():
        with path.open(encoding="utf-8") as handle:
            fixture_tags.update(row["voice"] for row in csv.DictReader(handle))
    fixture_variants = {tag.partition("_")[2] for tag in fixture_tags if "_" in tag}
    voices = adaptation_voices()
    assert {v.family for v in voices} == {"festival", "espeak"}
    for voice in voices:
        assert voice.tag not in fixture_tags
        if voice.family == "espeak":
            assert voice.name.partition("+")[2] not in fixture_variants, voice
        else:  # festival's diphone speakers: kal is flite's kal16
            assert not any(voice.name.startswith(f) for f in fixturegen.FLITE_VOICES), voice
