"""`voiceskill check` catches each class of content error, naming file and line."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from voiceskill.cli import main
from voiceskill.content import default_folder


@pytest.fixture
def content_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "intents"
    shutil.copytree(default_folder(), folder)
    return folder


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def line_of(path: Path, text: str) -> int:
    """The line number of the last line of the first occurrence of `text` in `path`."""
    content = path.read_text()
    assert text in content, text
    return content[: content.index(text) + len(text.rstrip("\n"))].count("\n") + 1


def check(folder: Path, capsys) -> tuple[int, str]:
    status = main(["check", str(folder)])
    return status, capsys.readouterr().err


def test_shipped_content_passes(capsys):
    assert main(["check"]) == 0
    assert "ok:" in capsys.readouterr().out


BROKEN = [
    # (file, old text, new text, expected message, text whose last line the message must name)
    ("dialogue.yaml", "  spasm_prevention:\n    kind: advice\n    say:",
     "  spasm_prevention:\n    kind: advice\n    sya:", "unknown key 'sya'", "    sya:"),
    ("dialogue.yaml", "  doctor_visit:\n    say:", "  doctor_visit:\n    text:",
     "'say' is a required property", "  doctor_visit:\n"),
    ("dialogue.yaml", "on: {yes: twitch_causes, no: anything_else}",
     "on: {yes: twitch_causez, no: anything_else}", "no node named 'twitch_causez'",
     "on: {yes: twitch_causez"),
    ("dialogue.yaml", "    outcome: urgent\n", "", "advice node 'advice_urgent' has no outcome",
     "  advice_urgent:"),
    ("dialogue.yaml", "  doctor_visit: doctor_visit\n", "  doctor_visit: medication\n",
     "'doctor_visit' can never be reached", "  doctor_visit:\n"),
    ("dialogue.yaml", "on: {yes: advice_medicine_or_diet, no: advice_self_care}",
     "on: {yes: advice_medicine_or_diet, no: triage_weakness}", "loops with no exit",
     "  triage_weakness:"),
    ("dialogue.yaml", "on: {yes: advice_medicine_or_diet, no: advice_self_care}",
     "on: {yes: advice_medicine_or_diet, no: anything_else}", "gives no advice",
     "  triage_weakness:"),
    ("intents.yaml", "  nutrition:\n    sentences:\n",
     "  nutrition:\n    sentences: []\n    old:\n", "should be non-empty", "    sentences: []"),
    ("intents.yaml", '      - "tell me a (funny|good|silly) joke"', '      - "repeat please"',
     "also samples of 'repeat'", '      - "repeat please"'),
    ("intents.yaml", '      - "tell me a (funny|good|silly) joke"', '      - "tell me (a joke"',
     "bad template", '      - "tell me (a joke"'),
    ("dialogue.yaml", "  anything_else:\n", "  anything_else:\n  anything_else:\n",
     "duplicate key 'anything_else'", "  anything_else:\n  anything_else:\n"),
    ("dialogue.yaml", "start: welcome", "start: [welcome", "YAML syntax", "\ndisclaimer:"),
    ("red_flags.yaml", "    becomes: {occasional: lasting}\n",
     "    becomes: {occasional: lastin}\n", "no red flag named 'lastin'",
     "    becomes: {occasional: lastin}"),
]


@pytest.mark.parametrize(("file", "old", "new", "message", "where"), BROKEN)
def test_check_reports_file_line_and_problem(content_copy, capsys, file, old, new, message,
                                             where):
    edit(content_copy / file, old, new)
    status, err = check(content_copy, capsys)
    assert status == 1
    where_line = line_of(content_copy / file, where)
    expected = f"{content_copy / file}:{where_line}: "
    assert any(row.startswith(expected) and message in row for row in err.splitlines()), (
        f"expected {expected}...{message}, got:\n{err}"
    )


def test_missing_required_intent_is_reported(content_copy, capsys):
    path = content_copy / "intents.yaml"
    edit(path, "  goodbye:\n", "  farewell:\n")
    edit(content_copy / "examples.yaml", '  "goodbye":\n', '  "farewell":\n')
    status, err = check(content_copy, capsys)
    assert status == 1
    # One problem, at the `intents:` mapping it is missing from; nothing else is blamed.
    assert err.splitlines() == [
        f"{path}:{line_of(path, 'intents:')}: required intent 'goodbye' is missing",
        "1 problem(s) found",
    ]


def test_not_utf8_and_alias_bombs_are_refused(content_copy, capsys):
    (content_copy / "intents.yaml").write_bytes(b"language: en\nintents: \xff\xfe\n")
    status, err = check(content_copy, capsys)
    assert status == 1 and "intents.yaml:2: not valid UTF-8" in err
    (content_copy / "intents.yaml").write_text('a: &x ["lol"]\nb: [*x, *x]\n')
    status, err = check(content_copy, capsys)
    assert status == 1 and "intents.yaml:1: YAML anchors and aliases are not allowed" in err


def test_ask_refuses_broken_content_with_a_clear_message(content_copy, capsys):
    edit(content_copy / "dialogue.yaml", "start: welcome", "start: nowhere")
    status = main(["ask", "--no-speak", "--intents", str(content_copy), "hello"])
    err = capsys.readouterr().err
    assert status == 2
    assert "no node named 'nowhere'" in err and "Traceback" not in err
