"""Offline and private, proven: a whole spoken conversation with the network blocked."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

from helpers import ROOT

# Loaded by every Python process of the run (the CLI and its TTS worker): any attempt to use
# the network is written down and refused.
SITECUSTOMIZE = '''
import os, socket
_LOG = os.environ["VOICESKILL_NET_LOG"]
_real_socket = socket.socket

def _refuse(what):
    with open(_LOG, "a") as log:
        log.write(what + "\\n")
    raise OSError("network blocked by test")

class _GuardedSocket(_real_socket):
    def __init__(self, family=-1, type=-1, proto=-1, fileno=None):
        if family in (socket.AF_INET, socket.AF_INET6):
            _refuse(f"socket({family})")
        super().__init__(family, type, proto, fileno)

socket.socket = _GuardedSocket
socket.create_connection = lambda *a, **k: _refuse(f"create_connection{a}")
socket.getaddrinfo = lambda *a, **k: _refuse(f"getaddrinfo{a}")
'''


def conversation_files() -> list[str]:
    with (ROOT / "audio_fixtures" / "manifest.csv").open() as handle:
        rows = [r for r in csv.DictReader(handle) if r["conversation"] == "triage_see_doctor__slt"]
    return [str(ROOT / r["file"]) for r in sorted(rows, key=lambda r: int(r["turn"]))]


def test_spoken_conversation_makes_no_network_call_and_keeps_no_audio(tmp_path):
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(SITECUSTOMIZE)
    net_log = tmp_path / "net.log"
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(guard), os.environ.get("PYTHONPATH", "")]),
        "VOICESKILL_NET_LOG": str(net_log),
        "HOME": str(tmp_path / "home"),
    }
    files = conversation_files()
    result = subprocess.run(
        [sys.executable, "-m", "voiceskill", "replay", "--json", "--save-audio",
         str(work / "answers"), *files],
        capture_output=True, text=True, env=env, cwd=work, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    turns = [json.loads(line) for line in result.stdout.splitlines()]
    assert [t["outcome"] for t in turns][-1] == "see_doctor"
    assert not net_log.exists(), net_log.read_text()
    # Only what was asked for is on disk: the spoken answers, no recordings or transcripts.
    written = sorted(p.relative_to(work) for p in work.rglob("*") if p.is_file())
    assert written == [Path("answers") / f"answer-{i:03d}.wav" for i in range(1, len(files) + 1)]


def test_the_guard_really_catches_a_connection(tmp_path):
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {**os.environ, "PYTHONPATH": str(guard), "VOICESKILL_NET_LOG": str(tmp_path / "n")}
    code = "import urllib.request; urllib.request.urlopen('http://example.com', timeout=1)"
    subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert "example.com" in (tmp_path / "n").read_text()
