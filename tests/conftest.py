"""Shared pytest fixtures and helpers, one section per concern; add new sections below."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from virtual_audio import VirtualAudio

# --- One BLAS thread a process --------------------------------------------------
# Two test workers share the two cores (with audio in real time), and numpy's OpenBLAS starts
# a thread a core in every process, whose idle threads spin: with one each, six CPU-bound files
# took 60-65 s of user CPU instead of 67-69 s (-n 2, two runs each on the shared machine). Set
# before numpy is first imported (the test modules import it after this file, virtual_audio
# only in its fixture); the processes the tests start inherit it.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

# --- CI: everything runs, nothing needed may be missing -----------------------


def in_ci() -> bool:
    """CI=true (as .ci/run and every CI service set it): run slow tests, fail on missing inputs."""
    return os.environ.get("CI", "").lower() in {"true", "1", "yes"}


def pytest_report_header(config: pytest.Config) -> str:
    if in_ci():
        return "CI=true: slow tests run; a missing seed article fails"
    return "slow tests deselected (run them with -m slow, or CI=true)"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave `slow` tests out locally, unless a -m expression or a test id asks for them."""
    asked = config.option.markexpr or any("::" in arg for arg in config.args)
    if in_ci() or asked:
        return
    slow = [item for item in items if item.get_closest_marker("slow")]
    if slow:
        config.hook.pytest_deselected(items=slow)
        items[:] = [item for item in items if not item.get_closest_marker("slow")]


# --- One cache for the whole run -------------------------------------------------

# What is built from the content (the trained intent model, the sign index: a minute or two
# each time) is shared by every test and every `voiceskill` subprocess, also those given a
# HOME of their own; a test about the cache itself sets XDG_CACHE_HOME for its own process.
os.environ.setdefault("XDG_CACHE_HOME", str(Path.home() / ".cache"))


# --- Python in a fresh process ------------------------------------------------


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    """`code` run by this Python in a process of its own (what it imports, how it exits)."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


# --- Documents outside the repo (../shared: the seed article) -----------------

SHARED = Path(os.environ.get("VOICESKILL_SHARED") or Path(__file__).resolve().parents[2] / "shared")


def shared_document(relative: str) -> Path:
    """`relative` under ../shared (or $VOICESKILL_SHARED); skipped if absent, a failure in CI."""
    path = SHARED / relative
    if not path.is_file():
        message = f"{path} not found (set VOICESKILL_SHARED to the folder holding seed/)"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    return path


# --- Virtual audio devices (tests/virtual_audio.py) ---------------------------


@pytest.fixture(autouse=True)
def logging_left_as_found() -> Iterator[None]:
    """`main()` run in-process sets up logging on the stderr of that test, which pytest closes
    afterwards: a later test's log line would then print "--- Logging error ---"."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture(scope="session")
def shared_virtual_audio() -> Iterator[VirtualAudio]:
    """A private PulseAudio with a virtual mic and speaker, shared by the session."""
    from virtual_audio import VirtualAudio, VirtualAudioError  # imports numpy: after the above

    audio = VirtualAudio()
    try:
        audio.start()
    except VirtualAudioError as exc:
        if in_ci():
            pytest.fail(f"virtual audio devices unavailable: {exc}", pytrace=False)
        pytest.skip(f"virtual audio devices unavailable: {exc}")
    yield audio
    audio.stop()


@pytest.fixture
def virtual_audio(shared_virtual_audio: VirtualAudio) -> Iterator[VirtualAudio]:
    """The shared devices, running: run the program under test as a subprocess with
    `virtual_audio.env`.

    Had the daemon ended during a test (that test fails, saying how: see helpers.Listener),
    the tests after it get a fresh one instead of failing in turn."""
    shared_virtual_audio.restart_if_ended()
    yield shared_virtual_audio
    if ended := shared_virtual_audio.ended():
        warnings.warn(f"the shared virtual audio daemon ended during this test: {ended}",
                      stacklevel=1)


@pytest.fixture
def echo_path() -> Iterator[VirtualAudio]:
    """Private virtual devices whose speaker is fed back into the microphone 6 dB down, as in
    a room (the shared devices have no echo path)."""
    from virtual_audio import VirtualAudio

    with VirtualAudio() as audio:
        audio.start_echo_path(gain_db=-6.0)
        yield audio


# --- A built language-model cache (tests of damaged caches) -------------------


CACHE_GROUPS = {"a": ["how do i stop a cramp", "what is a twitch"], "b": ["yes", "no"]}


@pytest.fixture(scope="module")
def built_cache(tmp_path_factory) -> Path:
    """A cache folder holding one language model built from CACHE_GROUPS."""
    from voiceskill import asr

    cache = tmp_path_factory.mktemp("cache")
    asr.create_recognizer("pocketsphinx", CACHE_GROUPS, cache_dir=cache)
    return cache
