"""Shared pytest fixtures, one section per concern; add new sections below."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from virtual_audio import VirtualAudio, VirtualAudioError

# --- Virtual audio devices (tests/virtual_audio.py) ---------------------------


@pytest.fixture(scope="session")
def virtual_audio() -> Iterator[VirtualAudio]:
    """A private PulseAudio with a virtual mic and speaker, shared by the session.

    Run the program under test as a subprocess with `virtual_audio.env`.
    """
    audio = VirtualAudio()
    try:
        audio.start()
    except VirtualAudioError as exc:
        pytest.skip(f"virtual audio devices unavailable: {exc}")
    yield audio
    audio.stop()
