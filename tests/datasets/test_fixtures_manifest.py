"""The spoken test fixtures (audio_fixtures/) are complete, well-formed and match their generator.

Benchmarks and audio tests trust manifest.csv blindly, so a missing file, a wrong sample rate
or a noise level that is off would silently skew every number measured on them.
"""

from __future__ import annotations

import csv
import importlib.util
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import ROOT

FIXTURES = ROOT / "audio_fixtures"
MANIFEST = FIXTURES / "manifest.csv"
REALISTIC = FIXTURES / "realistic"  # the held-out set's spoken subset, with its own manifest
COLUMNS = [
    "file", "text", "intent", "outcome", "voice", "rate", "pitch", "condition", "conversation",
    "turn", "family",
]  # fmt: skip
INTENTS = [
    "twitch_vs_spasm", "twitch_causes", "spasm_causes", "twitch_serious", "spasm_relief",
    "spasm_prevention", "when_to_see_doctor", "doctor_visit", "back_spasm", "medication",
    "nutrition", "emergency", "repeat", "slower", "stop", "help", "more", "yes", "no", "back",
    "start_over", "goodbye", "fallback",
]  # fmt: skip
OUTCOMES = {"", "self_care", "see_doctor", "urgent", "emergency"}
FLITE_VOICES = {"slt", "rms", "awb", "kal16"}
FIRST_VOICE = "flite-slt"  # at flite's defaults (empty rate and pitch): the benchmark baseline


def load_fixturegen():
    """tools/ is not a package: load the generator module from its path."""
    spec = importlib.util.spec_from_file_location("fixturegen", ROOT / "tools" / "fixturegen.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fixturegen"] = module
    spec.loader.exec_module(module)
    return module


fixturegen = load_fixturegen()


@pytest.fixture(scope="module")
def rows() -> list[dict]:
    with MANIFEST.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == COLUMNS
        return list(reader)


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    """A committed clean question, the speech the noise tests mix into."""
    samples, _ = sf.read(FIXTURES / "clean" / "spasm_relief__1__flite-slt.wav", dtype="int16")
    return samples


def test_every_file_exists_and_is_16k_mono_int16_of_sane_length(rows):
    problems = []
    for row in rows:
        path = ROOT / row["file"]
        if not path.is_file():
            problems.append(f"{row['file']}: missing")
            continue
        info = sf.info(path)
        if (info.samplerate, info.channels, info.subtype) != (16000, 1, "PCM_16"):
            format_ = f"{info.samplerate} Hz, {info.channels} ch, {info.subtype}"
            problems.append(f"{row['file']}: {format_}")
        if not 0.5 <= info.duration <= 10:
            problems.append(f"{row['file']}: {info.duration:.2f} s")
    assert not problems, "\n".join(problems)


def test_no_wav_outside_the_manifest(rows):
    listed = {row["file"] for row in rows}
    wavs = [p for p in FIXTURES.rglob("*.wav") if REALISTIC not in p.parents]
    assert {p.relative_to(ROOT).as_posix() for p in wavs} == listed


def test_every_intent_has_clean_single_turn_rows(rows):
    clean = {r["intent"] for r in rows if r["condition"] == "clean" and not r["conversation"]}
    assert set(INTENTS) <= clean
    assert sum(r["intent"] == "fallback" and r["condition"] == "clean" for r in rows) >= 15


def single_turn_clean(rows: list[dict]) -> list[dict]:
    return [r for r in rows if r["condition"] == "clean" and not r["conversation"]]


def test_rows_are_well_formed(rows):
    for row in rows:
        assert row["text"].strip(), row
        assert row["outcome"] in OUTCOMES, row
        family, _, name = row["voice"].partition("-")
        assert family == row["family"] and family in {"flite", "espeak"}, row
        if family == "espeak":
            assert 140 <= int(row["rate"]) <= 190, row
            assert 35 <= int(row["pitch"]) <= 65, row
        else:  # empty: the voice's own default
            assert name in FLITE_VOICES, row
            assert row["rate"] == "" or 0.85 <= float(row["rate"]) <= 1.2, row
            assert row["pitch"] == "" or 80 <= int(row["pitch"]) <= 200, row
            assert row["pitch"] == "" or name != "rms", row  # rms ignores int_f0_target_mean
        kind = row["condition"].split("_")[0]
        assert row["condition"] == "clean" or kind in {"white", "pink", "babble"}, row
    emergency = [r for r in rows if r["intent"] == "emergency"]
    assert emergency and all(r["outcome"] == "emergency" for r in emergency)


def test_both_families_are_present_and_natural_voices_dominate(rows):
    clean = single_turn_clean(rows)
    families = [r["family"] for r in clean]
    assert set(families) == {"flite", "espeak"}
    assert families.count("flite") >= 2 * families.count("espeak")
    assert {r["voice"] for r in clean if r["family"] == "flite"} == {
        f"flite-{name}" for name in FLITE_VOICES
    }
    espeak_intents = {r["intent"] for r in clean if r["family"] == "espeak"}
    assert set(INTENTS) <= espeak_intents  # the hard robotic voices reach every intent
    assert all(r["family"] == "flite" for r in rows if r["conversation"])


def test_every_phrasing_has_two_flite_voices(rows):
    flite = defaultdict(set)
    for row in single_turn_clean(rows):
        flite[row["intent"], row["text"]].add(row["voice"] if row["family"] == "flite" else None)
    for phrasing, voices in flite.items():
        assert len(voices - {None}) >= 2, phrasing


def test_first_voice_leads_phrasing_1_and_has_the_noisy_copies(rows):
    """Benchmarks take the first row of each text as its voice for the noise conditions."""
    first: dict[str, dict] = {}
    for row in single_turn_clean(rows):
        first.setdefault(row["text"], row)
    assert all(r["family"] == "flite" for r in first.values())
    baseline = {
        r["file"] for r in first.values()
        if r["voice"] == FIRST_VOICE and r["rate"] == r["pitch"] == ""
    }  # fmt: skip
    phrasing_1 = {f"audio_fixtures/clean/{intent}__1__{FIRST_VOICE}.wav" for intent in INTENTS}
    assert phrasing_1 <= baseline
    noisy = defaultdict(set)
    for row in rows:
        if row["condition"] != "clean":
            noisy[row["condition"]].add(f"audio_fixtures/clean/{Path(row['file']).name}")
    assert set(noisy) == {"white_10", "pink_10", "babble_10"}
    assert all(files == phrasing_1 for files in noisy.values())


def test_conversations_have_consecutive_turns_in_one_voice(rows):
    turns = defaultdict(list)
    for row in rows:
        if row["conversation"]:
            turns[row["conversation"]].append(row)
    assert len(turns) >= 12
    base = defaultdict(set)
    for conv, conv_rows in turns.items():
        name, _, voice = conv.rpartition("__")
        assert conv_rows[0]["voice"] == f"flite-{voice}", conv
        base[name].add(voice)
    assert all(voices == {"slt", "rms"} for voices in base.values()), base
    for conv, conv_rows in turns.items():
        numbers = sorted(int(r["turn"]) for r in conv_rows)
        assert numbers == list(range(1, len(numbers) + 1)), conv
        assert len(numbers) >= 2, conv
        assert len({(r["voice"], r["rate"], r["pitch"]) for r in conv_rows}) == 1, conv
    for row in rows:
        assert bool(row["conversation"]) == bool(row["turn"]), row


def test_triage_conversations_end_in_the_expected_advice(rows):
    outcomes = defaultdict(list)
    for row in rows:
        if row["conversation"] and row["outcome"]:
            outcomes[row["conversation"]].append(row["outcome"])
    assert {"self_care", "see_doctor", "urgent", "emergency"} <= {
        o for values in outcomes.values() for o in values
    }


def test_manifest_matches_the_generator(rows):
    """Editing texts or voices in tools/fixturegen.py needs a regeneration; catch a stale set."""
    expected = [fixturegen.asdict(job.row) for job in fixturegen.all_jobs()]
    got = [{**row, "file": row["file"].removeprefix("audio_fixtures/")} for row in rows]
    expected = [{k: str(v) for k, v in row.items()} for row in expected]
    assert got == expected, "run: python tools/fixturegen.py"


def measured_snr(clean: np.ndarray, noisy: np.ndarray) -> float:
    """SNR as add_noise defines it: active speech RMS against RMS of (noisy - clean)."""
    noise = noisy.astype(np.float64) - clean.astype(np.float64)
    return 20 * np.log10(fixturegen.active_rms(clean) / fixturegen.rms(noise / 32768))


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
@pytest.mark.parametrize("snr_db", [20.0, 10.0, 5.0])
def test_add_noise_hits_the_requested_snr(speech, kind, snr_db):
    noisy = fixturegen.add_noise(speech, kind, snr_db, seed=7)
    assert noisy.dtype == np.int16 and noisy.shape == speech.shape
    assert measured_snr(speech, noisy) == pytest.approx(snr_db, abs=0.5)


@pytest.mark.parametrize("kind", ["white", "pink", "babble"])
def test_add_noise_keeps_the_snr_when_it_must_scale_against_clipping(speech, kind):
    noisy = fixturegen.add_noise(speech, kind, -5.0, seed=3)
    assert np.abs(noisy.astype(np.int32)).max() < 32767
    assert fixturegen.measure_snr(speech, noisy) == pytest.approx(-5.0, abs=0.5)


def test_add_noise_is_deterministic_and_takes_float_input(speech):
    first = fixturegen.add_noise(speech, "pink", 10, seed=1)
    assert np.array_equal(first, fixturegen.add_noise(speech, "pink", 10, seed=1))
    assert not np.array_equal(first, fixturegen.add_noise(speech, "pink", 10, seed=2))
    from_float = fixturegen.add_noise(speech / 32768.0, "pink", 10, seed=1)
    assert np.abs(from_float.astype(int) - first.astype(int)).max() <= 1
    with pytest.raises(ValueError, match="unknown noise kind"):
        fixturegen.add_noise(speech, "brown", 10, seed=1)


def test_pink_noise_falls_about_3_db_per_octave():
    noise = fixturegen.make_noise("pink", 2**16, seed=0)
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / 16000)
    band = (freqs > 50) & (freqs < 7000)
    slope = np.polyfit(np.log10(freqs[band]), np.log10(power[band]), 1)[0]
    assert slope == pytest.approx(-1.0, abs=0.1)


def test_committed_noisy_copies_are_at_their_snr(rows):
    for row in rows:
        if row["condition"] == "clean":
            continue
        snr = row["condition"].split("_")[1]
        clean_file = ROOT / "audio_fixtures" / "clean" / Path(row["file"]).name
        clean, _ = sf.read(clean_file, dtype="int16")
        noisy, _ = sf.read(ROOT / row["file"], dtype="int16")
        assert fixturegen.measure_snr(clean, noisy) == pytest.approx(float(snr), abs=0.5), row
