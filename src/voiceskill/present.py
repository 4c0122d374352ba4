"""How the command-line front-ends (ask, replay, listen) show and keep a turn, and what
`listen` is doing.

The core returns `TurnRecord`s; only this module turns them into lines on stdout or a log file.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import TextIO

from voiceskill.outputs import OutputError, create_new, prepare_folder, reason
from voiceskill.pipeline import TurnRecord

log = logging.getLogger(__name__)


def report(turn: TurnRecord, as_json: bool) -> None:
    """Show a turn: one JSON line, or the exchange as text; its error, if any, on stderr."""
    if turn.error:
        print(f"voiceskill: {turn.error}", file=sys.stderr)
    if as_json:
        print(json.dumps(turn.to_json(), ensure_ascii=False), flush=True)
    elif turn.reply is not None:
        print(f"you:   {turn.transcript}")
        if turn.reply.answer:
            print(f"skill: {turn.reply.answer}", flush=True)


class _JsonLines:
    """A file of JSON lines, one object each, that a failed write closes with one warning line:
    what is being written for (a conversation, the loop) never stops for it."""

    def __init__(self, file: TextIO | None, name: str) -> None:
        self._file = file
        self._name = name

    def write(self, record: dict) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()
        except OSError as exc:
            log.warning("cannot write %s: %s; stopped writing it", self._name, reason(exc))
            self.close()

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                file.close()


class TurnLog:
    """Opt-in conversation log (`--log-dir`): JSON lines in a new file readable by the owner
    only. A log that cannot be opened or written costs a warning line, never a turn."""

    def __init__(self, folder: Path):
        stem = time.strftime("voiceskill-%Y%m%d-%H%M%S")
        self.path: Path | None = None
        self._lines = _JsonLines(None, "the log")
        try:
            prepare_folder(folder)
            _, self.path, binary = create_new(
                folder, lambda n: f"{stem}.jsonl" if n == 1 else f"{stem}-{n}.jsonl", 0o600
            )
        except OutputError as exc:
            log.warning("%s; not keeping a log", exc)
            return
        self._lines = _JsonLines(
            io.TextIOWrapper(binary, encoding="utf-8", errors="backslashreplace"), str(self.path))

    def write(self, turn: TurnRecord) -> None:
        self._lines.write(turn.to_json())

    def close(self) -> None:
        self._lines.close()


_STATUS_TEXT = {
    "listening": "listening",
    "hearing": "hearing …",
    "hearing_own_voice": "hearing my own voice (echo canceller still learning)",
    "answer_stopped": "answer stopped to listen",
    "heard": 'heard "{text}"',
    "ignored": "ignored ({why})",
    "answering": "answering",
    "answer_played": "answer played; echo reduced by {erle_db:.0f} dB",
    "recognition_failed": "recognition failed ({error}); listening again",
    "error": "voiceskill: {message}",
}
"""The line people see for each event of the status stream (`stopped` has none)."""
_IGNORED_WHY = {"not_addressed": "not addressed to me", "not_for_me": "not for me",
                "half_heard": "half heard over my own voice",
                "own_voice": "my own voice come back"}


def open_status_stream(path: Path) -> TextIO:
    """`listen --status-json FILE`, opened for appending (a new file readable by the owner
    only: it holds what was heard); a FIFO or /dev/fd/N works too. OutputError if it cannot."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
    try:
        descriptor = os.open(path, flags, 0o600)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {reason(exc)}") from None
    return open(descriptor, "w", encoding="utf-8", errors="backslashreplace", buffering=1)


class Status:
    """What `listen` is doing, as it changes: one line for people on stderr (rewritten in place
    on a terminal), and, given a `stream`, one JSON object a line for programs:
    {"event": ..., "time": UNIX seconds, and the event's fields}. A stream that cannot be
    written costs a warning line, never the loop."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._tty = sys.stderr.isatty()
        self._stream = _JsonLines(stream, "the status stream")

    def show(self, event: str, **fields) -> None:
        text = _STATUS_TEXT.get(event)
        if text is not None:
            why = _IGNORED_WHY.get(fields.get("reason"))
            line = text.format(**fields, why=why)
            if self._tty:
                print(f"\r\033[K{line}", end="", file=sys.stderr, flush=True)
            else:
                print(line, file=sys.stderr, flush=True)
        self._stream.write({"event": event, "time": round(time.time(), 3), **fields})

    def done(self, cause: str, exit_status: int) -> None:
        """The loop has ended, for `cause` (goodbye, interrupted, microphone_lost)."""
        if self._tty:
            print(file=sys.stderr)
        self.show("stopped", reason=cause, exit_status=exit_status)
        self.close()

    def close(self) -> None:
        self._stream.close()
