"""Medical safety of the shipped content: citations hold, red flags always escalate."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from voiceskill.content import load_content
from voiceskill.dialogue import Conversation
from voiceskill.nlu import IntentMatcher
from voiceskill.sources import split_paragraphs

SHARED_CANDIDATES = [Path(__file__).parents[2] / "shared", Path("/work/shared")]
SHARED = Path(os.environ.get("VOICESKILL_SHARED") or next(
    (path for path in SHARED_CANDIDATES if path.is_dir()), SHARED_CANDIDATES[0]))
DOCUMENTS = {"twitch-vs-spasm.txt": SHARED / "seed", "DESIGN.md": SHARED}

# Medical terms an answer may use -> the words the cited paragraph must contain for it.
TERMS = {
    "twitch": ["twitch"], "spasm": ["spasm"], "nerve": ["nerve"], "erratic": ["erratic"],
    "als": ["ALS"], "nerve damage": ["nerve damage"], "muscular dystrophy": ["muscular dystrophy"],
    "harmless": ["harmless"], "more than a week": ["more than a week"],
    "group of muscles": ["group of muscles"], "feel hard": ["harden"], "stiff": ["stiff"],
    "tired": ["fatigued"], "protect": ["protect"], "stretch": ["stretch"],
    "massage": ["massag"], "water": ["hydrat"], "hydrated": ["hydrat"], "warm": ["warm"],
    "herniated disc": ["herniated disc"], "spinal stenosis": ["spinal stenosis"],
    "degenerative disc disease": ["degenerative disc disease"], "specialist": ["specialist"],
    "weakness": ["weakness"], "numbness": ["numbness"], "tingling": ["tingling"],
    "trouble walking": ["trouble walking"], "balance": ["balance"], "confusion": ["mental"],
    "examine": ["exam"], "medical history": ["medical history"], "tests": ["tests"],
    "dose": ["dosage"], "medicine": ["medication"], "nutrient": ["nutrition"],
    "neurological": ["neurological"], "spine": ["spin"], "emergency": ["emergency"],
    "regularly": ["regularly"], "pain": ["pain"],
}


def paragraphs(document: str) -> list[str]:
    path = DOCUMENTS[document] / document
    if not path.exists():
        pytest.skip(f"source document {path} not found (set VOICESKILL_SHARED)")
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
    article = " ".join(paragraphs("twitch-vs-spasm.txt")).lower()
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
