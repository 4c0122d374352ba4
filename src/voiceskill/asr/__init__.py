"""Speech recognition: one streaming interface, two offline engines, both adapted to the domain.

pocketsphinx (the default; its en-us model ships in the wheel) decodes with a
trigram LM built from the skill's sentences by pocketsphinx's own estimator
(`pocketsphinx.lm.ArpaBoLM`) and cached on disk.  Vosk (when a model is given
or found) decodes with the same sentences as its runtime grammar.

Audio becomes a `Transcript` one way: `recognize` (through an `Utterance`, the one
length guard, MAX_TURN_S); a front-end that receives raw audio hands it to a `Clip`,
which converts and bounds it.

Way out for out-of-domain speech.  Besides the fallback sentences among the
domain sentences, the LM holds the GENERIC_WORDS most frequent words of
pocketsphinx's generic English LM as unigrams, so foreign speech comes out as
foreign words rather than a domain sentence.  The recogniser's confidence
overlaps too much between in- and out-of-domain speech to reject on, so
rejection is left to the intent matcher.

Balance.  The sentences come as {intent: sentences}, and every intent weighs
the same however many samples it has.

Confidence: the mean of the word posteriors from the `bestpath` lattice.  The
whole-hypothesis posterior (`get_prob`) splits its mass over pronunciation and
silence variants of the same words and is tiny even for right answers.

Channel normalisation.  pocketsphinx's live CMN starts from a fixed guess and
takes several utterances to adapt, so the first (often only) utterance was
decoded badly.  Each utterance is therefore first decoded from its speech
frames only (the partial results come from this pass); after CMN_SPEECH_S of
speech, or at the end, the decoder restarts with the cepstral mean of that
speech and decodes the held audio again.

The figures behind each choice (bench/asr_probe.py) are in docs/measurements.md.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from pocketsphinx import Config, Decoder, LogMath, NGramModel, Vad, get_model_path
from pocketsphinx.lm import ArpaBoLM

from voiceskill.audio import SAMPLE_RATE, PcmStream, read_wav_chunks
from voiceskill.cache import cache_dir as voiceskill_cache_dir
from voiceskill.cache import keep_recent
from voiceskill.config import ENGINES
from voiceskill.errors import UserError

log = logging.getLogger(__name__)

VOSK_HINT = (
    "give a Vosk model directory with --vosk-model DIR or VOSK_MODEL_PATH, "
    "or unpack one (e.g. vosk-model-small-en-us-0.15) into ~/.cache/vosk"
)

LM_FORMAT = 3  # bump when the LM recipe changes, to invalidate caches
LM_DISCOUNT = 0.1  # ArpaBoLM's fixed back-off mass: 0.1 kept domain sentences tightest
GENERIC_WORDS = 2000  # frequent English words added as the way out
GENERIC_SHARE = 0.5  # their unigram mass relative to the domain tokens

DECODER_OPTIONS = {
    "fwdflat": False,  # the second pass: time at the end for no accuracy gain
    "bestpath": True,  # lattice posteriors for the confidences
}
CMN_SPEECH_S = 1.5  # speech used to estimate the cepstral mean
CMN_MIN_FRAMES = 20  # less speech than this (10 ms frames) keeps the default mean
SPEECH_MARGIN_S = 0.25  # silence kept around the speech when the audio is decoded again
VAD_WARMUP_S = 0.15  # a fresh WebRTC VAD's first 4-5 frames are "speech" whatever they hold
CMN_WIN = 500  # frames of weight pocketsphinx gives the prior mean (CMN_WIN in cmn.h)


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float
    confidence: float | None


@dataclass(frozen=True)
class Transcript:
    text: str
    words: tuple[Word, ...]
    confidence: float | None
    is_final: bool


class EngineUnavailable(UserError):
    """The engine cannot run here; the message is one line telling the user what to do."""


class Recognizer(Protocol):
    name: str
    oov_words: tuple[str, ...]  # domain words the engine could not use

    def start_utterance(self) -> None: ...

    def feed(self, pcm: np.ndarray) -> Transcript | None: ...

    def end_utterance(self) -> Transcript: ...


DomainSentences = Sequence[str] | Mapping[str, Sequence[str]]


def create_recognizer(
    engine: str,
    domain_sentences: DomainSentences,
    *,
    vosk_model: str | os.PathLike[str] | None = None,
    cache_dir: Path | None = None,
    pronunciations: Mapping[str, str] | None = None,
    concepts: Mapping | None = None,
) -> Recognizer:
    """A recogniser adapted to `domain_sentences`.

    `engine` is "pocketsphinx", "vosk", or "auto": Vosk when find_vosk_model()
    finds a model, else pocketsphinx; "whisper" (Whisper base, prompted with the `domain`
    lexicon `concepts`), or "cascade": pocketsphinx with Whisper as its second opinion
    (whisper.py).  Give a mapping {group name: sentences}
    (e.g. intent -> sample sentences) to weigh every group the same in the LM,
    so that a template expanding to thousands of sentences does not drown the
    short ones ("yes", "stop").  A plain sequence is one group.  `pronunciations` (word ->
    CMUdict phones) teach pocketsphinx words its dictionary lacks ("tingly", "lockjaw").
    """
    if engine not in ENGINES:
        raise EngineUnavailable(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    groups = _groups(domain_sentences)
    cache_dir = cache_dir or voiceskill_cache_dir()
    if engine in ("whisper", "cascade"):
        from voiceskill.asr.whisper import create_whisper, domain_prompt

        first = (PocketsphinxRecognizer(groups, cache_dir, pronunciations or {})
                 if engine == "cascade" else None)
        return create_whisper(engine, first, domain_prompt(concepts or {}), cache_dir)
    if engine != "pocketsphinx":
        model = find_vosk_model(vosk_model)
        if model is not None:
            return VoskRecognizer(model, groups)
        if engine == "vosk":
            raise EngineUnavailable(f"no Vosk model found: {VOSK_HINT}")
    return PocketsphinxRecognizer(groups, cache_dir, pronunciations or {})


MAX_TURN_S = 30.0
"""A spoken question never lasts longer; a longer recording, Wyoming stream or live utterance
is cut here, keeping time and memory bounded (a 10-minute file is read no further)."""


class Utterance:
    """One utterance given to a recogniser, at most `limit_s` of it: the one length guard of
    replay, serve, listen and the benchmarks."""

    def __init__(self, recognizer: Recognizer, limit_s: float = MAX_TURN_S):
        self._recognizer = recognizer
        self._room = round(limit_s * SAMPLE_RATE)
        recognizer.start_utterance()

    @property
    def full(self) -> bool:
        return self._room == 0

    def feed(self, samples: np.ndarray) -> np.ndarray:
        """Feed what still fits; the rest is returned (empty while there is room)."""
        taken = samples[: self._room]
        if len(taken):
            self._recognizer.feed(taken)
            self._room -= len(taken)
        return samples[len(taken) :]

    def end(self) -> Transcript:
        return self._recognizer.end_utterance()



class Clip:
    """One utterance's audio as a front-end received it (PCM of any rate, width and channel
    count), converted as it arrives and kept up to `limit_s` of it: memory is bounded however
    the audio is cut into chunks, and the rest is dropped, as `replay` does."""

    def __init__(self, limit_s: float = MAX_TURN_S) -> None:
        self._stream = PcmStream()
        self._buffer = np.empty(round(limit_s * SAMPLE_RATE), dtype=np.int16)
        self._filled = 0

    @property
    def full(self) -> bool:
        return self._filled == len(self._buffer)

    def add(self, pcm: bytes, rate: int, width: int, channels: int) -> None:
        """Take one chunk; ValueError (one line) if it is not usable PCM."""
        self._keep(self._stream.convert(pcm, rate, width, channels))

    def chunks(self, chunk_ms: int = 100) -> Iterator[np.ndarray]:
        """The audio kept, in chunks as a recogniser is fed (see `recognize`)."""
        self._keep(self._stream.flush())
        step = SAMPLE_RATE * chunk_ms // 1000
        for start in range(0, self._filled, step):
            yield self._buffer[start : min(start + step, self._filled)].copy()

    def _keep(self, samples: np.ndarray) -> None:
        taken = samples[: len(self._buffer) - self._filled]
        self._buffer[self._filled : self._filled + len(taken)] = taken
        self._filled += len(taken)

def recognize(recognizer: Recognizer, chunks: Iterable[np.ndarray],
              limit_s: float = MAX_TURN_S) -> Transcript:
    """Recognise `chunks` (16 kHz int16) as one utterance: their first `limit_s`, the rest is
    not read."""
    utterance = Utterance(recognizer, limit_s)
    for chunk in chunks:
        utterance.feed(chunk)
        if utterance.full:
            break
    return utterance.end()


def transcribe_file(recognizer: Recognizer, path: str | os.PathLike[str]) -> Transcript:
    """Recognise a WAV file (its first MAX_TURN_S) as one utterance; AudioError if unusable."""
    return recognize(recognizer, read_wav_chunks(path))


def _tokens(sentence: str) -> list[str]:
    """Lower-case words; punctuation other than apostrophes separates words."""
    return re.sub(r"[^\w']+", " ", sentence.lower()).split()


def _groups(domain_sentences: DomainSentences) -> dict[str, list[str]]:
    if isinstance(domain_sentences, str):
        raise TypeError("domain_sentences must be a sequence of sentences, not one string")
    raw = domain_sentences if isinstance(domain_sentences, Mapping) else {"": domain_sentences}
    groups = {}
    for name in sorted(raw):
        unique = dict.fromkeys(" ".join(_tokens(s)) for s in raw[name])
        sentences = [s for s in unique if s]
        if sentences:
            groups[name] = sentences
    if not groups:
        raise ValueError("no domain sentences given")
    return groups


def _filter_known(
    groups: dict[str, list[str]], known: Callable[[str], bool]
) -> tuple[dict[str, list[str]], list[str]]:
    """Drop sentences with words the engine cannot pronounce; also return those words."""
    kept, oov = {}, set()
    for name, sentences in groups.items():
        ok = []
        for sentence in sentences:
            missing = [w for w in sentence.split() if not known(w)]
            oov.update(missing)
            if not missing:
                ok.append(sentence)
        if ok:
            kept[name] = ok
    if oov:
        log.info("dropped domain sentences with unknown words: %s", ", ".join(sorted(oov)))
    return kept, sorted(oov)


# --- pocketsphinx -----------------------------------------------------------------------------


class PocketsphinxRecognizer:
    """pocketsphinx with the domain LM; see the module docstring for the CMN restart."""

    name = "pocketsphinx"

    def __init__(self, groups: dict[str, list[str]], cache_dir: Path,
                 pronunciations: Mapping[str, str] | None = None):
        pronunciations = dict(pronunciations or {})
        try:
            self._decoder, self.oov_words = _load_cached(groups, cache_dir, pronunciations)
        except (OSError, ValueError) as e:  # no usable cache: build in a temporary folder
            log.warning("language model cache %s unusable (%s), building without it", cache_dir, e)
            with tempfile.TemporaryDirectory() as tmp:
                _build_lm(groups, Path(tmp), pronunciations)
                self._decoder, self.oov_words = _load(Path(tmp))
        self._prior = self._decoder.get_cmn()
        self._speech = _SpeechFinder()
        self._held: list[np.ndarray] | None = None  # audio kept until the CMN is measured
        self._speech_left = 0
        self._offset = 0  # samples left out before the audio that was decoded
        self._partial = ""
        self._active = False

    def start_utterance(self) -> None:
        if self._active:
            self._decoder.end_utt()
        # the same audio always gives the same result: the feature stage's noise estimate
        # (remove_noise) would otherwise carry over from the utterances before
        self._decoder.reinit_feat()
        self._decoder.set_cmn(self._prior)
        self._decoder.start_utt()
        self._speech = _SpeechFinder()
        self._held = []
        self._speech_left = int(CMN_SPEECH_S * SAMPLE_RATE)
        self._offset = 0
        self._partial = ""
        self._active = True

    def feed(self, pcm: np.ndarray) -> Transcript | None:
        if not self._active:
            raise RuntimeError("feed() called before start_utterance()")
        pcm = _pcm(pcm)
        if self._held is None:
            if len(pcm):
                self._decoder.process_raw(pcm.tobytes())
        else:
            self._held.append(pcm)
            speech = self._speech.frames(pcm)[: self._speech_left]
            if len(speech):
                self._decoder.process_raw(speech.tobytes())
                self._speech_left -= len(speech)
            if self._speech_left <= 0:
                self._restart_with_measured_cmn(at_end=False)
        hyp = self._decoder.hyp()
        text = hyp.hypstr if hyp else ""
        if not text or text == self._partial:
            return None
        self._partial = text
        return Transcript(text, (), None, is_final=False)

    def end_utterance(self) -> Transcript:
        if not self._active:
            raise RuntimeError("end_utterance() called before start_utterance()")
        if self._held is not None:
            self._restart_with_measured_cmn(at_end=True)
        self._decoder.end_utt()
        self._active = False
        hyp = self._decoder.hyp()
        if hyp is None or not hyp.hypstr:
            return Transcript("", (), None, is_final=True)
        offset = self._offset / SAMPLE_RATE
        words = tuple(
            Word(
                re.sub(r"\(\d+\)$", "", seg.word),
                round(offset + seg.start_frame / 100, 3),
                round(offset + (seg.end_frame + 1) / 100, 3),
                min(1.0, max(0.0, seg.prob)),
            )
            for seg in self._decoder.seg()
            if not seg.word.startswith(("<", "[", "+"))
        )
        confidence = float(np.mean([w.confidence for w in words])) if words else None
        return Transcript(hyp.hypstr, words, confidence, is_final=True)

    def _restart_with_measured_cmn(self, at_end: bool) -> None:
        """Replace the default cepstral mean by that of the speech heard, then decode the audio
        again, without the silence beyond SPEECH_MARGIN_S before (and at the end, after) it."""
        decoder = self._decoder
        frames = decoder.n_frames()
        blended = _cmn_vector(decoder.get_cmn(True))
        decoder.end_utt()
        if frames >= CMN_MIN_FRAMES:
            prior = _cmn_vector(self._prior)
            mean = (blended * (CMN_WIN + frames) - prior * CMN_WIN) / frames
            decoder.set_cmn(",".join(f"{x:.4f}" for x in mean))
        else:
            decoder.set_cmn(self._prior)
        decoder.start_utt()
        audio = np.concatenate(self._held) if self._held else np.zeros(0, dtype=np.int16)
        self._held = None
        margin = int(SPEECH_MARGIN_S * SAMPLE_RATE)
        begin, end = 0, len(audio)
        if self._speech.first is not None:
            begin = max(0, self._speech.first - margin)
            if at_end:
                end = self._speech.last + margin
        self._offset = begin
        if end > begin:
            decoder.process_raw(audio[begin:end].tobytes())


class _SpeechFinder:
    """WebRTC VAD over one utterance: its speech frames, and where speech begins and ends.

    A fresh VAD calls its first few frames speech whatever they hold, so speech
    within VAD_WARMUP_S counts only if it goes on past it.
    """

    def __init__(self):
        self._vad = Vad(Vad.LOOSE, SAMPLE_RATE, 0.03)
        self._size = self._vad.frame_bytes // 2
        self._rest = np.zeros(0, dtype=np.int16)
        self._seen = 0  # samples classified so far
        self._unsure: list[tuple[int, np.ndarray]] = []  # the speech run within the warm-up
        self.first: int | None = None  # sample where the first speech frame starts
        self.last = 0  # sample where the last speech frame ends

    def frames(self, pcm: np.ndarray) -> np.ndarray:
        buf = np.concatenate([self._rest, pcm])
        whole = len(buf) - len(buf) % self._size
        speech = []
        for i in range(0, whole, self._size):
            frame = buf[i : i + self._size]
            at, self._seen = self._seen, self._seen + self._size
            is_speech = self._vad.is_speech(frame.tobytes())
            if at < VAD_WARMUP_S * SAMPLE_RATE:
                self._unsure = [*self._unsure, (at, frame)] if is_speech else []
                continue
            if is_speech:
                for start, found in [*self._unsure, (at, frame)]:
                    speech.append(found)
                    self.first = start if self.first is None else self.first
                    self.last = start + self._size
            self._unsure = []
        self._rest = buf[whole:]
        return np.concatenate(speech) if speech else np.zeros(0, dtype=np.int16)


def _cmn_vector(text: str) -> np.ndarray:
    return np.array([float(x) for x in text.split(",")])


def _pcm(pcm: np.ndarray) -> np.ndarray:
    pcm = np.asarray(pcm)
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise ValueError("feed() takes a 1-D int16 array of 16 kHz mono samples")
    return pcm


class CacheDamaged(ValueError):
    """A cached language model whose files are not what was written (truncated, emptied,
    overwritten): it must never reach pocketsphinx, which can crash on such files."""


def _load_cached(groups: dict[str, list[str]], cache_dir: Path,
                 pronunciations: dict[str, str]) -> tuple[Decoder, tuple[str, ...]]:
    """The decoder for these sentences from the cache; a damaged cache is rebuilt, once."""
    folder = _cached_lm(groups, cache_dir, pronunciations)
    try:
        return _load(folder)
    except CacheDamaged as e:
        log.warning("language model cache %s was damaged (%s); rebuilt it", folder, e)
        shutil.rmtree(folder, ignore_errors=True)
        return _load(_cached_lm(groups, cache_dir, pronunciations))


def _cached_lm(groups: dict[str, list[str]], cache_dir: Path,
               pronunciations: dict[str, str]) -> Path:
    """The cache folder holding the LM and dictionary for these sentences, built on first use.

    Built in a `build-<pid>-*` folder, flushed to disk, then renamed into place, so a folder
    named `lm-*` is whole; leftovers of builds that were killed, and models not used
    recently, are removed on the way.
    """
    key = json.dumps([LM_FORMAT, LM_DISCOUNT, GENERIC_WORDS, GENERIC_SHARE, groups,
                      sorted(pronunciations.items())])
    folder = cache_dir / f"lm-{hashlib.sha256(key.encode()).hexdigest()[:20]}"
    if not folder.is_dir():
        _build_into(folder, groups, pronunciations)
    keep_recent(folder, "lm")
    return folder


def _build_into(folder: Path, groups: dict[str, list[str]],
                pronunciations: dict[str, str]) -> None:
    cache_dir = folder.parent
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"build-{os.getpid()}-", dir=cache_dir))
    try:
        _build_lm(groups, tmp, pronunciations)
        _fsync_folder(tmp)
        os.replace(tmp, folder)  # whole or not at all, even with two processes at it
        _fsync_folder(cache_dir, files=False)
    except OSError:
        if not (folder / "report.json").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fsync_folder(folder: Path, files: bool = True) -> None:
    """Flush a folder's files and its entries to disk (so a rename after it publishes data)."""
    if files:
        for path in folder.iterdir():
            with open(path, "rb") as f:
                os.fsync(f.fileno())
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


MODEL_FILES = ("domain.lm", "domain.dict")


def _fingerprint(path: Path) -> dict:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return {"size": path.stat().st_size, "sha256": digest.hexdigest()}


def _verified_report(folder: Path) -> dict:
    """report.json, after checking that the model files are exactly those it records."""
    try:
        report = json.loads((folder / "report.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise CacheDamaged("report.json is missing or unreadable") from None
    files = report.get("files") if isinstance(report, dict) else None
    if not isinstance(files, dict) or not isinstance(report.get("oov_words"), list):
        raise CacheDamaged("report.json is not a model report")
    for name in MODEL_FILES:
        try:
            found = _fingerprint(folder / name)
        except OSError:
            raise CacheDamaged(f"{name} is missing or unreadable") from None
        if found != files.get(name):
            raise CacheDamaged(f"{name} is not the file that was written")
    return report


def _load(folder: Path) -> tuple[Decoder, tuple[str, ...]]:
    report = _verified_report(folder)
    try:
        decoder = Decoder(
            lm=str(folder / "domain.lm"),
            dict=str(folder / "domain.dict"),
            loglevel="FATAL",
            **DECODER_OPTIONS,
        )
    except (RuntimeError, ValueError) as e:
        raise EngineUnavailable(f"pocketsphinx could not load its model: {e}") from None
    return decoder, tuple(report["oov_words"])


def _build_lm(groups: dict[str, list[str]], dest: Path,
              pronunciations: dict[str, str] | None = None) -> None:
    """Write domain.lm, domain.dict and report.json (the words left out) into `dest`."""
    model_dir = Path(get_model_path("en-us"))
    prons = _read_dict(model_dir / "cmudict-en-us.dict")
    for word, phones in (pronunciations or {}).items():
        prons.setdefault(word, [phones])
    vocab = {w for sentences in groups.values() for s in sentences for w in s.split()}
    derived = {w: _derive(w, prons) for w in sorted(vocab - prons.keys())}
    prons.update((w, p) for w, p in derived.items() if p)
    if any(derived.values()):
        log.info("pronunciations derived for: %s", ", ".join(w for w, p in derived.items() if p))
    groups, oov = _filter_known(groups, lambda w: w in prons)
    if not groups:
        raise EngineUnavailable("none of the domain sentences can be pronounced by pocketsphinx")
    lm = _balanced_counts(groups)

    frequent = _frequent_words(model_dir, prons)
    if frequent:
        (dest / "generic.words").write_text("\n".join(frequent))
        count = GENERIC_SHARE * sum(lm.grams_1.values()) / len(frequent)
        lm.read_word_file(str(dest / "generic.words"), max(1, round(count)))
    lm.compute()
    with open(dest / "domain.lm", "w") as f:
        lm.write(f)
    with open(dest / "domain.dict", "w") as f:
        for word in sorted(set(lm.grams_1) - {"<s>", "</s>"}):
            for i, pron in enumerate(prons[word]):
                f.write(f"{word}{'' if i == 0 else f'({i + 1})'} {pron}\n")
    files = {name: _fingerprint(dest / name) for name in MODEL_FILES}
    (dest / "report.json").write_text(json.dumps({"oov_words": oov, "files": files}))


def _frequent_words(model_dir: Path, prons: dict[str, list[str]]) -> list[str]:
    """The GENERIC_WORDS most likely words of pocketsphinx's generic en-us LM."""
    generic = NGramModel(Config(), LogMath(), str(model_dir / "en-us.lm.bin"))
    plain = [w for w in prons if re.fullmatch(r"[a-z][a-z']*", w)]
    return sorted(plain, key=lambda w: -generic.prob([w]))[:GENERIC_WORDS]


def _balanced_counts(groups: dict[str, list[str]]) -> ArpaBoLM:
    """ArpaBoLM counts in which every group weighs as much as the largest.

    The same counts as repeating each group's sentences largest/len times,
    which took 3 s for 50 000 template sentences; adding scaled counts takes 0.5 s.
    """
    lm = ArpaBoLM(discount_mass=LM_DISCOUNT, add_start=True)
    largest = max(len(s) for s in groups.values())
    for sentences in groups.values():
        part = ArpaBoLM(text="\n".join(sentences), add_start=True)
        weight = largest / len(sentences)
        for w1, count in part.grams_1.items():
            lm.grams_1[w1] += count * weight
        for w1, followers in part.grams_2.items():
            for w2, count in followers.items():
                lm.grams_2[w1][w2] += count * weight
                for w3, count3 in part.grams_3[w1][w2].items():
                    lm.grams_3[w1][w2][w3] += count3 * weight
    return lm


def _derive(word: str, prons: dict[str, list[str]]) -> list[str]:
    """Pronounce an unlisted word from listed ones: spasm -> spasming, herniate -> herniated,
    stretch -> stretches, g + p -> gp.  Empty if there is no such rule."""
    endings = (("ing", ("", "e")), ("ed", ("", "e")), ("es", ("",)), ("d", ("",)), ("s", ("",)))
    for suffix, stems in endings:
        if not word.endswith(suffix):
            continue
        for tail in stems:
            stem = word[: -len(suffix)] + tail
            if stem in prons:
                return [f"{p} {_ending(suffix, p.split()[-1])}" for p in prons[stem]]
    if len(word) <= 3 and not set(word) & set("aeiou") and all(c in prons for c in word):
        return [" ".join(prons[letter][0] for letter in word)]
    return []


def _ending(suffix: str, last_phone: str) -> str:
    voiceless = last_phone in ("P", "T", "K", "F", "TH", "S", "SH", "CH")
    if suffix == "ing":
        return "IH NG"
    if suffix in ("s", "es"):
        sibilant = last_phone in ("S", "Z", "SH", "ZH", "CH", "JH")
        return "IH Z" if sibilant else "S" if voiceless else "Z"
    return "IH D" if last_phone in ("T", "D") else "T" if voiceless else "D"


def _read_dict(path: Path) -> dict[str, list[str]]:
    prons: dict[str, list[str]] = {}
    with open(path) as f:
        for line in f:
            entry, _, pron = line.strip().partition(" ")
            prons.setdefault(re.sub(r"\(\d+\)$", "", entry), []).append(pron)
    return prons


# --- Vosk -------------------------------------------------------------------------------------


def find_vosk_model(explicit: str | os.PathLike[str] | None = None) -> Path | None:
    """The Vosk model to use: `explicit`, else VOSK_MODEL_PATH, else an English one in the usual
    folders.  A path the user gave that holds no model is an error, not a silent fallback."""
    for given in (explicit, os.environ.get("VOSK_MODEL_PATH")):
        if given:
            found = _model_in(Path(given).expanduser())
            if found is None:
                raise EngineUnavailable(f"{given} holds no Vosk model (no am/final.mdl)")
            return found
    home = Path.home()
    for folder in (Path("/usr/share/vosk"), home / ".cache/vosk", home / "AppData/Local/vosk"):
        found = _model_in(folder, english_only=True)
        if found is not None:
            return found
    return None


def _model_in(path: Path, english_only: bool = False) -> Path | None:
    if _is_vosk_model(path):
        return path
    if not path.is_dir():
        return None
    pattern = re.compile(r"vosk-model(-small)?-en" if english_only else r"vosk-model")
    candidates = sorted(
        (p for p in path.iterdir() if pattern.match(p.name) and _is_vosk_model(p)),
        key=lambda p: ("en-us" not in p.name, p.name),
    )
    return candidates[0] if candidates else None


def _is_vosk_model(path: Path) -> bool:
    return (path / "am" / "final.mdl").is_file() or (path / "final.mdl").is_file()


class VoskRecognizer:
    """Vosk with the domain sentences as its grammar, plus [unk] where the model has it."""

    name = "vosk"

    def __init__(self, model_dir: Path, groups: dict[str, list[str]]):
        try:
            import vosk
        except (ImportError, OSError) as e:
            raise EngineUnavailable(
                f"the vosk package cannot be loaded ({e}); pip install 'voiceskill[vosk]'"
            ) from None
        vosk.SetLogLevel(-1)
        try:
            self._model = vosk.Model(str(model_dir))
        except Exception:  # vosk raises a bare Exception
            raise EngineUnavailable(f"cannot load the Vosk model in {model_dir}") from None
        self._vosk = vosk

        def known(word: str) -> bool:
            return self._model.vosk_model_find_word(word) >= 0

        kept, oov = _filter_known(groups, known)
        if not kept:
            raise EngineUnavailable(
                f"the Vosk model in {model_dir} knows none of the domain words (wrong language?)"
            )
        self.oov_words = tuple(oov)
        grammar = list(dict.fromkeys(s for sentences in kept.values() for s in sentences))
        if known("[unk]"):
            grammar.append("[unk]")
        self._grammar = json.dumps(grammar, ensure_ascii=False)
        self._recognizer = None
        self._segments: list[dict] = []
        self._partial = ""

    def start_utterance(self) -> None:
        # a fresh recogniser per utterance: word times start at 0, no state leaks across turns
        self._recognizer = self._vosk.KaldiRecognizer(self._model, SAMPLE_RATE, self._grammar)
        self._recognizer.SetWords(True)
        self._segments = []
        self._partial = ""

    def feed(self, pcm: np.ndarray) -> Transcript | None:
        if self._recognizer is None:
            raise RuntimeError("feed() called before start_utterance()")
        if self._recognizer.AcceptWaveform(_pcm(pcm).tobytes()):
            # Vosk found an endpoint of its own inside our utterance: keep that segment
            self._segments.append(json.loads(self._recognizer.Result()))
            tail = ""
        else:
            tail = json.loads(self._recognizer.PartialResult()).get("partial", "")
        text = " ".join(t for t in [*(s.get("text", "") for s in self._segments), tail] if t)
        if not text or text == self._partial:
            return None
        self._partial = text
        return Transcript(text, (), None, is_final=False)

    def end_utterance(self) -> Transcript:
        if self._recognizer is None:
            raise RuntimeError("end_utterance() called before start_utterance()")
        segments = [*self._segments, json.loads(self._recognizer.FinalResult())]
        self._recognizer = None
        words = tuple(
            Word(w["word"], float(w["start"]), float(w["end"]), float(w["conf"]))
            for segment in segments
            for w in segment.get("result", [])
        )
        text = " ".join(s["text"] for s in segments if s.get("text"))
        confidence = float(np.mean([w.confidence for w in words])) if words else None
        return Transcript(text, words, confidence, is_final=True)
