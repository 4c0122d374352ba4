"""Spoken-question benchmark: replays audio_fixtures through the real recogniser.

Prints, per engine and noise condition: in-domain intent accuracy, out-of-domain false-accept
rate, word error rate, recognition time after the end of the audio (median / p95, audio
streamed in 100 ms chunks as a live microphone would), real-time factor; then start-up time
to ready and peak RSS. Noisy conditions are made on the fly with tools/fixturegen.add_noise
(white, pink and babble at 20, 10 and 5 dB SNR) from one flite voice per phrasing. Clean
speech is reported per voice family: flite (CMU Arctic voices, close to human speech) and
espeak-ng (formant synthesis, which pocketsphinx's acoustic model hears badly).

Run: python bench/speech_accuracy.py [--engine pocketsphinx] [--conditions clean,babble_10]
Targets (pocketsphinx, this 2-core machine): intent accuracy >= 95% clean and >= 85% at
10 dB, false accepts <= 5%, p95 recognition after end of audio <= 100 ms, start-up <= 1.5 s,
RSS <= 200 MB.
"""

from __future__ import annotations

import argparse
import csv
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from rapidfuzz.distance import Levenshtein

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from fixturegen import add_noise  # noqa: E402
from voiceskill.asr import Transcript, create_recognizer  # noqa: E402
from voiceskill.audio import SAMPLE_RATE  # noqa: E402
from voiceskill.content import load_content, normalize  # noqa: E402
from voiceskill.nlu import IntentMatcher  # noqa: E402

CHUNK = SAMPLE_RATE // 10
NOISES = [f"{kind}_{snr}" for kind in ("white", "pink", "babble") for snr in (20, 10, 5)]


@dataclass
class Result:
    expected: str
    got: str
    errors: int
    words: int
    after_end_ms: float
    decode_s: float
    audio_s: float


def fixtures() -> list[dict]:
    with (ROOT / "audio_fixtures" / "manifest.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    return [r for r in rows if r["condition"] == "clean" and not r["conversation"]]


def recognise(recognizer, samples: np.ndarray) -> tuple[Transcript, float, float]:
    """Stream like a microphone; time only the work left after the last chunk."""
    began = time.perf_counter()
    recognizer.start_utterance()
    for start in range(0, len(samples), CHUNK):
        recognizer.feed(samples[start : start + CHUNK])
    end_of_audio = time.perf_counter()
    transcript = recognizer.end_utterance()
    done = time.perf_counter()
    return transcript, (done - end_of_audio) * 1000, done - began


def run_condition(recognizer, matcher, rows: list[dict], condition: str) -> list[Result]:
    results = []
    for index, row in enumerate(rows):
        samples, _ = sf.read(ROOT / row["file"], dtype="int16")
        if condition != "clean":
            kind, snr = condition.split("_")
            samples = add_noise(samples, kind, float(snr), seed=index)
        transcript, after_end_ms, decode_s = recognise(recognizer, samples)
        reference = normalize(row["text"]).split()
        results.append(Result(
            expected=row["intent"],
            got=matcher.understand(transcript.text, transcript.confidence).intent,
            errors=Levenshtein.distance(reference, normalize(transcript.text).split()),
            words=len(reference),
            after_end_ms=after_end_ms,
            decode_s=decode_s,
            audio_s=len(samples) / SAMPLE_RATE,
        ))
    return results


def summarise(engine: str, condition: str, results: list[Result]) -> str:
    in_domain = [r for r in results if r.expected != "fallback"]
    out_domain = [r for r in results if r.expected == "fallback"]
    accuracy = sum(r.got == r.expected for r in in_domain) / len(in_domain)
    wrong = sum(r.got not in (r.expected, "fallback") for r in in_domain) / len(in_domain)
    false_accepts = sum(r.got != "fallback" for r in out_domain) / max(1, len(out_domain))
    wer = sum(r.errors for r in results) / sum(r.words for r in results)
    latency = sorted(r.after_end_ms for r in results)
    p95 = latency[min(len(latency) - 1, int(len(latency) * 0.95))]
    rtf = sum(r.decode_s for r in results) / sum(r.audio_s for r in results)
    return (f"{engine:13} {condition:13} {len(results):4} {accuracy:8.1%} {wrong:7.1%} "
            f"{false_accepts:8.1%} "
            f"{wer:7.1%} {statistics.median(latency):8.0f} {p95:7.0f} {rtf:6.2f}")


def startup_seconds(engine: str) -> float:
    """Fresh process: import, load content, build (cached) domain model, ready to decode."""
    code = (
        "import time; t = time.perf_counter()\n"
        "from voiceskill.asr import Transcript, create_recognizer\n"
        "from voiceskill.content import load_content\n"
        "from voiceskill.nlu import IntentMatcher\n"
        "content = load_content(); IntentMatcher(content)\n"
        f"create_recognizer({engine!r}, content.domain_sentences())\n"
        "print(time.perf_counter() - t)\n"
    )
    runs = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 check=True).stdout) for _ in range(3)]
    return statistics.median(runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", default="pocketsphinx")
    parser.add_argument("--conditions", default=",".join(["clean", *NOISES]))
    args = parser.parse_args()

    content = load_content()
    matcher = IntentMatcher(content)
    recognizer = create_recognizer(args.engine, content.domain_sentences())
    rows = fixtures()
    first_voice = {}
    for row in rows:
        first_voice.setdefault(row["text"], row)
    print(f"{'engine':13} {'condition':13} {'n':>4} {'intent':>8} {'wrong':>7} {'false-acc':>8} "
          f"{'WER':>7} {'p50 ms':>8} {'p95 ms':>7} {'RTF':>6}")
    for condition in args.conditions.split(","):
        if condition == "clean":
            for family in ("flite", "espeak"):
                subset = [r for r in rows if r["family"] == family]
                results = run_condition(recognizer, matcher, subset, condition)
                print(summarise(args.engine, f"clean/{family}", results), flush=True)
            continue
        results = run_condition(recognizer, matcher, list(first_voice.values()), condition)
        print(summarise(args.engine, condition, results), flush=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss_mb:.0f} MB (target <= 200 MB)")
    print(f"start-up to ready (fresh process, median of 3): {startup_seconds(args.engine):.2f} s"
          " (target <= 1.5 s)")
    print("intent: in-domain questions given the right intent; wrong: given another domain "
          "intent (the rest were rejected);\nfalse-acc: out-of-domain questions not rejected; "
          "ms columns: recognition finished this long after the end of the audio")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
