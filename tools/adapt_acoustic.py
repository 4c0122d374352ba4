"""Adapt pocketsphinx's en-us model to rooms: an MLLR transform from multi-condition speech.

The transform (src/voiceskill/models/en-us-rooms.mllr) moves the model's Gaussian means towards
speech as the recogniser hears it at home: clean, under white, pink and babble noise at 5-20 dB,
across three rooms, and through the speech-enhancement front-end. pocketsphinx applies it when the
decoder is built (asr.py); this tool only regenerates it and is not needed at run time.

Separation from what is measured: the speech is sentences.txt (written for this, in no fixture or
bench set), spoken by voices that speak no fixture (festival's ked, espeak-ng variants the
fixtures do not use), and the babble is those voices too, not the fixtures' babble bed;
tests/test_adaptation_separation.py checks it.

Needs, from Debian: sphinxtrain (bw, mllr_solve), sphinxbase-utils (sphinx_fe), pocketsphinx
(pocketsphinx_mdef_convert), festival and festvox-kdlpc16k, espeak-ng, sox.

Run: python tools/adapt_acoustic.py [--copies 3] [--audio enhanced|raw|both] [--work DIR]
         [--out src/voiceskill/models/en-us-rooms.mllr]
"""

from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import shutil
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from pocketsphinx import get_model_path

from fixturegen import (
    SAMPLE_RATE,
    Voice,
    active_rms,
    add_noise,
    as_float,
    choose,
    mix_at_snr,
    pick_espeak,
    reverberate,
    stable_int,
    synthesize,
)

ROOT = Path(__file__).resolve().parents[1]
SENTENCES = ROOT / "tools" / "adaptation" / "sentences.txt"
DEFAULT_OUT = ROOT / "src" / "voiceskill" / "models" / "en-us-rooms.mllr"
SPHINXTRAIN = Path("/usr/lib/sphinxtrain")

FESTIVAL_VOICE = Voice("festival", "ked_diphone", "", "")  # US male, not a fixture speaker
# espeak-ng language + variant pairs that no fixture uses (the fixtures use f3, f4 and m3)
ESPEAK_VOICES = ("en-us+m1", "en-us+f2", "en+m6", "en-gb-x-rp+m2", "en+f5", "en-us+klatt")
BABBLE_TALKERS = 5
SNRS_DB = (5, 7.5, 10, 15, 20)
# what a copy of a sentence goes through; "clean" keeps the transform honest on clean speech
CONDITIONS = ("clean", "white", "pink", "babble", "reverb_small", "reverb_living",
              "reverb_large", "reverb_living+babble", "reverb_small+white", "reverb_large+pink")
LEAD_S = 2.0  # the room alone before the speech, as the enhancer hears it live


def sentences() -> list[str]:
    lines = SENTENCES.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def voice_for(sentence: str, copy: int) -> Voice:
    """Half the copies in festival's ked (closest to human speech), half in espeak-ng variants."""
    if stable_int("voice", sentence, copy) % 2 == 0:
        return FESTIVAL_VOICE
    return pick_espeak(choose(ESPEAK_VOICES, "espeak", sentence, copy), f"{sentence}/{copy}")


def babble_bed() -> np.ndarray:
    """Adaptation voices reading adaptation sentences at once (not the fixtures' babble)."""
    texts = sentences()
    tracks = []
    for talker in range(BABBLE_TALKERS):
        voice = voice_for(f"babble {talker}", talker)
        speech = [as_float(synthesize(text, voice)) for text in texts[talker::23][:8]]
        track = np.concatenate(speech)
        tracks.append(track / active_rms(track))
    length = max(len(t) for t in tracks)
    bed = sum(np.resize(t, length) for t in tracks)
    return bed / np.sqrt(np.mean(bed**2))


def degrade(speech: np.ndarray, condition: str, snr_db: float, seed: int,
            bed: np.ndarray) -> np.ndarray:
    """LEAD_S of the room, then the speech, in `condition` (noise at `snr_db`)."""
    stream = np.concatenate([np.zeros(round(LEAD_S * SAMPLE_RATE), np.int16), speech])
    for part in condition.split("+"):
        if part.startswith("reverb_"):
            stream = reverberate(stream, part.removeprefix("reverb_"))
        elif part == "babble":
            start = seed % len(bed)
            stream = mix_at_snr(stream, np.take(bed, np.arange(start, start + len(stream)),
                                                mode="wrap"), snr_db)
        elif part != "clean":
            stream = add_noise(stream, part, snr_db, seed)
    return stream


def render(job: tuple[str, int, str, Path, np.ndarray]) -> list[tuple[str, str]]:
    """One copy of a sentence, degraded, written raw and/or enhanced: [(utterance id, text)]."""
    sentence, copy, audio, wav_dir, bed = job
    base = f"s{stable_int(sentence) % 10**8:08d}_{copy}"
    kinds = {"raw": ["raw"], "enhanced": ["enh"], "both": ["raw", "enh"]}[audio]
    if all((wav_dir / f"{base}_{kind}.wav").is_file() for kind in kinds):  # a run resumed
        return [(f"{base}_{kind}", sentence) for kind in kinds]
    condition = choose(CONDITIONS, "condition", sentence, copy)
    snr_db = choose(SNRS_DB, "snr", sentence, copy)
    seed = stable_int("adaptation noise", sentence, copy) % 2**32
    stream = degrade(synthesize(sentence, voice_for(sentence, copy)), condition, snr_db, seed, bed)
    lead = round(LEAD_S * SAMPLE_RATE)
    heard = {}
    if "raw" in kinds:
        heard["raw"] = stream
    if "enh" in kinds:
        enhancer = front_end()
        enhancer.reset()
        block = int(SAMPLE_RATE * 0.03)
        heard["enh"] = np.concatenate([enhancer.process(stream[i : i + block])
                                       for i in range(0, len(stream), block)])
    for kind, samples in heard.items():
        partial = wav_dir / f"{base}_{kind}.part.wav"
        sf.write(partial, samples[lead:], SAMPLE_RATE, subtype="PCM_16")
        os.replace(partial, wav_dir / f"{base}_{kind}.wav")  # whole, or absent when resumed
    return [(f"{base}_{kind}", sentence) for kind in kinds]


@functools.cache
def front_end():
    """The shipped front-end, loaded once per worker and reset for every utterance."""
    from voiceskill.frontend import create_enhancer

    return create_enhancer("auto")


def mixture_weights(sendump: Path, out: Path) -> None:
    """pocketsphinx's quantised `sendump` as the float mixture_weights file bw reads.

    sendump: length-prefixed header strings ending with a 0 length, then the number of
    codewords and of senones, then per feature stream and codeword one byte per senone: the
    weight's -log base 1.0001, shifted right by 10 bits.
    """
    data = sendump.read_bytes()
    at = 0
    while True:
        (size,) = struct.unpack_from("<I", data, at)
        at += 4 + size
        if size == 0:
            break
        header = data[at - size : at].rstrip(b"\0").decode("ascii", "replace")
        if header.startswith("feature_count"):
            streams = int(header.split()[1])
    codewords, senones = struct.unpack_from("<II", data, at)
    at += 8
    scores = np.frombuffer(data, np.uint8, streams * codewords * senones, at)
    weights = 1.0001 ** -(scores.reshape(streams, codewords, senones).astype(np.float64) * 1024)
    weights = weights.transpose(2, 0, 1)  # senone, stream, codeword
    weights /= weights.sum(axis=2, keepdims=True)
    with out.open("wb") as f:
        f.write(b"s3\nversion 1.0\n  endhdr\n")  # binary data starts on a 4-byte boundary
        f.write(struct.pack("<I", 0x11223344))
        f.write(struct.pack("<IIII", senones, streams, codewords, weights.size))
        f.write(weights.astype("<f4").tobytes())


def run(*args: object, cwd: Path) -> None:
    result = subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        tail = (result.stderr or result.stdout).strip().splitlines()[-5:]
        raise SystemExit(f"{Path(str(args[0])).name} failed: " + " | ".join(tail))


def adapt(work: Path, ids: list[tuple[str, str]], out: Path, name: str) -> None:
    """Features with the model's own front-end settings, Baum-Welch counts, then MLLR."""
    model = Path(get_model_path("en-us"))
    hmm = model / "en-us"
    fileids, transcription = f"{name}.fileids", f"{name}.transcription"
    (work / fileids).write_text("".join(f"wav/{uid}\n" for uid, _ in ids))
    (work / transcription).write_text(
        "".join(f"<s> {text} </s> ({uid})\n" for uid, text in ids))
    run("sphinx_fe", "-argfile", hmm / "feat.params", "-samprate", SAMPLE_RATE,
        "-remove_silence", "no", "-c", fileids, "-di", ".", "-do", ".",
        "-ei", "wav", "-eo", "mfc", "-mswav", "yes", cwd=work)
    run("pocketsphinx_mdef_convert", "-text", hmm / "mdef", "mdef.txt", cwd=work)
    mixture_weights(hmm / "sendump", work / "mixture_weights")
    parts = 2
    jobs = []
    for part in range(1, parts + 1):
        accum = work / f"accum-{name}-{part}"
        accum.mkdir(exist_ok=True)
        jobs.append(subprocess.Popen(
            [str(SPHINXTRAIN / "bw"), "-hmmdir", str(hmm), "-moddeffn", "mdef.txt",
             "-ts2cbfn", ".ptm.", "-feat", "1s_c_d_dd", "-svspec", "0-12/13-25/26-38",
             "-cmn", "batch", "-agc", "none", "-varnorm", "no", "-mixwfn", "mixture_weights",
             "-dictfn", str(model / "cmudict-en-us.dict"), "-fdictfn", str(hmm / "noisedict"),
             "-ctlfn", fileids, "-lsnfn", transcription, "-cepdir", ".",
             "-accumdir", str(accum), "-part", str(part), "-npart", str(parts)],
            cwd=work, stdout=subprocess.DEVNULL, stderr=(work / f"bw-{name}-{part}.log").open("w")))
    if any(job.wait() for job in jobs):
        raise SystemExit(f"bw failed; see {work}/bw-{name}-*.log")
    run(SPHINXTRAIN / "mllr_solve", "-meanfn", hmm / "means", "-varfn", hmm / "variances",
        "-outmllrfn", out.resolve(),
        "-accumdir", ",".join(f"accum-{name}-{p}" for p in range(1, parts + 1)), cwd=work)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--copies", type=int, default=3, help="degraded copies per sentence")
    parser.add_argument("--audio", choices=("enhanced", "raw", "both"), default="enhanced",
                        help="adapt on what the recogniser hears after the front-end, or before")
    parser.add_argument("--work", type=Path, help="keep the audio and counts here")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="only the first N sentences (a trial)")
    args = parser.parse_args(argv)
    missing = [p for p in ("sphinx_fe", "pocketsphinx_mdef_convert", "text2wave", "espeak-ng",
                           "sox") if shutil.which(p) is None]
    missing += [p.name for p in (SPHINXTRAIN / "bw", SPHINXTRAIN / "mllr_solve") if not p.exists()]
    if missing:
        print(f"missing {', '.join(missing)}: apt-get install sphinxtrain sphinxbase-utils "
              "pocketsphinx festival festvox-kdlpc16k espeak-ng sox", file=sys.stderr)
        return 2
    work = args.work or Path(tempfile.mkdtemp(prefix="adapt-acoustic-"))
    wav_dir = work / "wav"
    wav_dir.mkdir(parents=True, exist_ok=True)
    bed = babble_bed()
    jobs = [(s, c, args.audio, wav_dir, bed) for s in sentences()[: args.limit or None]
            for c in range(args.copies)]
    with multiprocessing.Pool(args.jobs) as pool:
        ids = [uid for written in pool.imap(render, jobs, chunksize=4) for uid in written]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    adapt(work, ids, args.out, args.audio)
    minutes = sum(sf.info(wav_dir / f"{uid}.wav").duration for uid, _ in ids) / 60
    print(f"{len(ids)} utterances, {minutes:.0f} min; wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
