"""The pipeline's responder: an answer is rendered once, and the sound saved is the sound
played (a real Speaker playing to the virtual speaker, in a subprocess: sounddevice finds
devices at import)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf
import soxr

from virtual_audio import SAMPLE_RATE, VirtualAudio, fell_quiet, find_signal

SAY_AND_SAVE = """
import json, sys
from pathlib import Path
from voiceskill.content import load_content
from voiceskill.pipeline import Skill
from voiceskill.tts.speaker import Speaker, VoiceSettings

speaker = Speaker(VoiceSettings())
renders = []
render = speaker.render
speaker.render = lambda *args, **kwargs: renders.append(args) or render(*args, **kwargs)
skill = Skill(load_content(), speaker, save_audio=Path(sys.argv[1]))
turn = skill.text_turn(skill.conversation(), "goodbye")  # a short answer: played in real time
print(json.dumps({"renders": len(renders), "can_play": speaker.can_play,
                  "answer": turn.reply.answer}))
"""


@pytest.mark.audio_devices
def test_a_saved_answer_is_rendered_once_and_is_what_was_played(
    virtual_audio: VirtualAudio, tmp_path: Path
) -> None:
    """It was synthesised twice: once to save, once to speak (two worker forks, two espeak
    runs per answer, `replay --save-audio` in the README's quick start)."""
    recording = virtual_audio.record_speaker(tmp_path / "speaker.wav")
    result = subprocess.run([sys.executable, "-c", SAY_AND_SAVE, str(tmp_path / "answers")],
                            env=virtual_audio.env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout)
    recording.wait_until("fell quiet", fell_quiet)
    heard, _ = sf.read(recording.stop(), dtype="int16")
    assert outcome["can_play"] and outcome["answer"]
    assert outcome["renders"] == 1
    saved, rate = sf.read(tmp_path / "answers" / "answer-001.wav", dtype="int16")
    saved_16k = soxr.resample(saved, rate, SAMPLE_RATE).astype("int16")
    assert find_signal(heard, saved_16k).correlation > 0.9
