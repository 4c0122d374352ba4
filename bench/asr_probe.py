"""Recogniser probe: the figures quoted in src/voiceskill/asr.py come from here.

Synthesises in-domain and out-of-domain questions with espeak-ng (4 voices,
0.5 s of -60 dBFS noise around each), streams them in 100 ms chunks like a
microphone, and prints per utterance what came out and with what confidence;
then exact-sentence rate, recognition time after the end of the audio,
start-up time (cold and cached, fresh processes) and peak RSS.

    python bench/asr_probe.py                # the tests' sentence list (tests/helpers.py)
    python bench/asr_probe.py --content      # the skill's intents/, scored by its IntentMatcher
    python bench/asr_probe.py --generic-words 0 --discount 0.3    # try other LM settings
    python bench/asr_probe.py --default-cmn     # without the per-utterance cepstral mean
    python bench/asr_probe.py --content --flat  # intents/ as one list instead of by intent
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tools")]  # helpers needs tools/

from helpers import DOMAIN  # noqa: E402
from voiceskill import asr  # noqa: E402
from voiceskill.audio import read_wav_chunks  # noqa: E402

IN_DOMAIN = {
    "what is the difference between a muscle twitch and a spasm": "twitch_vs_spasm",
    "how do i relieve a muscle spasm": "spasm_relief",
    "when should i see a doctor about twitching": "when_to_see_doctor",
    "what causes muscle twitches": "twitch_causes",
    "is muscle twitching serious": "twitch_serious",
    "how can i prevent leg cramps": "spasm_prevention",
    "does magnesium help with cramps": "nutrition",
    "i have chest pain": "emergency",
    "i can't breathe": "emergency",
    "repeat": "repeat",
    "slower": "slower",
    "stop": "stop",
    "go back": "back",
    "start over": "start_over",
    "goodbye": "goodbye",
    "help": "help",
    "yes": "yes",
    "no": "no",
    "why does my eye keep twitching": "twitch_causes",
    "what should i do for a cramp": "spasm_relief",
}
OUT_OF_DOMAIN = [
    "what's the weather like in paris",
    "play some jazz music",
    "set an alarm for seven",
    "who won the football game",
    "how do i bake bread",
    "what is the stock price of apple",
    "remind me to buy milk",
    "translate hello into spanish",
]
VOICES = [("en-us", 150), ("en-us+m3", 170), ("en-gb", 140), ("en-us+f2", 160)]
CHUNK = 1600


def synthesise(folder: Path) -> list[tuple[str, str, Path]]:
    """(text, voice, wav) for every question and voice, with noise-padded edges."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    items = []
    for voice, rate in VOICES:
        for text in [*IN_DOMAIN, *OUT_OF_DOMAIN]:
            path = folder / f"{len(items):03d}.wav"
            subprocess.run(
                ["espeak-ng", "-v", voice, "-s", str(rate), "-w", str(path), text], check=True
            )
            audio, sr = sf.read(path)
            pad = np.zeros(sr // 2)
            audio = np.concatenate([pad, audio, pad])
            sf.write(path, audio + rng.normal(0, 0.001, len(audio)), sr)
            items.append((text, voice, path))
    return items


@dataclass
class Row:
    text: str
    voice: str
    result: asr.Transcript
    audio_s: float
    after_end_ms: float  # end_utterance() after the last chunk
    slowest_feed_ms: float
    partials: int
    intent: str | None = None


class Timed:
    """A recogniser that times each call, so the probe feeds it through asr.recognize, the one
    feed loop and length guard every front-end uses."""

    def __init__(self, recognizer):
        self._recognizer = recognizer
        self.slowest_feed_s, self.after_end_s, self.partials = 0.0, 0.0, 0

    def start_utterance(self) -> None:
        self._recognizer.start_utterance()

    def feed(self, pcm: np.ndarray):
        began = time.perf_counter()
        partial = self._recognizer.feed(pcm)
        self.slowest_feed_s = max(self.slowest_feed_s, time.perf_counter() - began)
        self.partials += partial is not None
        return partial

    def end_utterance(self) -> asr.Transcript:
        began = time.perf_counter()
        result = self._recognizer.end_utterance()
        self.after_end_s = time.perf_counter() - began
        return result


def decode(recognizer, text: str, voice: str, path: Path) -> Row:
    """Stream the file like a microphone, timing each call."""
    chunks = list(read_wav_chunks(path, chunk_ms=CHUNK * 1000 // asr.SAMPLE_RATE))
    timed = Timed(recognizer)
    result = asr.recognize(timed, chunks)
    audio_s = sum(map(len, chunks)) / asr.SAMPLE_RATE
    return Row(text, voice, result, audio_s, timed.after_end_s * 1000,
               timed.slowest_feed_s * 1000, timed.partials)


def startup(domain: str, cache: Path, settings: list[str]) -> tuple[float, float]:
    """Seconds from a fresh process's first import to a ready recogniser, and its RSS in MB."""
    code = "\n".join(
        [
            "import time; began = time.perf_counter()",
            "import resource, sys",
            f"sys.path[:0] = [{str(ROOT / 'tests')!r}, {str(ROOT / 'tools')!r}]",
            "from pathlib import Path",
            "from voiceskill import asr",
            *settings,
            domain,
            f"asr.create_recognizer('pocketsphinx', sentences, cache_dir=Path({str(cache)!r}))",
            "print(time.perf_counter() - began,"
            " resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)",
        ]
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    seconds, rss = out.stdout.split()
    return float(seconds), float(rss)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--content", action="store_true", help="use the skill's intents/")
    parser.add_argument("--generic-words", type=int, default=asr.GENERIC_WORDS)
    parser.add_argument("--generic-share", type=float, default=asr.GENERIC_SHARE)
    parser.add_argument("--discount", type=float, default=asr.LM_DISCOUNT)
    parser.add_argument("--cmn-speech", type=float, default=asr.CMN_SPEECH_S)
    parser.add_argument(
        "--default-cmn", action="store_true", help="keep pocketsphinx's default cepstral mean"
    )
    parser.add_argument("--flat", action="store_true", help="pass the sentences as one list")
    parser.add_argument("--decoder", default="", help="extra Decoder options, e.g. topn=2,ds=2")
    parser.add_argument("-q", "--quiet", action="store_true", help="summary only")
    args = parser.parse_args()
    settings = [
        f"asr.GENERIC_WORDS = {args.generic_words}",
        f"asr.GENERIC_SHARE = {args.generic_share}",
        f"asr.LM_DISCOUNT = {args.discount}",
        f"asr.CMN_MIN_FRAMES = {10**9 if args.default_cmn else asr.CMN_MIN_FRAMES}",
        f"asr.CMN_SPEECH_S = {args.cmn_speech}",
        *(
            f"asr.DECODER_OPTIONS[{k!r}] = {v}"
            for k, v in (kv.split("=") for kv in args.decoder.split(",") if kv)
        ),
    ]
    for line in settings:
        exec(line, {"asr": asr})  # the bench's knobs; the module's defaults are the product

    matcher = None
    if args.content:
        from voiceskill.content import load_content
        from voiceskill.nlu import IntentMatcher

        content = load_content()
        matcher = IntentMatcher(content)
        sentences = content.intents
        domain = "from voiceskill.content import load_content; sentences = load_content().intents"
    else:
        sentences = DOMAIN
        domain = "from helpers import DOMAIN as sentences"
    if args.flat:
        sentences = [s for group in sentences.values() for s in group]
        domain += "; sentences = [s for group in sentences.values() for s in group]"

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp) / "cache"
        cold, _ = startup(domain, cache, settings)
        cached = [startup(domain, cache, settings) for _ in range(3)]
        recognizer = asr.create_recognizer("pocketsphinx", sentences, cache_dir=cache)
        items = synthesise(Path(tmp))
        rows = [decode(recognizer, *item) for item in items]
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for row in rows:
        row.intent = matcher.understand(row.result.text).intent if matcher else None

    ind = [r for r in rows if r.text in IN_DOMAIN]
    ood = [r for r in rows if r.text not in IN_DOMAIN]
    if not args.quiet:
        for r in rows:
            mark = "   " if r.text in IN_DOMAIN else "OOD"
            print(
                f"{mark} {r.voice:9} {r.text!r:62} -> {r.result.text!r} "
                f"conf={r.result.confidence or 0:.2f}" + (f" intent={r.intent}" if matcher else "")
            )
    conf = {
        name: [r.result.confidence or 0.0 for r in group]
        for name, group in (("in-domain", ind), ("out-of-domain", ood))
    }
    print(
        f"\nsettings: generic words {args.generic_words}, share {args.generic_share}, "
        f"discount {args.discount}, CMN speech {args.cmn_speech} s"
        f"{' (default mean kept)' if args.default_cmn else ''}, decoder {asr.DECODER_OPTIONS}; "
        f"{'intents/' if args.content else 'test sentences'}{' as one list' if args.flat else ''}"
    )
    print(f"in-domain exact sentence: {np.mean([r.result.text == r.text for r in ind]):.0%}")
    if matcher:
        print(
            f"in-domain intent right: {np.mean([IN_DOMAIN[r.text] == r.intent for r in ind]):.0%}; "
            f"out-of-domain rejected: {np.mean([r.intent == 'fallback' for r in ood]):.0%}"
        )
    for name, values in conf.items():
        print(
            f"confidence {name}: median {statistics.median(values):.2f}, "
            f"p10 {np.percentile(values, 10):.2f}, p90 {np.percentile(values, 90):.2f}"
        )
    for name, group in (("all", rows), ("3.5 s and longer", [r for r in rows if r.audio_s >= 3.5])):
        latency = [r.after_end_ms for r in group]
        print(
            f"after end of audio, {name} ({len(group)}): p50 {np.percentile(latency, 50):.1f} ms, "
            f"p95 {np.percentile(latency, 95):.1f} ms, max {max(latency):.1f} ms"
        )
    print(
        f"slowest feed() {max(r.slowest_feed_ms for r in rows):.0f} ms; "
        f"partials per utterance {statistics.median(r.partials for r in rows):.0f}"
    )
    print(
        f"start-up: cold {cold:.2f} s, cached {statistics.median(c[0] for c in cached):.2f} s; "
        f"RSS when ready {max(c[1] for c in cached):.0f} MB, after the run {rss:.0f} MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
