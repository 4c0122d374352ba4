"""How `voiceskill listen` ends on virtual devices: said goodbye to, with no microphone, with
its sound server gone, or with a status stream it cannot write (the conversation itself, and
the end by a signal each conversation there has: test_listen.py)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from helpers import Listener, fixture, listeners, stopped
from virtual_audio import VirtualAudio

pytestmark = pytest.mark.audio_devices


@pytest.fixture
def listener(virtual_audio):
    with listeners(virtual_audio) as start:
        yield start


def test_goodbye_ends_the_loop_cleanly(listener):
    live = listener()
    turn = live.ask(fixture("goodbye__1__flite-slt.wav"))
    assert turn["intent"] == "goodbye"
    assert live.wait() == 0
    assert not any("Traceback" in line for line in live.status)
    assert stopped(live) == ("goodbye", 0)


def test_no_microphone_is_one_line_and_status_2(tmp_path):
    env = {"PULSE_SERVER": f"unix:{tmp_path}/nowhere", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path), "ALSA_CONFIG_PATH": "/usr/share/alsa/alsa.conf",
           "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]}
    result = subprocess.run([sys.executable, "-m", "voiceskill", "listen"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_audio_server_vanishing_mid_conversation_ends_with_one_line(tmp_path):
    """PulseAudio moves a stream to another source when one is unplugged, so the sound
    server itself goes away here: the microphone stops delivering audio."""
    with VirtualAudio() as own_audio:  # a private daemon: this test kills it
        live = Listener(own_audio)
        try:
            turn = live.ask(fixture("spasm_relief__1__flite-slt.wav"))
            assert turn["intent"] == "spasm_relief"
            own_audio._daemon.kill()
            assert live.wait() == 2
        finally:
            live.close()
    assert "microphone" in live.status[-1]
    assert not any("Traceback" in line for line in live.status)
    assert "microphone" in live.named("error")[-1]["message"]
    assert stopped(live) == ("microphone_lost", 2)


def test_a_status_stream_that_cannot_be_written_is_one_line_and_status_2(virtual_audio,
                                                                         tmp_path):
    missing = tmp_path / "missing" / "status.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "voiceskill", "listen", "--status-json", str(missing)],
        env=virtual_audio.env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert result.stderr.splitlines() == [
        f"voiceskill: cannot write {missing}: the folder does not exist"]
