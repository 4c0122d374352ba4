"""Hostile content, damaged caches and bad paths: one clear line, no traceback, no hang, nothing
lost. (tools/hostile_probe.py runs the same kinds of case through the installed CLI.)"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from conftest import CACHE_GROUPS
from helpers import MINIMAL, ROOT
from voiceskill import asr
from voiceskill import content as content_module
from voiceskill.audio import AudioError, read_wav_chunks
from voiceskill.cache import MAX_KEPT, cache_dir, keep_recent
from voiceskill.cli import main
from voiceskill.content import default_folder, load_content
from voiceskill.content.expand import MAX_SENTENCES_PER_TEMPLATE, MAX_TOTAL_SENTENCES
from voiceskill.content.yamlsafe import ContentError
from voiceskill.nlu import IntentMatcher
from voiceskill.nlu.classifier import LinearModel, model_path
from voiceskill.nlu.embedding import SentenceEncoder
from voiceskill.nlu.similar_signs import SignIndex
from voiceskill.outputs import OutputError, create_new
from voiceskill.pipeline import Skill
from voiceskill.present import TurnLog

REPO = ROOT
FIXTURE = REPO / "audio_fixtures" / "clean" / "spasm_relief__1__flite-slt.wav"
HANG_S = 120  # a case still running after this long is a hang
SOURCE = Path(asr.__file__).parents[1]  # the code under test, for the CLI in a subprocess


def run_cli(*argv: str, extra_env: dict | None = None, **options) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(SOURCE), **(extra_env or {})}
    streams = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, **options}
    return subprocess.run([sys.executable, "-m", "voiceskill", *argv], env=env, timeout=HANG_S,
                          **streams)


@pytest.fixture
def content(tmp_path: Path) -> Path:
    folder = tmp_path / "content"
    shutil.copytree(default_folder(), folder)
    return folder


@pytest.fixture
def small_content(tmp_path: Path) -> Path:
    """A copy of the smallest content: what is counted here does not need the shipped
    sentences, and expanding those would cost each test a second or two."""
    folder = tmp_path / "content"
    shutil.copytree(MINIMAL, folder)
    return folder


def add_intents(folder: Path, intents: str, rules: str = "") -> None:
    """Add `intents` and, as its expansion_rules, `rules` to the smallest content's copy."""
    text = (folder / "intents.yaml").read_text()
    assert "\nexpansion_rules:" not in text
    text = text.replace("\nintents:\n", "\nintents:\n" + intents, 1)
    if rules:
        text += "expansion_rules:\n" + rules
    (folder / "intents.yaml").write_text(text)


def problems_of(folder: Path) -> str:
    with pytest.raises(ContentError) as caught:
        load_content(folder)
    for problem in caught.value.problems:
        assert problem.line >= 1 and "\n" not in problem.message
    return str(caught.value)


# --- 1. the smallest content that passes check ---------------------------------------------


def test_smallest_content_passes_check(capsys):
    assert main(["check", str(MINIMAL)]) == 0
    assert "24 sample sentences, 1 dialogue nodes" in capsys.readouterr().out


def test_smallest_content_that_passes_check_runs():
    skill = Skill(load_content(MINIMAL))
    conversation = skill.conversation()
    for text in ("how do i stop a cramp", "hello", "yes", "stop", ""):
        turn = skill.text_turn(conversation, text)
        assert turn.error is None and turn.reply is not None


# --- 3 and 4. YAML that broke the loader; expansion and triage limits -----------------------


@pytest.mark.parametrize(("body", "message"), [
    ("language: en\nintents:\x00 {}\n", "intents.yaml:2: control character U+0000"),
    ("language: en\nintents: {a: \x1b[31m}\n", "intents.yaml:2: control character U+001B"),
    ("a: " + "[" * 600 + "]" * 600 + "\n", "intents.yaml:1: nested more than"),
    ("language: en\n? [a, b]\n: c\n", "intents.yaml:2: keys must be plain text"),
    ("language: en\n1: a\n", "intents.yaml:2: keys must be plain text"),
    ("language: en\ntrue: a\n", "intents.yaml:2: keys must be plain text"),
    ("language: en\nnull: a\n", "intents.yaml:2: keys must be plain text"),
    ("language: " + "9" * 5000 + "\n", "intents.yaml:1: number longer than"),
    ("language: en\nx: !!int abc\n", "intents.yaml:2: YAML syntax: cannot convert"),
    ("language: en\nx: !!timestamp 2020-13-45\n", "intents.yaml:2: YAML syntax: cannot convert"),
])
def test_yaml_that_broke_the_loader_is_one_problem_with_its_line(content, body, message):
    (content / "intents.yaml").write_text(body)
    assert message in problems_of(content)


def test_dates_are_text_not_keys_of_another_type(content):
    text = (content / "intents.yaml").read_text()
    text = text.replace("\nintents:\n", "\n2020-01-01: x\nintents:\n")
    (content / "intents.yaml").write_text(text)
    assert "unknown key '2020-01-01'" in problems_of(content)


def test_a_fifo_or_a_device_as_content_is_refused_without_reading(content):
    (content / "intents.yaml").unlink()
    os.mkfifo(content / "intents.yaml")
    result = run_cli("check", str(content))
    assert result.returncode == 1 and b"not a regular file" in result.stderr
    (content / "intents.yaml").unlink()
    (content / "intents.yaml").symlink_to("/dev/zero")
    result = run_cli("check", str(content))
    assert result.returncode == 1 and b"not a regular file" in result.stderr
    assert b"Traceback" not in result.stderr


def test_a_file_over_the_size_limit_is_refused(content):
    with open(content / "intents.yaml", "a") as f:
        f.write("# " + "x" * 1_100_000 + "\n")
    assert "intents.yaml:1: file is larger than" in problems_of(content)


def test_nested_groups_are_counted_not_expanded(small_content):
    template = "(a|b)"
    for _ in range(25):  # 2^26 sentences in 300 characters
        template = f"(a|b) ({template})"
    add_intents(small_content, f'  bomb:\n    sentences:\n      - "{template}"\n')
    assert f"more than {MAX_SENTENCES_PER_TEMPLATE} sentences" in problems_of(small_content)


def test_rules_doubling_each_other_are_counted_once_each(small_content):
    rules = '  r0: "(a|b)"\n' + "".join(f'  r{i}: "<r{i - 1}> <r{i - 1}>"\n' for i in range(1, 29))
    add_intents(small_content, '  bomb:\n    sentences:\n      - "<r28>"\n', rules)
    assert f"more than {MAX_SENTENCES_PER_TEMPLATE} sentences" in problems_of(small_content)


def test_a_rule_that_refers_to_itself_is_a_problem_not_a_recursion_error(small_content):
    add_intents(small_content, '  bomb:\n    sentences:\n      - "<loop>"\n',
                '  loop: "a <loop>"\n')
    assert "nested more than" in problems_of(small_content)


def test_the_total_number_of_sentences_is_capped(small_content):
    words = "|".join(f"w{i}" for i in range(100))
    count = MAX_TOTAL_SENTENCES // MAX_SENTENCES_PER_TEMPLATE + 1
    add_intents(small_content, "".join(
        f'  bomb{i}:\n    sentences:\n      - "z{i} ({words}) ({words})"\n' for i in range(count)
    ))
    assert f"allows more than {MAX_TOTAL_SENTENCES} sentences in all" in problems_of(small_content)


def test_a_long_triage_chain_is_checked_in_one_walk(content):
    text = (content / "dialogue.yaml").read_text()
    questions = 60  # 2^60 paths: walking every path would never end
    nodes = "".join(
        f"  q{i}:\n    kind: question\n    say: Question {i}.\n    ask: Is it {i}?\n"
        f"    on: {{yes: {nxt}, no: {nxt}}}\n    sources: [{{doc: article, paragraph: 1}}]\n"
        for i, nxt in ((i, f"q{i + 1}" if i + 1 < questions else "anything_else")
                       for i in range(questions))
    )
    text = text.replace("nodes:\n", "nodes:\n" + nodes, 1)
    text = text.replace("when_to_see_doctor: triage_weakness", "when_to_see_doctor: q0", 1)
    (content / "dialogue.yaml").write_text(text)
    found = problems_of(content)
    assert "triage from 'q0' can end at 'anything_else'" in found
    assert "triage from 'q59' can end at 'anything_else'" in found


# --- 8. privacy ----------------------------------------------------------------------------


def test_check_does_not_print_the_file_a_symlink_points_to(content, tmp_path, capsys):
    secret = tmp_path / "secret"
    secret.write_text("root:x:0:0:root:/root:/bin/bash\n" * 3)
    (content / "intents.yaml").unlink()
    (content / "intents.yaml").symlink_to(secret)
    assert main(["check", str(content)]) == 1
    captured = capsys.readouterr()
    assert "root:" not in captured.err + captured.out
    assert "intents.yaml:1: top level: should be of type 'object'" in captured.err


# --- 2. damaged language-model caches ------------------------------------------------------



def _cut(name: str):
    return lambda folder: (folder / name).write_bytes((folder / name).read_bytes()[:-500])


@pytest.mark.parametrize("damage", [
    _cut("domain.lm"),
    lambda folder: (folder / "domain.lm").write_bytes(b""),
    lambda folder: (folder / "domain.lm").write_bytes(os.urandom(2048)),
    _cut("domain.dict"),
    lambda folder: (folder / "report.json").write_text("[]"),
    lambda folder: (folder / "report.json").unlink(),
], ids=["lm-truncated", "lm-empty", "lm-random", "dict-truncated", "report-list",
        "report-missing"])
def test_a_damaged_cache_is_rebuilt_once_with_one_warning(built_cache, tmp_path, caplog, damage):
    cache = tmp_path / "cache"
    shutil.copytree(built_cache, cache)
    [folder] = cache.glob("lm-*")
    damage(folder)
    with caplog.at_level(logging.WARNING, logger="voiceskill.asr"):
        recognizer = asr.create_recognizer("pocketsphinx", CACHE_GROUPS, cache_dir=cache)
    assert [r.getMessage() for r in caplog.records if "was damaged" in r.getMessage()], \
        caplog.text
    assert len(caplog.records) == 1
    assert asr.transcribe_file(recognizer, FIXTURE).is_final
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="voiceskill.asr"):
        asr.create_recognizer("pocketsphinx", CACHE_GROUPS, cache_dir=cache)
    assert not caplog.records  # repaired: the next run is quiet
    assert [p.name for p in cache.iterdir()] == [folder.name]


def test_dead_builds_and_old_models_are_removed(built_cache, tmp_path):
    cache = tmp_path / "cache"
    shutil.copytree(built_cache, cache)
    (cache / "build-999999999-abc").mkdir()  # killed mid-build (no such process)
    (cache / f"build-{os.getpid()}-live").mkdir()  # a build still going on
    for age in range(6):
        old = cache / f"lm-old{age}"
        old.mkdir()
        os.utime(old, (1_000_000 + age, 1_000_000 + age))
    asr.create_recognizer("pocketsphinx", CACHE_GROUPS, cache_dir=cache)
    left = sorted(p.name for p in cache.iterdir())
    assert f"build-{os.getpid()}-live" in left and "build-999999999-abc" not in left
    models = [name for name in left if name.startswith("lm-")]
    assert len(models) == MAX_KEPT
    assert {"lm-old5", "lm-old4", "lm-old3"} <= set(models)


def test_a_cache_entry_that_cannot_be_removed_costs_only_disk(tmp_path, monkeypatch):
    """Root can delete anything here, so the refusal a read-only cache gives is simulated."""
    for n in range(MAX_KEPT + 2):
        (tmp_path / f"content-{n}.json").write_text("{}")

    def refuse(path, *args, **kwargs):
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(Path, "unlink", refuse)
    keep_recent(tmp_path / "content-0.json", "content")  # no exception
    assert len(list(tmp_path.iterdir())) == MAX_KEPT + 2


def test_each_edit_of_the_content_does_not_leave_its_cache_behind(tmp_path, monkeypatch):
    """Expanded sentences, trained models and sign indexes: only the most recently used few
    stay."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home-cache"))
    cache_dir().mkdir(parents=True)
    (cache_dir() / "build-999999999-x").write_bytes(b"half")  # its writer was killed
    for edit in range(MAX_KEPT + 2):
        folder = tmp_path / f"edit{edit}"
        shutil.copytree(MINIMAL, folder)
        with (folder / "lexicon.yaml").open("a") as file:
            file.write(f"# edit {edit}\n")
        IntentMatcher(load_content(folder))
    left = sorted(p.name.split("-")[0] for p in cache_dir().iterdir())
    assert left == ["content"] * MAX_KEPT + ["intents"] * MAX_KEPT + ["signs"] * MAX_KEPT


@pytest.fixture(scope="module")
def minimal_models(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """The arrays of the intent model and the sign index built for the minimal content."""
    cache = tmp_path_factory.mktemp("models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(cache))
        IntentMatcher(load_content(MINIMAL))
    arrays = {}
    for path in (cache / "voiceskill").glob("*.npz"):
        with np.load(path) as data:
            arrays[path.name.split("-")[0]] = {key: data[key] for key in data.files}
    return arrays


def _doctored(arrays: dict, path: Path, **changes) -> Path:
    np.savez(path, **{**arrays, **changes})
    return path


MODEL_DAMAGE = {
    "idf-short": lambda a: {"idf": a["idf"][:3]},
    "intercept-short": lambda a: {"intercept": a["intercept"][:3]},
    "meaning-10-dims": lambda a: {"meaning_coef": a["meaning_coef"][:, :10]},
    "column-out-of-range": lambda a: {"vocabulary": np.array(json.dumps(
        {**json.loads(str(a["vocabulary"])), "w:cramp": 10**6}))},
    "weights-text": lambda a: {"coef": a["coef"].astype(str)},
    "weights-nan": lambda a: {"coef": np.full_like(a["coef"], np.nan)},
    "classes-one-value": lambda a: {"classes": np.array("yes")},
}
INDEX_DAMAGE = {
    "vectors-10-dims": lambda a: {"vectors": a["vectors"][:, :10]},
    "labels-short": lambda a: {"labels": a["labels"][:1]},
    "label-out-of-range": lambda a: {"labels": np.full_like(a["labels"], 5)},
    "labels-unsorted": lambda a: {"labels": np.arange(len(a["labels"]), dtype=np.int32)[::-1]
                                  - 1},
    "labels-float": lambda a: {"labels": a["labels"].astype(np.float32)},
    "vectors-nan": lambda a: {"vectors": np.full_like(a["vectors"], np.nan)},
    "flags-one-value": lambda a: {"flags": np.array("breathing")},
    "said-10-dims": lambda a: {"said_coef": a["said_coef"][:10]},
    "said-intercept-nan": lambda a: {"said_intercept": np.array(np.nan, np.float32)},
    "said-intercept-text": lambda a: {"said_intercept": np.array("1.0")},
}


@pytest.mark.parametrize("damage", MODEL_DAMAGE.values(), ids=MODEL_DAMAGE.keys())
def test_an_intent_model_of_the_wrong_shape_is_refused_at_load(minimal_models, tmp_path, damage):
    arrays = minimal_models["intents"]
    assert LinearModel.load(_doctored(arrays, tmp_path / "whole.npz"))  # the original loads
    with pytest.raises(ValueError, match=r"damaged|wrong shape"):
        LinearModel.load(_doctored(arrays, tmp_path / "bad.npz", **damage(arrays)))


@pytest.mark.parametrize("damage", INDEX_DAMAGE.values(), ids=INDEX_DAMAGE.keys())
def test_a_sign_index_of_the_wrong_shape_is_refused_at_load(minimal_models, tmp_path, damage):
    arrays = minimal_models["signs"]
    assert SignIndex.load(_doctored(arrays, tmp_path / "whole.npz"))
    with pytest.raises(ValueError, match=r"damaged|wrong shape"):
        SignIndex.load(_doctored(arrays, tmp_path / "bad.npz", **damage(arrays)))


def test_a_doctored_intent_model_in_the_cache_is_rebuilt_and_answers(minimal_models, tmp_path,
                                                                     monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    content = load_content(MINIMAL)
    path = model_path(content, SentenceEncoder.fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = minimal_models["intents"]
    _doctored(arrays, path, idf=arrays["idf"][:3])
    matcher = IntentMatcher(content)
    assert matcher.understand("how do I stop a cramp").intent  # no IndexError
    assert len(LinearModel.load(path).idf) == len(arrays["idf"])  # and the cache is whole again


CONTENT_CACHE_DAMAGE = {
    "intent-not-a-list": lambda c: {**c, "intents": {"x": 5}},
    "an-intent-missing": lambda c: {**c, "intents": dict(list(c["intents"].items())[1:])},
    "a-sentence-a-number": lambda c: {**c, "swapped": {k: [7] for k in c["swapped"]}},
    "flags-a-list": lambda c: {**c, "flags": ["breathing"]},
    "a-flag-too-many": lambda c: {**c, "flags": {**c["flags"], "made_up": ["x"]}},
    "an-example-of-no-intent": lambda c: {**c, "examples": {**c["examples"], "made_up": ["x"]}},
    "references-a-list": lambda c: {**c, "references": ["breathing"]},
    "an-example-a-number": lambda c: {**c, "examples": {name: [7] for name in c["intents"]}},
}


@pytest.mark.parametrize("damage", CONTENT_CACHE_DAMAGE.values(), ids=CONTENT_CACHE_DAMAGE.keys())
def test_a_doctored_content_cache_is_rebuilt_not_blamed_on_the_yaml(tmp_path, monkeypatch,
                                                                    damage):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    first = load_content(MINIMAL)
    [path] = cache_dir().glob("content-*.json")
    path.write_text(json.dumps(damage(json.loads(path.read_text()))))
    again = load_content(MINIMAL)  # no ContentError naming a YAML file
    assert (again.intents, again.swapped, again.red_flags, again.examples) == (
        first.intents, first.swapped, first.red_flags, first.examples)



def test_content_is_validated_again_only_when_its_bytes_or_schemas_change(tmp_path, monkeypatch):
    """Its cache is written only for content that passed every check, and validating costs a
    sixth of a `voiceskill ask`: content with a cache is not validated again; an edit is."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    folder = tmp_path / "content"
    shutil.copytree(MINIMAL, folder)
    first = load_content(folder)
    validated = []
    monkeypatch.setattr(content_module, "schema_problems",
                        lambda doc, schema: validated.append(doc.file.name) or [])
    assert load_content(folder).red_flags == first.red_flags
    assert validated == []
    with (folder / "lexicon.yaml").open("a") as file:
        file.write("# an edit\n")
    load_content(folder)
    assert "lexicon.yaml" in validated
    before = content_module.fingerprint(folder)
    monkeypatch.setitem(content_module.LEXICON_SCHEMA, "description", "a new rule")
    assert content_module.fingerprint(folder) != before

# --- 6 and 7. WAVs from pipes, FIFOs, NaN ---------------------------------------------------


def test_a_wav_from_a_pipe_reads_like_the_file():
    read, write = os.pipe()

    def feed() -> None:
        with os.fdopen(write, "wb") as pipe:
            pipe.write(FIXTURE.read_bytes())

    threading.Thread(target=feed, daemon=True).start()
    try:
        from_pipe = np.concatenate(list(read_wav_chunks(f"/dev/fd/{read}")))
    finally:
        os.close(read)
    assert np.array_equal(from_pipe, np.concatenate(list(read_wav_chunks(FIXTURE))))


def test_a_batch_of_odd_files_costs_one_line_each_and_the_rest_is_answered(tmp_path):
    """One replay (one process: each costs the recogniser's start) of: a FIFO nobody writes to,
    a Latin-1 file name printed on a strict UTF-8 stdout (as in a en_US.UTF-8 locale; C.UTF-8
    would escape surrogates), a missing file, and a float WAV with one 1e38 sample (D27: it
    printed numpy's 'RuntimeWarning: overflow' with a source path): the FIFO and the missing
    file are one line each, nothing else is said, and every other file is answered."""
    os.mkfifo(tmp_path / "q.wav")
    latin1 = os.fsdecode(b"caf\xe9.wav")
    shutil.copy(FIXTURE, tmp_path / latin1)
    audio, rate = sf.read(FIXTURE, dtype="float32")
    audio[100] = 1e38
    sf.write(tmp_path / "huge.wav", audio, rate, subtype="FLOAT")
    result = run_cli("replay", "--json", "--no-speak", "q.wav", latin1, "missing.wav",
                     "huge.wav", str(FIXTURE), cwd=tmp_path,
                     extra_env={"PYTHONIOENCODING": "utf-8"})
    assert result.returncode == 1, result.stderr
    assert result.stderr.decode().strip().splitlines() == [
        "voiceskill: q.wav: contains no audio", "voiceskill: missing.wav: no such file"]
    turns = [json.loads(line) for line in result.stdout.splitlines()]
    assert [turn.get("intent") for turn in turns] == [
        None, "spasm_relief", None, "spasm_relief", "spasm_relief"]


@pytest.mark.parametrize("rate", [16000, 44100])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_samples_make_a_bad_file(tmp_path, rate, bad):
    samples = np.zeros(rate, dtype=np.float32)
    samples[rate // 3] = bad
    sf.write(tmp_path / "x.wav", samples, rate, subtype="FLOAT")
    with pytest.raises(AudioError, match=r"x\.wav: contains invalid samples"):
        list(read_wav_chunks(tmp_path / "x.wav"))


# --- 5. output paths -----------------------------------------------------------------------


def test_save_audio_into_a_file_warns_once_and_still_answers(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    status = main(["ask", "--no-speak", "--save-audio", str(tmp_path / "a-file"),
                   "how do I stop a cramp", "yes"])
    captured = capsys.readouterr()
    assert status == 0
    assert captured.out.count("skill:") == 2
    assert captured.err.strip().splitlines() == [
        f"voiceskill: cannot write to {tmp_path / 'a-file'}: it is a file, not a folder; "
        "not saving answers"]


def test_saved_answers_never_overwrite_or_follow_symlinks(tmp_path, capsys):
    answers = tmp_path / "answers"
    answers.mkdir()
    (answers / "answer-001.wav").write_bytes(b"an earlier run")
    (answers / "answer-002.wav").symlink_to(tmp_path / "victim")
    assert main(["ask", "--no-speak", "--save-audio", str(answers), "how do I stop a cramp"]) == 0
    assert (answers / "answer-001.wav").read_bytes() == b"an earlier run"
    assert not (tmp_path / "victim").exists()
    assert sf.info(answers / "answer-003.wav").frames > 0


def test_log_dir_that_cannot_be_used_warns_and_still_answers(tmp_path, capsys):
    (tmp_path / "a-file").write_text("x")
    status = main(["ask", "--no-speak", "--log-dir", str(tmp_path / "a-file" / "logs"), "hello"])
    captured = capsys.readouterr()
    assert status == 0 and "skill:" in captured.out
    assert "not keeping a log" in captured.err and "Traceback" not in captured.err


def test_a_log_never_reuses_an_existing_file(tmp_path, monkeypatch):
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "voiceskill-now.jsonl").write_text("someone else's\n")
    (logs / "voiceskill-now.jsonl").chmod(0o644)
    (logs / "voiceskill-now-2.jsonl").symlink_to(tmp_path / "victim")
    monkeypatch.setattr("voiceskill.pipeline.time.strftime", lambda pattern: "voiceskill-now")
    log = TurnLog(logs)
    log.close()
    assert log.path.name == "voiceskill-now-3.jsonl"
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    assert (logs / "voiceskill-now.jsonl").read_text() == "someone else's\n"
    assert not (tmp_path / "victim").exists()


def test_new_files_take_the_next_free_name_and_refuse_symlinks(tmp_path):
    (tmp_path / "n-1").write_text("kept")
    (tmp_path / "n-2").symlink_to(tmp_path / "victim")
    number, path, file = create_new(tmp_path, lambda n: f"n-{n}", 0o600)
    file.close()
    assert (number, path.name) == (3, "n-3")
    assert not (tmp_path / "victim").exists()
    with pytest.raises(OutputError, match="the folder does not exist"):
        create_new(tmp_path / "missing", lambda n: f"n-{n}", 0o600)


def test_say_into_a_missing_folder_is_one_line(tmp_path, capsys):
    assert main(["say", "-o", str(tmp_path / "missing" / "x.wav"), "hello"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"voiceskill: cannot write {tmp_path / 'missing' / 'x.wav'}: the folder does not exist")


# --- 6. encodings, pipes, Ctrl-C; 7. typed input limit -------------------------------------


def test_latin1_argument_is_answered(capsys):
    assert main(["ask", "--no-speak", os.fsdecode(b"caf\xe9 how do I stop a cramp")]) == 0
    assert "you:   café how do i stop a cramp" in capsys.readouterr().out.lower()


def test_a_closed_stdout_ends_quietly():
    """More turns than a pipe holds (64 KiB), so the writer surely meets the closed pipe."""
    env = {**os.environ, "PYTHONPATH": str(SOURCE)}
    turns = " ".join(["hello"] * 1000)
    result = subprocess.run(
        f"{sys.executable} -m voiceskill ask --json --no-speak {turns} | head -c 1; "
        "exit ${PIPESTATUS[0]}", shell=True, executable="/bin/bash", capture_output=True,
        env=env, timeout=HANG_S)
    assert result.returncode == 141
    assert result.stderr == b""


def test_a_full_stdout_is_one_line():
    with open("/dev/full", "wb") as full:
        result = run_cli("ask", "--no-speak", "hello", stdout=full)
    assert result.returncode == 2
    assert result.stderr.decode().strip() == (
        "voiceskill: cannot write to standard output: no space left on device")


def test_ctrl_c_while_the_libraries_load_is_one_line():
    # KeyboardInterrupt raised by the import of a heavy module, as Ctrl-C at start-up would
    code = (
        "import builtins, sys\n"
        "real = builtins.__import__\n"
        "def interrupt(name, *args, **kw):\n"
        "    if name == 'voiceskill.pipeline':\n"
        "        raise KeyboardInterrupt\n"
        "    return real(name, *args, **kw)\n"
        "builtins.__import__ = interrupt\n"
        "from voiceskill.__main__ import run\n"
        "sys.exit(run())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(SOURCE)}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, env=env,
                            timeout=HANG_S)
    assert result.returncode == 130
    assert result.stderr.decode() == "voiceskill: interrupted\n"


def test_ctrl_c_while_loading_content_is_one_line(monkeypatch, capsys):
    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr("voiceskill.cli.load_content", interrupted)
    assert main(["ask", "--no-speak", "hello"]) == 130
    assert capsys.readouterr().err == "voiceskill: interrupted\n"


def test_typed_input_over_the_cap_is_refused_in_one_line_and_the_rest_answered(capsys):
    status = main(["ask", "--no-speak", "a" * 1001, "how do I stop a cramp"])
    captured = capsys.readouterr()
    assert status == 1
    assert captured.err.strip() == (
        "voiceskill: typed question not answered: 1001 characters, at most 1000")
    assert captured.out.count("skill:") == 1
    assert main(["ask", "--no-speak", "a" * 1000]) == 0


# --- round 2 (notes/hostile-round2.md): content, say -o, full disks, the config file ---------


def test_a_number_that_is_not_finite_is_refused_where_it_is_written(content):
    """D13: `.nan` passed `minimum: 0` and silently switched the duration rule off."""
    dialogue = content / "dialogue.yaml"
    text = dialogue.read_text()
    assert "    yes_from_days: 7\n" in text
    for value in (".nan", ".inf", ".NaN"):
        dialogue.write_text(text.replace("    yes_from_days: 7\n",
                                         f"    yes_from_days: {value}\n", 1))
        assert f"'{value}' is not a finite number" in problems_of(content)


@pytest.mark.parametrize("document", [
    "/proc/self/environ", "../../../../../../etc/hostname", "sources/../../intents/lexicon.yaml",
    ".hidden", "/etc/passwd",
])
def test_a_source_document_outside_the_source_folders_is_refused(content, document, capsys):
    """D1: a content pack could make the review sheet embed any file (the environment)."""
    edit_first(content / "dialogue.yaml", "document: safety-policy.md",
               f"document: {document}")
    assert main(["check", str(content)]) == 1
    assert "document" in capsys.readouterr().err


def edit_first(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_a_symlink_in_a_source_folder_is_not_followed_out_of_it(tmp_path):
    """D1: find_document never returns a file outside the folder it searched."""
    from voiceskill.review.sources import find_document

    folder = tmp_path / "seed"
    folder.mkdir()
    (folder / "article.txt").symlink_to("/etc/hostname")
    (folder / "real.txt").write_text("a paragraph\n")
    assert find_document("article.txt", [folder]) is None
    assert find_document("real.txt", [folder]) == folder / "real.txt"
    assert find_document("/etc/hostname", [folder]) is None
    assert find_document("../seed/real.txt", [folder]) is None


@pytest.mark.parametrize("command", [["review"], ["graph"]])
def test_review_and_graph_do_not_write_through_a_symlink(tmp_path, capsys, command):
    """D4: a link planted at the output name clobbered its target."""
    victim = tmp_path / "victim"
    victim.write_text("keep")
    name = tmp_path / ("out.html" if command == ["review"] else "out.dot")
    name.symlink_to(victim)
    assert main([*command, "-o", str(name)]) == 2
    assert victim.read_text() == "keep"
    assert capsys.readouterr().err.strip() == (
        f"voiceskill: cannot write {name}: it is a symbolic link")


def test_review_replaces_an_earlier_sheet_whole(tmp_path, capsys):
    page = tmp_path / "review.html"
    page.write_text("an earlier sheet")
    assert main(["review", "-o", str(page)]) == 0
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in tmp_path.iterdir()] == ["review.html"]  # no temporary left


def test_a_synthesis_failure_leaves_an_existing_wav_as_it_was(tmp_path, capsys, monkeypatch):
    """D11: `say -o` emptied the file before synthesising; a failure then lost it."""
    from voiceskill.tts.speaker import Speaker, TtsUnavailable

    def fails(self, text, rate=None):
        raise TtsUnavailable("the speech engine failed")

    kept = tmp_path / "kept.wav"
    kept.write_bytes(FIXTURE.read_bytes())
    monkeypatch.setattr(Speaker, "render", fails)
    assert main(["say", "-o", str(kept), "hello"]) == 2
    assert kept.read_bytes() == FIXTURE.read_bytes()
    assert capsys.readouterr().err.strip() == "voiceskill: the speech engine failed"


@pytest.mark.parametrize("text", ["   ", "\t"])
def test_say_refuses_empty_text_and_keeps_the_file(tmp_path, capsys, text):
    """D16: whitespace wrote a 44-byte WAV of no frames and said `wrote`."""
    kept = tmp_path / "kept.wav"
    kept.write_bytes(b"earlier")
    assert main(["say", "-o", str(kept), text]) == 1
    assert kept.read_bytes() == b"earlier"
    assert capsys.readouterr().err.strip() == "voiceskill: nothing to say: the text is empty"


@pytest.mark.parametrize("rate", ["0", "-5", "1", "100000", "1000000000000"])
def test_a_rate_espeak_cannot_say_is_refused(tmp_path, capsys, rate):
    """D16: 0 and -5 were silently accepted, 100000 wrote an empty WAV."""
    with pytest.raises(SystemExit) as stopped:
        main(["say", "--rate", rate, "-o", str(tmp_path / "x.wav"), "hello"])
    assert stopped.value.code == 2
    assert "words per minute from 80 to 450" in capsys.readouterr().err
    assert not (tmp_path / "x.wav").exists()


def test_say_to_dev_full_is_one_line_naming_it():
    """D14: 8 cffi tracebacks and `cannot write to standard output`."""
    result = run_cli("say", "-o", "/dev/full", "hello")
    assert result.returncode == 2
    assert result.stderr.decode() == (
        "voiceskill: cannot write /dev/full: no space left on device\n")


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 64 KiB tmpfs: smaller than any spoken answer (needs root to mount; else skipped)."""
    disk = tmp_path / "full"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)],
                             capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", str(disk)], check=True)


def test_say_on_a_full_disk_is_one_line_and_keeps_the_earlier_file(full_disk):
    """D14: AssertionError traceback, status 1, a truncated WAV left."""
    kept = full_disk / "kept.wav"
    kept.write_bytes(b"earlier")
    result = run_cli("say", "-o", str(kept), "how do I stop a cramp in my calf")
    assert result.returncode == 2
    assert result.stderr.decode() == f"voiceskill: cannot write {kept}: no space left on device\n"
    assert kept.read_bytes() == b"earlier"
    assert [p.name for p in full_disk.iterdir()] == ["kept.wav"]


def test_save_audio_on_a_full_disk_still_answers_every_turn(full_disk):
    """D8: the save ran before speaking, raised AssertionError, and every answer was lost."""
    result = run_cli("ask", "--no-speak", "--save-audio", str(full_disk / "answers"),
                     "my calf cramps", "my dad has collapsed and is not breathing")
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert result.stdout.decode().count("skill:") == 2
    assert "emergency" in result.stdout.decode().lower()
    assert err == (f"voiceskill: cannot write {full_disk / 'answers' / 'answer-001.wav'}: "
                   "no space left on device; not saving answers\n")
    assert list((full_disk / "answers").iterdir()) == []  # nothing truncated left


@pytest.mark.parametrize("command", [["ask", "--no-speak", "hello"],
                                     ["ask", "--json", "--no-speak", "hello"], ["check"]])
def test_a_closed_stdout_is_an_error_not_a_silent_success(command):
    """D17: `>&-` discarded every answer and exited 0."""
    env = {**os.environ, "PYTHONPATH": str(SOURCE)}
    result = subprocess.run([sys.executable, "-m", "voiceskill", *command], env=env,
                            stdout=None, stderr=subprocess.PIPE, timeout=HANG_S,
                            preexec_fn=lambda: os.close(1))
    assert result.returncode == 2
    assert result.stderr.decode() == "voiceskill: standard output is closed\n"


def config_home(tmp_path: Path) -> tuple[Path, dict]:
    folder = tmp_path / "config" / "voiceskill"
    folder.mkdir(parents=True)
    return folder / "config.toml", {"XDG_CONFIG_HOME": str(tmp_path / "config")}


@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "/dev/urandom"])
def test_a_config_file_that_never_ends_is_refused_without_reading(tmp_path, kind):
    """D18: /dev/zero was read whole (GBs, then OOM) and a FIFO hung every command."""
    path, env = config_home(tmp_path)
    if kind == "fifo":
        os.mkfifo(path)
    else:
        path.symlink_to(kind)
    result = run_cli("ask", "--no-speak", "hello", extra_env=env)
    assert result.returncode == 2
    assert result.stderr.decode() == (
        f"voiceskill: {path}: not a regular file (a pipe or a device?)\n")


def test_a_config_file_with_a_byte_order_mark_is_read(tmp_path):
    """D28: Notepad's BOM made valid TOML `not valid TOML (Invalid statement)`."""
    from voiceskill.config import load_config

    path, _ = config_home(tmp_path)
    path.write_bytes(b"\xef\xbb\xbfrate = 120\n")
    assert load_config(path) == {"rate": 120}


@pytest.mark.parametrize(("line", "message"), [
    ("rate = 0", "rate 0 is out of range: words per minute from 80 to 450"),
    ("rate = 1000000000000", "rate 1000000000000 is out of range"),
    ('rate = "fast"', "rate must be a whole number"),
    ("engine = 1", "engine must be text in quotes"),
    ('uri = "tcp://127.0.0.1:notaport"', "uri 'tcp://127.0.0.1:notaport': "),
    ('uri = "ftp://x"', "uri 'ftp://x': must start with tcp://, unix:// or stdio://"),
    ('uri = "unix://dir/x.sock"', "uri 'unix://dir/x.sock': needs unix:///full/path"),
    ('engine = "bogus"', "engine 'bogus' is not one of auto, pocketsphinx, vosk"),
])
def test_a_bad_config_value_names_the_file_and_what_is_allowed(tmp_path, line, message):
    """D16 (rates the voice cannot say), D33 (`rate must be a int`; a bad uri or engine
    reported as `bad --uri ...` / `unknown engine` without naming the file)."""
    from voiceskill.config import ConfigError, load_config

    path, _ = config_home(tmp_path)
    path.write_text(line + "\n")
    with pytest.raises(ConfigError, match="^" + re.escape(f"{path}: {message}")):
        load_config(path)


@pytest.mark.parametrize(("env", "expected"), [
    ({"XDG_CACHE_HOME": "relative/cache", "HOME": "{home}"}, "{home}/.cache/voiceskill"),
    ({"XDG_CACHE_HOME": "", "HOME": ""}, None),
    ({"HOME": "/nonexistent-home"}, None),
    ({"HOME": "/"}, None),
])
def test_the_cache_is_never_put_at_the_root_or_under_a_made_up_home(tmp_path, monkeypatch,
                                                                      env, expected):
    """D31: HOME="" wrote /.cache/voiceskill, HOME=/nonexistent created that folder, and a
    relative XDG_CACHE_HOME was taken relative to the current folder. Asked in a fresh
    process each time: the temporary fallback is chosen once per process."""
    (tmp_path / "tmp").mkdir()
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("TMPDIR", str(tmp_path / "tmp"))
    for key, value in env.items():
        monkeypatch.setenv(key, value.format(home=tmp_path))
    asked = subprocess.run(
        [sys.executable, "-c", "from voiceskill.cache import cache_dir; print(cache_dir())"],
        capture_output=True, text=True, check=True, timeout=60)
    folder = Path(asked.stdout.strip())
    if expected is not None:
        assert folder == Path(expected.format(home=tmp_path))
    else:
        assert folder.parent == tmp_path / "tmp"
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
