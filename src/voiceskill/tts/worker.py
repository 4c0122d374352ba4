"""The speech worker: renders answers with pyttsx3 (espeak-ng) for voiceskill.tts.speaker.

Run as `python -m voiceskill.tts.worker` by tts.Speaker, never by hand. It
imports pyttsx3 (and so loads libespeak-ng) once, then answers one JSON line
on stdout for each JSON line on stdin:

    {"op": "render", "text": ..., "path": ..., "rate": 165, "voice": null,
     "volume": 1.0, "timeout": 10.0}      ->  {"ok": true, "attempts": 1}
    {"op": "voices", "timeout": 10.0}     ->  {"ok": true, "voices": [[id, name, language]]}
    failures                              ->  {"ok": false, "error": "one line"}

The first line it writes says whether pyttsx3 and espeak-ng could be loaded.
It exits when stdin closes, i.e. when its Speaker closes or its process dies.

Why a fork per request: pyttsx3's espeak driver is only reliable in a fresh
engine. Its runAndWait() calls espeak_Cancel() while the property changes it
just queued are still being processed by espeak's own thread, so in one
long-lived engine a new rate is applied only sometimes. pyttsx3.init() starts
that thread, so this process never calls it: it stays single-threaded (safe to
fork) and each request runs in a forked child with its own fresh engine
(quick to start: pyttsx3 is already imported). Even a fresh engine loses the
rate now and then, so the child reads
back the rate, volume and voice espeak-ng actually used and the render is
repeated in a new child when they differ. pyttsx3 also prints "Audio saved
to ..." to stdout and returns from runAndWait() before the WAV is written:
fd 1 is /dev/null here (answers go to a private copy of the original
stdout) and the child waits for pyttsx3's finished-utterance notification,
sent once the file is closed, then checks the WAV is complete.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import select
import signal
import sys
import threading
import time
import wave
from typing import Any

MAX_ATTEMPTS = 4
"""Renders per request before giving up on pyttsx3 applying the settings."""

# espeak_PARAMETER values from speak_lib.h
_ESPEAK_RATE = 1
_ESPEAK_VOLUME = 2
_PR_SET_PDEATHSIG = 1


class RenderError(Exception):
    """A request failed; the message is one line."""


class _Retry(Exception):
    """pyttsx3 rendered with other settings than requested: render again."""


def main() -> int:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the program, not for us
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="ascii")
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, sys.stdout.fileno())  # whatever pyttsx3 prints goes nowhere
    os.close(devnull)
    loaded = _load_engine()
    answers.write(json.dumps(loaded) + "\n")
    if not loaded["ok"]:
        return 1
    for line in sys.stdin:
        try:
            request = json.loads(line)
            answer = _handle(request, answers.fileno())
        except Exception as exc:
            answer = {"ok": False, "error": _one_line(exc)}
        answers.write(json.dumps(answer) + "\n")
    return 0


def _load_engine() -> dict[str, Any]:
    """Import pyttsx3 and its espeak driver (which loads libespeak-ng); no engine yet."""
    try:
        import pyttsx3
    except ImportError as exc:
        return {"ok": False, "error": f"text-to-speech unavailable: pyttsx3 is not installed "
                f"({_one_line(exc)})"}
    try:
        import pyttsx3.drivers.espeak  # noqa: F401 - raises when libespeak-ng is missing
    except Exception as exc:
        return {"ok": False, "error": "text-to-speech unavailable: espeak-ng is not installed "
                f"(pyttsx3: {_one_line(exc)})"}
    return {"ok": True}


def _handle(request: dict[str, Any], answers_fd: int) -> dict[str, Any]:
    timeout = float(request.get("timeout", 10.0))
    deadline = time.monotonic() + timeout
    op = request.get("op")
    if op == "voices":
        return _in_child(_list_voices, request, deadline, timeout, answers_fd)
    if op != "render":
        raise RenderError(f"unknown request {op!r}")
    for attempt in range(1, MAX_ATTEMPTS + 1):
        answer = _in_child(_render, request, deadline, timeout, answers_fd)
        if not answer.get("retry"):
            return {**answer, "attempts": attempt}
    raise RenderError(f"pyttsx3 did not apply the requested voice settings "
                      f"in {MAX_ATTEMPTS} attempts")


def _in_child(job, request: dict[str, Any], deadline: float, timeout: float,
              answers_fd: int) -> dict[str, Any]:
    """Run job(request) in a forked child; its JSON answer, or an error once `deadline` passes."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        status = 1
        try:
            os.close(read_end)
            os.close(answers_fd)
            sys.stdin.close()
            with contextlib.suppress(Exception):  # die with the worker (Linux)
                ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            try:
                answer = {"ok": True, **job(request, deadline)}
            except _Retry:
                answer = {"ok": False, "retry": True}
            except Exception as exc:
                answer = {"ok": False, "error": _one_line(exc)}
            os.write(write_end, json.dumps(answer).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        data = _read_all(read_end, deadline)
    finally:
        os.close(read_end)
    if data is None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        raise RenderError(f"speech synthesis timed out after {timeout:g} s")
    _, status = os.waitpid(pid, 0)
    if not data:
        raise RenderError(f"speech synthesis crashed ({_describe(status)})")
    return json.loads(data)


def _render(request: dict[str, Any], deadline: float) -> dict[str, Any]:
    """In a child: one render with a fresh pyttsx3 engine; _Retry if settings were lost."""
    import pyttsx3
    from pyttsx3.drivers import _espeak

    path, rate, voice = request["path"], int(request["rate"]), request.get("voice")
    volume = int(round(float(request.get("volume", 1.0)) * 100, 2))  # as pyttsx3 passes it
    engine = pyttsx3.init("espeak")
    errors: list[BaseException] = []
    finished = threading.Event()
    engine.connect("error", lambda name=None, exception=None: errors.append(exception))
    engine.connect("finished-utterance", lambda name=None, completed=True: finished.set())
    if voice:
        engine.setProperty("voice", voice)
    engine.setProperty("rate", rate)
    engine.setProperty("volume", volume / 100)
    engine.save_to_file(request["text"], path)
    engine.runAndWait()  # returns once synthesis has started, not finished
    if errors:  # pyttsx3 reports failed commands (e.g. an unknown voice) this way
        raise RenderError(f"pyttsx3: {_one_line(errors[0])}")
    if not finished.wait(max(0.0, deadline - time.monotonic())):
        raise RenderError("pyttsx3 never finished the utterance")
    frames = _complete_wav_frames(path)
    # pyttsx3's GetParameter binding drops the `current` argument: call libespeak-ng directly.
    used_rate = _espeak.dll.espeak_GetParameter(_ESPEAK_RATE, 1)
    used_volume = _espeak.dll.espeak_GetParameter(_ESPEAK_VOLUME, 1)
    used_voice = engine.getProperty("voice")
    if used_rate != rate or used_volume != volume or (voice and used_voice != voice.lower()):
        raise _Retry
    return {"frames": frames}


def _list_voices(request: dict[str, Any], deadline: float) -> dict[str, Any]:
    """In a child: pyttsx3's voice list (it needs an initialised engine)."""
    import pyttsx3

    voices = pyttsx3.init("espeak").getProperty("voices")
    return {"voices": [[v.id, v.name, (v.languages or [""])[0]] for v in voices]}


def _complete_wav_frames(path: str) -> int:
    """Frames in the WAV pyttsx3 wrote, once its header agrees with the file size."""
    with wave.open(path, "rb") as wav:
        frames, width, channels = wav.getnframes(), wav.getsampwidth(), wav.getnchannels()
    expected = 44 + frames * width * channels  # the header Python's wave module writes
    size = os.path.getsize(path)
    if size != expected:
        raise RenderError(f"pyttsx3 wrote an incomplete WAV ({size} of {expected} bytes)")
    return frames


def _read_all(fd: int, deadline: float) -> bytes | None:
    """Everything until EOF, or None when `deadline` passes first."""
    chunks = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            return None
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {os.WTERMSIG(status)}"
    return f"exit status {os.waitstatus_to_exitcode(status)}"


def _one_line(exc: BaseException | None) -> str:
    text = " ".join(str(exc).split()) if exc is not None else ""
    return text or type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
