"""The README's first command, exactly as written, in a fresh clone on the system Python.

This is what a new user does on a stock Debian/Ubuntu: the clone is of the committed HEAD
(commit first), PATH holds only the system directories (so `python3` is the distribution's
externally managed one), and HOME is empty. With an empty HOME pip would start from an empty
cache, so PIP_CACHE_DIR points at the cache of whoever runs the tests ($PIP_CACHE_DIR, else
~/.cache/pip), which scripts/setup has just warmed in CI.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

import pytest
import soundfile as sf

from helpers import ROOT

SYSTEM_PATH = "/usr/sbin:/usr/bin:/sbin:/bin"
# How this machine reaches the package index (proxies, mirrors): kept, the rest is dropped.
NETWORK_SETTINGS = ("http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                    "NO_PROXY", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS",
                    "PIP_CERT", "PIP_TRUSTED_HOST")
HANG_S = 1800  # a cold cache and apt-get can take minutes; only a real hang gets this far


def quick_start_command(readme: Path) -> str:
    """The first indented command line under the README's "Quick start" heading."""
    section = readme.read_text(encoding="utf-8").split("## Quick start", 1)[1]
    return re.search(r"^ {4}(\S.*)$", section, re.MULTILINE).group(1)


def pip_cache() -> str:
    cache_home = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return os.environ.get("PIP_CACHE_DIR") or os.path.join(cache_home, "pip")


def run_as_new_user(command: str, clone: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {name: os.environ[name] for name in NETWORK_SETTINGS if name in os.environ}
    # as many containers set: setup must compile the editable package itself (below)
    env.update(PATH=SYSTEM_PATH, HOME=str(home), PIP_CACHE_DIR=pip_cache(),
               PYTHONDONTWRITEBYTECODE="1")
    started = time.monotonic()
    result = subprocess.run(["bash", "-c", command], cwd=clone, env=env, capture_output=True,
                            text=True, timeout=HANG_S)
    print(f"quick start took {time.monotonic() - started:.0f} s (target: 180 s, warm cache)")
    return result


@pytest.mark.slow
def test_readme_quick_start_works_on_the_system_python_twice(tmp_path):
    clone, home = tmp_path / "clone", tmp_path / "home"
    home.mkdir()
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True, timeout=300)
    command = quick_start_command(clone / "README.md")
    answer = clone / "answers" / "answer-001.wav"
    for attempt in ("first", "second"):
        result = run_as_new_user(command, clone, home)
        assert result.returncode == 0, f"{attempt} run of {command!r}:\n{result.stderr}"
        assert "skill:" in result.stdout, result.stdout
        info = sf.info(answer)
        assert (info.format, info.channels) == ("WAV", 1) and info.duration > 1, info
        answer.unlink()
    assert "home = /usr/bin" in (clone / ".venv" / "pyvenv.cfg").read_text()
    uncompiled = [module for module in (clone / "src").rglob("*.py")
                  if not list(module.parent.glob(f"__pycache__/{module.stem}.*.pyc"))]
    assert uncompiled == [], "setup left modules to be compiled at every run"
