"""How the command-line front-ends (ask, replay, listen) show and keep a turn.

The core returns `TurnRecord`s; only this module turns them into lines on stdout or a log file.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from voiceskill.pipeline import TurnRecord


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
    """Opt-in conversation log (`--log-dir`): JSON lines, readable by the owner only."""

    def __init__(self, folder: Path):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = folder / time.strftime("voiceskill-%Y%m%d-%H%M%S.jsonl")
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        self.path = path
        self._file = os.fdopen(descriptor, "a", encoding="utf-8")

    def write(self, turn: TurnRecord) -> None:
        self._file.write(json.dumps(turn.to_json(), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()
