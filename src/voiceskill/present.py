"""How the command-line front-ends (ask, replay, listen) show and keep a turn.

The core returns `TurnRecord`s; only this module turns them into lines on stdout or a log file.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import time
from pathlib import Path

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
            log.warning("%s; not keeping a log", exc)
            return
        self._file = io.TextIOWrapper(binary, encoding="utf-8", errors="backslashreplace")

    def write(self, turn: TurnRecord) -> None:
        if self._file is None:
            return
        try:
            self._file.write(json.dumps(turn.to_json(), ensure_ascii=False) + "\n")
            self._file.flush()
        except OSError as exc:
            log.warning("cannot write %s: %s; log stopped", self.path, reason(exc))
            self.close()

    def close(self) -> None:
        if self._file is not None:
            file, self._file = self._file, None
            with contextlib.suppress(OSError):
                file.close()
