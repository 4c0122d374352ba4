"""Understanding on the realistic held-out set (bench/realistic/), typed or spoken.

Every row is a fresh conversation through the real pipeline (content, classifier, red flags,
dialogue).  Prints, next to the targets of the project:
  everyday questions answered with a fitting intent; emergencies recognised; urgent signs
  escalated; denials, questions, past events and harmless mentions escalated (should be none);
  out-of-domain questions accepted; triage answers read right; the template-style held-out set
  (bench/heldout_text.csv); intent + red-flag time per turn; `voiceskill ask` as a process.
With --spoken, the same through `replay` (pocketsphinx) of audio_fixtures/realistic/, or for
another set of a subset spoken afresh by flite into a temporary folder (tools/fixturegen.py).
Writes the figures to bench/results/latest.json for the review sheet.

Run: python bench/understanding.py [--set realistic|realistic_blind…] [--spoken [--engine E]]
[--show-misses]
(the blind sets were written by people who never saw the content; each is measured before
anyone reads its misses, and the first figures are kept in bench/results/blind-measures.md.
Sets whose misses have been read are development sets from then on; bench/results/
blind-measures.md says which set is still blind.)
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from voiceskill.config import ENGINES
from voiceskill.content import load_content
from voiceskill.content.schema import OUTCOMES
from voiceskill.dialogue import Conversation
from voiceskill.nlu import IntentMatcher

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tools"))
from fixturegen import write_realistic  # noqa: E402

SETS = tuple(sorted(folder.name for folder in (ROOT / "bench").glob("realistic*/")))
SPOKEN = ROOT / "audio_fixtures" / "realistic"
RESULTS = ROOT / "bench" / "results" / "latest.json"
ESCALATED = {"urgent", "emergency"}
TRIAGE_NODES = {"signs": "triage_weakness", "lasting": "triage_lasting",
                "worse": "triage_returning", "cause": "triage_cause"}
"""Which triage question of intents/dialogue.yaml each `question` of triage.csv stands for."""


def rows(folder: Path, name: str) -> list[dict]:
    """The rows of one file of a set; a set without that file (the blind set has no triage
    answers) gives none."""
    if not (folder / name).is_file():
        return []
    with (folder / name).open(encoding="utf-8") as file:
        return list(csv.DictReader(file))


class Judge:
    """Runs one fresh conversation per item and keeps the per-turn understanding time."""

    def __init__(self) -> None:
        self.content = load_content()
        self.matcher = IntentMatcher(self.content)
        self.times_ms: list[float] = []

    def first_turn(self, text: str, asr_confidence: float | None = None):
        began = time.perf_counter()
        understanding = self.matcher.understand(text, asr_confidence)
        self.times_ms.append((time.perf_counter() - began) * 1000)
        return Conversation(self.content).respond(understanding)

    def triage(self, node: str, answer: str) -> str:
        """yes / no / unknown: where the answer took the question."""
        conversation = Conversation(self.content, node=node)
        reply = conversation.respond(self.matcher.understand(answer))
        yes, no = conversation.answer_targets(self.content.nodes[node])
        moved_on = reply.answer.startswith(self.content.messages["unsure_move_on"])
        if reply.node == yes and not moved_on:
            return "yes"
        return {no: "no"}.get(reply.node, "unknown")


def confirming(content) -> Callable[[str], str | None]:
    """The grade (urgent, emergency) of the sign an answer asks "Did you say ...?" about,
    alone or after the advice for a sign said outright beside it; None when it asks nothing.
    A "yes" leads there, so a question about a milder sign does not recognise an emergency."""
    grades: dict[str, str] = {}  # a question two flags share: the graver one's grade
    for flag in content.red_flags:
        grade = content.nodes[flag.goto].outcome or OUTCOMES[0]
        grades[flag.confirm] = max(grade, grades.get(flag.confirm, grade), key=OUTCOMES.index)
    return lambda answer: next((grade for question, grade in grades.items()
                                if answer.endswith(question)), None)


def rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {hits / total:.1%}" if total else "n/a"


def typed(judge: Judge, folder: Path, show: bool) -> dict[str, float]:
    figures: dict[str, float] = {}

    def report(name: str, items: list, good, target: str, describe) -> None:
        if not items:
            return
        hits = [item for item in items if good(item)]
        print(f"{name:<44} {rate(len(hits), len(items)):>18}   target {target}")
        figures[name] = round(len(hits) / len(items), 4)
        if show:
            for item in items:
                if not good(item):
                    print(f"      miss: {describe(item)}")

    asks = confirming(judge.content)
    everyday = [(r, judge.first_turn(r["text"])) for r in rows(folder, "everyday.csv")]
    report("everyday questions, fitting intent", everyday,
           lambda p: p[1].intent in p[0]["intents"].split("|")
           and asks(p[1].answer) is None, ">= 90%",
           lambda p: f"{p[0]['text']!r} -> {p[1].intent} ({p[1].confidence})"
                     f" want {p[0]['intents']}: {p[1].answer[:60]!r}")
    report("everyday questions answered without an alarm", everyday,
           lambda p: p[1].outcome not in ESCALATED, "-",
           lambda p: f"{p[0]['text']!r} -> {p[1].outcome} ({p[1].intent})")
    for name, target_name, wanted, target in (
            ("emergency.csv", "emergencies", {"emergency"}, ">= 98%"),
            ("urgent.csv", "urgent signs", ESCALATED, ">= 90%")):
        replies = [(r, judge.first_turn(r["text"])) for r in rows(folder, name)]
        report(f"{target_name} escalated at once", replies,
               lambda p, w=wanted: p[1].outcome in w, target,
               lambda p: f"{p[0]['text']!r} -> {p[1].outcome} ({p[1].intent})"
                         f" {p[1].answer[:50]!r}")
        report(f"{target_name} escalated or confirmed", replies,
               lambda p, w=wanted: p[1].outcome in w or asks(p[1].answer) in w, target,
               lambda p: f"{p[0]['text']!r} -> {p[1].outcome} ({p[1].intent})"
                         f" {p[1].answer[-60:]!r}")
    calm = [(r, judge.first_turn(r["text"])) for r in rows(folder, "nonalarm.csv")]
    report("denials/questions/past/mentions NOT escalated", calm,
           lambda p: p[1].outcome not in ESCALATED, "escalated <= 5%",
           lambda p: f"[{p[0]['kind']}] {p[0]['text']!r} -> {p[1].outcome}")
    report("denials/questions/past/mentions not even confirmed", calm,
           lambda p: p[1].outcome not in ESCALATED and asks(p[1].answer) is None, "-",
           lambda p: f"[{p[0]['kind']}] {p[0]['text']!r} -> {p[1].answer[:60]!r}")
    outside = [(r, judge.first_turn(r["text"])) for r in rows(folder, "out_of_domain.csv")]
    fallback = judge.content.messages["fallback"]
    report("out-of-domain rejected", outside,
           lambda p: p[1].intent == "fallback" or p[1].answer == fallback,
           "false accepts <= 2%", lambda p: f"{p[0]['text']!r} -> {p[1].intent}")
    triage = [(r, judge.triage(TRIAGE_NODES[r["question"]], r["answer"]))
              for r in rows(folder, "triage.csv")]
    report("triage answers read right", triage, lambda p: p[1] == p[0]["expected"], "-",
           lambda p: f"[{p[0]['question']}] {p[0]['answer']!r} -> {p[1]} want {p[0]['expected']}")
    with (ROOT / "bench" / "heldout_text.csv").open(encoding="utf-8") as file:
        heldout = [(r, judge.first_turn(r["text"])) for r in csv.DictReader(file)]
    report("template-style held-out, right intent", heldout,
           lambda p: p[1].intent == p[0]["intent"], ">= 95%",
           lambda p: f"{p[0]['text']!r} -> {p[1].intent} want {p[0]['intent']}")
    times = sorted(judge.times_ms)
    p95 = times[int(len(times) * 0.95)]
    print(f"{'intent + red flags per turn':<44} median {statistics.median(times):.1f} ms, "
          f"p95 {p95:.1f} ms   target p95 <= 50 ms")
    figures["understanding p95 ms"] = round(p95, 1)
    return figures


def spoken(judge: Judge, show: bool, engine: str, folder: Path = SPOKEN,
           base: Path = ROOT) -> dict[str, float]:
    """The spoken subset in `folder` (its manifest's paths start from `base`) through
    `voiceskill replay --json --separate --engine ENGINE` (one process)."""
    with (folder / "manifest.csv").open(encoding="utf-8") as file:
        items = list(csv.DictReader(file))
    command = [sys.executable, "-m", "voiceskill", "replay", "--json", "--separate", "--no-speak",
               "--engine", engine]
    output = subprocess.run(command + [str(base / item["file"]) for item in items],
                            capture_output=True, text=True, cwd=ROOT).stdout
    turns = {Path(t["audio"]).name: t for t in map(json.loads, output.splitlines())}
    content = judge.content
    asks = confirming(content)

    def answered(turn: dict) -> bool:
        """A fresh conversation that moved off the start node was given an answer."""
        return turn["node"] != content.start

    def asked(turn: dict) -> str | None:
        """The grade of the sign the turn asks about ("Did you say ...?"), if it asks."""
        return asks(turn.get("answer") or "")

    checks = {
        # As typed: the fitting intent, not a question about a sign ("help" stays at the start).
        "everyday.csv": ("spoken everyday, answered with a fitting intent", ">= 85%",
                         lambda i, t: t["intent"] in i["label"].split("|") and asked(t) is None),
        "emergency.csv": ("spoken emergencies escalated (or confirmed)", ">= 95%",
                          lambda i, t: t["outcome"] == "emergency" or asked(t) == "emergency"),
        "urgent.csv": ("spoken urgent escalated (or confirmed)", "-",
                       lambda i, t: t["outcome"] in ESCALATED or asked(t) in ESCALATED),
        "nonalarm.csv": ("spoken non-alarms NOT escalated", "escalated <= 2%",
                         lambda i, t: t["outcome"] not in ESCALATED),
        "out_of_domain.csv": ("spoken out-of-domain not answered", "false accepts <= 5%",
                              lambda i, t: not answered(t)),
    }
    figures = {}
    for source, (name, target, good) in checks.items():
        name = name if engine == "auto" else f"{name} ({engine})"
        subset = [(i, turns.get(Path(i["file"]).name)) for i in items if i["source"] == source]
        hits = [1 for i, t in subset if t and good(i, t)]
        print(f"{name:<44} {rate(len(hits), len(subset)):>18}   target {target}")
        figures[name] = round(len(hits) / len(subset), 4) if subset else 0.0
        if show:
            for i, t in subset:
                if not (t and good(i, t)):
                    heard = t["transcript"] if t else "(no turn)"
                    print(f"      miss: {i['text']!r} heard {heard!r} -> "
                          f"{t and t['intent']} {t and t['outcome']}")
    return figures


def ask_process_seconds(runs: int = 5) -> float:
    """Wall time of `voiceskill ask --no-speak` as a whole process (caches warm)."""
    command = [sys.executable, "-m", "voiceskill", "ask", "--no-speak", "why do my legs cramp"]
    subprocess.run(command, capture_output=True, check=True, cwd=ROOT)
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True, cwd=ROOT)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--set", choices=SETS, default=SETS[0],
                        help="which held-out set (the blind one: measure once, never tune)")
    parser.add_argument("--spoken", action="store_true", help="also replay the spoken subset")
    parser.add_argument("--engine", default="auto", choices=ENGINES,
                        help="the recogniser for --spoken (cascade: Whisper's second opinion)")
    parser.add_argument("--show-misses", action="store_true")
    args = parser.parse_args()
    judge = Judge()
    figures = typed(judge, ROOT / "bench" / args.set, args.show_misses)
    if args.spoken and args.set == SETS[0]:
        figures |= spoken(judge, args.show_misses, args.engine)
    elif args.spoken:
        with tempfile.TemporaryDirectory() as scratch:
            write_realistic(Path(scratch), ROOT / "bench" / args.set)
            figures |= spoken(judge, args.show_misses, args.engine, Path(scratch) / "realistic",
                              Path(scratch).parent)
    seconds = ask_process_seconds()
    print(f"{'voiceskill ask, whole process (median of 5)':<44} {seconds:.2f} s   target <= 1.0 s")
    figures["ask process s"] = round(seconds, 2)
    RESULTS.parent.mkdir(exist_ok=True)
    RESULTS.write_text(json.dumps({
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "content_hash": judge.content.fingerprint,
        "set": args.set,
        "figures": figures,
    }, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
