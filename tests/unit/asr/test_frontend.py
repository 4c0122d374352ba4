"""The speech-enhancement front-end with the real RNNoise and DeepFilterNet3 libraries, on the
real fixtures and fixturegen's noises."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from fixturegen import add_noise, make_noise
from helpers import ROOT
from voiceskill.asr.frontend import (
    FRONTENDS,
    EnhancerUnavailable,
    NoiseMeter,
    create_enhancer,
    with_frontend,
)
from voiceskill.audio import SAMPLE_RATE

SPEECH = ROOT / "audio_fixtures" / "clean" / "spasm_relief__1__flite-slt.wav"
NEURAL = [name for name in FRONTENDS if name != "none"]


def speech() -> np.ndarray:
    return sf.read(SPEECH, dtype="int16")[0]


def stream(enhancer, samples: np.ndarray, block: int) -> np.ndarray:
    return np.concatenate([enhancer.process(samples[i : i + block])
                           for i in range(0, len(samples), block)])


def level_db(samples: np.ndarray) -> float:
    return 10 * np.log10(np.mean(samples.astype(np.float64) ** 2) + 1.0)


@pytest.mark.parametrize("name", NEURAL)
def test_block_size_does_not_change_the_output(name):
    noisy = add_noise(speech(), "pink", 10, seed=3)
    enhancer = create_enhancer(name)
    in_30ms = stream(enhancer, noisy, 480)
    enhancer.reset()
    in_100ms = stream(enhancer, noisy, 1600)
    n = min(len(in_30ms), len(in_100ms))
    assert n > len(noisy) - 0.04 * SAMPLE_RATE  # all but the last few ms are out already
    assert np.abs(in_30ms[:n].astype(int) - in_100ms[:n]).max() <= 1


@pytest.mark.parametrize("name", NEURAL)
def test_delay_is_at_most_40_ms(name):
    clean = speech()
    out = stream(create_enhancer(name), np.concatenate([clean, np.zeros(1600, np.int16)]), 480)
    n = min(len(out), len(clean))
    lags = [float(np.dot(out[lag:n].astype(float), clean[: n - lag])) for lag in range(0, 1600, 16)]
    assert np.argmax(lags) * 16 <= 0.040 * SAMPLE_RATE


@pytest.mark.parametrize(("name", "noise", "drop_db", "loss_db"), [
    ("rnnoise", "white", 10, 6), ("auto", "white", 10, 6),
    # babble is made of speech: DeepFilterNet3 takes out less of it and more of the question
    ("deepfilter", "babble", 4, 11), ("auto", "babble", 4, 11),
])
def test_noise_is_taken_out_and_speech_kept(name, noise, drop_db, loss_db):
    """2 s of the room, then the question at 10 dB SNR: the room alone drops by `drop_db`,
    the question by no more than `loss_db`."""
    lead = 2 * SAMPLE_RATE
    clean = np.concatenate([np.zeros(lead, np.int16), speech()])
    noisy = add_noise(clean, noise, 10, seed=5)
    out = stream(create_enhancer(name), noisy, 480)
    room_only = slice(lead - SAMPLE_RATE // 2, lead)
    assert level_db(noisy[room_only]) - level_db(out[room_only]) >= drop_db
    loud = slice(lead + SAMPLE_RATE // 2, len(out))
    assert level_db(noisy[loud]) - level_db(out[loud]) <= loss_db


@pytest.mark.parametrize(("noise", "speech_like"), [("white", False), ("pink", False),
                                                    ("babble", True)])
def test_noise_meter_tells_steady_noise_from_babble(noise, speech_like):
    meter = NoiseMeter()
    meter.add((make_noise(noise, 3 * SAMPLE_RATE, seed=2) * 3000).astype(np.int16))
    assert meter.speech_like() is speech_like


def test_auto_switches_to_rnnoise_in_steady_noise_and_back_in_babble():
    enhancer = create_enhancer("auto")
    stream(enhancer, (make_noise("white", 3 * SAMPLE_RATE, seed=1) * 3000).astype(np.int16), 480)
    assert enhancer.use_steady
    stream(enhancer, (make_noise("babble", 4 * SAMPLE_RATE, seed=1) * 3000).astype(np.int16), 480)
    assert not enhancer.use_steady


class RecordingEngine:
    """Stands in for the recogniser to see exactly what the front-end passes on."""

    name = "recording"
    oov_words = ()

    def __init__(self) -> None:
        self.heard: list[np.ndarray] = []

    def start_utterance(self) -> None:
        pass

    def feed(self, pcm):
        self.heard.append(pcm)

    def end_utterance(self):
        return None


def test_the_enhancer_keeps_its_state_from_one_utterance_to_the_next():
    noisy = add_noise(np.concatenate([speech(), speech()]), "pink", 10, seed=4)
    engine = RecordingEngine()
    recognizer = with_frontend(engine, create_enhancer("rnnoise"))
    half = len(noisy) // 2
    for part in (noisy[:half], noisy[half:]):
        recognizer.start_utterance()
        for i in range(0, len(part), 480):
            recognizer.feed(part[i : i + 480])
        recognizer.end_utterance()
    one_stream = stream(create_enhancer("rnnoise"), noisy, 480)
    assert np.array_equal(np.concatenate(engine.heard), one_stream)


def test_none_leaves_the_recognizer_bare():
    engine = RecordingEngine()
    assert with_frontend(engine, create_enhancer("none")) is engine


def test_a_missing_package_is_one_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "pyrnnoise", None)  # Python's own way to block an import
    with pytest.raises(EnhancerUnavailable, match=r"not installed \(pip install pyrnnoise\)"):
        create_enhancer("rnnoise")


def test_a_package_installed_without_its_library_is_one_clear_error(monkeypatch, tmp_path):
    (tmp_path / "pyrnnoise").mkdir()
    (tmp_path / "pyrnnoise" / "__init__.py").write_text("")
    monkeypatch.delitem(sys.modules, "pyrnnoise", raising=False)
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(EnhancerUnavailable, match=r"installed without librnnoise\.so"):
        create_enhancer("rnnoise")


@pytest.mark.parametrize("frontend", ["none", "auto"])
def test_replay_hears_a_noisy_question_through_each_frontend(frontend):
    wav = ROOT / "audio_fixtures" / "noisy" / "pink_10" / "spasm_relief__1__flite-slt.wav"
    result = subprocess.run(
        [sys.executable, "-m", "voiceskill", "replay", "--json", "--no-speak", "--engine",
         "pocketsphinx", "--frontend", frontend, str(wav)],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert '"transcript"' in result.stdout


def test_an_unknown_frontend_is_refused_in_one_line():
    result = subprocess.run([sys.executable, "-m", "voiceskill", "replay", "--frontend", "magic",
                             str(SPEECH)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "invalid choice: 'magic'" in result.stderr
    assert "Traceback" not in result.stderr
