"""The acoustic adaptation pocketsphinx decodes with (tools/adapt_acoustic.py's MLLR transform).

Real recogniser, real fixtures: the shipped transform is applied by default, changes what is
heard in noise, and still hears clean speech; it can be turned off or replaced for benchmarks,
and a missing file is one clear error.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from voiceskill.asr import (
    ADAPTATION_ENV,
    ROOM_ADAPTATION,
    EngineUnavailable,
    acoustic_adaptation,
    create_recognizer,
    transcribe_file,
)
from voiceskill.content import load_content

ROOT = Path(__file__).parents[1]
NOISY = sorted((ROOT / "audio_fixtures" / "noisy" / "babble_10").glob("*.wav"))[:8]
CLEAN = ROOT / "audio_fixtures" / "clean" / "twitch_vs_spasm__1__flite-slt.wav"


def recognizer(monkeypatch, cache_dir: Path, adaptation: str):
    monkeypatch.setenv(ADAPTATION_ENV, adaptation)
    return create_recognizer("pocketsphinx", load_content().domain_sentences(),
                             cache_dir=cache_dir)


def test_the_shipped_transform_is_used_by_default(monkeypatch):
    monkeypatch.delenv(ADAPTATION_ENV, raising=False)
    assert acoustic_adaptation() == ROOM_ADAPTATION
    lines = ROOM_ADAPTATION.read_text().split("\n", 3)
    assert lines[:3] == ["1", "3", "13"]  # one class, three feature streams of 13


def test_adaptation_can_be_turned_off_or_replaced(monkeypatch, tmp_path):
    monkeypatch.setenv(ADAPTATION_ENV, "none")
    assert acoustic_adaptation() is None
    monkeypatch.setenv(ADAPTATION_ENV, str(ROOM_ADAPTATION))
    assert acoustic_adaptation() == ROOM_ADAPTATION
    monkeypatch.setenv(ADAPTATION_ENV, str(tmp_path / "missing.mllr"))
    with pytest.raises(EngineUnavailable, match=r"missing\.mllr") as error:
        acoustic_adaptation()
    assert "\n" not in str(error.value)


def test_the_transform_changes_what_is_heard_in_noise_and_keeps_clean_speech(
        monkeypatch, tmp_path):
    adapted = recognizer(monkeypatch, tmp_path, str(ROOM_ADAPTATION))
    plain = recognizer(monkeypatch, tmp_path, "none")
    heard = {path.name: (transcribe_file(adapted, path).text, transcribe_file(plain, path).text)
             for path in NOISY}
    assert any(a != p for a, p in heard.values()), heard
    clean = transcribe_file(adapted, CLEAN).text
    assert clean == "what's the difference between a twitch and a spasm"
