"""The CLI contract of DESIGN.md, run as a user would: a subprocess."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from helpers import MINIMAL
from voiceskill.cli import build_parser, main

KEYS = {"transcript", "intent", "confidence", "node", "answer", "outcome", "timings_ms"}


def voiceskill(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "voiceskill", *args], capture_output=True, text=True, timeout=120
    )


def test_ask_json_prints_one_object_per_turn_with_the_contract_keys():
    result = voiceskill("ask", "--json", "--no-speak", "should I see a doctor", "yes")
    assert result.returncode == 0, result.stderr
    turns = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(turns) == 2
    for turn in turns:
        assert KEYS | {"text"} <= set(turn)
        assert turn["transcript"] == turn["text"]
        assert turn["timings_ms"]["asr"] == 0
        assert set(turn["timings_ms"]) == {"asr", "nlu", "dialogue", "tts", "total"}
    assert turns[0]["intent"] == "when_to_see_doctor"
    assert turns[1]["outcome"] == "urgent"


def test_separate_makes_each_text_its_own_conversation():
    result = voiceskill("ask", "--json", "--separate", "--no-speak", "should I see a doctor", "yes")
    second = json.loads(result.stdout.splitlines()[1])
    assert second["outcome"] is None
    assert second["node"] == "welcome"


def test_ask_without_json_prints_the_answer():
    result = voiceskill("ask", "--no-speak", "how do I prevent cramps")
    assert result.returncode == 0
    assert "drinking enough water" in result.stdout


def test_bad_usage_is_a_usage_error_not_a_traceback():
    result = voiceskill("ask")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_a_voice_that_cannot_speak_falls_back_to_printing():
    result = voiceskill("ask", "--voice", "zz-no-such-voice", "how do I prevent cramps")
    assert result.returncode == 0
    assert "drinking enough water" in result.stdout
    assert len(result.stderr.strip().splitlines()) == 1
    assert "printing answers only" in result.stderr


def test_say_writes_speech_to_a_wav(tmp_path):
    out = tmp_path / "hello.wav"
    result = voiceskill("say", "hello", "-o", str(out))
    assert result.returncode == 0, result.stderr
    import soundfile

    info = soundfile.info(out)
    assert info.frames / info.samplerate > 0.3


# --- one name for the content folder (D33) ----------------------------------------------------

CONTENT_COMMANDS = [["ask", "hello"], ["replay", "x.wav"], ["listen"], ["serve"], ["check"],
                    ["review"], ["graph", "-o", "t.dot"]]


@pytest.mark.parametrize("flag", ["--content", "--intents"])
@pytest.mark.parametrize("command", CONTENT_COMMANDS, ids=[c[0] for c in CONTENT_COMMANDS])
def test_every_command_takes_the_content_folder_by_either_name(command, flag):
    args = build_parser().parse_args([*command, flag, str(MINIMAL)])
    assert args.content == MINIMAL


@pytest.mark.parametrize(("argv", "made"), [
    (["ask", "--no-speak", "--intents", str(MINIMAL), "goodbye"], "skill: Bye."),
    (["check", "--content", str(MINIMAL)], "24 sample sentences"),
    (["graph", "--intents", str(MINIMAL), "-o", "tree.dot"], None),
])
def test_the_content_folder_given_by_either_name_is_the_one_used(argv, made, tmp_path,
                                                                 monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 0, capsys.readouterr().err
    out = capsys.readouterr().out if made else (tmp_path / "tree.dot").read_text()
    assert (made or "welcome") in out


def test_check_refuses_two_content_folders_in_one_line(capsys):
    assert main(["check", str(MINIMAL), "--content", str(MINIMAL)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_wav_errors_name_the_file_as_given_and_an_empty_name_is_one_line():
    result = voiceskill("replay", "--no-speak", "", "/dev/null")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "voiceskill: '': an empty name, not a WAV file",
        "voiceskill: /dev/null: not a regular file or a pipe",
    ]
