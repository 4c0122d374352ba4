"""Run every hostile case of the robustness review against the real CLI and count failures.

Each case is a `voiceskill` command run in a fresh process with a timeout, in a scratch folder:
content that passes `check` but is tiny, damaged language-model caches, expansion bombs, FIFOs
and devices where files are expected, YAML that broke the loader, bad output paths, file names
and arguments that are not UTF-8, closed or full stdout, Ctrl-C during start-up, WAVs from
pipes and with NaN samples, oversized typed input, private files behind symlinks.

A case fails if it prints a traceback, hangs (timeout), or breaks its own expectation. The last
lines measure `check` on a 2 MB file and on 1 MB files built to be slow: time and peak memory.

    python tools/hostile_probe.py [--timeout 60] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
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
    return listed


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


CACHE_TEMPLATE = Path()


def main() -> int:
    global CACHE_TEMPLATE
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--only", help="run the cases whose name contains this")
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
            result = run(argv, work, args.timeout, **(case.options or {}))
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
        print(f"\n{tracebacks} tracebacks, {hangs} hangs, {failures} failed cases")
        if not args.only:
            measure(root, args.timeout)
        return 1 if failures else 0
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
