"""Soak: hundreds of replayed turns in one process keep memory flat."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from helpers import ROOT
from voiceskill.asr import create_recognizer
from voiceskill.content import load_content
from voiceskill.pipeline import Skill

TURNS = 500
WARM_UP = 50
ALLOWED_GROWTH_MB = 25


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


@pytest.mark.slow
def test_500_replayed_turns_do_not_grow_memory():
    content = load_content()
    skill = Skill(content, recognizer=create_recognizer("pocketsphinx", content.domain_sentences()))
    with (ROOT / "audio_fixtures" / "manifest.csv").open() as handle:
        files = [ROOT / r["file"] for r in csv.DictReader(handle) if r["condition"] == "clean"]
    conversation = skill.conversation()
    baseline = None
    asr_ms = []
    for turn_number in range(TURNS):
        if conversation.ended or turn_number % 10 == 0:
            conversation = skill.conversation()
        turn = skill.audio_turn(conversation, files[turn_number % len(files)])
        assert turn.error is None and turn.reply is not None
        asr_ms.append(turn.timings_ms["asr"])
        if turn_number == WARM_UP:
            baseline = rss_mb()
    growth = rss_mb() - baseline
    early, late = sorted(asr_ms[WARM_UP:150]), sorted(asr_ms[-100:])
    print(f"RSS growth over {TURNS - WARM_UP} turns: {growth:.1f} MB; median asr "
          f"{early[len(early) // 2]:.0f} ms early vs {late[len(late) // 2]:.0f} ms late")
    assert growth < ALLOWED_GROWTH_MB
