"""A plain (non-editable) install ships the content and the cited documents, so `voiceskill
check` and `voiceskill review` find them."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(folder), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    [built] = folder.glob("voiceskill-*.whl")
    return built


@pytest.mark.slow
def test_wheel_contains_the_intents(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"voiceskill/intents/intents.yaml", "voiceskill/intents/dialogue.yaml"} <= names
    assert {"voiceskill/__main__.py", "voiceskill/cli/__init__.py",
            "voiceskill/tts/worker.py"} <= names
    # The embedding model's weights are Apache-2.0: its licence and notice go with the code.
    assert {"voiceskill/licenses/all-MiniLM-L6-v2/LICENSE",
            "voiceskill/licenses/all-MiniLM-L6-v2/NOTICE"} <= names
    # The documents the answers cite, for the review sheet of an installed skill.
    assert {"voiceskill/docs/safety-policy.md", "voiceskill/docs/sources/INDEX.md"} <= names


@pytest.mark.slow
def test_review_from_the_wheel_finds_the_safety_policy(wheel, tmp_path):
    """The review sheet of an installed skill, run away from any checkout, cites the safety
    policy from the package's own docs/ (only the seed article, not ours to ship, is missing)."""
    installed = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(installed)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(installed)}
    env.pop("VOICESKILL_SHARED", None)
    done = subprocess.run(
        [sys.executable, "-m", "voiceskill", "review", "-o", "review.html",
         "--source-dir", str(elsewhere)],
        cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    html = (elsewhere / "review.html").read_text()
    assert "safety-policy.md&#x27; not found" not in html
    assert 'class="citation missing" data-cite="safety-policy.md' not in html
    assert "twitch-vs-spasm.txt&#x27; not found" in html  # the seed article really is absent
