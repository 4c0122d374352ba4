"""Intent accuracy on held-out typed paraphrases, through `voiceskill ask --json --separate`.

bench/heldout_text.csv holds paraphrases written apart from intents/ (the matcher never sees
them). Prints in-domain intent accuracy and the out-of-domain rejection rate (targets: 95%).
Run: python bench/text_accuracy.py
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

HELDOUT = Path(__file__).with_name("heldout_text.csv")


def run(rows: list[dict]) -> list[dict]:
    command = [sys.executable, "-m", "voiceskill", "ask", "--json", "--separate", "--no-speak"]
    output = subprocess.run(
        command + [row["text"] for row in rows], capture_output=True, text=True, check=True
    ).stdout
    return [json.loads(line) for line in output.splitlines()]


def main() -> int:
    rows = list(csv.DictReader(HELDOUT.open()))
    began = time.perf_counter()
    turns = run(rows)
    elapsed = time.perf_counter() - began
    in_domain = [(r, t) for r, t in zip(rows, turns, strict=True) if r["intent"] != "fallback"]
    out_domain = [(r, t) for r, t in zip(rows, turns, strict=True) if r["intent"] == "fallback"]
    correct = sum(t["intent"] == r["intent"] for r, t in in_domain)
    rejected = sum(t["intent"] == "fallback" for _, t in out_domain)
    for row, turn in zip(rows, turns, strict=True):
        if turn["intent"] != row["intent"]:
            print(f"  miss: {row['text']!r}: expected {row['intent']}, got {turn['intent']}"
                  f" ({turn['confidence']})")
    nlu = sorted(t["timings_ms"]["nlu"] for t in turns)
    print(f"in-domain intent accuracy: {correct}/{len(in_domain)} = {correct / len(in_domain):.1%}"
          " (target >= 95%)")
    print(f"out-of-domain -> fallback: {rejected}/{len(out_domain)} = "
          f"{rejected / len(out_domain):.1%} (target >= 95%)")
    print(f"nlu time per turn: median {nlu[len(nlu) // 2]:.1f} ms, "
          f"p95 {nlu[int(len(nlu) * 0.95)]:.1f} ms; whole run {elapsed:.2f} s "
          f"for {len(rows)} turns (one process)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
