"""Fuzzing what the first campaign (test_fuzz.py) missed: valid UTF-8 with control characters,
keys that are not text, deep nesting, huge numbers, template bombs, and damaged model caches.
Each input loads or fails with file and line; nothing raises anything else, nothing hangs."""

from __future__ import annotations

import logging
import shutil

import pytest
from hassil import parse_sentence
from hassil.sample import sample_sentence
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import CACHE_GROUPS
from voiceskill import asr
from voiceskill.content import default_folder, load_content
from voiceskill.content.expand import MAX_SENTENCES_PER_TEMPLATE, expand_template, sentence_count
from voiceskill.content.yamlsafe import ContentError

SHIPPED = {
    name: (default_folder() / name).read_text() for name in ("intents.yaml", "dialogue.yaml")
}

scalars = st.one_of(
    st.text(max_size=20),
    st.integers(),
    st.integers(20, 6000).map(lambda digits: "9" * digits),  # huge numbers, as YAML text
    st.sampled_from(["true", "null", "~", "2020-01-01", "1e999", "0x1F", "!!int x", "yes"]),
)
keys = st.one_of(
    st.from_regex(r"[a-z_]{1,8}", fullmatch=True),
    st.sampled_from(["1", "true", "null", "2020-01-01", "? [a, b]", "? {a: 1}", "1.5", '"x"']),
)


def yaml_value(depth: int) -> st.SearchStrategy[str]:
    """YAML flow text: scalars, lists and mappings nested up to `depth` (which may be deep)."""
    if depth == 0:
        return scalars.map(str)
    inner = yaml_value(depth - 1)
    return st.one_of(
        scalars.map(str),
        st.lists(inner, max_size=3).map(lambda items: "[" + ", ".join(items) + "]"),
        st.lists(st.tuples(keys, inner), max_size=3).map(
            lambda pairs: "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"),
    )


control = st.characters(codec="utf-8", categories=["Cc", "Cs", "Co", "Cn"])


@st.composite
def hostile_yaml(draw) -> bytes:
    """The shipped file with a hostile line inserted, or a hostile character inside it."""
    target = draw(st.sampled_from(sorted(SHIPPED)))
    lines = SHIPPED[target].splitlines()
    at = draw(st.integers(0, len(lines)))
    kind = draw(st.sampled_from(["entry", "control", "deep"]))
    if kind == "entry":
        lines.insert(at, f"{draw(keys)}: {draw(yaml_value(3))}")
    elif kind == "control":
        line = lines[at - 1] if at else ""
        cut = draw(st.integers(0, len(line)))
        lines[at - 1 if at else 0:at or 1] = [line[:cut] + draw(control) + line[cut:]]
    else:
        depth = draw(st.integers(20, 2000))
        lines.insert(at, "deep: " + "[" * depth + "]" * depth)
    return target, "\n".join(lines).encode("utf-8", "surrogatepass")


@pytest.mark.slow
@settings(max_examples=80, deadline=20_000,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(case=hostile_yaml())
def test_hostile_yaml_loads_or_fails_with_file_and_line(tmp_path_factory, case):
    target, raw = case
    folder = tmp_path_factory.mktemp("content")
    for name, text in SHIPPED.items():
        (folder / name).write_text(text)
    (folder / target).write_bytes(raw)
    try:
        load_content(folder)
    except ContentError as exc:
        for problem in exc.problems:
            assert problem.file.parent == folder and problem.line >= 1
            assert "\n" not in problem.message


words = st.sampled_from(["a", "b", "cramp", "twitch", "my leg"])


def template(depth: int) -> st.SearchStrategy[str]:
    """hassil templates: words, (alternatives), [optionals], sequences, <rule> references."""
    if depth == 0:
        return st.one_of(words, st.just("<r>"))
    inner = template(depth - 1)
    return st.one_of(
        words,
        st.just("<r>"),
        st.lists(inner, min_size=1, max_size=4).map(lambda items: "(" + "|".join(items) + ")"),
        inner.map(lambda item: f"[{item}]"),
        st.lists(inner, min_size=2, max_size=5).map(" ".join),
    )


RULES = {"r": parse_sentence("(leg|arm|foot) [muscle]")}


@settings(max_examples=300, deadline=None)
@given(text=template(4))
def test_the_count_before_expanding_is_the_count_hassil_lists(text):
    count = sentence_count(parse_sentence(text).expression, RULES, {})
    if count <= MAX_SENTENCES_PER_TEMPLATE:
        assert count == len(list(sample_sentence(parse_sentence(text), expansion_rules=RULES)))
        assert expand_template(text, RULES)
    else:
        with pytest.raises(ValueError, match="more than"):
            expand_template(text, RULES)


@settings(max_examples=100, deadline=None)
@given(parts=st.lists(st.sampled_from(["(a|b)", "[c]", "(d|e|f)", "(g|(h|i) j)"]),
                      min_size=10, max_size=60))
def test_template_bombs_are_refused_before_they_are_built(parts):
    text = " ".join(parts)
    count = sentence_count(parse_sentence(text).expression, RULES, {})
    assert count <= MAX_SENTENCES_PER_TEMPLATE + 1
    if count > MAX_SENTENCES_PER_TEMPLATE:
        with pytest.raises(ValueError, match="more than"):
            expand_template(text, RULES)




def test_a_regular_expression_style_optional_is_refused():
    """hassil takes "(is|are)?" for a required group: "lips swelling" never matched a phrase
    written so, and nothing said why."""
    with pytest.raises(ValueError, match=r"\[like this\]"):
        expand_template("(lips|face) (is|are)? swelling", RULES)
    assert expand_template("(lips|face) [is|are] swelling", RULES)


@pytest.mark.slow
@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["domain.lm", "domain.dict", "report.json"]),
       cut=st.floats(0, 1), noise=st.binary(max_size=64), at=st.floats(0, 1))
def test_a_damaged_cache_file_never_reaches_pocketsphinx(built_cache, tmp_path_factory, caplog,
                                                          name, cut, noise, at):
    cache = tmp_path_factory.mktemp("damaged")
    shutil.rmtree(cache)
    shutil.copytree(built_cache, cache)
    [folder] = cache.glob("lm-*")
    data = (folder / name).read_bytes()
    data = data[: int(len(data) * cut)]
    position = int(len(data) * at)
    damaged = data[:position] + noise + data[position + len(noise):]
    (folder / name).write_bytes(damaged)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="voiceskill.asr"):
        asr.create_recognizer("pocketsphinx", CACHE_GROUPS, cache_dir=cache)
    if damaged != (built_cache / folder.name / name).read_bytes():
        assert "was damaged" in caplog.text
