"""Fuzzing: broken content and odd transcripts never crash, hang or load unsafely."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voiceskill.content import default_folder, load_content
from voiceskill.content.yamlsafe import ContentError
from voiceskill.pipeline import Skill

SHIPPED = {
    name: (default_folder() / name).read_text() for name in ("intents.yaml", "dialogue.yaml")
}
WRONG_TYPES = ["123", "[1, 2]", "{a: b}", "null", "true"]


def mutate(text: str, data) -> bytes:
    """One random edit of the kinds a careless or hostile edit makes."""
    lines = text.splitlines()
    kind = data.draw(st.sampled_from([
        "delete_line", "duplicate_line", "retype", "bad_reference", "huge_string",
        "non_utf8", "alias_bomb", "truncate", "indent",
    ]))
    index = data.draw(st.integers(0, len(lines) - 1))
    if kind == "delete_line":
        del lines[index]
    elif kind == "duplicate_line":
        lines.insert(index, lines[index])
    elif kind == "retype":
        key, _, _ = lines[index].partition(":")
        lines[index] = f"{key}: {data.draw(st.sampled_from(WRONG_TYPES))}"
    elif kind == "bad_reference":
        lines[index] = lines[index].replace("advice_", "advise_").replace("triage_", "triad_")
    elif kind == "huge_string":
        lines[index] = lines[index] + " " + "x" * data.draw(st.integers(2_000, 2_000_000))
    elif kind == "alias_bomb":
        lines[index:index] = ['a: &a ["lol","lol","lol"]', "b: &b [*a,*a,*a,*a]", "c: [*b,*b,*b]"]
    elif kind == "truncate":
        lines = lines[:index]
    elif kind == "indent":
        lines[index] = "   " + lines[index]
    raw = "\n".join(lines).encode("utf-8")
    if kind == "non_utf8":
        position = data.draw(st.integers(0, len(raw)))
        raw = raw[:position] + b"\xff\xfe" + raw[position:]
    return raw


@pytest.mark.slow
@settings(max_examples=60, deadline=20_000, suppress_health_check=[HealthCheck.too_slow,
          HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_content_loads_or_fails_with_file_and_line(tmp_path_factory, data):
    folder = tmp_path_factory.mktemp("intents")
    target = data.draw(st.sampled_from(sorted(SHIPPED)))
    for name, text in SHIPPED.items():
        (folder / name).write_text(text)
    (folder / target).write_bytes(mutate(SHIPPED[target], data))
    try:
        load_content(folder)
    except ContentError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert problem.file.parent == folder
            assert problem.line >= 1
            assert "\n" not in problem.message


@pytest.mark.parametrize("named", ["concepts: [body_part, back]", "concepts: [other_complaint]",
                                   "unless: [twitch, spasm]"])
def test_a_body_concept_the_lexicon_lacks_is_refused_with_its_line(tmp_path, named):
    shutil.copytree(default_folder(), tmp_path / "c")
    path = tmp_path / "c" / "lexicon.yaml"
    text = path.read_text()
    assert text.count(named) == 1
    path.write_text(text.replace(named, named.replace("[", "[elbows, ")))
    with pytest.raises(ContentError, match=r"lexicon.yaml:\d+: no lexicon concept named 'elbows'"):
        load_content(tmp_path / "c")


def test_yaml_tags_that_run_code_are_refused(tmp_path):
    shutil.copytree(default_folder(), tmp_path / "c")
    path = tmp_path / "c" / "intents.yaml"
    path.write_text("!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ContentError, match=r"intents\.yaml:1"):
        load_content(tmp_path / "c")


@pytest.fixture(scope="module")
def skill() -> Skill:
    return Skill(load_content())


@settings(max_examples=150, deadline=None)
@given(text=st.one_of(
    st.text(max_size=300),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=3000),
    st.lists(st.sampled_from(["yes", "no", "cramp", "the", "!", "42", "twitch", "stop"]),
             max_size=200).map(" ".join),
    st.sampled_from(["", " ", "¿Qué causa los calambres?", "痙攣", "9" * 500, "..."]),
))
def test_any_transcript_gets_a_well_formed_reply(skill, text):
    conversation = skill.conversation()
    for _ in range(2):
        turn = skill.text_turn(conversation, text)
        record = turn.to_json()
        assert record["intent"] in skill.content.intents or record["intent"] == "fallback"
        assert 0.0 <= record["confidence"] <= 1.0
        assert record["node"] in skill.content.nodes
        assert isinstance(record["answer"], str)
        assert record["outcome"] in {None, "self_care", "see_doctor", "urgent", "emergency"}


def ask(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`voiceskill ask` run from an empty folder, with HOME and the XDG folders inside tmp_path."""
    home = tmp_path / "home"
    env = {**os.environ, "HOME": str(home)}
    for name in ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
                 "XDG_RUNTIME_DIR"):
        env[name] = str(home / name.lower())
    built = Path(os.environ["XDG_CACHE_HOME"]) / "voiceskill"
    cache = Path(env["XDG_CACHE_HOME"]) / "voiceskill"
    if built.is_dir() and not cache.exists():  # what the run has built, not a minute of training
        shutil.copytree(built, cache, ignore=shutil.ignore_patterns("lm-*", "build-*", "whisper-*"))
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    return subprocess.run([sys.executable, "-m", "voiceskill", "ask", "--no-speak", *args],
                          cwd=work, env=env, capture_output=True, text=True, timeout=120)


CACHE = ("home", "xdg_cache_home", "voiceskill")
"""Where what is built from the content (never from what was said) is cached."""


def files_under(folder: Path) -> list[Path]:
    """Every file under `folder` except the content cache, which holds no user data."""
    cache = folder.joinpath(*CACHE)
    return sorted(path for path in folder.rglob("*")
                  if path.is_file() and cache not in path.parents)


def test_log_dir_is_opt_in_and_private(tmp_path):
    said = "how do I stop a cramp behind my knee"
    assert ask(tmp_path, said).returncode == 0
    assert files_under(tmp_path) == []  # no log or transcript anywhere: cwd, HOME, XDG
    cached = [path for path in tmp_path.joinpath(*CACHE).rglob("*") if path.is_file()]
    assert cached and not [path for path in cached if b"behind my knee" in path.read_bytes()]
    log_dir = tmp_path / "log"
    assert ask(tmp_path, "--log-dir", str(log_dir), "hello").returncode == 0
    [log] = files_under(tmp_path)
    assert log.parent == log_dir
    assert log_dir.stat().st_mode & 0o777 == 0o700
    assert log.stat().st_mode & 0o777 == 0o600
    assert '"transcript": "hello"' in log.read_text()
