"""Spoken-question benchmark: fixtures through the front-end and the real recogniser.

Every condition a home throws at the skill, with and without each speech-enhancement
front-end, in one run: clean, white/pink/babble noise at 20, 10 and 5 dB SNR (tools/fixturegen
add_noise), far-field speech (sox reverb in three rooms, tools/fixturegen.reverberate), and
reverb plus noise. Per condition and front-end, per voice family (flite: CMU Arctic voices,
close to human speech; espeak: formant synthesis, which pocketsphinx hears badly) and overall:
intent accuracy (in-domain + control questions given the right intent), wrong intents,
out-of-domain false accepts, false emergencies (a non-emergency turn heard as one: emergencies
skip the confidence floor), WER, recognition time after the end of the audio, and the
front-end's CPU real-time factor. Then each front-end's delay (cross-correlation with the
input) and start-up, the process's peak RSS and the start-up time to ready.

With `--engine cascade` each turn is decoded as the skill decodes it: pocketsphinx on the
enhanced audio, then, when its words are not understood, Whisper on the raw audio
(`Skill.recognised`); the rows give the cascade's figures, `alone` pocketsphinx's own on the
same turns, `asked` how many turns Whisper was asked, and the recognition time includes
Whisper's. `nospeech+KIND_SNR` conditions hold the noise alone (at the level it has under the
question in KIND_SNR): every turn should be rejected, false-acc counts those answered.

Before each question the stream carries `--lead-s` seconds of the same noise (silence for
clean and reverb-only), enhanced but not decoded: a live microphone has heard the room for a
while before the user speaks, and the enhancer keeps its state across that.

Run: python bench/speech_accuracy.py [--files 34] [--frontends none,deepfilter]
         [--conditions clean,babble_10,reverb_living+babble_10,nospeech+babble_10]
         [--engine pocketsphinx|cascade|whisper]
The default sample (--files 34) is the held-out one the README reports; tune on another
(--offset 34 --files 70) so that a figure reported is not one a setting was chosen on.
Targets: see the README ("Hearing through a real room").
"""

from __future__ import annotations

import argparse
import csv
import resource
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
from rapidfuzz.distance import Levenshtein

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))

from fixturegen import (  # noqa: E402
    REVERB_ROOMS,
    active_rms,
    add_noise,
    as_float,
    db,
    make_noise,
    reverberate,
    rms,
    stable_int,
    to_int16,
)
from voiceskill.asr import Transcript, Utterance, create_recognizer  # noqa: E402
from voiceskill.asr.frontend import create_enhancer  # noqa: E402
from voiceskill.audio import SAMPLE_RATE  # noqa: E402
from voiceskill.config import FRONTENDS  # noqa: E402
from voiceskill.content import load_content  # noqa: E402
from voiceskill.pipeline import Skill  # noqa: E402
from voiceskill.text import normalize  # noqa: E402

CHUNK = SAMPLE_RATE // 10
BLOCK = int(SAMPLE_RATE * 0.03)  # the live loop's microphone block
NOISES = [f"{kind}_{snr}" for snr in (10, 5) for kind in ("white", "pink", "babble")]
REVERBS = [f"reverb_{room}" for room in REVERB_ROOMS]
DEFAULT_CONDITIONS = ["clean", *NOISES, *REVERBS, "reverb_living+babble_10",
                      "reverb_living+white_10", "white_20", "pink_20", "babble_20"]
EMERGENCY = "emergency"


@dataclass
class Result:
    family: str
    expected: str
    got: str
    false_emergency: bool
    errors: int
    words: int
    after_end_ms: float
    decode_s: float
    enhance_cpu_s: float
    audio_s: float
    first_got: str  # what pocketsphinx alone made of it (the same as `got` without a cascade)
    asked: bool  # the cascade asked Whisper


class SecondOpinionOn:
    """The cascade's Whisper, as `Skill.recognised` asks it, on one question's raw audio."""

    def __init__(self, whisper, raw: np.ndarray):
        self.whisper, self.raw, self.asked = whisper, raw, False

    def second_opinion(self) -> Transcript:
        self.asked = True
        return self.whisper.transcribe(self.raw)


def fixtures(limit: int | None, offset: int = 0) -> list[dict]:
    """Single-turn clean fixtures of both families; `limit` picks a fixed, spread sample, and
    `offset` another one (a development split to tune on, the default sample held out)."""
    with (ROOT / "audio_fixtures" / "manifest.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle)
                if r["condition"] == "clean" and not r["conversation"]]
    rows.sort(key=lambda r: stable_int(r["file"]))
    rows = rows[offset:]
    return rows if not limit else rows[:limit]


def degrade(samples: np.ndarray, condition: str, seed: int, lead_s: float) -> np.ndarray:
    """The question as heard in `condition`, after `lead_s` of the room alone."""
    stream = np.concatenate([np.zeros(round(lead_s * SAMPLE_RATE), np.int16), samples])
    parts = condition.split("+")
    for part in parts:
        kind, _, setting = part.partition("_")
        if kind == "reverb":
            stream = reverberate(stream, setting)
        elif kind not in ("clean", "nospeech") and "nospeech" in parts:
            stream = noise_only(stream, kind, float(setting), seed)
        elif kind not in ("clean", "nospeech"):
            stream = add_noise(stream, kind, float(setting), seed=seed)
    return stream


def noise_only(samples: np.ndarray, kind: str, snr_db: float, seed: int) -> np.ndarray:
    """The noise add_noise would put under `samples` at `snr_db`, without them."""
    noise = make_noise(kind, len(samples), seed)
    return to_int16(noise * (active_rms(as_float(samples)) / (db(snr_db) * rms(noise))))


def enhance(enhancer, stream: np.ndarray) -> tuple[np.ndarray, float]:
    """The stream through the front-end in microphone-sized blocks, and its CPU seconds."""
    enhancer.reset()
    began = time.process_time()
    out = [enhancer.process(stream[i : i + BLOCK]) for i in range(0, len(stream), BLOCK)]
    return np.concatenate(out), time.process_time() - began


def recognise(recognizer, samples: np.ndarray) -> tuple[Transcript, float, float]:
    """Stream like a microphone; time only the work left after the last chunk."""
    began = time.perf_counter()
    utterance = Utterance(recognizer)
    for start in range(0, len(samples), CHUNK):
        utterance.feed(samples[start : start + CHUNK])
    end_of_audio = time.perf_counter()
    transcript = utterance.end()
    done = time.perf_counter()
    return transcript, (done - end_of_audio) * 1000, done - began


def run_condition(recognizer, skill: Skill, enhancers: dict, rows: list[dict],
                  condition: str, lead_s: float) -> dict[str, list[Result]]:
    results: dict[str, list[Result]] = defaultdict(list)
    lead = round(lead_s * SAMPLE_RATE)
    cascade = getattr(recognizer, "second", None)
    first = recognizer.first if cascade else recognizer
    no_speech = "nospeech" in condition.split("+")
    for row in rows:
        clean, _ = sf.read(ROOT / row["file"], dtype="int16")
        stream = degrade(clean, condition, stable_int(row["file"], condition) % 2**32, lead_s)
        for name, enhancer in enhancers.items():
            enhanced, cpu_s = enhance(enhancer, stream)
            question = enhanced[lead:]
            transcript, after_end_ms, decode_s = recognise(first, question)
            alone = skill.matcher.understand(transcript.text, transcript.confidence)
            understood, asked = alone, False
            if cascade:
                skill.recognizer = opinion = SecondOpinionOn(cascade, stream[lead:])
                began = time.perf_counter()
                transcript, understood = skill.recognised(transcript)
                asked = opinion.asked
                if asked:
                    after_end_ms += (time.perf_counter() - began) * 1000
            heard_emergency = understood.intent == EMERGENCY or EMERGENCY in understood.flags
            reference = [] if no_speech else normalize(row["text"]).split()
            results[name].append(Result(
                family=row["family"],
                expected="fallback" if no_speech else row["intent"],
                got=understood.intent,
                false_emergency=heard_emergency and (no_speech or row["intent"] != EMERGENCY),
                errors=Levenshtein.distance(reference, normalize(transcript.text).split()),
                words=len(reference),
                after_end_ms=after_end_ms,
                decode_s=decode_s,
                enhance_cpu_s=cpu_s,
                audio_s=len(stream) / SAMPLE_RATE,
                first_got=alone.intent,
                asked=asked,
            ))
    return results


HEADER = (f"{'condition':24} {'front-end':10} {'voices':6} {'n':>4} {'intent':>7} {'wrong':>6} "
          f"{'false-acc':>9} {'false-em':>8} {'WER':>6} {'p95 ms':>7} {'FE RTF':>6} "
          f"{'alone':>6} {'alone-fa':>8} {'asked':>6}")


def summarise(condition: str, frontend: str, family: str, results: list[Result]) -> str:
    in_domain = [r for r in results if r.expected != "fallback"]
    out_domain = [r for r in results if r.expected == "fallback"]
    accuracy = sum(r.got == r.expected for r in in_domain) / max(1, len(in_domain))
    wrong = sum(r.got not in (r.expected, "fallback") for r in in_domain) / max(1, len(in_domain))
    false_accepts = sum(r.got != "fallback" for r in out_domain)
    false_emergencies = sum(r.false_emergency for r in results)
    references = sum(r.words for r in results)
    wer = sum(r.errors for r in results) / references if references else float("nan")
    alone = sum(r.first_got == r.expected for r in in_domain) / max(1, len(in_domain))
    alone_fa = sum(r.first_got != "fallback" for r in out_domain)
    asked = sum(r.asked for r in results) / len(results)
    latency = sorted(r.after_end_ms for r in results)
    p95 = latency[min(len(latency) - 1, int(len(latency) * 0.95))]
    rtf = sum(r.enhance_cpu_s for r in results) / sum(r.audio_s for r in results)
    return (f"{condition:24} {frontend:10} {family:6} {len(results):4} {accuracy:7.1%} "
            f"{wrong:6.1%} {false_accepts:4}/{len(out_domain):<4} {false_emergencies:8} "
            f"{wer:6.1%} {p95:7.0f} {rtf:6.3f} {alone:6.1%} {alone_fa:4}/{len(out_domain):<3} "
            f"{asked:6.1%}")


def delay_ms(enhancer, clean: np.ndarray) -> float:
    """How late the front-end's output is: the lag of its peak cross-correlation with the input."""
    out, _ = enhance(enhancer, np.concatenate([clean, np.zeros(SAMPLE_RATE // 10, np.int16)]))
    n = min(len(out), len(clean))
    spectrum = np.fft.rfft(out[:n].astype(float), 2 * n) * np.conj(
        np.fft.rfft(clean[:n].astype(float), 2 * n))
    lag = int(np.argmax(np.fft.irfft(spectrum)[: n // 2]))
    return lag * 1000 / SAMPLE_RATE


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
    parser.add_argument("--conditions", default=",".join(DEFAULT_CONDITIONS))
    parser.add_argument("--frontends", default=",".join(FRONTENDS))
    parser.add_argument("--files", type=int, default=0, help="files per condition (0: all)")
    parser.add_argument("--offset", type=int, default=0,
                        help="skip this many files (--offset 34: a sample to tune on, apart "
                             "from the held-out first 34)")
    parser.add_argument("--lead-s", type=float, default=2.0)
    args = parser.parse_args()

    content = load_content()
    skill = Skill(content)
    recognizer = create_recognizer(args.engine, content.domain_sentences(),
                                   pronunciations=content.lexicon.pronunciations,
                                   concepts=content.lexicon.concepts)
    loads = {}
    enhancers = {}
    for name in args.frontends.split(","):
        began = time.perf_counter()
        enhancers[name] = create_enhancer(name)
        loads[name] = time.perf_counter() - began
    rows = fixtures(args.files, args.offset)
    print(f"engine {args.engine}; {len(rows)} files per condition from file {args.offset}; "
          f"lead-in {args.lead_s} s")
    print(HEADER)
    for condition in args.conditions.split(","):
        by_frontend = run_condition(recognizer, skill, enhancers, rows, condition, args.lead_s)
        for frontend, results in by_frontend.items():
            for family in ("flite", "espeak"):
                subset = [r for r in results if r.family == family]
                if subset:
                    print(summarise(condition, frontend, family, subset))
            print(summarise(condition, frontend, "all", results), flush=True)
    sample, _ = sf.read(ROOT / rows[0]["file"], dtype="int16")
    for name, enhancer in enhancers.items():
        print(f"front-end {name}: delay {delay_ms(enhancer, sample):.0f} ms, "
              f"load {loads[name]:.2f} s (targets: delay <= 40 ms, RTF <= 0.3 on one core)")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS of this process: {rss_mb:.0f} MB (target <= 200 MB)")
    print(f"start-up to ready (fresh process, median of 3): {startup_seconds(args.engine):.2f} s"
          " (target <= 1.5 s)")
    print("intent: in-domain and control questions given the right intent; wrong: given another "
          "intent (the rest were rejected);\nfalse-acc: out-of-domain questions not rejected; "
          "false-em: non-emergency turns heard as an emergency;\np95 ms: recognition finished "
          "this long after the end of the audio; FE RTF: front-end CPU seconds per audio second")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
