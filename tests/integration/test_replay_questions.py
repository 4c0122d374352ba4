"""`voiceskill replay --separate` on every clean single question in a natural voice, in one
process through the real pocketsphinx engine (the rest of replay: test_replay.py)."""

from __future__ import annotations

import json

from helpers import ROOT, manifest_rows, replay


def test_single_questions_in_a_natural_voice_reach_their_intent():
    chosen = manifest_rows(condition="clean", voice="flite-slt", conversation="")
    result = replay("--separate", *[str(ROOT / r["file"]) for r in chosen])
    assert result.returncode == 0, result.stderr
    turns = [json.loads(line) for line in result.stdout.splitlines()]
    hits = [t["intent"] == r["intent"] for r, t in zip(chosen, turns, strict=True)]
    assert sum(hits) / len(hits) >= 0.9, [
        (r["text"], t["transcript"], t["intent"])
        for r, t in zip(chosen, turns, strict=True) if t["intent"] != r["intent"]
    ]
    for turn in turns:
        assert turn["timings_ms"]["asr"] > 0
        assert turn["timings_ms"]["total"] >= turn["timings_ms"]["asr"]
