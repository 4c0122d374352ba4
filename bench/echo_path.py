"""The skill's own voice on an echo path: does it interrupt or answer itself, and does it
still hear "stop" said over an answer?

Starts a private PulseAudio (tests/virtual_audio.py) whose speaker is fed back into the
microphone, delayed, attenuated and reverberated (VirtualAudio.start_echo_path), runs
`voiceskill listen --json` (which first says its greeting), and asks `--answers` questions.
After each one it either lets the answer play out or, every other time, says "stop" a random
1-5 s into it; every fourth answer is played out and the next question asked the moment its
last sound has been played (within about 0.2 s). Prints: answers that were cut off or
answered by the skill's own voice (self-interruptions), "stop"s heard, questions lost (no
answer, or not the question's intent), and the echo-return-loss enhancement the canceller
reported for the greeting, for the first answer and at the end of each answer played out
with nothing said over it. A question lost is looked for in a recording of the microphone
and recognised there alone: heard wrong there too, the microphone's audio or its recognition
lost it, not the canceller. Run with --no-echo-cancel for the figures without the canceller.

Run: python bench/echo_path.py [--answers 20] [--gain-db -6] [--room small] [-- LISTEN ARGS]
Targets: first answer >= 15 dB ERLE, >= 20 dB after; 0 self-interruptions in 20 answers;
>= 95 % of "stop"s heard; no question lost.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from virtual_audio import (  # noqa: E402
    Recording,
    VirtualAudio,
    find_signal,
    played_through,
    rendered,
    trimmed,
)
from voiceskill.asr import Utterance, create_recognizer  # noqa: E402
from voiceskill.audio import SAMPLE_RATE  # noqa: E402
from voiceskill.content import load_content  # noqa: E402

TIMEOUT_S = 60
ENDING_S = 2  # how much of an answer's end shows it played through
LOOKED_BACK_S = 40  # how far back the microphone's recording is searched for a lost question


def questions() -> list[tuple[Path, str]]:
    """Plain questions with a long spoken answer (no triage questions, no control words), with
    their intents."""
    wanted = ("twitch_vs_spasm", "twitch_causes", "spasm_causes", "spasm_relief",
              "spasm_prevention", "nutrition", "back_spasm")
    with (ROOT / "audio_fixtures" / "manifest.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle)
                if r["family"] == "flite" and r["condition"] == "clean" and not r["conversation"]
                and r["intent"] in wanted]
    return [(ROOT / r["file"], r["intent"]) for r in rows]


class Listener:
    def __init__(self, audio: VirtualAudio, extra: list[str], debug: bool):
        self.process = subprocess.Popen(
            [sys.executable, "-m", "voiceskill", *(["--debug"] if debug else []),
             "listen", "--json", *extra],
            env=audio.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.turns: list[dict] = []
        self.status: list[tuple[float, str]] = []
        threading.Thread(target=self._read_turns, daemon=True).start()
        threading.Thread(target=self._read_status, daemon=True).start()

    def _read_turns(self) -> None:
        for line in self.process.stdout:
            self.turns.append(json.loads(line))

    def _read_status(self) -> None:
        for line in self.process.stderr:
            self.status.append((time.monotonic(), line.strip()))

    def wait(self, predicate, timeout: float = TIMEOUT_S) -> bool:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline or self.process.poll() is not None:
                return False
            time.sleep(0.02)
        return True

    def count(self, text: str) -> int:
        return sum(text in line for _, line in self.status)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--answers", type=int, default=20)
    parser.add_argument("--gain-db", type=float, default=-6.0)
    parser.add_argument("--delay-s", type=float, default=0.06)
    parser.add_argument("--room", default=None, help="reverberate the echo (sox; unsteady delay)")
    parser.add_argument("--debug", action="store_true",
                        help="listen's debug log, printed with each miss")
    parser.add_argument("--keep", type=Path, metavar="DIR",
                        help="keep the recordings of the microphone and the speaker there")
    parser.add_argument("listen_args", nargs="*")
    args = parser.parse_args()
    rng = random.Random(1)
    stop = ROOT / "audio_fixtures" / "clean" / "stop__1__flite-slt.wav"
    asked = questions()
    self_interruptions = stops_said = stops_heard = lost = quick_asked = 0
    erle: list[float] = []
    first_erle = greeting_erle = None
    quick = False  # this question is asked as the last answer's last sound is played
    with tempfile.TemporaryDirectory(prefix="echo-path-") as tmp, VirtualAudio() as audio:
        scratch = Path(tmp)
        audio.start_echo_path(args.delay_s, args.gain_db, args.room)
        microphone = audio.record_speaker(scratch / "microphone.wav", device="vmic")
        speaker = (audio.record_speaker(scratch / "speaker.wav", speaker_echo(args.room))
                   if args.keep else None)
        live = Listener(audio, args.listen_args, args.debug)
        if not live.wait(lambda: live.count("listening")):
            print("listen did not start:", live.status[-3:])
            return 2
        greeting_erle = erle_of(live)
        for number in range(args.answers):
            turns_before = len(live.turns)
            say_stop = number % 2 == 1
            leads_to_quick = number % 4 == 2 and number + 1 < args.answers
            recording = (audio.record_speaker(scratch / "answer.wav", speaker_echo(args.room))
                         if leads_to_quick else None)
            question, intent = asked[number % len(asked)]
            audio.play_into_mic(trimmed(question, scratch) if quick else question)
            quick_asked += quick
            if not live.wait(lambda n=turns_before: len(live.turns) > n):
                lost += 1
                print(f"answer {number + 1}: the question{' (quick)' * quick} got no answer; "
                      f"{on_the_microphone(microphone, question)}")
                continue
            answer_turn, answered_at = len(live.turns), time.monotonic()
            # what listen says from here on is about this answer: the last one's "answer played"
            # may come after this question was asked (asked as it ended), and counted here it
            # let the next question be asked over this answer
            status_from = len(live.status)
            if live.turns[turns_before]["intent"] != intent:
                lost += 1
                print(f"answer {number + 1}: the question{' (quick)' * quick} was heard as "
                      f"'{live.turns[turns_before]['transcript']}'; "
                      f"{on_the_microphone(microphone, question)}")
            quick = False
            if say_stop:
                time.sleep(rng.uniform(1.0, 5.0))  # "stop" somewhere into the answer
                stops_said += 1
                said_at = time.monotonic()
                audio.play_into_mic(stop)
                heard = live.wait(lambda n=answer_turn: any(
                    t["intent"] == "stop" for t in live.turns[n:]), timeout=10)
                stops_heard += heard
                if not heard:
                    since = [line for at, line in live.status if at >= said_at]
                    print(f"answer {number + 1}: 'stop' said {said_at - answered_at:.1f} s into "
                          f"the answer not heard; status since: {since}")
            if recording is not None:  # the next question follows the answer's last sound
                said = rendered(live.turns[turns_before]["answer"], scratch)
                try:
                    recording.wait_until("played the answer", played_through(ending(said)),
                                         TIMEOUT_S)
                    finished = True
                except AssertionError as exc:
                    print(f"answer {number + 1}: {exc}")
                    finished = False
                recording.stop(tail_s=0)
                quick = True
            else:
                finished = live.wait(lambda n=status_from: any(
                    "answer played" in line for _, line in live.status[n:]))
            extra = live.turns[answer_turn:]
            own = [t for t in extra if not (say_stop and t["intent"] == "stop")]
            cut_off = [at for at, line in live.status[status_from:]
                       if "answer stopped" in line and not (say_stop and at >= said_at)]
            if own or cut_off or not finished:
                self_interruptions += 1
                print(f"answer {number + 1}: interrupted by its own voice: "
                      f"{[t['transcript'] for t in own]}{' and cut off' if cut_off else ''}")
            if not (say_stop or leads_to_quick):
                erle.append(erle_of(live))
                first_erle = erle[0] if number == 0 else first_erle
                live.wait(lambda: not live.status or "listening" in live.status[-1][1]
                          or "answer played" in live.status[-1][1], timeout=5)
        live.process.terminate()
        live.process.wait(timeout=30)
        microphone.stop(tail_s=0)
        if args.keep:
            speaker.stop(tail_s=0)
            args.keep.mkdir(parents=True, exist_ok=True)
            for name in ("microphone.wav", "speaker.wav"):
                shutil.copy(scratch / name, args.keep / name)
    if args.debug:
        print("\n".join(line for _, line in live.status))
    print(f"echo path: delay {args.delay_s} s, gain {args.gain_db} dB, room {args.room}; "
          f"listen {' '.join(args.listen_args) or '(defaults)'}; load average over the last "
          f"5 minutes {os.getloadavg()[1]:.1f} (a busy CPU makes the player run dry)")
    print(f"self-interruptions: {self_interruptions} of {args.answers} answers (target 0)")
    print(f"'stop' over an answer heard: {stops_heard} of {stops_said} (target >= 95 %)")
    print(f"questions lost: {lost} of {args.answers} ({quick_asked} asked as an answer ended; "
          f"target 0)")
    print(f"ERLE over the greeting: {greeting_erle} dB; over the first answer: {first_erle} dB "
          f"(target >= 15 dB)")
    if erle:
        print(f"ERLE at the end of answers played out: median {statistics.median(erle):.0f} dB, "
              f"min {min(erle):.0f} dB (target >= 20 dB)")
    return 0


def on_the_microphone(microphone: Recording, question: Path) -> str:
    """What the microphone alone heard of `question`, asked in its last LOOKED_BACK_S: found by
    cross-correlation (1.0: the question as played, unaltered, nothing over it) and recognised
    on its own with the domain's sentences."""
    heard = microphone.heard()[-LOOKED_BACK_S * SAMPLE_RATE :]
    said = sf.read(question, dtype="int16")[0]
    found = find_signal(heard, said)
    utterance = Utterance(create_recognizer("pocketsphinx", load_content().domain_sentences()))
    utterance.feed(heard[found.offset : found.offset + len(said)])
    alone = utterance.end()
    return (f"on the microphone (correlation {found.correlation:.2f}): '{alone.text}' "
            f"({alone.confidence or 0:.2f})")


def ending(said: np.ndarray) -> np.ndarray:
    """The last ENDING_S of an answer up to its last sound, looked for in the recording to
    know that it played through: a player that ran dry mid-answer (a busy CPU) plays the rest
    later, and the whole answer, in two pieces, no longer matched the recording (the bench
    counted it as cut off, while listen had played it out)."""
    last = int(np.flatnonzero(np.abs(said.astype(np.int32)) > 300)[-1]) + 1
    return said[max(0, last - ENDING_S * SAMPLE_RATE) :]


def erle_of(live: Listener) -> float | None:
    """The echo reduction `listen` reported for the last answer played."""
    reported = [line for _, line in live.status if "answer played" in line]
    return float(re.search(r"by (-?\d+) dB", reported[-1]).group(1)) if reported else None


def speaker_echo(room: str | None) -> str:
    """What to record to hear what `listen` plays (VirtualAudio.start_echo_path)."""
    return "vspeaker.monitor" if room else "vspeaker_echo.monitor"


if __name__ == "__main__":
    raise SystemExit(main())
