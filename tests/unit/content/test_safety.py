"""Medical safety of the shipped content: citations hold, red flags always escalate."""

from __future__ import annotations

import re

import pytest

from conftest import shared_document
from voiceskill.content import load_content
from voiceskill.dialogue import Conversation
from voiceskill.nlu import IntentMatcher
from voiceskill.review.sources import DOCS, split_paragraphs

ARTICLE = "twitch-vs-spasm.txt"

# Medical terms an answer may use -> the words the cited paragraph must contain for it.
TERMS = {
    "twitch": ["twitch"], "spasm": ["spasm"], "nerve": ["nerve"], "erratic": ["erratic"],
    "als": ["ALS"], "nerve damage": ["nerve damage"], "muscular dystrophy": ["muscular dystrophy"],
    "more than a week": ["more than a week"], "go away": ["go away"],
    "group of muscles": ["group of muscles"], "feel hard": ["harden"], "stiff": ["stiff"],
    "tired": ["fatigued"], "protect": ["protect"], "stretch": ["stretch"],
    "massage": ["massag"], "water": ["hydrat"], "hydrated": ["hydrat"], "warm": ["warm"],
    "herniated disc": ["herniated disc"], "spinal stenosis": ["spinal stenosis"],
    "degenerative disc disease": ["degenerative disc disease"], "prescribed": ["prescribed"],
    "weakness": ["weakness"], "numbness": ["numbness"], "tingling": ["tingling"],
    "trouble walking": ["trouble walking"], "balance": ["balance"], "confusion": ["mental"],
    "examine": ["exam"], "medical history": ["medical history"], "tests": ["tests"],
    "dose": ["dosage"], "medicine": ["medication"], "nutrient": ["nutrition"],
    "neurological": ["neurological"], "spine": ["spin"], "emergency": ["emergency"],
    "regularly": ["regularly"], "pain": ["pain"], "normal": ["normal"],
    "severe": ["severe"], "coming back": ["regularly", "not resolving", "persistent"],
}
ADVERTISING = ["specialist", "southwest", "provider", "schedule an appointment", "harmless"]


def paragraphs(document: str) -> list[str]:
    """The article from ../shared (never copied into the repo); the policy from docs/."""
    path = shared_document(f"seed/{document}") if document == ARTICLE else DOCS / document
    return split_paragraphs(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def content():
    return load_content()


def test_every_answer_rests_on_the_paragraphs_it_cites(content):
    for node in content.nodes.values():
        if node.kind == "chat":
            continue
        cited = " ".join(
            paragraphs(content.sources[ref.doc]["document"])[ref.paragraph - 1]
            for ref in node.sources
        ).lower()
        spoken = " ".join(filter(None, [node.say, node.more, node.ask])).lower()
        for term, evidence in TERMS.items():
            if re.search(rf"\b{re.escape(term)}", spoken):
                assert any(word.lower() in cited for word in evidence), (node.id, term)


def test_no_answer_copies_the_article(content):
    article = " ".join(paragraphs(ARTICLE)).lower()
    for node in content.nodes.values():
        for text in filter(None, [node.say, node.more]):
            words = text.lower().split()
            runs = {" ".join(words[i : i + 8]) for i in range(len(words) - 7)}
            assert not [run for run in runs if run in article], node.id


EMERGENCIES = [
    "I can't breathe",
    "I have chest pain",
    "my whole body is jerking",
    "I think I'm having a seizure",
    "I have a stiff neck and a high fever",
    "I hit my head and now I'm twitching",
    "yes and I can't breathe",
    "no but my chest hurts",
]


def test_every_emergency_sentence_escalates_from_every_node(content):
    matcher = IntentMatcher(content)
    for node_id in content.nodes:
        for sentence in EMERGENCIES:
            conversation = Conversation(content, node=node_id)
            reply = conversation.respond(matcher.understand(sentence))
            assert reply.outcome == "emergency", (node_id, sentence)


def test_every_advice_node_has_an_outcome_and_every_question_both_answers(content):
    for node in content.nodes.values():
        assert (node.kind == "advice") == (node.outcome is not None), node.id
        if node.kind == "question":
            assert {"yes", "no"} <= set(node.on)


def test_no_answer_diagnoses_or_advertises(content):
    """The article's clinic pitch and the word "harmless" (a diagnosis) are not ours to say."""
    for node in content.nodes.values():
        spoken = " ".join(filter(None, [node.say, node.more, node.ask])).lower()
        assert not [word for word in ADVERTISING if word in spoken], node.id


def test_the_emergency_instruction_comes_first_and_nothing_hedges_it(content):
    matcher = IntentMatcher(content)
    for node_id in content.nodes:
        reply = Conversation(content, node=node_id).respond(matcher.understand("I can't breathe"))
        assert reply.answer.lower().startswith("call your local emergency number"), node_id
        assert content.disclaimer not in reply.answer
        assert " but " not in reply.answer.lower()


def test_general_safety_statements_cite_the_policy_in_the_repo(content):
    """Safety statements rest on docs/safety-policy.md, a file of this repo."""
    policy = content.sources["safety_policy"]["document"]
    assert (DOCS / policy).is_file()
    cited = {ref.paragraph for node in content.nodes.values() for ref in node.sources
             if ref.doc == "safety_policy"}
    assert cited and max(cited) <= len(paragraphs(policy))
