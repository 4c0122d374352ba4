"""The clinician's review sheet: everything the skill can say, every path, beside its sources.

`review_html` returns one self-contained HTML page (inline CSS and SVG, no scripts, no
fonts or images fetched) and `tree_dot` the dialogue as Graphviz DOT. Nothing here prints or
writes files; the command line does. The page is built from a lenient read of the content
(`load_content(strict=False)`), so the flaws a reviewer must see are shown, not refused.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from html import escape
from pathlib import Path

import graphviz

from voiceskill.content import Content
from voiceskill.errors import UserError
from voiceskill.review.sources import find_document, split_paragraphs

START = "(start)"  # pseudo-nodes of the picture; real node names are snake_case
ANYWHERE = "(anywhere)"

OUTCOME_LABELS = {
    "self_care": "self-care",
    "see_doctor": "see a doctor",
    "urgent": "urgent",
    "emergency": "emergency",
}
OUTCOME_COLOURS = {
    "self_care": "#cdebc5",
    "see_doctor": "#fde9a0",
    "urgent": "#f9bf80",
    "emergency": "#f28b82",
}
RED_FLAG_COLOUR = "#c5221f"
MAX_SOURCE_BYTES = 2_000_000
"""A cited document is a web article or a policy of a few pages; anything larger is not read
(it would be copied whole into the page)."""


# --- the dialogue as a graph ----------------------------------------------------------------


@dataclass(frozen=True)
class Edge:
    tail: str
    head: str
    label: str
    kind: str  # start | route | red_flag | on


def tree_edges(content: Content) -> list[Edge]:
    """Every way into a node: the start, routes and red flags from anywhere, transitions."""
    edges = [Edge(START, content.start, "", "start")]
    edges += [Edge(ANYWHERE, target, intent, "route") for intent, target in content.routes.items()]
    edges += [Edge(ANYWHERE, flag.goto, flag.name, "red_flag") for flag in content.red_flags]
    for node in content.nodes.values():
        edges += [Edge(node.id, target, intent, "on") for intent, target in node.on.items()]
    return edges


def unreachable_nodes(content: Content) -> list[str]:
    """Nodes no path from the start or from anywhere leads to."""
    following: dict[str, list[str]] = {}
    for edge in tree_edges(content):
        following.setdefault(edge.tail, []).append(edge.head)
    seen, todo = set(), [START, ANYWHERE]
    while todo:
        node_id = todo.pop()
        if node_id not in seen:
            seen.add(node_id)
            todo += following.get(node_id, [])
    return [node_id for node_id in content.nodes if node_id not in seen]


def tree_dot(content: Content) -> str:
    """The dialogue tree as DOT: one graph node per YAML node, one edge per way between them."""
    graph = graphviz.Digraph("dialogue")
    graph.attr(rankdir="LR", nodesep="0.15", ranksep="0.4", fontname="Helvetica")
    graph.attr("node", fontname="Helvetica", fontsize="15", style="filled", fillcolor="white")
    graph.attr("edge", fontname="Helvetica", fontsize="12", color="#555555")
    graph.node(START, "start", shape="circle", fillcolor="#e8eaed")
    graph.node(ANYWHERE, "anywhere\n(whatever the user says)", shape="box",
               style="filled,dashed", fillcolor="#e8eaed")
    unreachable = set(unreachable_nodes(content))
    for node in content.nodes.values():
        graph.node(node.id, **_node_style(node, node.id in unreachable))
    edges = tree_edges(content)
    for missing in sorted({edge.head for edge in edges} - set(content.nodes) - {START}):
        graph.node(missing, f"{missing}\n(missing node)", shape="box", color=RED_FLAG_COLOUR,
                   style="filled,dashed", fillcolor="#fce8e6")
    for edge in edges:
        graph.edge(edge.tail, edge.head, **_edge_style(edge))
    return graph.source


def _node_style(node, unreachable: bool) -> dict[str, str]:
    label = node.id
    style = {"id": f"graph-{node.id}", "href": f"#answer-{node.id}",
             "tooltip": graphviz.escape(node.say)}  # free text: never read as HTML or escapes
    if node.kind == "question":
        style.update(shape="diamond", fillcolor="#d2e3fc", margin="0.02")
    elif node.kind == "chat":
        style.update(shape="ellipse", fillcolor="#f1f3f4")
    else:
        style.update(shape="box", style="filled,rounded")
    if node.outcome:
        if node.outcome != node.id:
            label += f"\n{OUTCOME_LABELS[node.outcome]}"
        style["fillcolor"] = OUTCOME_COLOURS[node.outcome]
        style["penwidth"] = "2" if node.outcome == "emergency" else "1"
    if unreachable:
        label += "\n(unreachable)"
        style.update(color=RED_FLAG_COLOUR, style="filled,dashed", penwidth="2")
    return {"label": label, **style}


def _edge_style(edge: Edge) -> dict[str, str]:
    if edge.kind == "red_flag":
        return {"label": f"red flag: {edge.label}", "color": RED_FLAG_COLOUR,
                "fontcolor": RED_FLAG_COLOUR, "penwidth": "2"}
    if edge.kind == "route":
        # a route to the node of the same name needs no label: the node says it
        label = "" if edge.label == edge.head else edge.label
        return {"label": label, "color": "#9aa0a6", "fontcolor": "#5f6368"}
    return {"label": edge.label}


class GraphvizUnavailable(UserError):
    """Graphviz's `dot` program is missing; the picture cannot be drawn."""


def render_graph(content: Content, fmt: str) -> bytes:
    """The picture in `fmt` (svg, png or dot); Graphviz's `dot` draws it."""
    source = tree_dot(content)
    if fmt == "dot":
        return source.encode()
    try:
        return graphviz.Source(source).pipe(format=fmt)
    except graphviz.ExecutableNotFound:
        raise GraphvizUnavailable(
            "Graphviz's `dot` is not installed (scripts/setup installs it)") from None


def _inline_svg(content: Content) -> str:
    """The SVG without its XML prologue and fixed size, so it scales to the page width."""
    svg = render_graph(content, "svg").decode()
    svg = svg[svg.index("<svg"):]
    head_end = svg.index(">")
    head = re.sub(r'\s(width|height)="[^"]*"', "", svg[:head_end])
    return f'{head} class="tree" role="img" aria-label="dialogue tree"{svg[head_end:]}'


# --- sources --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceText:
    key: str
    title: str
    document: str
    path: Path | None
    paragraphs: tuple[str, ...] = ()
    problem: str | None = None  # why it could not be read
    sha256: str = ""


def read_sources(content: Content, folders: list[Path]) -> dict[str, SourceText]:
    """Each source of the content, read now from `folders` (a missing one is noted, not fatal)."""
    texts = {}
    for key, spec in content.sources.items():
        name = spec["document"]
        path = find_document(name, folders)
        if path is None:
            where = ", ".join(str(folder) for folder in folders)
            texts[key] = SourceText(key, spec["title"], name, None,
                                    problem=f"document '{name}' not found in {where}")
            continue
        try:
            with path.open("rb") as file:
                raw = file.read(MAX_SOURCE_BYTES + 1)
            if len(raw) > MAX_SOURCE_BYTES:
                raise ValueError(f"larger than {MAX_SOURCE_BYTES} bytes, not read")
            text = raw.decode("utf-8")
        except (OSError, ValueError) as exc:  # UnicodeDecodeError is a ValueError
            texts[key] = SourceText(key, spec["title"], name, path,
                                    problem=f"cannot read {path}: {exc}")
            continue
        texts[key] = SourceText(key, spec["title"], name, path,
                                tuple(split_paragraphs(text)),
                                sha256=hashlib.sha256(raw).hexdigest())
    return texts


def citation_problem(ref, sources: Mapping[str, SourceText]) -> str | None:
    """Why a citation cannot be checked against its source, or None when it can."""
    source = sources.get(ref.doc)
    if source is None:
        return f"'{ref.doc}' is not one of the content's sources"
    if source.problem:
        return source.problem
    if ref.paragraph > len(source.paragraphs):
        return (f"{source.document} has {len(source.paragraphs)} paragraphs, "
                f"no paragraph {ref.paragraph}")
    return None


def citing_nodes(content: Content) -> dict[tuple[str, int], list[str]]:
    """(source, paragraph) -> the nodes that cite it."""
    cited: dict[tuple[str, int], list[str]] = {}
    for node in content.nodes.values():
        for ref in node.sources:
            cited.setdefault((ref.doc, ref.paragraph), []).append(node.id)
    return cited


# --- triage and red flags -------------------------------------------------------------------


@dataclass(frozen=True)
class TriagePath:
    answers: tuple[tuple[str, str], ...]  # (question node, answer intent), in order
    end: str
    loops: bool = False


def triage_paths(content: Content) -> list[TriagePath]:
    """Every path from a first triage question (one entered from outside triage) to its end."""
    nodes = content.nodes

    def is_question(node_id: str) -> bool:
        return node_id in nodes and nodes[node_id].kind == "question"

    entered = {edge.head for edge in tree_edges(content) if not is_question(edge.tail)}

    def walk(node_id: str, answers: tuple, trail: tuple) -> Iterator[TriagePath]:
        node = nodes.get(node_id)
        if node_id in trail:
            yield TriagePath(answers, node_id, loops=True)
        elif node is None or node.kind != "question":
            yield TriagePath(answers, node_id)
        else:
            for intent, target in node.on.items():
                yield from walk(target, (*answers, (node_id, intent)), (*trail, node_id))

    return [
        path
        for node_id in nodes
        if is_question(node_id) and node_id in entered
        for path in walk(node_id, (), ())
    ]


@dataclass(frozen=True)
class RedFlagRow:
    name: str
    goto: str
    phrases: tuple[str, ...]
    examples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


EXAMPLE_KINDS = ("present", "negated", "question", "past")


def red_flag_rows(content: Content) -> list[RedFlagRow]:
    """The red-flag concepts as the table shows them: trigger templates as written (a reviewer
    reads "(can't|cannot) breathe", not its every expansion), the parts said together, and
    the examples."""
    return [
        RedFlagRow(
            flag.name, flag.goto,
            (*flag.templates, *(f"said together, part {number}: {' / '.join(part)}"
                                for number, part in enumerate(flag.together_templates, 1))),
            {kind: tuple(flag.examples.get(kind) or ()) for kind in EXAMPLE_KINDS},
        )
        for flag in content.red_flags
    ]


# --- benchmark figures ----------------------------------------------------------------------


@dataclass(frozen=True)
class Benchmark:
    date: str
    content_hash: str
    figures: Mapping[str, object]
    problem: str | None = None


def read_benchmark(path: Path) -> Benchmark | None:
    """The last benchmark run (bench/results/latest.json), None if none is recorded."""
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return Benchmark(str(record["date"]), str(record["content_hash"]),
                         dict(record["figures"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return Benchmark("", "", {}, problem=f"cannot read {path}: {exc!r}")


# --- the page -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignOff:
    content_hash: str
    generated: str
    version: str


def review_html(content: Content, sources: Mapping[str, SourceText],
                benchmark: Benchmark | None, sign_off: SignOff) -> str:
    """The whole review sheet as one HTML page."""
    unreachable = unreachable_nodes(content)
    cited = citing_nodes(content)
    sections = [
        _flags_section(content, sources, cited, unreachable),
        _picture_section(content),
        _answers_section(content, sources, unreachable),
        _coverage_section(sources, cited),
        _red_flags_section(content),
        _triage_section(content),
        _benchmark_section(benchmark, sign_off.content_hash),
        _sign_off_section(content, sources, sign_off),
    ]
    return PAGE.format(css=CSS, hash=escape(sign_off.content_hash[:12]),
                       generated=escape(sign_off.generated), body="\n".join(sections))


def _flags_section(content, sources, cited, unreachable) -> str:
    items = [_flag("check", escape(str(problem))) for problem in content.problems]
    items += [_flag("unreachable", f'<a href="#answer-{escape(node_id)}">{escape(node_id)}</a>: '
                    "no start, route, red flag or transition leads here")
              for node_id in unreachable]
    items += [_flag("source-missing", f"source <b>{escape(s.key)}</b>: {escape(s.problem)}")
              for s in sources.values() if s.problem]
    for node in content.nodes.values():
        for ref in node.sources:
            problem = citation_problem(ref, sources)
            if problem and not (ref.doc in sources and sources[ref.doc].problem):
                items.append(_flag(
                    "citation", f'<a href="#answer-{escape(node.id)}">{escape(node.id)}</a> '
                    f"cites {escape(ref.doc)} ¶{ref.paragraph}: {escape(problem)}"))
    for source in sources.values():
        uncited = [n for n in range(1, len(source.paragraphs) + 1) if (source.key, n) not in cited]
        if uncited:
            links = ", ".join(f'<a href="#para-{escape(source.key)}-{n}">¶{n}</a>'
                              for n in uncited)
            items.append(_flag("uncited", f"{escape(source.key)}: no node cites {links}"))
    if not items:
        return ('<section id="flags"><h2>Flags</h2><p class="ok">Nothing flagged: every node is '
                "reachable, every citation found, every paragraph cited.</p></section>")
    return (f'<section id="flags"><h2>Flags ({len(items)})</h2>'
            f'<ul class="flags">{"".join(items)}</ul></section>')


def _flag(kind: str, html: str) -> str:
    return f'<li class="flag" data-flag="{kind}">{html}</li>'


def _picture_section(content: Content) -> str:
    legend = "".join(
        f'<span class="swatch" style="background:{OUTCOME_COLOURS[o]}">{OUTCOME_LABELS[o]}</span>'
        for o in OUTCOME_LABELS
    )
    return (
        '<section id="picture"><h2>1. The dialogue</h2>'
        f'<p class="legend">Outcome colours: {legend} '
        '<span class="swatch question">triage question</span> '
        '<span class="swatch">information</span> <span class="swatch chat">chat</span> '
        f'<span class="red">red edges: red flags, from anywhere</span>. '
        "Grey edges: questions answered from anywhere; black edges: what the user answers "
        "here. Click a node for its answer.</p>"
        f"{_inline_svg(content)}</section>"
    )


def _answers_section(content: Content, sources, unreachable) -> str:
    arrivals: dict[str, list[str]] = {}
    for edge in tree_edges(content):
        where = {"start": "the start", "route": f"asked “{edge.label}” anywhere",
                 "red_flag": f"red flag “{edge.label}” anywhere",
                 "on": f"“{edge.label}” at {edge.tail}"}[edge.kind]
        arrivals.setdefault(edge.head, []).append(where)
    cards = [_answer_card(node, sources, arrivals.get(node.id, []), node.id in unreachable)
             for node in content.nodes.values()]
    return ('<section id="answers"><h2>2. Every answer, beside its source</h2>'
            + "".join(cards) + "</section>")


def _answer_card(node, sources, arrivals: list[str], unreachable: bool) -> str:
    outcome = (f'<span class="outcome" style="background:{OUTCOME_COLOURS[node.outcome]}">'
               f"{OUTCOME_LABELS[node.outcome]}</span>" if node.outcome else "")
    spoken = "".join(
        f'<p><span class="part">{part}</span> {escape(text)}</p>'
        for part, text in (("says", node.say), ("more", node.more), ("asks", node.ask)) if text
    )
    moves = ", ".join(f'“{escape(intent)}” → <a href="#answer-{escape(target)}">'
                      f"{escape(target)}</a>" for intent, target in node.on.items())
    reached = "; ".join(escape(a) for a in arrivals) or "nothing"
    citations = "".join(_citation(ref, sources) for ref in node.sources)
    if not node.sources:
        citations = '<p class="muted">no source (chat: no medical content)</p>'
    flagged = " flagged" if unreachable else ""
    warning = ('<p class="flag-text">Unreachable: nothing leads here.</p>' if unreachable else "")
    return (
        f'<article class="answer{flagged}" id="answer-{escape(node.id)}">'
        f'<div class="spoken"><h3>{escape(node.id)} <span class="kind">{escape(node.kind)}'
        f"</span> {outcome}</h3>{warning}{spoken}"
        f'<p class="muted">Reached from: {reached}.</p>'
        + (f'<p class="muted">Then: {moves}.</p>' if moves else "")
        + f'</div><div class="cited">{citations}</div></article>'
    )


def _citation(ref, sources) -> str:
    label = f"{escape(ref.doc)} ¶{ref.paragraph}"
    problem = citation_problem(ref, sources)
    if problem:
        return (f'<blockquote class="citation missing" data-cite="{escape(ref.doc)}-'
                f'{ref.paragraph}"><b>{label}</b>: {escape(problem)}</blockquote>')
    text = sources[ref.doc].paragraphs[ref.paragraph - 1]
    return (f'<blockquote class="citation" data-cite="{escape(ref.doc)}-{ref.paragraph}">'
            f'<b><a href="#para-{escape(ref.doc)}-{ref.paragraph}">{label}</a></b> '
            f"{escape(text)}</blockquote>")


def _coverage_section(sources, cited) -> str:
    parts = ['<section id="coverage"><h2>3. Coverage of the sources</h2>']
    for source in sources.values():
        parts.append(f"<h3>{escape(source.key)}: {escape(source.title)}</h3>")
        if source.problem:
            parts.append(f'<p class="flag-text">{escape(source.problem)}</p>')
            continue
        count = sum((source.key, n) in cited for n in range(1, len(source.paragraphs) + 1))
        parts.append(f'<p class="muted">{escape(str(source.path))}: {count} of '
                     f"{len(source.paragraphs)} paragraphs cited.</p>")
        rows = []
        for number, text in enumerate(source.paragraphs, 1):
            nodes = cited.get((source.key, number), [])
            links = ", ".join(f'<a href="#answer-{escape(n)}">{escape(n)}</a>' for n in nodes)
            row_class = "" if nodes else ' class="uncited"'
            rows.append(f'<tr id="para-{escape(source.key)}-{number}"{row_class}>'
                        f"<td>¶{number}</td><td>{escape(text)}</td>"
                        f'<td>{links or "<b>not cited</b>"}</td></tr>')
        parts.append('<table class="coverage"><tr><th>¶</th><th>paragraph</th>'
                     f'<th>cited by</th></tr>{"".join(rows)}</table>')
    parts.append("</section>")
    return "".join(parts)


def _red_flags_section(content: Content) -> str:
    rows = []
    for row in red_flag_rows(content):
        node = content.nodes.get(row.goto)
        outcome = OUTCOME_LABELS.get(node.outcome, "") if node and node.outcome else ""
        examples = "".join(
            f'<p><span class="part">{kind}</span> '
            f'{"; ".join(f"“{escape(s)}”" for s in row.examples[kind]) or "none"}</p>'
            for kind in EXAMPLE_KINDS
        )
        rows.append(
            f'<tr><td><b>{escape(row.name)}</b></td><td><a href="#answer-{escape(row.goto)}">'
            f"{escape(row.goto)}</a><br>{escape(outcome)}</td>"
            f'<td class="phrases">{"<br>".join(escape(p) for p in row.phrases)}</td>'
            f"<td>{examples}</td></tr>"
        )
    return ('<section id="red-flags"><h2>4. Red flags and triage</h2><h3>Red flags</h3>'
            '<p class="muted">Spotted anywhere in what the user says, from any point of any '
            "dialogue, when said to be happening now: a denied, past or asked-about sign does "
            "not count (ConText triggers in red_flags.yaml). Phrases are templates: "
            "(a|b) is a choice, [a] is optional, and other words may come between.</p>"
            '<table><tr><th>concept</th><th>jumps to</th><th>trigger phrases</th>'
            f'<th>examples</th></tr>{"".join(rows)}</table></section>')


def _triage_section(content: Content) -> str:
    rows = []
    for path in triage_paths(content):
        answers = "".join(
            f"<li>{escape(content.nodes[q].ask or q)} <b>{escape(a)}</b></li>"
            for q, a in path.answers
        )
        end = content.nodes.get(path.end)
        if path.loops:
            result = f'<span class="flag-text">loops back to {escape(path.end)}</span>'
        elif end is None or end.outcome is None:
            result = f'<span class="flag-text">{escape(path.end)}: gives no advice</span>'
        else:
            result = (f'<span class="outcome" style="background:{OUTCOME_COLOURS[end.outcome]}">'
                      f"{OUTCOME_LABELS[end.outcome]}</span>")
        rows.append(f"<tr><td>{escape(path.answers[0][0])}</td><td><ol>{answers}</ol></td>"
                    f'<td><a href="#answer-{escape(path.end)}">{escape(path.end)}</a></td>'
                    f"<td>{result}</td></tr>")
    return ('<section id="triage"><h3>Triage paths</h3>'
            '<p class="muted">Each way through the triage questions, answer by answer. A red '
            "flag said at any question still jumps straight to its advice.</p>"
            '<table><tr><th>starts at</th><th>answers</th><th>ends at</th><th>outcome</th></tr>'
            f'{"".join(rows)}</table></section>')


def _benchmark_section(benchmark: Benchmark | None, current_hash: str) -> str:
    head = '<section id="benchmark"><h2>5. What the tests say</h2>'
    if benchmark is None:
        return head + "<p>No benchmark run recorded.</p></section>"
    if benchmark.problem:
        return head + f'<p class="flag-text">{escape(benchmark.problem)}</p></section>'
    if benchmark.content_hash == current_hash:
        status = '<p class="ok">Measured on exactly this content.</p>'
    else:
        status = ('<p class="flag-text stale">Stale: measured on different content '
                  f"({escape(benchmark.content_hash[:12])}); rerun the benchmarks.</p>")
    rows = "".join(f"<tr><td>{escape(str(name))}</td><td>{escape(_figure(value))}</td></tr>"
                   for name, value in benchmark.figures.items())
    return (head + f"<p>Last run {escape(benchmark.date)} on content "
            f"{escape(benchmark.content_hash[:12])}.</p>{status}"
            f"<table><tr><th>figure</th><th>value</th></tr>{rows}</table></section>")


def _figure(value: object) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def _sign_off_section(content: Content, sources, sign_off: SignOff) -> str:
    documents = "".join(
        f"<tr><td>{escape(s.key)}</td><td>{escape(str(s.path or s.document))}</td>"
        f'<td class="hash">{escape(s.sha256 or "not found")}</td></tr>'
        for s in sources.values()
    )
    return (
        '<section id="sign-off"><h2>6. Sign-off</h2><table class="sign-off">'
        f'<tr><th>content</th><td colspan="2">{escape(str(content.folder))}</td></tr>'
        f'<tr><th>content hash</th><td colspan="2" class="hash">'
        f"{escape(sign_off.content_hash)}</td></tr>"
        f'<tr><th>generated</th><td colspan="2">{escape(sign_off.generated)}</td></tr>'
        f'<tr><th>voiceskill</th><td colspan="2">{escape(sign_off.version)}</td></tr>'
        f"{documents}</table>"
        '<p>I have read every answer, path and red flag above against its source.</p>'
        '<p class="signature">Name and role: <span></span></p>'
        '<p class="signature">Signature: <span></span> Date: <span></span></p></section>'
    )


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>voiceskill review sheet {hash}</title>
<style>{css}</style></head>
<body><header><h1>voiceskill: review sheet</h1>
<p class="muted">Content {hash}, generated {generated}. Everything the skill can say and every
path it can take, beside the paragraph of the source each answer rests on.</p></header>
{body}
</body></html>
"""

CSS = """
body { font: 15px/1.45 sans-serif; color: #202124; margin: 1.5em 0.5em; }
header, section { max-width: 78em; margin: 0 auto; }
section#picture { max-width: none; }
h1 { font-size: 1.6em; margin-bottom: 0; } h2 { border-bottom: 2px solid #dadce0;
       margin-top: 2em; } h3 { margin: 0.6em 0 0.3em; }
a { color: #1a56b8; }
.muted { color: #5f6368; font-size: 0.9em; }
.ok { color: #137333; }
.red, .flag-text { color: #c5221f; font-weight: bold; }
svg.tree { width: 100%; height: auto; display: block; }
.swatch { display: inline-block; padding: 0 0.5em; border: 1px solid #9aa0a6;
          border-radius: 3px; margin-right: 0.2em; }
.swatch.question { background: #d2e3fc; } .swatch.chat { background: #f1f3f4; }
ul.flags li { color: #c5221f; margin: 0.2em 0; }
article.answer { display: grid; grid-template-columns: 1fr 1fr; gap: 1em;
                 border-top: 1px solid #dadce0; padding: 0.6em 0; break-inside: avoid; }
article.answer.flagged { border-left: 5px solid #c5221f; padding-left: 0.6em; }
.part { display: inline-block; min-width: 3.5em; font-size: 0.8em; color: #5f6368;
        text-transform: uppercase; }
.kind { font-size: 0.75em; font-weight: normal; color: #5f6368; }
.outcome { font-size: 0.8em; padding: 0.1em 0.5em; border-radius: 3px; font-weight: normal;
           white-space: nowrap; }
blockquote.citation { margin: 0 0 0.6em; padding: 0.3em 0.7em; background: #f8f9fa;
                      border-left: 3px solid #9aa0a6; font-size: 0.9em; }
blockquote.citation.missing { background: #fce8e6; border-left-color: #c5221f; }
table { border-collapse: collapse; width: 100%; margin: 0.5em 0; }
th, td { border: 1px solid #dadce0; padding: 0.3em 0.5em; text-align: left;
         vertical-align: top; }
tr.uncited td { background: #fce8e6; }
td.phrases { font-size: 0.8em; color: #3c4043; max-width: 40em; }
td ol { margin: 0; padding-left: 1.3em; }
.hash { font-family: monospace; word-break: break-all; }
.signature span { display: inline-block; min-width: 18em; border-bottom: 1px solid #202124;
                  margin-right: 1em; }
@media print { body { max-width: none; font-size: 11pt; } a { color: inherit; }
               section { break-before: auto; } }
"""
