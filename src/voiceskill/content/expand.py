"""Sample-sentence templates expanded with hassil, within a budget counted before any work is
done (so a template bomb is refused), and copies of samples with lexicon terms swapped in."""

from __future__ import annotations

import math
from collections.abc import Mapping

from voiceskill.content.model import Lexicon
from voiceskill.content.yamlsafe import Document, Problem
from voiceskill.text import normalize

MAX_SENTENCES_PER_TEMPLATE = 10_000
MAX_TOTAL_SENTENCES = 250_000  # a quarter above the shipped content: keep alternatives few
MAX_TEMPLATE_DEPTH = 64  # nested groups and rule references within one template
SWAP_POOL = 400
SWAPS_PER_TERM = 12
"""How many sample sentences are copied with each lexicon term swapped in: enough for the
language model to know the term in a few contexts, few enough to keep the model small."""


def parse_rules(doc: Document, rules: Mapping[str, str]) -> tuple[dict, list]:
    from hassil import parse_sentence  # only when expanding: a cached expansion needs none

    parsed, problems = {}, []
    for name, template in rules.items():
        try:
            parsed[name] = parse_sentence(template)
        except Exception as exc:  # hassil raises several parse error types
            problems.append(doc.problem(("expansion_rules", name), f"bad template: {exc}"))
    return parsed, problems


class ExpansionBudget:
    """How many more sentences the content may expand to, all templates together; counted
    before a template is expanded, so a template bomb is refused before any work is done.
    Also remembers each rule's count, so rules referring to rules are counted once."""

    def __init__(self, limit: int = MAX_TOTAL_SENTENCES):
        self.left = limit
        self.limit = limit
        self.rule_counts: dict[str, int] = {}

    def take(self, count: int) -> None:
        if count > self.left:
            self.left = 0
            raise ValueError(f"the content allows more than {self.limit} sentences in all")
        self.left -= count


def sentence_count(expression, rules: Mapping,
                   rule_counts: dict[str, int], depth: int = 0) -> int:
    """How many sentences hassil would list for `expression` (duplicates included), computed
    from its structure; a count above MAX_SENTENCES_PER_TEMPLATE is reported as one more than
    that, so it stays cheap. Raises ValueError when groups or rules nest too deeply (a rule
    that refers to itself)."""
    from hassil.expression import Alternative, Group, Permutation, RuleReference

    cap = MAX_SENTENCES_PER_TEMPLATE + 1
    if depth > MAX_TEMPLATE_DEPTH:
        raise ValueError(f"groups or rules nested more than {MAX_TEMPLATE_DEPTH} levels deep")

    def count(item) -> int:
        return sentence_count(item, rules, rule_counts, depth + 1)

    if isinstance(expression, RuleReference):
        name = expression.rule_name
        if name not in rule_counts:
            rule = rules.get(name)
            rule_counts[name] = count(rule.expression) if rule is not None else 1
        return rule_counts[name]
    if isinstance(expression, Alternative):
        return min(cap, sum(count(item) for item in expression.items))
    if isinstance(expression, Group):  # Sequence or Permutation: every combination
        total = 1
        for item in expression.items:
            total = min(cap, total * count(item))
        if isinstance(expression, Permutation):
            total *= math.factorial(min(len(expression.items), 13))
        return min(cap, total)
    return 1


def expand_template(template: str, rules: Mapping,
                    budget: ExpansionBudget | None = None) -> list[str]:
    """Every sentence a template allows, normalized; raises ValueError if it cannot be used
    (bad syntax, more than MAX_SENTENCES_PER_TEMPLATE sentences, or over the `budget`)."""
    from hassil import parse_sentence  # only when expanding: a cached expansion needs none
    from hassil.sample import sample_sentence

    if ")?" in template:  # hassil reads the group as required: the phrase never matched
        raise ValueError("'(...)?' is not optional in a template: write optional words "
                         "[like this]")
    try:
        sentence = parse_sentence(template)
    except Exception as exc:  # hassil's parse errors share no base class narrower than this
        raise ValueError(f"bad template: {exc}") from None
    rule_counts = budget.rule_counts if budget is not None else {}
    count = sentence_count(sentence.expression, rules, rule_counts)
    if count > MAX_SENTENCES_PER_TEMPLATE:
        raise ValueError(f"template allows more than {MAX_SENTENCES_PER_TEMPLATE} sentences")
    if budget is not None:
        budget.take(count)
    try:
        expanded = list(sample_sentence(sentence, expansion_rules=dict(rules)))
    except Exception as exc:  # e.g. a missing rule or list; no narrower common base class
        raise ValueError(f"bad template: {exc}") from None
    return sorted({normalize(s) for s in expanded} - {""})


def lexicon_rules(lexicon: Lexicon) -> dict[str, str]:
    """Each lexicon concept as an expansion rule, `<lex_NAME>`, for the intent templates."""
    return {f"lex_{name}": "(" + "|".join(concept.terms) + ")"
            for name, concept in lexicon.concepts.items()}


def _phrase_list(doc: Document, path: tuple, templates: list[str],
                 budget: ExpansionBudget) -> tuple[list[str], list]:
    phrases, problems = [], []
    for index, template in enumerate(templates):
        try:
            phrases += expand_template(template, {}, budget)
        except ValueError as exc:
            problems.append(doc.problem((*path, index), str(exc)))
    return phrases, problems


def together_key(flag: str, part: int) -> str:
    """Where the phrases of part `part` of a flag's `together` are kept beside its own."""
    return f"{flag} together {part}"


def together_keys(name: str, flag: dict) -> list[str]:
    """The keys of the parts of one flag's `together`, in order."""
    return [together_key(name, part) for part in range(len(flag.get("together", ())))]


def flag_phrase_keys(doc: Document) -> set[str]:
    """Every flag's name, and a key for each part of its `together`."""
    return {key for name, flag in doc.data["flags"].items()
            for key in (name, *together_keys(name, flag))}


def flag_phrases(doc: Document, budget: ExpansionBudget
                  ) -> tuple[dict[str, list[str]], list[Problem]]:
    phrases, problems = {}, []
    for name, flag in doc.data["flags"].items():
        lists = [(name, ("flags", name, "phrases"), flag["phrases"])]
        parts = zip(together_keys(name, flag), flag.get("together", ()), strict=True)
        lists += [(key, ("flags", name, "together", part), templates)
                  for part, (key, templates) in enumerate(parts)]
        for key, path, templates in lists:
            phrases[key], found = _phrase_list(doc, path, templates, budget)
            problems += found
    return phrases, problems


def swapped_sentences(sentences: tuple[str, ...], lexicon: Lexicon) -> tuple[str, ...]:
    """Copies of some of `sentences` with one lexicon term replaced by another of its concept.

    Deterministic (evenly spaced picks, no randomness), so the same content always gives the
    same language model and classifier.
    """
    term_concept = {term: concept.name for concept in lexicon.concepts.values() if concept.swap
                    for term in concept.terms}
    longest = max((len(term.split()) for term in term_concept), default=0)
    pool = sentences[:: max(1, len(sentences) // SWAP_POOL)]
    holders: dict[str, list[tuple[str, str]]] = {}
    for sentence in pool:
        words = sentence.split()
        for size in range(1, longest + 1):
            for start in range(len(words) - size + 1):
                gram = " ".join(words[start : start + size])
                if gram in term_concept:
                    holders.setdefault(term_concept[gram], []).append((gram, sentence))
    known = set(sentences)
    copies: list[str] = []
    for name, found in holders.items():
        step = max(1, len(found) // SWAPS_PER_TERM)
        for term in lexicon.concepts[name].terms:
            for other, sentence in found[::step][:SWAPS_PER_TERM]:
                copy = f" {sentence} ".replace(f" {other} ", f" {term} ", 1).strip()
                if copy not in known:
                    known.add(copy)
                    copies.append(copy)
    return tuple(copies)
