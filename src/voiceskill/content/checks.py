"""The dialogue tree's checks: references, reachability, and the medical-safety rules (advice
carries an outcome, every triage path ends in advice and ends at all)."""

from __future__ import annotations

from collections.abc import Mapping

from voiceskill.content.model import Lexicon, Node
from voiceskill.content.schema import INTENTS_FILE
from voiceskill.content.yamlsafe import Document, Problem

MAX_LOOPS_REPORTED = 20


def tree_problems(doc: Document, nodes: dict[str, Node], intents: Mapping,
                   flags: Document, lexicon: Lexicon) -> list[Problem]:
    """References, reachability, and the medical-safety rules of the tree."""
    data = doc.data
    problems = []
    flag_names = set(flags.data["flags"])

    def need_node(path: tuple, target: str) -> None:
        if target not in nodes:
            problems.append(doc.problem(path, f"no node named '{target}'"))

    def need_intent(path: tuple, name: str) -> None:
        if name not in intents:
            problems.append(doc.problem(path, f"no intent named '{name}' in {INTENTS_FILE}"))

    need_node(("start",), data["start"])
    for intent, target in data["routes"].items():
        need_intent(("routes", intent), intent)
        need_node(("routes", intent), target)
    for name, flag in flags.data["flags"].items():
        if flag["goto"] not in nodes:
            message = f"no node named '{flag['goto']}'"
            problems.append(flags.problem(("flags", name, "goto"), message))
        for status, other in (flag.get("becomes") or {}).items():
            if other not in flags.data["flags"]:
                message = f"no red flag named '{other}'"
                problems.append(flags.problem(("flags", name, "becomes", status), message))
    for node in nodes.values():
        path = ("nodes", node.id)
        for intent, target in node.on.items():
            need_intent((*path, "on", intent), intent)
            need_node((*path, "on", intent), target)
        for index, ref in enumerate(node.sources):
            if ref.doc not in data["sources"]:
                problems.append(
                    doc.problem((*path, "sources", index), f"unknown source '{ref.doc}'")
                )
        if node.kind == "advice" and node.outcome is None:
            problems.append(doc.problem(path, f"advice node '{node.id}' has no outcome"))
        if node.kind != "advice" and node.outcome is not None:
            problems.append(doc.problem(path, f"node '{node.id}' has an outcome but is not advice"))
        if node.kind == "question" and not {"yes", "no"} <= set(node.on):
            problems.append(doc.problem(path, f"question '{node.id}' needs both yes and no"))
        if node.kind == "question" and node.ask is None:
            problems.append(doc.problem(path, f"question '{node.id}' has no 'ask'"))
        if node.ask and not node.more and not {"yes", "no"} & set(node.on):
            problems.append(doc.problem(path, f"node '{node.id}' asks but yes/no lead nowhere"))
        if node.kind != "chat" and not node.sources:
            problems.append(doc.problem(path, f"node '{node.id}' cites no source"))
        for name in node.yes_if:
            if name not in lexicon.concepts and name not in flag_names:
                message = f"'{name}' is neither a lexicon concept nor a red flag"
                problems.append(doc.problem((*path, "yes_if"), message))
        if node.kind != "question" and (node.yes_if or node.yes_from_days is not None):
            problems.append(doc.problem(path, f"node '{node.id}' is not a question"))
    if problems:
        return problems
    gotos = [flag["goto"] for flag in flags.data["flags"].values()]
    problems += _reachability_problems(doc, nodes, gotos)
    problems += _triage_problems(doc, nodes)
    return problems


def _reachability_problems(doc: Document, nodes: Mapping[str, Node],
                           red_flag_targets: list[str]) -> list[Problem]:
    data = doc.data
    entry = [data["start"], *data["routes"].values(), *red_flag_targets]
    seen, todo = set(), list(entry)
    while todo:
        node_id = todo.pop()
        if node_id not in seen:
            seen.add(node_id)
            todo.extend(nodes[node_id].on.values())
    return [
        doc.problem(("nodes", node_id), f"node '{node_id}' can never be reached")
        for node_id in nodes
        if node_id not in seen
    ]


def _triage_problems(doc: Document, nodes: Mapping[str, Node]) -> list[Problem]:
    """Every path through triage questions must end in advice, and must end at all.

    One depth-first walk over the questions, so linear in the size of the tree: an edge back to
    a question still on the walk's path is a loop; each question remembers one non-advice end
    it can reach (directly or through the questions after it).
    """
    questions = {node_id: None for node_id, node in nodes.items() if node.kind == "question"}
    loops: list[Problem] = []
    bad_end: dict[str, str] = {}

    def finish(node_id: str) -> None:
        for target in nodes[node_id].on.values():
            end = bad_end.get(target) if target in questions else target
            if end is not None and nodes[end].outcome is None:
                bad_end[node_id] = end
                return

    done: set[str] = set()
    for root in questions:
        if root in done:
            continue
        path, on_path = [root], {root}
        pending = [iter(nodes[root].on.values())]
        while pending:
            target = next(pending[-1], None)
            if target is None:
                finished = path.pop()
                on_path.discard(finished)
                done.add(finished)
                finish(finished)
                pending.pop()
            elif target in on_path:
                if len(loops) < MAX_LOOPS_REPORTED:
                    loop = " -> ".join([*path[path.index(target):], target])
                    message = f"triage loops with no exit: {loop}"
                    loops.append(doc.problem(("nodes", target), message))
            elif target in questions and target not in done:
                path.append(target)
                on_path.add(target)
                pending.append(iter(nodes[target].on.values()))
    ends = [
        doc.problem(("nodes", node_id),
                    f"triage from '{node_id}' can end at '{end}', which gives no advice")
        for node_id, end in ((q, bad_end.get(q)) for q in questions)
        if end is not None
    ]
    return loops + ends
