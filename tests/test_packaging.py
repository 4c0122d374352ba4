"""A plain (non-editable) install ships the content, so `voiceskill check` finds it."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.slow
def test_wheel_contains_the_intents(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    [wheel] = tmp_path.glob("voiceskill-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"voiceskill/intents/intents.yaml", "voiceskill/intents/dialogue.yaml"} <= names
    assert "voiceskill/cli.py" in names
    # The embedding model's weights are Apache-2.0: its licence and notice go with the code.
    assert {"voiceskill/licenses/all-MiniLM-L6-v2/LICENSE",
            "voiceskill/licenses/all-MiniLM-L6-v2/NOTICE"} <= names
    # The documents the answers cite, for the review sheet of an installed skill.
    assert {"voiceskill/docs/safety-policy.md", "voiceskill/docs/sources/INDEX.md"} <= names
