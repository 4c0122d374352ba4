"""What the tests share: the repo's folders, the `voiceskill listen` driver, a recogniser that
fails on cue, and the domain sentences the recogniser tests and bench/asr_probe.py speak."""

from __future__ import annotations

import contextlib
import csv
import itertools
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from virtual_audio import VirtualAudio

TESTS = Path(__file__).resolve().parent
ROOT = TESTS.parent
FIXTURES = ROOT / "audio_fixtures"
TURN_TIMEOUT_S = 60


def fixture(text_or_file: str) -> Path:
    return FIXTURES / "clean" / text_or_file


def manifest_rows(**where: str) -> list[dict]:
    """The rows of the fixtures' manifest whose columns hold the values given."""
    with (FIXTURES / "manifest.csv").open() as handle:
        return [r for r in csv.DictReader(handle) if all(r[k] == v for k, v in where.items())]


def conversation(name: str) -> list[Path]:
    rows = manifest_rows(conversation=name)
    return [ROOT / r["file"] for r in sorted(rows, key=lambda r: int(r["turn"]))]


def replay(*args: str) -> subprocess.CompletedProcess:
    """`voiceskill replay --json --no-speak` as a subprocess, run from the checkout."""
    return subprocess.run(
        [sys.executable, "-m", "voiceskill", "replay", "--json", "--no-speak", *args],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )


def _hear_ctrl_c() -> None:
    """A shell starts background jobs with Ctrl-C ignored, and the program inherits that;
    the tests send it SIGINT wherever they are run from."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class Listener:
    """`voiceskill listen --json --status-json` as a subprocess on the virtual devices: its turns
    (stdout), its status events (the JSON stream, on a pipe of their own) and the lines it
    shows people (stderr, kept to explain a failure)."""

    def __init__(self, audio: VirtualAudio, *args: str, ready: str = "listening"):
        self.audio = audio
        events_out, events_in = os.pipe()
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "voiceskill", "listen", "--json",
                 "--status-json", f"/dev/fd/{events_in}", *args],
                env=audio.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                pass_fds=(events_in,), preexec_fn=_hear_ctrl_c,
            )
        finally:
            os.close(events_in)
        self.turns: queue.Queue[dict] = queue.Queue()
        self.status: list[str] = []
        self.events: list[dict] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._read_turns, daemon=True),
            threading.Thread(target=self._read_status, daemon=True),
            threading.Thread(target=self._read_events, args=(events_out,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        try:
            self.wait_for(ready)
        except BaseException:  # the caller never gets this Listener to close
            self.close()
            raise

    def _read_turns(self) -> None:
        for line in self.process.stdout:
            self.turns.put(json.loads(line))

    def _read_status(self) -> None:
        for line in self.process.stderr:
            self.status.append(line.strip())

    def _read_events(self, descriptor: int) -> None:
        with open(descriptor, encoding="utf-8") as stream:
            for line in stream:
                try:
                    event = json.loads(line)
                except ValueError:
                    event = {"event": "not JSON", "line": line}
                with self._changed:
                    self.events.append(event)
                    self._changed.notify_all()

    def named(self, event: str, since: int = 0) -> list[dict]:
        """The status events called `event` from the `since`-th on."""
        return [e for e in self.events[since:] if e["event"] == event]

    def wait_for(self, event: str, since: int = 0) -> dict:
        """The first status event called `event` from the `since`-th on ("": of any kind),
        waiting for it."""
        found = self.wait_until(lambda events: [
            e for e in events[since:] if e["event"] == event or not event], f"a {event!r} event")
        return found[0]

    def wait_until(self, found: Callable[[list[dict]], object], what: str,
                   timeout_s: float = TURN_TIMEOUT_S):
        """`found(events)` once it is true, checked at every status event; fails if the program
        ends first or it is not true in `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while not (result := found(self.events)):
                assert self.process.poll() is None, f"ended before {what}; {self.explain()}"
                left = deadline - time.monotonic()
                assert left > 0, f"no {what} in {timeout_s} s; {self.explain()}"
                self._changed.wait(min(left, 1.0))  # woken by each event; polls the process
        return result

    def explain(self) -> str:
        return "events: " + " | ".join(json.dumps(e) for e in self.events[-12:]) + \
            "\nstderr: " + " | ".join(self.status) + "\n" + (self.audio.ended() or
                                                           "the sound server still runs")

    def ask(self, wav: Path) -> dict:
        self.audio.play_into_mic(wav)
        return self.next_turn()

    def next_turn(self) -> dict:
        try:
            return self.turns.get(timeout=TURN_TIMEOUT_S)
        except queue.Empty:
            pytest.fail("no answer; " + self.explain())

    def wait(self, timeout: float = 60) -> int:
        """The exit status, once the program has ended and all its output has been read."""
        status = self.process.wait(timeout=timeout)
        for reader in self._readers:
            reader.join(timeout=timeout)
        return status

    def close(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait(timeout=30)


@contextlib.contextmanager
def listeners(audio: VirtualAudio) -> Iterator[Callable[..., Listener]]:
    """Starts `Listener`s on `audio` with the arguments given; closes them all on the way out."""
    opened: list[Listener] = []

    def start(*args: str, ready: str = "listening") -> Listener:
        opened.append(Listener(audio, *args, ready=ready))
        return opened[-1]

    try:
        yield start
    finally:
        for item in opened:
            item.close()


def stopped(live: Listener) -> tuple[str, int]:
    """Why the status stream's last event says the loop stopped, and its exit status."""
    last = live.events[-1]
    assert last["event"] == "stopped", live.explain()
    return last["reason"], last["exit_status"]


def ends_cleanly(live: Listener, signum: int) -> None:
    """`signum` ends the loop with status 0, no traceback, a stopped event and no stray
    process: the TTS worker it started is gone too."""
    children = subprocess.run(["pgrep", "-P", str(live.process.pid)], capture_output=True,
                              text=True).stdout.split()
    assert children, "the TTS worker should be running"
    live.process.send_signal(signum)
    assert live.wait() == 0
    assert not any("Traceback" in line for line in live.status)
    assert stopped(live) == ("interrupted", 0)
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in children):
        assert time.monotonic() < deadline, f"left running: {children}"
        time.sleep(0.1)


def after_answer(live: Listener, timeout_s: float = 60) -> None:
    """Until what the microphone heard as the answer ended (its echo's tail) is dealt with:
    since the last answer_played event, no utterance begun, or one begun and dealt with:
    let pass, or answered (its turn is written before the "listening" that follows). A
    "heard" is not the end of it: the answer to it was about to start, and the test closed
    the program just then, or took its turn for the next question's."""

    def dealt_with(events: list[dict]) -> bool:
        played = max(i for i, e in enumerate(events) if e["event"] == "answer_played")
        since = {e["event"] for e in events[played + 1 :]}
        return (not {"hearing", "hearing_own_voice"} & since
                or bool({"listening", "ignored", "recognition_failed"} & since))

    live.wait_until(dealt_with, "the answer's echo dealt with", timeout_s)


MINIMAL = TESTS / "content" / "minimal"  # the smallest content that passes `check`


class FailsOnce:
    """The real recogniser, made to fail once partway through its `utterance`-th utterance
    (fault injection: a real engine error cannot be produced on demand)."""

    def __init__(self, real, utterance: int):
        self.real, self.fail_in, self.utterances, self.fed = real, utterance, 0, 0
        self.name = real.name

    def start_utterance(self) -> None:
        self.utterances += 1
        self.fed = 0
        self.real.start_utterance()

    def feed(self, pcm):
        self.fed += 1
        if self.utterances == self.fail_in and self.fed == 3:
            raise RuntimeError("decoder failure")
        return self.real.feed(pcm)

    def end_utterance(self):
        return self.real.end_utterance()


def combinations(*parts: list[str]) -> list[str]:
    return [" ".join(p for p in combo if p) for combo in itertools.product(*parts)]


DOMAIN: dict[str, list[str]] = {
    "twitch_vs_spasm": [
        *combinations(
            ["what is", "what's", "tell me"],
            ["the difference between"],
            ["a muscle twitch and a spasm", "a twitch and a spasm", "twitching and spasms"],
        ),
        "is a twitch the same as a spasm",
        "how is a twitch different from a cramp",
    ],
    "twitch_causes": [
        *combinations(
            ["what causes", "why do i get"], ["muscle twitches", "eye twitching", "twitching"]
        ),
        "why does my eye keep twitching",
        "can stress cause twitching",
    ],
    "spasm_causes": [
        *combinations(
            ["what causes", "why do i get"], ["muscle spasms", "cramps", "leg cramps at night"]
        ),
        "can dehydration cause muscle spasms",
    ],
    "twitch_serious": [
        "is muscle twitching serious",
        "should i worry about twitching",
        "is twitching a sign of als",
        "are muscle twitches dangerous",
    ],
    "spasm_relief": [
        *combinations(
            ["how do i", "how can i"],
            ["relieve", "stop", "ease"],
            ["a muscle spasm", "a cramp", "a leg cramp"],
        ),
        "what helps a muscle spasm",
        "what should i do for a cramp",
    ],
    "spasm_prevention": combinations(
        ["how do i", "how can i"], ["prevent"], ["muscle spasms", "cramps", "leg cramps"]
    ),
    "when_to_see_doctor": combinations(
        ["when should i", "do i need to"],
        ["see a doctor"],
        ["", "about twitching", "about muscle spasms"],
    ),
    "doctor_visit": ["what will the doctor ask", "what tests will the doctor do"],
    "back_spasm": ["i have a back spasm", "how do i relieve a back spasm"],
    "medication": ["can medication cause twitching", "what medicine helps muscle spasms"],
    "nutrition": ["does magnesium help with cramps", "can potassium help twitching"],
    "emergency": [
        "i can't breathe",
        "i have chest pain",
        "i can't move my arm",
        "my face is drooping",
        "call an ambulance",
    ],
    "repeat": ["repeat", "repeat that", "say that again"],
    "slower": ["slower", "slow down", "speak slower"],
    "stop": ["stop", "be quiet", "cancel"],
    "help": ["help", "what can you do"],
    "yes": ["yes", "yeah", "yes please"],
    "no": ["no", "no thanks"],
    "back": ["go back", "back"],
    "start_over": ["start over", "start again"],
    "goodbye": ["goodbye", "bye"],
    "fallback": [
        "what's the weather today",
        "play some music",
        "set a timer for ten minutes",
        "tell me a joke",
        "what time is it",
        "turn on the lights",
        "call my mom",
        "what's the news",
        "who is the president",
        "order a pizza",
    ],
}
