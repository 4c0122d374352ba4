"""Live-loop latency on virtual audio devices: end of the user's speech -> first answer sample.

Starts a private PulseAudio (tests/virtual_audio.py), runs `voiceskill listen --json`, plays
fixture questions into the virtual microphone one by one and reads the per-turn timings the
loop reports. Prints median / p95 of: the endpointing wait (silence heard before the
utterance is declared over), recognition after that, intent + dialogue, and TTS up to the
first audio block handed to the device; then the total with and without the endpointing wait.
Targets: <= 0.25 s excluding the endpointing window, <= 0.6 s including it (the issue's).

Run: python bench/live_latency.py [--turns 20]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from pathlib import Path
from queue import Empty

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from helpers import Listener  # noqa: E402
from virtual_audio import VirtualAudio  # noqa: E402


def questions(count: int) -> list[Path]:
    with (ROOT / "audio_fixtures" / "manifest.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle)
                if r["voice"] == "flite-slt" and r["condition"] == "clean" and not r["conversation"]
                and r["intent"] not in ("fallback", "goodbye", "stop")]
    return [ROOT / r["file"] for r in rows[:count]]


def figures(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"{name:38} median {statistics.median(ordered):6.0f} ms   p95 {p95:6.0f} ms"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    with VirtualAudio() as audio:
        # Ready once it shows "listening": after start-up and after its greeting has played
        # (a question played over the greeting is ignored as spoken over the skill's voice).
        listener = Listener(audio)
        results = []
        try:
            for wav in questions(args.turns):
                played = sum("answer played" in line for line in listener.status)
                audio.play_into_mic(wav)
                try:
                    results.append(listener.turns.get(timeout=60)["timings_ms"])
                except Empty:
                    print(f"no answer to {wav.name}; status: {listener.status[-3:]}")
                    continue
                # The next question once this answer has played out, and a breath after it:
                # one asked into the answer's last second is taken as said over it.
                deadline = time.monotonic() + 60
                while (sum("answer played" in line for line in listener.status) == played
                       and time.monotonic() < deadline):
                    time.sleep(0.05)
                time.sleep(1.0)
        finally:
            listener.close()
    timed = [t for t in results if "to_first_audio" in t]
    print(f"{len(timed)} answered turns out of {args.turns}")
    print(figures("endpointing wait (silence window)", [t["endpoint_wait"] for t in timed]))
    print(figures("recognition after end of speech", [t["asr"] for t in timed]))
    print(figures("intent + dialogue", [t["nlu"] + t["dialogue"] for t in timed]))
    print(figures("TTS to first audio", [
        t["to_first_audio"] - t["asr"] - t["nlu"] - t["dialogue"] for t in timed]))
    print(figures("total, excluding endpointing (<=250)", [t["to_first_audio"] for t in timed]))
    print(figures("total, including endpointing (<=600)",
                  [t["to_first_audio"] + t["endpoint_wait"] for t in timed]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
