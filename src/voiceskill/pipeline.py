"""One user turn through every stage: (audio -> ASR) -> NLU -> dialogue -> TTS, timed.

`ask`, `replay` and `listen` all go through `Skill`, so typed and spoken turns behave the same.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from voiceskill.content import Content
from voiceskill.dialogue import Conversation, Reply
from voiceskill.nlu import IntentMatcher
from voiceskill.outputs import OutputError, create_new, prepare_folder, reason
from voiceskill.tts import Speaker, TtsUnavailable

if TYPE_CHECKING:
    from voiceskill.asr import Recognizer, Transcript

DEFAULT_RATE = 165
MIN_RATE = 60
MAX_TYPED_CHARS = 1000  # a spoken question is far shorter; the matcher's time grows with it


@dataclass(frozen=True)
class Turn:
    """A finished turn, in the shape of the `--json` contract (see DESIGN.md)."""

    source: dict[str, str]
    transcript: str
    reply: Reply | None
    timings_ms: dict[str, float]
    error: str | None = None

    def to_json(self) -> dict:
        reply = self.reply
        record = {
            **self.source,
            "transcript": self.transcript,
            "intent": reply.intent if reply else None,
            "confidence": reply.confidence if reply else None,
            "node": reply.node if reply else None,
            "answer": reply.answer if reply else None,
            "outcome": reply.outcome if reply else None,
            "timings_ms": self.timings_ms,
        }
        if self.error:
            record["error"] = self.error
        return record


def report(turn: Turn, as_json: bool) -> None:
    """Show a turn: one JSON line, or the exchange as text; its error, if any, on stderr."""
    if turn.error:
        print(f"voiceskill: {turn.error}", file=sys.stderr)
    if as_json:
        print(json.dumps(turn.to_json(), ensure_ascii=False), flush=True)
    elif turn.reply is not None:
        print(f"you:   {turn.transcript}")
        if turn.reply.answer:
            print(f"skill: {turn.reply.answer}", flush=True)


class TurnLog:
    """Opt-in conversation log (`--log-dir`): JSON lines in a new file readable by the owner
    only. A log that cannot be opened or written costs a warning line, never a turn."""

    def __init__(self, folder: Path):
        stem = time.strftime("voiceskill-%Y%m%d-%H%M%S")
        self.path: Path | None = None
        self._file = None
        try:
            prepare_folder(folder)
            _, self.path, binary = create_new(
                folder, lambda n: f"{stem}.jsonl" if n == 1 else f"{stem}-{n}.jsonl", 0o600
            )
        except OutputError as exc:
            _warn(f"{exc}; not keeping a log")
            return
        self._file = io.TextIOWrapper(binary, encoding="utf-8", errors="backslashreplace")

    def write(self, turn: Turn) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(turn.to_json(), ensure_ascii=False) + "\n")
            self._file.flush()
        except OSError as exc:
            _warn(f"cannot write {self.path}: {reason(exc)}; log stopped")
            self.close()

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                file.close()


def _warn(message: str) -> None:
    print(f"voiceskill: {message}", file=sys.stderr)


class _Stopwatch:
    """Milliseconds spent per stage of one turn."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.timings: dict[str, float] = {"asr": 0.0, "nlu": 0.0, "dialogue": 0.0, "tts": 0.0}

    def run(self, stage: str, work: Callable):
        began = time.perf_counter()
        try:
            return work()
        finally:
            self.timings[stage] += round((time.perf_counter() - began) * 1000, 1)

    def finish(self) -> dict[str, float]:
        total = round((time.perf_counter() - self.start) * 1000, 1)
        return {**self.timings, "total": total}


@dataclass
class Skill:
    """The assembled pipeline. `speaker` and `recognizer` are optional stages."""

    content: Content
    speaker: Speaker | None = None
    recognizer: Recognizer | None = None
    rate: int = DEFAULT_RATE
    save_audio: Path | None = None
    matcher: IntentMatcher = field(init=False)
    _saved: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.matcher = IntentMatcher(self.content)

    def conversation(self) -> Conversation:
        return Conversation(self.content)

    def text_turn(self, conversation: Conversation, text: str) -> Turn:
        """Answer typed text; longer than MAX_TYPED_CHARS, a Turn with `error` and no reply
        (cutting it short could cut off a "no" or the sign that matters)."""
        clock = _Stopwatch()
        if len(text) > MAX_TYPED_CHARS:
            error = (f"typed question not answered: {len(text)} characters, "
                     f"at most {MAX_TYPED_CHARS}")
            return Turn({"text": text}, "", None, clock.finish(), error=error)
        return self._answer(conversation, {"text": text}, text, clock)

    def audio_turn(self, conversation: Conversation, path: Path) -> Turn:
        """Recognise a WAV file and answer it; a bad file gives a Turn with `error`, no reply."""
        from voiceskill.asr import transcribe_file
        from voiceskill.audio import AudioError

        if self.recognizer is None:
            raise RuntimeError("audio_turn needs a recognizer")
        clock = _Stopwatch()
        source = {"audio": str(path)}
        try:
            transcript = clock.run("asr", lambda: transcribe_file(self.recognizer, path))
        except AudioError as exc:
            return Turn(source, "", None, clock.finish(), error=str(exc))
        except RuntimeError as exc:  # the engine failed mid-utterance; the next turn restarts it
            error = f"{Path(path).name}: recognition failed ({exc})"
            return Turn(source, "", None, clock.finish(), error=error)
        return self._answer(conversation, source, transcript.text, clock,
                            asr_confidence=transcript.confidence)

    def heard(self, conversation: Conversation, transcript: Transcript, asr_ms: float) -> Turn:
        """Answer what the live loop recognised, keeping its ASR time; the loop speaks."""
        clock = _Stopwatch()
        clock.timings["asr"] = round(asr_ms, 1)
        return self._answer(conversation, {}, transcript.text, clock, speak=False,
                            asr_confidence=transcript.confidence)

    def _answer(self, conversation: Conversation, source: dict, text: str, clock,
                speak: bool = True, asr_confidence: float | None = None) -> Turn:
        understanding = clock.run("nlu", lambda: self.matcher.understand(text, asr_confidence))
        reply = clock.run("dialogue", lambda: conversation.respond(understanding))
        if speak:
            clock.run("tts", lambda: self._voice(reply))
        return Turn(source, text, reply, clock.finish())

    def speech_rate(self, reply: Reply) -> int:
        return max(MIN_RATE, int(self.rate * reply.rate_scale))

    def _voice(self, reply: Reply) -> None:
        """Save and speak the answer; a TTS failure costs the voice, never the answer."""
        if self.speaker is None or not reply.answer:
            return
        rate = self.speech_rate(reply)
        try:
            if self.save_audio is not None:
                self._save(reply.answer, rate)
            if self.speaker.can_play:
                self.speaker.speak(reply.answer, rate)
        except TtsUnavailable as exc:
            print(f"voiceskill: {exc}; printing answers only", file=sys.stderr)
            self.speaker = None

    def _save(self, answer: str, rate: int) -> None:
        """Write the spoken answer to the next free answer-NNN.wav; if that fails, say so once
        and stop saving: the answer itself is still printed and spoken."""
        try:
            prepare_folder(self.save_audio)
            self._saved, path, file = create_new(
                self.save_audio, lambda n: f"answer-{n:03d}.wav", 0o644, self._saved + 1
            )
        except OutputError as exc:
            self._stop_saving(str(exc))
            return
        try:
            with file:
                self.speaker.save(answer, file, rate)
        except (OSError, RuntimeError) as exc:  # soundfile's write errors are RuntimeErrors
            path.unlink(missing_ok=True)
            self._stop_saving(f"cannot write {path}: {exc}")
        except TtsUnavailable:
            path.unlink(missing_ok=True)
            raise

    def _stop_saving(self, why: str) -> None:
        _warn(f"{why}; not saving answers")
        self.save_audio = None
