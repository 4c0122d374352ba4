"""examples.yaml: sentences as people say them, beside the templates. They train the intent
classifier and the red flags found by meaning; a content without the file still loads."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import TESTS
from voiceskill.content import ContentError, load_content
from voiceskill.nlu import IntentMatcher, classifier
from voiceskill.nlu.classifier import ConceptFinder, features, train
from voiceskill.nlu.embedding import SentenceEncoder
from voiceskill.text import tokens

SIGNS = TESTS / "content" / "signs"
ODD_QUESTION = "would a glass of pickle juice sort me out"
GARBLED = "his words are all garbled and one side of his mouth sags"


def with_examples(tmp_path: Path, text: str) -> Path:
    folder = tmp_path / "content"
    shutil.copytree(SIGNS, folder)
    (folder / "examples.yaml").write_text(text)
    return folder


@pytest.fixture(scope="module")
def encoder() -> SentenceEncoder:
    return SentenceEncoder()


def top_intent(folder: Path, encoder: SentenceEncoder, text: str) -> str:
    content = load_content(folder)
    finder = ConceptFinder(content.lexicon)
    model = train(content, finder, encoder)
    words = tokens(text)
    probabilities = model.probabilities(features_of(words, finder), encoder.encode([text])[0])
    return model.classes[int(probabilities.argmax())]


def features_of(words: list[str], finder: ConceptFinder) -> list[str]:
    return features(words, finder.find(words))


def test_an_example_teaches_the_classifier_a_phrasing_no_template_has(tmp_path, encoder):
    assert top_intent(SIGNS, encoder, ODD_QUESTION) != "nutrition"
    folder = with_examples(tmp_path, f'intents:\n  nutrition: ["{ODD_QUESTION}"]\n')
    assert top_intent(folder, encoder, ODD_QUESTION) == "nutrition"


def test_a_reference_that_is_not_a_sign_keeps_its_like_from_being_confirmed(tmp_path):
    assert IntentMatcher(load_content(SIGNS)).understand(GARBLED).possible_flags == ("stroke",)
    folder = with_examples(tmp_path, f'red_flags:\n  stroke: {{not_a_sign: ["{GARBLED}"]}}\n')
    assert IntentMatcher(load_content(folder)).understand(GARBLED).possible_flags == ()


def test_the_recogniser_hears_the_examples_as_groups_of_their_own(tmp_path):
    """Chatty speech is heard better with them in its language model (bench/understanding.py
    --spoken on development sets); beside the intents, not inside them."""
    folder = with_examples(tmp_path, f'intents:\n  nutrition: ["{ODD_QUESTION}"]\n'
                                     f'red_flags:\n  stroke: {{present: ["{GARBLED}"]}}\n')
    groups = load_content(folder).domain_sentences()
    assert groups["examples"] == (ODD_QUESTION,)
    assert groups["references"] == (GARBLED,)
    assert ODD_QUESTION not in groups["nutrition"]


@pytest.mark.parametrize(("text", "message"), [
    ('intents:\n  nutritoin: ["is salt good"]\n', "examples of unknown intent 'nutritoin'"),
    ('intents:\n  nutrition: ["how do i stop a cramp"]\n', "is also a sentence of 'spasm_relief'"),
    ('red_flags:\n  strok: {present: ["his face dropped"]}\n', "unknown red flag 'strok'"),
    ('intents:\n  nutrition: "is salt good"\n', "is not of type 'array'"),
])
def test_a_bad_example_is_named_with_its_line(tmp_path, text, message):
    folder = with_examples(tmp_path, "# examples\n" + text)
    with pytest.raises(ContentError) as caught:
        load_content(folder)
    assert any(message in problem.message and problem.line == 3
               for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize("setting", ["EXAMPLE_WEIGHT", "REGULARISATION_C",
                                     "MAX_SAMPLES_PER_INTENT"])
def test_a_model_trained_with_other_settings_is_not_taken_from_the_cache(monkeypatch, setting):
    content = load_content(SIGNS)
    before = classifier.model_path(content, "encoder")
    monkeypatch.setattr(classifier, setting, getattr(classifier, setting) * 2)
    assert classifier.model_path(content, "encoder") != before


def test_examples_read_back_from_the_cache_are_those_of_the_yaml(tmp_path, monkeypatch):
    folder = with_examples(tmp_path, f'intents:\n  nutrition: ["{ODD_QUESTION}"]\n'
                                     f'red_flags:\n  stroke: {{not_a_sign: ["{GARBLED}"]}}\n')
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    built, cached = load_content(folder), load_content(folder)
    assert cached.examples == built.examples == {"nutrition": (ODD_QUESTION,)}
    assert cached.red_flags == built.red_flags
    assert {flag.name: flag.references for flag in cached.red_flags}["stroke"] == {
        "not_a_sign": (GARBLED,)}
