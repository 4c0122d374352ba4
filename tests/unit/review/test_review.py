"""`voiceskill review` / `graph`: the clinician's sheet, checked in a real browser (Chromium)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path

import graphviz
import pytest

from voiceskill import review
from voiceskill.cli import main
from voiceskill.content import default_folder, load_content
from voiceskill.content.model import RedFlag
from voiceskill.review.sources import DEFAULT_SOURCE_DIR

CHROMIUM = Path("/usr/bin/chromium")
SEED_DOCUMENT = "twitch-vs-spasm.txt"
MAX_PAGE_BYTES = 1_000_000


def _missing(reason: str) -> None:
    """Skip on a developer machine; in CI a missing part is a failure, never a skip."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must have it: run scripts/setup)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def seed_dir() -> Path:
    shared = os.environ.get("VOICESKILL_SHARED")
    folder = Path(shared) / "seed" if shared else DEFAULT_SOURCE_DIR
    if not (folder / SEED_DOCUMENT).is_file():
        _missing(f"source article {folder / SEED_DOCUMENT} not found (set VOICESKILL_SHARED)")
    return folder


@pytest.fixture(scope="module")
def chromium() -> Path:
    if not CHROMIUM.is_file():
        _missing(f"{CHROMIUM} not installed (Debian package chromium, see scripts/setup)")
    return CHROMIUM


def run_chromium(chromium: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    command = [
        str(chromium), "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
        *args,
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


class Elements(HTMLParser):
    """Every element of a page as (tag, attributes, all the text inside it)."""

    VOID = frozenset({"br", "meta", "hr", "img", "input", "link", "wbr"})

    def __init__(self, page: str):
        super().__init__()
        self.elements: list[tuple[str, dict, list[str]]] = []
        self._open: list[tuple[str, list[str]]] = []
        self.feed(page)
        self.close()

    def handle_starttag(self, tag, attrs):
        texts: list[str] = []
        self.elements.append((tag, dict(attrs), texts))
        if tag not in self.VOID:
            self._open.append((tag, texts))

    def handle_startendtag(self, tag, attrs):
        self.elements.append((tag, dict(attrs), []))

    def handle_endtag(self, tag):
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data):
        for _, texts in self._open:
            texts.append(data)

    def by_id(self, element_id: str) -> tuple[str, dict, list[str]]:
        found = [e for e in self.elements if e[1].get("id") == element_id]
        assert found, f"no element with id {element_id!r}"
        return found[0]

    def flags(self, kind: str) -> list[str]:
        return [self.text_of(e) for e in self.elements
                if "flag" in e[1].get("class", "").split() and e[1].get("data-flag") == kind]

    @staticmethod
    def text_of(element) -> str:
        return "".join(element[2])


def write_review(tmp_path: Path, capsys, *args: str) -> str:
    out = tmp_path / "review.html"
    assert main(["review", "-o", str(out), *args]) == 0, capsys.readouterr().err
    return out.read_text(encoding="utf-8")


# --- the page in a real browser -------------------------------------------------------------


def test_page_renders_in_chromium_without_errors_or_outside_requests(
        tmp_path, capsys, seed_dir, chromium):
    page = write_review(tmp_path, capsys, "--source-dir", str(seed_dir))
    assert len(page.encode()) <= MAX_PAGE_BYTES
    elements = Elements(page).elements
    assert not [e for e in elements if e[0] in ("script", "link", "iframe", "img", "object")]
    links = [a.get("href") or a.get("xlink:href") for _, a, _ in elements
             if a.get("href") or a.get("xlink:href")]
    assert links and all(link.startswith("#") for link in links), links
    assert not [a for _, a, _ in elements if "src" in a]
    assert "url(" not in page and "@import" not in page and "@font-face" not in page

    shot = tmp_path / "review.png"
    done = run_chromium(chromium, tmp_path / "profile", f"--screenshot={shot}",
                        "--window-size=1400,3000", (tmp_path / "review.html").as_uri())
    console = [line for line in done.stderr.splitlines()
               if "CONSOLE" in line or "Uncaught" in line]
    assert not console, console
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert int.from_bytes(png[16:20], "big") == 1400


def test_the_browser_dom_holds_every_node_of_the_yaml(tmp_path, capsys, seed_dir, chromium):
    write_review(tmp_path, capsys, "--source-dir", str(seed_dir))
    done = run_chromium(chromium, tmp_path / "profile", "--dump-dom",
                        (tmp_path / "review.html").as_uri())
    dom = Elements(done.stdout)
    titles = {text.strip() for tag, _, texts in dom.elements if tag == "title" for text in texts}
    for node_id in load_content().nodes:
        dom.by_id(f"answer-{node_id}")  # its answer card
        dom.by_id(f"graph-{node_id}")  # its shape in the picture
        assert node_id in titles


# --- the picture ----------------------------------------------------------------------------


def graph_of(dot: str) -> tuple[set[str], Counter]:
    """Node names and (tail, head, label) edges, as Graphviz itself parses the DOT."""
    parsed = json.loads(graphviz.Source(dot).pipe(format="json"))
    names = {obj["_gvid"]: obj["name"] for obj in parsed["objects"]}
    edges = Counter(
        (names[e["tail"]], names[e["head"]], e.get("label", "")) for e in parsed.get("edges", [])
    )
    return set(names.values()), edges


def test_graph_has_exactly_the_yaml_nodes_and_edges(tmp_path, capsys):
    out = tmp_path / "tree.dot"
    assert main(["graph", "-o", str(out)]) == 0
    nodes, edges = graph_of(out.read_text())
    content = load_content()
    assert nodes == {*content.nodes, review.START, review.ANYWHERE}
    expected = Counter({(review.START, content.start): 1})
    expected.update((review.ANYWHERE, target) for target in content.routes.values())
    expected.update((review.ANYWHERE, flag.goto) for flag in content.red_flags)
    expected.update((node.id, target) for node in content.nodes.values()
                    for target in node.on.values())
    assert Counter((tail, head) for tail, head, _ in edges.elements()) == expected
    for flag in content.red_flags:  # red-flag jumps are drawn from anywhere, named
        assert edges[(review.ANYWHERE, flag.goto, f"red flag: {flag.name}")] == 1
    for node in content.nodes.values():
        for intent, target in node.on.items():
            assert edges[(node.id, target, intent)] >= 1


def test_graph_writes_svg_png_and_dot_and_refuses_other_names(tmp_path, capsys):
    for name, magic in (("t.svg", b"<?xml"), ("t.png", b"\x89PNG"), ("t.dot", b"digraph")):
        assert main(["graph", "-o", str(tmp_path / name)]) == 0
        assert (tmp_path / name).read_bytes().startswith(magic)
    capsys.readouterr()
    assert main(["graph", "-o", str(tmp_path / "t.jpg")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ".svg, .png or .dot" in err
    assert not (tmp_path / "t.jpg").exists()


@pytest.mark.parametrize("args", [
    ["review", "--content", "/nonexistent/intents", "-o", "{tmp}/r.html"],
    ["review", "--source-dir", "/nonexistent/seed", "-o", "{tmp}/r.html"],
    ["review", "-o", "{tmp}/no/such/folder/r.html"],
    ["graph", "-o", "{tmp}/no/such/folder/t.svg"],
    ["graph", "--content", "/nonexistent/intents", "-o", "{tmp}/t.svg"],
])
def test_bad_paths_get_one_line_and_status_2(tmp_path, capsys, args):
    status = main([arg.replace("{tmp}", str(tmp_path)) for arg in args])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and err.startswith("voiceskill: "), err
    assert "Traceback" not in err


# --- flaws are shown, not refused -----------------------------------------------------------


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


def test_broken_copy_shows_dangling_source_uncited_paragraph_and_unreachable_node(
        tmp_path, capsys, seed_dir):
    before = Elements(write_review(tmp_path, capsys, "--source-dir", str(seed_dir)))
    copy = tmp_path / "intents"
    shutil.copytree(default_folder(), copy)
    dialogue = copy / "dialogue.yaml"
    # the only citation of article ¶3 now points at a paragraph the article does not have
    edit(dialogue, "{doc: article, paragraph: 3}", "{doc: article, paragraph: 99}")
    edit(dialogue, "  doctor_visit: doctor_visit\n", "  doctor_visit: medication\n")
    policy = load_content().sources["safety_policy"]["document"]
    edit(dialogue, f"document: {policy}", "document: no-such-policy.md")
    after = Elements(write_review(tmp_path, capsys, "--content", str(copy),
                                  "--source-dir", str(seed_dir)))

    assert "uncited" not in before.by_id("para-article-3")[1].get("class", "")
    assert "uncited" in after.by_id("para-article-3")[1]["class"]
    assert any("¶3" in text for text in after.flags("uncited"))

    cites = [e for e in after.elements if e[1].get("data-cite") == "article-99"]
    assert cites and "missing" in cites[0][1]["class"]
    assert any("twitch_vs_spasm" in text and "¶99" in text for text in after.flags("citation"))
    assert not before.flags("citation")

    assert not before.flags("unreachable")
    assert any("doctor_visit" in text for text in after.flags("unreachable"))
    assert "flagged" in after.by_id("answer-doctor_visit")[1]["class"]
    assert "(unreachable)" in after.text_of(after.by_id("graph-doctor_visit"))

    assert any("no-such-policy.md" in text for text in after.flags("source-missing"))
    assert not any("no-such-policy.md" in text for text in before.flags("source-missing"))


def test_every_content_string_is_escaped(tmp_path, capsys, seed_dir):
    copy = tmp_path / "intents"
    shutil.copytree(default_folder(), copy)
    edit(copy / "dialogue.yaml", 'say: "Okay. What else would you like to know?"',
         'say: "<script>alert(1)</script> & <b>bold</b>"')
    page = write_review(tmp_path, capsys, "--content", str(copy), "--source-dir", str(seed_dir))
    assert "<script" not in page and "<b>bold</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in page


# --- red flags, triage, benchmark -----------------------------------------------------------


def page_for(content, benchmark=None) -> Elements:
    sign_off = review.SignOff(content.fingerprint, "2026-01-01 00:00 UTC", "test")
    return Elements(review.review_html(content, {}, benchmark, sign_off))


def test_red_flag_table_shows_phrases_and_each_kind_of_example():
    content = load_content()
    flag = RedFlag("stiff_neck", "emergency", "Did you say a stiff neck?", ("stiff neck",), {
        "present": ["my neck is stiff and I have a fever"], "negated": ["no stiff neck"],
        "question": ["can a spasm give you a stiff neck?"], "past": ["a stiff neck last year"]},
        templates=("(stiff|rigid) neck",),
        together_templates=(("(fever|burning up)",), ("light hurts", "can't look down")))
    page = page_for(dataclasses.replace(content, red_flags=(flag,)))
    table = page.text_of(page.by_id("red-flags"))
    for text in ("stiff_neck", "(stiff|rigid) neck", "my neck is stiff and I have a fever",
                 "said together, part 1: (fever|burning up)",
                 "said together, part 2: light hurts / can't look down",
                 "no stiff neck", "can a spasm give you a stiff neck?", "a stiff neck last year"):
        assert text in table


def test_triage_paths_follow_the_answers_and_cover_every_answer():
    content = load_content()
    paths = review.triage_paths(content)
    covered = set()
    for path in paths:
        node_id = path.answers[0][0]
        for question, answer in path.answers:
            assert question == node_id
            covered.add((question, answer))
            node_id = content.nodes[question].on[answer]
        assert node_id == path.end and not path.loops
        assert content.nodes[path.end].outcome is not None
    asked = {(n.id, a) for n in content.nodes.values() if n.kind == "question" for a in n.on}
    assert covered == asked


def test_benchmark_figures_are_shown_with_date_and_marked_stale_on_other_content(tmp_path):
    content = load_content()
    assert review.read_benchmark(tmp_path / "latest.json") is None
    assert "No benchmark run recorded" in page_for(content).text_of(
        page_for(content).by_id("benchmark"))
    record = tmp_path / "latest.json"
    figures = {"intent_accuracy": 0.9312, "emergency_recall": 1.0, "false_alarms": 2}
    for digest, stale in ((content.fingerprint, False), ("0" * 64, True)):
        record.write_text(json.dumps(
            {"date": "2026-01-02T03:04", "content_hash": digest, "figures": figures}))
        page = page_for(content, review.read_benchmark(record))
        text = page.text_of(page.by_id("benchmark"))
        assert "2026-01-02T03:04" in text and "0.9312" in text and "false_alarms" in text
        assert ("Stale" in text) == stale
        assert ("exactly this content" in text) != stale
    record.write_text("{not json")
    page = page_for(content, review.read_benchmark(record))
    assert "cannot read" in page.text_of(page.by_id("benchmark"))


def test_a_triage_loop_is_shown_not_lost(tmp_path):
    copy = tmp_path / "intents"
    shutil.copytree(default_folder(), copy)
    edit(copy / "dialogue.yaml", "on: {yes: advice_medicine_or_diet, no: advice_self_care}",
         "on: {yes: advice_medicine_or_diet, no: triage_weakness}")
    content = load_content(copy, strict=False)
    assert any("loops with no exit" in problem.message for problem in content.problems)
    loops = [path for path in review.triage_paths(content) if path.loops]
    assert loops and loops[0].end == loops[0].answers[0][0]
    page = page_for(content)
    assert f"loops back to {loops[0].end}" in page.text_of(page.by_id("triage"))


def test_installed_from_a_wheel_sources_are_not_looked_for_inside_site_packages(tmp_path):
    """D15: REPO came from __file__, so an installed skill looked for the article in
    <prefix>/lib/shared/seed and for the benchmark in <prefix>/lib/python3.x/bench."""
    site = tmp_path / "prefix" / "lib" / "python3" / "site-packages"
    package = Path(review.__file__).parents[1]  # voiceskill/, with review/ in it
    shutil.copytree(package, site / "voiceskill", ignore=shutil.ignore_patterns("__pycache__"))
    code = ("from voiceskill.review.sources import BENCHMARK, DEFAULT_SOURCE_DIR\n"
            "print(BENCHMARK)\nprint(DEFAULT_SOURCE_DIR)\n")
    env = {key: value for key, value in os.environ.items() if key != "VOICESKILL_SHARED"}
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "PYTHONPATH": str(site)}, cwd=tmp_path, timeout=120,
                         check=True)
    benchmark, source_dir = run.stdout.splitlines()
    assert benchmark == "None"
    assert source_dir == "../shared/seed"
    shared = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**env, "PYTHONPATH": str(site), "VOICESKILL_SHARED": "/x"},
                            cwd=tmp_path, timeout=120, check=True)
    assert shared.stdout.splitlines()[1] == "/x/seed"
