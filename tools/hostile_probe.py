"""Run every hostile case of the robustness review against the real CLI and count failures.

Each case is a `voiceskill` command run in a fresh process with a timeout, in a scratch folder:
content that passes `check` but is tiny, damaged language-model caches, expansion bombs, FIFOs
and devices where files are expected, YAML that broke the loader, bad output paths, file names
and arguments that are not UTF-8, closed or full stdout, Ctrl-C during start-up, WAVs from
pipes and with NaN samples, oversized typed input, private files behind symlinks; and from the
second round: the config file (FIFO, devices, BOM, bad rates), review/graph (documents outside
the source folders, symlinked outputs), `say -o` failures, a full disk (a 64 KiB tmpfs, when
this runs as root), a closed stdout, `serve` on bad unix paths and stdio://, caches of the
wrong shape or poisoned (D26, D30).
Then one `serve` process takes hostile clients: malformed events, forged log lines, a second
address reusing a conversation id and flooding new ones (D6), 100
clients that never read (how long a fresh client then waits: target 2 s), and a stream of
one-sample audio chunks (server memory: target flat within 10 MB).

A case fails if it prints a traceback, hangs (timeout), or breaks its own expectation. The last
lines measure `check` on a 2 MB file and on 1 MB files built to be slow: time and peak memory.

    python tools/hostile_probe.py [--timeout 60] [--only NAME] [--chunk-seconds 60]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import select
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
CONTENT = REPO / "intents"
FIXTURE = REPO / "audio_fixtures" / "clean" / "spasm_relief__1__flite-slt.wav"
MINIMAL = REPO / "tests" / "content" / "minimal"


@dataclass
class Result:
    status: int | None
    out: str
    err: str
    seconds: float
    peak_mb: float
    hung: bool


def run(argv: list[str], work: Path, timeout: float, env: dict | None = None,
        stdin: bytes | None = None, interrupt_after: float | None = None,
        stdout_path: str | None = None, shell: bool = False) -> Result:
    """One `voiceskill` process; its own peak RSS from wait4, killed after `timeout`."""
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src"),
                   "XDG_CACHE_HOME": str(work / "cache"), **(env or {})}
    environment = {key: value for key, value in environment.items() if value is not None}
    command = argv if shell else [sys.executable, "-m", "voiceskill", *argv]
    out_file = open(stdout_path or work / "stdout", "wb")  # noqa: SIM115
    err_file = open(work / "stderr", "wb+")  # noqa: SIM115
    began = time.perf_counter()
    process = subprocess.Popen(command, cwd=work, env=environment, stdout=out_file,
                               stderr=err_file, shell=shell,
                               stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL)
    hung = threading.Event()

    def kill() -> None:
        hung.set()
        process.kill()

    timer = threading.Timer(timeout, kill)
    timer.start()
    if interrupt_after is not None:
        threading.Timer(interrupt_after, lambda: process.send_signal(signal.SIGINT)).start()
    if stdin is not None:
        try:
            process.stdin.write(stdin)
            process.stdin.close()
        except BrokenPipeError:
            pass
    _, wait_status, usage = os.wait4(process.pid, 0)
    timer.cancel()
    process.returncode = os.waitstatus_to_exitcode(wait_status)
    out_file.close()
    err_file.seek(0)
    err = err_file.read().decode("utf-8", "replace")
    err_file.close()
    out = "" if stdout_path else (work / "stdout").read_text("utf-8", "replace")
    return Result(process.returncode, out, err, time.perf_counter() - began,
                  usage.ru_maxrss / 1024, hung.is_set())


def content_copy(work: Path, source: Path = CONTENT) -> Path:
    folder = work / "content"
    shutil.copytree(source, folder)
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def write_intents(folder: Path, extra_intents: str = "", rules: str = "") -> None:
    """Append intents (and expansion rules) to the shipped intents.yaml."""
    text = (folder / "intents.yaml").read_text()
    if rules:
        text = text.replace("\nexpansion_rules:\n", "\nexpansion_rules:\n" + rules, 1)
    text = text.replace("\nintents:\n", "\nintents:\n" + extra_intents, 1)
    (folder / "intents.yaml").write_text(text)


def nested_group(levels: int) -> str:
    """2^levels sentences from a few hundred characters: (a|b) ((a|b) ((a|b) ...))."""
    template = "(a|b)"
    for _ in range(levels - 1):
        template = f"(a|b) ({template})"
    return template


def bomb_rules(levels: int) -> str:
    """Rules r0..rN, each twice the one before: 2^N sentences from a short file."""
    lines = ['  r0: "(a|b)"\n']
    lines += [f'  r{i}: "<r{i - 1}> <r{i - 1}>"\n' for i in range(1, levels + 1)]
    return "".join(lines)


def triage_chain(questions: int) -> str:
    """A dialogue whose triage asks `questions` questions in a row, each yes/no to the next."""
    text = (CONTENT / "dialogue.yaml").read_text()
    nodes = []
    for i in range(questions):
        nxt = f"q{i + 1}" if i + 1 < questions else "advice_see_doctor"
        nodes.append(
            f"  q{i}:\n    kind: question\n    say: Question {i}.\n    ask: Is it {i}?\n"
            f"    on: {{yes: {nxt}, no: {nxt}}}\n    sources: [{{doc: article, "
            f"paragraph: 1}}]\n"
        )
    text = text.replace("nodes:\n", "nodes:\n" + "".join(nodes), 1)
    return text.replace("when_to_see_doctor: triage_weakness", "when_to_see_doctor: q0", 1)


def float_wav(path: Path, rate: int, nan: bool) -> None:
    samples = np.zeros(rate, dtype=np.float32)
    samples[rate // 2] = np.nan if nan else np.inf
    sf.write(path, samples, rate, subtype="FLOAT")


def built_cache(work: Path, template: Path) -> None:
    shutil.copytree(template, work / "cache")


def damaged(name: str, damage: Callable[[Path], None]) -> Callable[[Path], list[str]]:
    def setup(work: Path) -> list[str]:
        built_cache(work, CACHE_TEMPLATE)
        [folder] = (work / "cache" / "voiceskill").glob("lm-*")
        damage(folder)
        return ["replay", "--no-speak", "--engine", "pocketsphinx", str(FIXTURE)]
    return setup


def truncate(name: str, keep: int) -> Callable[[Path], None]:
    def damage(folder: Path) -> None:
        data = (folder / name).read_bytes()
        (folder / name).write_bytes(data[:keep] if keep >= 0 else data[: len(data) // 2])
    return damage


def replace_with(name: str, data: bytes) -> Callable[[Path], None]:
    return lambda folder: (folder / name).write_bytes(data)


@dataclass
class Case:
    name: str
    setup: Callable[[Path], list[str]]
    expect: Callable[[Result, Path], str | None] = lambda result, work: None
    options: dict | None = None


def status_in(*allowed: int) -> Callable[[Result, Path], str | None]:
    def check(result: Result, work: Path) -> str | None:
        if result.status not in allowed:
            return f"status {result.status}, expected {allowed}"
        return None
    return check


def mentions(text: str, *allowed: int) -> Callable[[Result, Path], str | None]:
    def check(result: Result, work: Path) -> str | None:
        if result.status not in allowed:
            return f"status {result.status}, expected {allowed}"
        if text not in result.err + result.out:
            return f"no {text!r} in the output"
        return None
    return check


def yaml_case(name: str, body: str, message: str, file: str = "intents.yaml") -> Case:
    def setup(work: Path) -> list[str]:
        folder = content_copy(work)
        (folder / file).write_bytes(body.encode("utf-8"))
        return ["check", str(folder)]
    return Case(name, setup, mentions(message, 1))


def _save_audio_into(target: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    def setup(work: Path) -> list[str]:
        return ["ask", "--no-speak", "--save-audio", str(target(work)), "how do I stop a cramp"]
    return setup


def _log_into(target: Callable[[Path], Path]) -> Callable[[Path], list[str]]:
    def setup(work: Path) -> list[str]:
        return ["ask", "--no-speak", "--log-dir", str(target(work)), "how do I stop a cramp"]
    return setup


def _a_file(work: Path) -> Path:
    (work / "a-file").write_text("x")
    return work / "a-file"


def _answer_kept(result: Result, work: Path) -> str | None:
    if "skill:" not in result.out:
        return "the answer was not printed"
    if result.status != 0:
        return f"status {result.status}"
    return None


def _earlier_answers(work: Path) -> list[str]:
    (work / "answers").mkdir()
    (work / "answers" / "answer-001.wav").write_bytes(b"earlier run")
    os.symlink(work / "victim", work / "answers" / "answer-002.wav")
    return ["ask", "--no-speak", "--save-audio", "answers", "how do I stop a cramp"]


def _earlier_kept(result: Result, work: Path) -> str | None:
    if (work / "answers" / "answer-001.wav").read_bytes() != b"earlier run":
        return "overwrote an earlier answer"
    if (work / "victim").exists():
        return "followed a symlink"
    if not (work / "answers" / "answer-003.wav").is_file():
        return "answer not saved under the next free name"
    return _answer_kept(result, work)


def _log_symlink(work: Path) -> list[str]:
    (work / "logs").mkdir()
    for offset in range(5):  # the run may start a few seconds later
        moment = time.localtime(time.time() + offset)
        name = time.strftime("voiceskill-%Y%m%d-%H%M%S.jsonl", moment)
        os.symlink(work / "victim", work / "logs" / name)
    return ["ask", "--no-speak", "--log-dir", "logs", "hello"]


def _log_private(result: Result, work: Path) -> str | None:
    if (work / "victim").exists():
        return "followed a symlink"
    logs = [p for p in (work / "logs").iterdir() if not p.is_symlink()]
    if len(logs) != 1 or stat.S_IMODE(logs[0].stat().st_mode) != 0o600:
        return f"log files: {[(p.name, oct(p.stat().st_mode)) for p in logs]}"
    return _answer_kept(result, work)


def _latin1_batch(work: Path) -> list[str]:
    name = os.fsdecode(b"caf\xe9.wav")
    shutil.copy(FIXTURE, work / name)
    return ["replay", "--json", "--no-speak", name, "missing.wav", str(FIXTURE)]


def _batch_finished(result: Result, work: Path) -> str | None:
    if result.out.count("\n") != 3:
        return f"{result.out.count(chr(10))} JSON lines, expected 3"
    return status_in(1)(result, work)


def _fifo(work: Path, name: str) -> Path:
    path = work / name
    os.mkfifo(path)
    return path


def _fifo_content(work: Path) -> list[str]:
    folder = content_copy(work)
    (folder / "intents.yaml").unlink()
    _fifo(folder, "intents.yaml")
    return ["check", str(folder)]


def _device_content(work: Path) -> list[str]:
    folder = content_copy(work)
    (folder / "intents.yaml").unlink()
    os.symlink("/dev/zero", folder / "intents.yaml")
    return ["check", str(folder)]


def _passwd(work: Path) -> list[str]:
    folder = content_copy(work)
    (folder / "intents.yaml").unlink()
    os.symlink("/etc/passwd", folder / "intents.yaml")
    return ["check", str(folder)]


def _no_secrets(result: Result, work: Path) -> str | None:
    if "root:" in result.err + result.out:
        return "printed the file the symlink points to"
    return status_in(1)(result, work)


def _bombs(work: Path, templates: int, each: int) -> list[str]:
    folder = content_copy(work)
    alternatives = "|".join(f"w{i}" for i in range(int(each ** 0.5)))
    lines = "".join(
        f'  bomb{i}:\n    sentences:\n      - "z{i} ({alternatives}) ({alternatives})"\n'
        for i in range(templates)
    )
    write_intents(folder, lines)
    return ["check", str(folder)]


def _size_file(work: Path, megabytes: float, line: Callable[[int], str]) -> list[str]:
    """intents.yaml grown to `megabytes` with extra intents built by `line`."""
    folder = content_copy(work)
    parts, size, i = [], 0, 0
    limit = int(megabytes * 1_000_000) - (folder / "intents.yaml").stat().st_size - 200
    while size < limit:
        part = line(i)
        parts.append(part)
        size += len(part)
        i += 1
    write_intents(folder, "".join(parts))
    return ["check", str(folder)]



# --- round 2: config file, review/graph, say -o, full disk, stdio, serve paths -------------


def _config(body: bytes | str | None = None, link: str | None = None, fifo: bool = False):
    """A setup writing config.toml under the case's XDG_CONFIG_HOME, then `ask hello`."""
    def setup(work: Path) -> list[str]:
        folder = work / "config" / "voiceskill"
        folder.mkdir(parents=True)
        path = folder / "config.toml"
        if fifo:
            os.mkfifo(path)
        elif link:
            os.symlink(link, path)
        else:
            path.write_bytes(body.encode() if isinstance(body, str) else body)
        return ["ask", "--no-speak", "hello"]
    return setup


def _document(document: str) -> Callable[[Path], list[str]]:
    def setup(work: Path) -> list[str]:
        folder = content_copy(work)
        edit(folder / "dialogue.yaml", "document: safety-policy.md", f"document: {document}")
        return ["check", str(folder)]
    return setup


def _review_leak(work: Path) -> list[str]:
    folder = content_copy(work)
    edit(folder / "dialogue.yaml", "document: safety-policy.md", "document: /proc/self/environ")
    return [f"{sys.executable} -m voiceskill review --content {folder} -o r.html; "
            "test ! -e r.html || ! grep -q PATH= r.html"]


def _linked_output(command: str, name: str) -> Callable[[Path], list[str]]:
    def setup(work: Path) -> list[str]:
        (work / "victim").write_text("keep")
        os.symlink(work / "victim", work / name)
        return [command, "-o", name]
    return setup


def _victim_kept(result: Result, work: Path) -> str | None:
    if (work / "victim").read_text() != "keep":
        return "wrote through the symlink"
    return status_in(2)(result, work)


def _existing_wav(argv: list[str]) -> Callable[[Path], list[str]]:
    def setup(work: Path) -> list[str]:
        shutil.copy(FIXTURE, work / "keep.wav")
        return argv
    return setup


def _wav_kept(status: int) -> Callable[[Result, Path], str | None]:
    def check(result: Result, work: Path) -> str | None:
        if (work / "keep.wav").read_bytes() != FIXTURE.read_bytes():
            return "the existing WAV was changed"
        return status_in(status)(result, work)
    return check


FULL_DISKS: list[Path] = []


def _full_disk(work: Path) -> Path | None:
    """A 64 KiB tmpfs (smaller than any spoken answer), or None when it cannot be mounted."""
    disk = work / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        return None
    FULL_DISKS.append(disk)
    return disk


def _say_on_full_disk(work: Path) -> list[str]:
    disk = _full_disk(work)
    if disk is None:
        return ["say", "-o", "/dev/full", "hello"]  # the nearest thing without root
    (disk / "keep.wav").write_bytes(b"earlier")
    return ["say", "-o", str(disk / "keep.wav"), "how do I stop a cramp in my calf"]


def _say_full_kept(result: Result, work: Path) -> str | None:
    kept = work / "disk" / "keep.wav"
    if kept.exists() and kept.read_bytes() != b"earlier":
        return "the earlier file was changed"
    return mentions("no space left on device", 2)(result, work)


def _save_on_full_disk(work: Path) -> list[str]:
    disk = _full_disk(work) or Path("/proc/voiceskill")
    return ["ask", "--no-speak", "--save-audio", str(disk / "answers"), "my calf cramps",
            "my dad has collapsed and is not breathing"]


def _both_answered(result: Result, work: Path) -> str | None:
    if result.out.count("skill:") != 2:
        return f"{result.out.count('skill:')} answers printed, expected 2"
    answers = work / "disk" / "answers"
    if answers.is_dir() and any(answers.iterdir()):
        return "a truncated answer was left"
    return status_in(0)(result, work)


def _nan_days(work: Path) -> list[str]:
    folder = content_copy(work)
    edit(folder / "dialogue.yaml", "    yes_from_days: 7", "    yes_from_days: .nan")
    return ["check", str(folder)]


def _huge_sample(work: Path) -> list[str]:
    audio, rate = sf.read(FIXTURE, dtype="float32")
    audio[100] = 1e38
    sf.write(work / "huge.wav", audio, rate, subtype="FLOAT")
    return ["replay", "--no-speak", "huge.wav"]


def _quiet(result: Result, work: Path) -> str | None:
    if result.err.strip():
        return f"said {result.err.strip().splitlines()[0][:80]!r}"
    return status_in(0)(result, work)


def _no_root_cache(result: Result, work: Path) -> str | None:
    if Path("/.cache/voiceskill").exists():
        return "wrote /.cache/voiceskill"
    return mentions("skill:", 0)(result, work)


def _precious(work: Path) -> list[str]:
    (work / "notes.txt").write_text("precious")
    return ["serve", "--uri", f"unix://{work / 'notes.txt'}"]


def _precious_kept(result: Result, work: Path) -> str | None:
    if not (work / "notes.txt").is_file():
        return "deleted the file at the socket path"
    return mentions("is not a socket", 2)(result, work)


def _doctored_model(work: Path) -> list[str]:
    """D26: the minimal content's intent model built, then its idf cut short (it loaded and
    every question failed with IndexError)."""
    built_cache(work, CACHE_TEMPLATE)
    question = ["ask", "--no-speak", "--content", str(MINIMAL), "goodbye"]
    before = set((work / "cache" / "voiceskill").glob("intents-*.npz"))
    run(question, work, 120)
    [model] = set((work / "cache" / "voiceskill").glob("intents-*.npz")) - before
    with np.load(model) as data:
        arrays = {key: data[key] for key in data.files}
    arrays["idf"] = arrays["idf"][:3]
    with model.open("wb") as file:
        np.savez(file, **arrays)
    return question


def _poisoned_content_cache(work: Path) -> list[str]:
    """D30: the content cache says there is one intent, 'x', whose sentences are 5 (it was
    blamed on the shipped YAML)."""
    built_cache(work, CACHE_TEMPLATE)
    for cached in (work / "cache" / "voiceskill").glob("content-*.json"):
        cached.write_text('{"intents": {"x": 5}, "swapped": {}, "flags": {}}')
    return ["ask", "--no-speak", "how do I stop a cramp in my calf"]


def round2_cases() -> list[Case]:
    config = {"env": True}
    return [
        Case("config.toml is a FIFO", _config(fifo=True), mentions("not a regular file", 2),
             config),
        Case("config.toml is /dev/zero", _config(link="/dev/zero"),
             mentions("not a regular file", 2), config),
        Case("config.toml is /dev/urandom", _config(link="/dev/urandom"),
             mentions("not a regular file", 2), config),
        Case("config.toml with a BOM", _config(b"\xef\xbb\xbfrate = 120\n"),
             mentions("skill:", 0), config),
        Case("config rate = 0", _config("rate = 0\n"), mentions("out of range", 2), config),
        Case("config rate = 10^12", _config("rate = 1000000000000\n"),
             mentions("out of range", 2), config),
        Case("config rate = 'fast'", _config("rate = 'fast'\n"),
             mentions("must be a whole number", 2), config),
        Case("document: /proc/self/environ", _document("/proc/self/environ"),
             mentions("document", 1)),
        Case("document: ../../etc/hostname", _document("../../../../etc/hostname"),
             mentions("document", 1)),
        Case("review does not embed the environment", _review_leak, status_in(0),
             {"shell": True}),
        Case("review -o a symlink", _linked_output("review", "r.html"), _victim_kept),
        Case("graph -o a symlink", _linked_output("graph", "g.dot"), _victim_kept),
        Case("yes_from_days: .nan", _nan_days, mentions("not a finite number", 1)),
        Case("say -o /dev/full", lambda w: ["say", "-o", "/dev/full", "hello"],
             mentions("cannot write /dev/full: no space left on device", 2)),
        Case("say whitespace -o existing", _existing_wav(["say", "-o", "keep.wav", "   "]),
             _wav_kept(1)),
        Case("say --rate 100000 -o existing", _existing_wav(
            ["say", "--rate", "100000", "-o", "keep.wav", "hello"]), _wav_kept(2)),
        Case("say -o on a full disk", _say_on_full_disk, _say_full_kept),
        Case("--save-audio on a full disk, 2 turns", _save_on_full_disk, _both_answered),
        Case("stdout closed (>&-)", lambda w: [
            f"{sys.executable} -m voiceskill ask --no-speak hello >&-"],
             mentions("standard output is closed", 2), {"shell": True}),
        Case("float WAV with a 1e38 sample", _huge_sample, _quiet),
        Case("HOME is empty", lambda w: ["ask", "--no-speak", "how do I stop a cramp"],
             _no_root_cache, {"env": {"HOME": "", "XDG_CACHE_HOME": None}, "timeout": 300}),
        Case("serve on a regular file's path", _precious, _precious_kept),
        Case("serve --uri unix://dir/x.sock", lambda w: [
            "serve", "--uri", "unix://somedir/x.sock"], mentions("needs its full path", 2)),
        Case("stdio:// with stdin /dev/null", lambda w: [
            f"{sys.executable} -m voiceskill serve --uri stdio:// </dev/null"], status_in(0),
             {"shell": True}),
        Case("stdio:// garbage line", lambda w: ["serve", "--uri", "stdio://"],
             mentions("event header is not JSON", 1), {"stdin": b"garbage\n"}),
        Case("stdio:// text 5", lambda w: ["serve", "--uri", "stdio://"],
             mentions("has no text", 1),
             {"stdin": b'{"type": "transcript", "data": {"text": 5}}\n'}),
        Case("stdio:// stdin closed", lambda w: [
            f"{sys.executable} -m voiceskill serve --uri stdio:// <&-"],
             mentions("one of them is closed", 2), {"shell": True}),
        Case("intent model cache of the wrong shape (D26)", _doctored_model,
             mentions("skill: Bye.", 0)),
        Case("poisoned content cache (D30)", _poisoned_content_cache, mentions("skill:", 0),
             {"timeout": 300}),
    ]

def cases() -> list[Case]:
    wav_pipe = FIXTURE.read_bytes()
    listed = [
        # 1. the smallest content that passes check must run
        Case("minimal content: check", lambda w: ["check", str(MINIMAL)], status_in(0)),
        Case("minimal content: ask", lambda w: [
            "ask", "--no-speak", "--intents", str(MINIMAL), "hello", "stop"], status_in(0)),
        Case("minimal content: replay", lambda w: [
            "replay", "--no-speak", "--intents", str(MINIMAL), str(FIXTURE)], status_in(0)),
        # 2. damaged language-model caches: rebuilt once, with one warning
        Case("cache: domain.lm truncated", damaged("lm", truncate("domain.lm", -1)),
             mentions("was damaged", 0)),
        Case("cache: domain.lm empty", damaged("lm", replace_with("domain.lm", b"")),
             mentions("was damaged", 0)),
        Case("cache: domain.lm random", damaged("lm", replace_with("domain.lm", os.urandom(4096))),
             mentions("was damaged", 0)),
        Case("cache: domain.dict truncated", damaged("dict", truncate("domain.dict", -1)),
             mentions("was damaged", 0)),
        Case("cache: report.json not an object", damaged("r", replace_with("report.json", b"[]")),
             mentions("was damaged", 0)),
        Case("cache: leftover build folder", damaged("b", lambda f: (
            f.parent / "build-999999999-x").mkdir()),
             lambda r, w: "build folder left" if list((w / "cache" / "voiceskill").glob(
                 "build-*")) else status_in(0)(r, w)),
        # 3. hangs and memory blow-ups
        Case("2^26 nested group", lambda w: (
            write_intents(content_copy(w),
                          f'  bomb:\n    sentences:\n      - "{nested_group(26)}"\n'),
            ["check", str(w / "content")])[1], mentions("more than 10000 sentences", 1)),
        Case("rule chain 2^28", lambda w: (
            write_intents(content_copy(w), '  bomb:\n    sentences:\n      - "<r28>"\n',
                          bomb_rules(28)), ["check", str(w / "content")])[1],
             mentions("more than 10000 sentences", 1)),
        Case("1200 templates x 8192", lambda w: _bombs(w, 1200, 8192),
             mentions("sentences in all", 1)),
        Case("24 triage questions in a row", lambda w: (
            content_copy(w), (w / "content" / "dialogue.yaml").write_text(triage_chain(24)),
            ["check", str(w / "content")])[2], status_in(0)),
        Case("intents.yaml is /dev/zero", _device_content, mentions("not a regular file", 1)),
        Case("intents.yaml is a FIFO", _fifo_content, mentions("not a regular file", 1)),
        Case("WAV is a FIFO nobody writes", lambda w: (
            _fifo(w, "q.wav"), ["replay", "--no-speak", "q.wav", str(FIXTURE)])[1],
             mentions("q.wav: contains no audio", 1)),
        # 4. YAML that broke the loader
        yaml_case("NUL character", "language: en\nintents:\x00 {}\n", "U+0000"),
        yaml_case("control character", "language: en\nintents: {a: \x1b[31m}\n", "U+001B"),
        yaml_case("nesting 600 deep", "a: " + "[" * 600 + "]" * 600 + "\n", "levels deep"),
        yaml_case("non-scalar key", "? [a, b]\n: c\nlanguage: en\n", "keys must be plain text"),
        yaml_case("int, bool and date keys", "1: a\ntrue: b\n2020-01-01: c\nlanguage: en\n",
                  "keys must be plain text"),
        yaml_case("5000-digit integer", "language: " + "9" * 5000 + "\n", "number longer"),
        yaml_case("bad explicit int", "language: !!int abc\n", "cannot convert"),
        # 5. bad output paths: the answer is printed, one warning
        Case("--save-audio is a file", _save_audio_into(_a_file), _answer_kept),
        Case("--save-audio read-only place", _save_audio_into(lambda w: Path("/proc/voiceskill")),
             _answer_kept),
        Case("--save-audio missing parent is a file", _save_audio_into(
            lambda w: _a_file(w) / "sub"), _answer_kept),
        Case("--log-dir is a file", _log_into(_a_file), _answer_kept),
        Case("--log-dir read-only place", _log_into(lambda w: Path("/proc/voiceskill")),
             _answer_kept),
        Case("say -o into a missing folder", lambda w: ["say", "-o", "/missing/x.wav", "hi"],
             mentions("does not exist", 2)),
        Case("--save-audio keeps earlier answers, refuses symlinks", _earlier_answers,
             _earlier_kept),
        Case("log: symlink in place, mode 0600", _log_symlink, _log_private),
        # 6. encodings and pipes
        Case("Latin-1 byte in a WAV name, batch goes on", _latin1_batch, _batch_finished),
        Case("Latin-1 argument", lambda w: ["ask", "--no-speak", os.fsdecode(b"caf\xe9 cramp")],
             status_in(0)),
        Case("stdout closed early (| head -c 1)", lambda w: [
            f"{sys.executable} -m voiceskill ask --json --no-speak hello yes no stop | head -c 1"],
             lambda r, w: None, {"shell": True}),
        Case("stdout on a full disk", lambda w: ["ask", "--no-speak", "hello"],
             mentions("no space left", 2), {"stdout_path": "/dev/full"}),
        Case("Ctrl-C during start-up", lambda w: [
            "replay", "--no-speak", str(FIXTURE)], status_in(130, 0), {"interrupt_after": 0.3}),
        Case("WAV on standard input (a pipe)", lambda w: [
            "replay", "--no-speak", "/dev/stdin"], mentions("skill:", 0), {"stdin": wav_pipe}),
        # 7. input limits
        Case("100 KB typed question", lambda w: ["ask", "--no-speak", "a" * 100_000, "hello"],
             mentions("not answered", 1)),
        Case("float WAV with NaN, 16 kHz", lambda w: (
            float_wav(w / "nan.wav", 16000, True), ["replay", "--no-speak", "nan.wav"])[1],
             mentions("NaN", 1)),
        Case("float WAV with Inf, 44.1 kHz", lambda w: (
            float_wav(w / "inf.wav", 44100, False), ["replay", "--no-speak", "inf.wav"])[1],
             mentions("NaN or infinity", 1)),
        # 8. privacy
        Case("check on a symlink to /etc/passwd", _passwd, _no_secrets),
    ]
    return listed + round2_cases()


def measure(work_root: Path, timeout: float) -> None:
    """`check` time and peak memory on the largest and slowest files within the limits."""
    sizes = [
        ("2 MB file (over the 1 MB limit)", lambda w: _size_file(
            w, 2.0, lambda i: f'  x{i}:\n    sentences:\n      - "word{i} again"\n')),
        ("1 MB of plain sentences", lambda w: _size_file(
            w, 0.99, lambda i: f'  x{i}:\n    sentences:\n      - "word{i} again"\n')),
        ("1 MB of templates at the per-template cap", lambda w: _size_file(
            w, 0.99, lambda i: f'  x{i}:\n    sentences:\n      - "z{i} (' + "|".join(
                f"a{j}" for j in range(100)) + ") (" + "|".join(
                f"b{j}" for j in range(100)) + ')"\n')),
        ("1 MB dialogue of triage questions", lambda w: (
            content_copy(w), (w / "content" / "dialogue.yaml").write_text(triage_chain(5200)),
            ["check", str(w / "content")])[2]),
    ]
    print("\ncheck on large files (no limit asserted here; target: 10 s and 500 MB):")
    for name, setup in sizes:
        work = Path(tempfile.mkdtemp(dir=work_root))
        argv = setup(work)
        size = sum(p.stat().st_size for p in (work / "content").iterdir())
        result = run(argv, work, timeout)
        last = (result.err.strip().splitlines() or result.out.strip().splitlines() or [""])[-1]
        print(f"  {name}: {size / 1e6:.2f} MB, {result.seconds:.1f} s, "
              f"peak {result.peak_mb:.0f} MB, status {result.status}: {last[:90]}")


# --- one server, hostile clients ---------------------------------------------------------------

DESCRIBE = b'{"type": "describe"}\n'
ONE_SAMPLE = (b'{"type": "audio-chunk", "data": {"rate": 16000, "width": 2, "channels": 1}, '
              b'"payload_length": 2}\n\x01\x00')
SERVER_EVENTS = [
    ("serve: header nested 5000 deep", b'{"type": "describe", "x": ' + b"[" * 5000
     + b"]" * 5000 + b"}\n", "error"),
    ("serve: data nested 20000 deep", b'{"type": "transcript", "data_length": 40000}\n'
     + b"[" * 20000 + b"]" * 20000, "error"),
    ("serve: inline data a list", b'{"type": "transcript", "data": [1, 2]}\n', "error"),
    ("serve: inline data a string", b'{"type": "transcript", "data": "text"}\n', "error"),
    ("serve: NaN in the context", b'{"type": "transcript", "data": {"text": "hi", '
     b'"context": {"x": NaN}}}\n', "error"),
    ("serve: forged log line", json.dumps({"type": "x\nvoiceskill: stopped",
                                           "data_length": 10**9}).encode() + b"\n", "error"),
    ("serve: rate as text", b'{"type": "audio-chunk", "data": {"rate": "16000", "width": 2, '
     b'"channels": 1}, "payload_length": 2}\n\x00\x00', "error"),
    ("serve: 3 channels, one frame", b'{"type": "audio-chunk", "data": {"rate": 16000, '
     b'"width": 2, "channels": 3}, "payload_length": 6}\n' + bytes(6)
     + b'{"type": "audio-stop"}\n', "transcript"),
]


def _first_reply(port: int, data: bytes, timeout: float = 15.0) -> dict | None:
    """Send raw bytes; the header of the first event the server sends back, or None."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):
            sock.sendall(data)
        with contextlib.suppress(OSError), sock.makefile("rb") as replies:
            line = replies.readline()
            return json.loads(line) if line else None
    return None


def _describe_seconds(port: int, timeout: float = 30.0) -> float | None:
    """How long a fresh client waits for `info`, or None if it gets something else."""
    began = time.perf_counter()
    reply = _first_reply(port, DESCRIBE, timeout)
    return time.perf_counter() - began if reply and reply.get("type") == "info" else None


def _handled(port: int, text: str, conversation_id: str, source: str) -> dict:
    """One typed turn from `source` (a loopback address of its own is another machine): the
    data of the `handled` reply, or {} if none came."""
    event = {"type": "transcript",
             "data": {"text": text, "context": {"conversation_id": conversation_id}}}
    with socket.create_connection(("127.0.0.1", port), timeout=30,
                                  source_address=(source, 0)) as sock:
        sock.sendall(json.dumps(event).encode() + b"\n")
        with sock.makefile("rb") as replies:
            header = json.loads(replies.readline() or b"{}")
            data = header.get("data") or {}
            if header.get("data_length"):
                data.update(json.loads(replies.read(header["data_length"])))
    return data if header.get("type") == "handled" else {}


def _conversations_bound_to_peers(port: int) -> int:
    """D6: a second machine reusing a conversation id gets its own conversation, and a flood
    of new ids from it does not evict the first machine's triage; failed checks."""
    question = _handled(port, "should I see a doctor about my twitching", "probe-kitchen",
                        "127.0.0.1").get("text", "")
    stolen = _handled(port, "repeat", "probe-kitchen", "127.0.0.2").get("text", "")
    isolated = bool(question) and question not in stolen
    print(f"{'ok' if isolated else 'FAIL':<6} serve: another address reusing a conversation "
          f"id does not hear its question (D6)")
    began = time.perf_counter()
    for flood in range(300):
        _handled(port, "hello", f"flood-{flood}", "127.0.0.2")
    flood_s = time.perf_counter() - began
    answer = _handled(port, "no", "probe-kitchen", "127.0.0.1")
    kept = answer.get("context", {}).get("continue_conversation") is True
    print(f"{'ok' if kept else 'FAIL':<6} serve: 300 new ids from another address "
          f"({flood_s:.1f} s) did not evict a triage in progress (D6)")
    return (not isolated) + (not kept)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _non_readers(port: int, count: int, stop: threading.Event) -> list[threading.Thread]:
    """Clients that send describe after describe and never read a reply."""
    def flood() -> None:
        with contextlib.suppress(OSError), socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.connect(("127.0.0.1", port))
            sock.settimeout(0.5)
            while not stop.is_set():
                with contextlib.suppress(TimeoutError):
                    sock.sendall(DESCRIBE * 200)
    threads = [threading.Thread(target=flood, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads


def _stream_one_sample_chunks(port: int, seconds: float, pid: int) -> list[tuple[float, float]]:
    """One-sample chunks for `seconds` (a new connection whenever the server closes one);
    the server's RSS every 10 s."""
    samples, began, next_sample = [], time.perf_counter(), 0.0
    batch = ONE_SAMPLE * 2000
    while time.perf_counter() - began < seconds:
        with contextlib.suppress(OSError), socket.create_connection(
                ("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(b'{"type": "audio-start", "data": {"rate": 16000, "width": 2, '
                         b'"channels": 1}}\n')
            while time.perf_counter() - began < seconds:
                sock.sendall(batch)
                elapsed = time.perf_counter() - began
                if elapsed >= next_sample:
                    samples.append((elapsed, _rss_mb(pid)))
                    next_sample += 10.0
    samples.append((time.perf_counter() - began, _rss_mb(pid)))
    return samples


def serve_probe(root: Path, chunk_seconds: float) -> tuple[int, int]:
    """Run the hostile clients against one server; (failed cases, server tracebacks)."""
    work = Path(tempfile.mkdtemp(dir=root))
    shutil.copytree(CACHE_TEMPLATE, work / "cache")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "PYTHONPATH": str(REPO / "src"),
                   "XDG_CACHE_HOME": str(work / "cache")}
    log_path = work / "server.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "voiceskill", "serve", "--uri", f"tcp://127.0.0.1:{port}"],
            cwd=work, env=environment, stdout=subprocess.DEVNULL, stderr=log_file)
    failures = 0
    try:
        deadline = time.monotonic() + 300
        while b"serving on" not in log_path.read_bytes():
            if server.poll() is not None or time.monotonic() > deadline:
                print("FAIL   serve: did not start: " + log_path.read_text()[-300:])
                return 1, 0
            select.select([], [], [], 0.1)
        print("\nserve (one process, hostile clients):")
        for name, data, expected in SERVER_EVENTS:
            reply = _first_reply(port, data)
            after = _describe_seconds(port)
            problem = None
            if reply is None or reply.get("type") != expected:
                problem = f"reply {reply}, expected {expected}"
            elif after is None:
                problem = "the next client was not answered"
            failures += problem is not None
            print(f"{'FAIL ' + problem if problem else 'ok':<6} {name}")
        failures += _conversations_bound_to_peers(port)
        stop = threading.Event()
        threads = _non_readers(port, 100, stop)
        select.select([], [], [], 3.0)  # let them fill every slot and their socket buffers
        waits = [_describe_seconds(port) for _ in range(5)]
        stop.set()
        for thread in threads:
            thread.join(timeout=5)
        worst = max((w if w is not None else float("inf")) for w in waits)
        verdict = "ok" if worst <= 2.0 else "FAIL"
        failures += verdict != "ok"
        print(f"{verdict:<6} serve: 100 clients that never read; 5 fresh clients answered in "
              f"{', '.join('-' if w is None else f'{w:.2f}' for w in waits)} s (target 2 s)")
        rss = _stream_one_sample_chunks(port, chunk_seconds, server.pid)
        first, last = rss[0][1], rss[-1][1]
        low, high = min(r for _, r in rss), max(r for _, r in rss)
        verdict = "ok" if high - low <= 10 else "FAIL"
        failures += verdict != "ok"
        print(f"{verdict:<6} serve: one-sample chunks for {rss[-1][0]:.0f} s: server RSS "
              f"{first:.0f} -> {last:.0f} MB (range {low:.0f}-{high:.0f}; target flat within "
              f"10 MB); samples " + " ".join(f"{r:.0f}" for _, r in rss))
        after = _describe_seconds(port)
        failures += after is None
        print(f"{'ok' if after is not None else 'FAIL':<6} serve: still answers afterwards")
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            status = server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            status = "hung at SIGTERM"
    log = log_path.read_text("utf-8", "replace")
    tracebacks = log.count("Traceback") + log.count("exception was never retrieved")
    forged = sum(line.strip() == "voiceskill: stopped" for line in log.splitlines()) > 1
    failures += status != 0 or forged
    print(f"{'ok' if status == 0 and not forged else 'FAIL':<6} serve: stopped on SIGTERM "
          f"(status {status}); {tracebacks} tracebacks in its log; "
          f"{'a FORGED' if forged else 'no forged'} log line; "
          f"{len(log.splitlines())} log lines")
    return failures, tracebacks


CACHE_TEMPLATE = Path()


def main() -> int:
    global CACHE_TEMPLATE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--only", help="run the cases whose name contains this")
    parser.add_argument("--chunk-seconds", type=float, default=60.0,
                        help="how long to stream one-sample audio chunks at the server")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="hostile-probe-"))
    try:
        CACHE_TEMPLATE = root / "cache-template"
        warm = root / "warm"
        warm.mkdir()
        run(["replay", "--no-speak", "--engine", "pocketsphinx", str(FIXTURE)], warm, 300)
        shutil.copytree(warm / "cache", CACHE_TEMPLATE)
        tracebacks = hangs = failures = 0
        for case in cases():
            if args.only and args.only not in case.name:
                continue
            work = Path(tempfile.mkdtemp(dir=root))
            argv = case.setup(work)
            options = dict(case.options or {})
            if not (work / "cache").exists():  # start warm: building takes a minute or two
                shutil.copytree(CACHE_TEMPLATE, work / "cache")
            if options.get("env") is True:  # a config folder of the case's own
                options["env"] = {"XDG_CONFIG_HOME": str(work / "config")}
            timeout = options.pop("timeout", args.timeout)
            result = run(argv, work, timeout, **options)
            problem = None
            if result.hung:
                hangs += 1
                problem = f"hung (killed after {args.timeout:g} s)"
            elif "Traceback" in result.err:
                tracebacks += 1
                problem = "traceback: " + result.err.strip().splitlines()[-1]
            else:
                problem = case.expect(result, work)
            failures += problem is not None
            first = (result.err.strip().splitlines() or [""])[0]
            verdict = "FAIL " + problem if problem else "ok"
            print(f"{verdict:<6} {case.name} [{result.status}, {result.seconds:.1f} s, "
                  f"{result.peak_mb:.0f} MB] {first[:100]}")
        if not args.only or args.only in "serve":
            failed, server_tracebacks = serve_probe(root, args.chunk_seconds)
            failures += failed
            tracebacks += server_tracebacks
        print(f"\n{tracebacks} tracebacks, {hangs} hangs, {failures} failed cases")
        if not args.only:
            measure(root, args.timeout)
        return 1 if failures else 0
    finally:
        for disk in FULL_DISKS:
            subprocess.run(["umount", str(disk)], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
