"""`voiceskill replay` through the real pocketsphinx engine: spoken conversations from the
fixtures, bad files, a ten-minute recording (every clean single question at once:
test_replay_questions.py, a file of its own so that the two test workers share the time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from helpers import ROOT, manifest_rows, replay
from voiceskill.asr.frontend import split_frontend
from voiceskill.cli import assemble
from voiceskill.content import load_content
from voiceskill.pipeline import Skill


@pytest.fixture(scope="module")
def replay_skill() -> Skill:
    """The skill `voiceskill replay --no-speak` assembles (same recogniser, same default
    front-end), built once; the command itself runs as a subprocess in the other tests here."""
    return assemble(["replay", "--no-speak", "unused.wav"], load_content())


def replay_conversation(skill: Skill, files: list[Path]) -> list[dict]:
    """The turns `voiceskill replay --json FILE...` prints, from a fresh front-end as in a new
    process (the front-end otherwise keeps adapting to the room from one file to the next)."""
    split_frontend(skill.recognizer)[0].reset()
    conversation, turns = skill.conversation(), []
    for path in files:
        if conversation.ended:  # as replay does: a goodbye ends it, the next file starts anew
            conversation = skill.conversation()
        turns.append(skill.audio_turn(conversation, path).to_json())
    return turns


@pytest.mark.parametrize("voice", ["slt", "rms"])
@pytest.mark.parametrize("name", ["triage_self_care", "triage_urgent", "triage_see_doctor",
                                  "triage_emergency"])
def test_spoken_triage_conversations_reach_their_outcome(replay_skill, name, voice):
    turns_expected = sorted(manifest_rows(conversation=f"{name}__{voice}"),
                            key=lambda r: int(r["turn"]))
    turns = replay_conversation(replay_skill, [ROOT / r["file"] for r in turns_expected])
    assert len(turns) == len(turns_expected) and not any("error" in t for t in turns), turns
    confirmations = {flag.confirm for flag in replay_skill.content.red_flags}
    if turns[-1]["answer"] in confirmations:  # heard unsure: the sign is confirmed first
        assert turns_expected[-1]["outcome"] == "emergency", turns
    else:
        assert turns[-1]["outcome"] == turns_expected[-1]["outcome"], turns


def bad_files(folder: Path) -> dict[str, Path]:
    good, rate = sf.read(ROOT / "audio_fixtures/clean/spasm_relief__1__flite-slt.wav")
    files = {}
    files["empty"] = folder / "empty.wav"
    files["empty"].write_bytes(b"")
    files["header_only"] = folder / "header_only.wav"
    sf.write(files["header_only"], np.zeros(0), rate, subtype="PCM_16")
    files["not_wav"] = folder / "notes.wav"
    files["not_wav"].write_text("this is not audio\n")
    files["truncated_header"] = folder / "cut.wav"
    files["truncated_header"].write_bytes((ROOT / "audio_fixtures/clean/"
                                           "spasm_relief__1__flite-slt.wav").read_bytes()[:30])
    files["stereo_44k"] = folder / "stereo_44k.wav"
    import soxr

    upsampled = soxr.resample(good, rate, 44_100)
    sf.write(files["stereo_44k"], np.stack([upsampled, upsampled], axis=1), 44_100,
             subtype="PCM_24")
    files["silence"] = folder / "silence.wav"
    sf.write(files["silence"], np.zeros(rate * 2), rate, subtype="PCM_16")
    files["missing"] = folder / "missing.wav"
    return files


def test_bad_files_get_one_line_each_and_the_batch_goes_on(tmp_path):
    files = bad_files(tmp_path)
    result = replay("--separate", *map(str, files.values()))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    turns = {Path(t["audio"]).name: t for t in map(json.loads, result.stdout.splitlines())}
    assert len(turns) == len(files)
    for key in ("empty", "header_only", "not_wav", "truncated_header", "missing"):
        turn = turns[files[key].name]
        assert turn["error"].startswith(str(files[key])), turn  # the name as given
        assert "\n" not in turn["error"]
    assert turns["stereo_44k.wav"]["intent"] == "spasm_relief"
    assert turns["silence.wav"]["intent"] == "fallback"
    errors = [line for line in result.stderr.splitlines() if line.startswith("voiceskill: ")]
    assert len(errors) == 5


def test_a_ten_minute_recording_is_answered_in_bounded_time_and_memory(tmp_path):
    question, rate = sf.read(ROOT / "audio_fixtures/clean/spasm_relief__1__flite-slt.wav",
                             dtype="int16")
    long_file = tmp_path / "ten_minutes.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(long_file, "w", rate, 1, subtype="PCM_16") as out:
        out.write(question)
        for _ in range(600):
            out.write(rng.normal(0, 30, rate).astype(np.int16))
    script = (
        "import sys\n"
        "from voiceskill.cli import main\n"
        f"status = main(['replay', '--json', '--no-speak', {str(long_file)!r}])\n"
        "# VmHWM, not ru_maxrss: the latter keeps the forking parent's peak across exec\n"
        "peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]\n"
        "print(int(peak.split()[1]) // 1024, file=sys.stderr)\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=600)
    turn = json.loads(result.stdout)
    assert turn["intent"] == "spasm_relief"
    peak_mb = int(result.stderr.strip().splitlines()[-1])
    assert peak_mb < 300, result.stderr  # MB, the whole process
