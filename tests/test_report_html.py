"""Tests for the HTML run report (pyperunner.report.html) on real run folders.

Pipelines run for real (inline and thread executors); the report is parsed with the standard
library's ``html.parser`` and, where Chromium is installed, opened in headless Chromium through
Playwright to check that its parts are visible and coloured.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from pyperunner import Pipeline, Runner, Status, Task, run
from pyperunner.report import html
from pyperunner.report.html import write_report
from pyperunner.report.image import STATUS_COLORS
from pyperunner.runfolder import RUN_FILE

SECTIONS = ("dag", "tasks", "timeline", "environment")
EVIL_PARAM = "<script>alert('param')</script> & a<b"
EVIL_ERROR = "bad value <script>alert('boom')</script>"
VOID_TAGS = {"meta", "br", "hr", "img", "input", "link", "source", "wbr", "col"}
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


# --------------------------------------------------------------------------- tasks


class Node(Task):
    """Returns its tag."""

    @run
    def run(self, data, note="plain"):
        return self.tag


class Boom(Task):
    """Raises an error whose message holds markup."""

    @run
    def run(self, data):
        raise ValueError(EVIL_ERROR)


class Nap(Task):
    """Sleeps 0.2 s, so two naps in parallel overlap in time."""

    @run
    def run(self, data):
        time.sleep(0.2)
        return self.tag


# --------------------------------------------------------------------------- a tiny DOM


@dataclass
class Element:
    tag: str
    attrs: dict[str, str]
    children: list[Element] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)

    def iter(self) -> Iterator[Element]:
        yield self
        for child in self.children:
            yield from child.iter()

    def find_all(self, tag: str | None = None, **attrs: str) -> list[Element]:
        return [
            e
            for e in self.iter()
            if (tag is None or e.tag == tag) and all(e.attrs.get(k) == v for k, v in attrs.items())
        ]

    def find(self, tag: str | None = None, **attrs: str) -> Element:
        found = self.find_all(tag, **attrs)
        assert found, f"no <{tag}> with {attrs}"
        return found[0]

    def text(self) -> str:
        return "".join(self.texts) + "".join(c.text() for c in self.children)


class _TreeBuilder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Element("#document", {})
        self.stack = [self.root]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = Element(tag, {k: v or "" for k, v in attrs})
        self.stack[-1].children.append(element)
        if tag not in VOID_TAGS:
            self.stack.append(element)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.stack[-1].children.append(Element(tag, {k: v or "" for k, v in attrs}))

    def handle_endtag(self, tag: str) -> None:
        for depth in range(len(self.stack) - 1, 0, -1):
            if self.stack[depth].tag == tag:
                del self.stack[depth:]
                return

    def handle_data(self, data: str) -> None:
        self.stack[-1].texts.append(data)


def parse(path: Path) -> Element:
    builder = _TreeBuilder()
    builder.feed(path.read_text(encoding="utf-8"))
    builder.close()
    return builder.root


def section(doc: Element, name: str) -> Element:
    return doc.find("section", id=name)


def rows(doc: Element) -> dict[str, Element]:
    """Table rows of the tasks section by task name."""
    return {tr.attrs["data-task"]: tr for tr in section(doc, "tasks").find_all("tr") if tr.attrs}


def cells(row: Element) -> list[str]:
    return [" ".join(td.text().split()) for td in row.find_all("td")]


COLUMNS = ["task", "status", "why", "duration", "cached", "key", "size", "attempts", "error"]


def cell(row: Element, column: str) -> str:
    return cells(row)[COLUMNS.index(column)]


# --------------------------------------------------------------------------- runs


def diamond(executor: str = "inline", naps: bool = False) -> Pipeline:
    """source -> (left, right: fails) -> join (CANT_RUN); optionally two independent naps."""
    source = Node("source", note=EVIL_PARAM)
    left = Node("left")(source)
    right = Boom("right")(source)
    Node("join")([left, right])
    roots = [source]
    if naps:
        roots += [Nap("first nap"), Nap("second nap")]
    return Pipeline("diamond <demo>", roots)


def run_pipeline(tmp_path: Path, pipeline: Pipeline, executor: str = "inline") -> Path:
    runner = Runner(
        tmp_path / "data", tmp_path / "log", executor=executor, process_limit=4, console=False
    )
    return runner.run(pipeline).run_dir


@pytest.fixture
def first_run(tmp_path: Path) -> Path:
    """Report of a diamond's first run: everything runs, one task fails, its child can't run."""
    run_dir = run_pipeline(tmp_path, diamond())
    return write_report(run_dir)


@pytest.fixture
def rerun(tmp_path: Path) -> Path:
    """Report of the diamond's second run: what succeeded before is cached now."""
    run_pipeline(tmp_path, diamond())
    return write_report(run_pipeline(tmp_path, diamond()))


@pytest.fixture
def parallel_run(tmp_path: Path) -> Path:
    """Report of a thread-executor run of the diamond plus two independent 0.2 s naps."""
    return write_report(run_pipeline(tmp_path, diamond(naps=True), executor="thread"))


TASKS = ["Node(source)", "Node(left)", "Boom(right)", "Node(join)"]


# --------------------------------------------------------------------------- structure


def test_report_is_written_in_the_run_folder(tmp_path: Path) -> None:
    run_dir = run_pipeline(tmp_path, diamond())
    path = write_report(run_dir)
    assert path == Path(run_dir) / "report.html"
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_the_four_sections_exist(first_run: Path) -> None:
    doc = parse(first_run)
    for name in SECTIONS:
        section(doc, name)
    assert section(doc, "dag").find_all("svg")
    assert section(doc, "tasks").find_all("table")
    assert section(doc, "timeline").find_all("svg")
    assert section(doc, "environment").find_all("dl")


def test_header_names_pipeline_run_folder_and_counts(first_run: Path) -> None:
    header = " ".join(parse(first_run).find("header").text().split())
    assert "diamond <demo>" in header
    assert first_run.parent.name in header
    assert "SUCCESS 2" in header and "FAILURE 1" in header and "CANT_RUN 1" in header


def test_every_task_is_in_the_graph_and_the_table(first_run: Path) -> None:
    doc = parse(first_run)
    boxes = {a.attrs["data-task"]: a for a in section(doc, "dag").find_all("a")}
    assert sorted(boxes) == sorted(TASKS)
    assert sorted(rows(doc)) == sorted(TASKS)
    for name, box in boxes.items():
        assert name in box.find("title").text()
        assert name in [t.text() for t in box.find_all("text")]
    edges = [
        p.attrs["data-edge"] for p in section(doc, "dag").find_all("path", **{"class": "edge"})
    ]
    assert sorted(edges) == sorted(
        [
            "Node(source) -> Node(left)",
            "Node(source) -> Boom(right)",
            "Node(left) -> Node(join)",
            "Boom(right) -> Node(join)",
        ]
    )


def test_links_from_boxes_lead_to_table_rows(first_run: Path) -> None:
    doc = parse(first_run)
    ids = {e.attrs["id"] for e in doc.iter() if "id" in e.attrs}
    table_rows = rows(doc)
    for box in section(doc, "dag").find_all("a"):
        target = box.attrs["href"]
        assert target.startswith("#task-") and target[1:] in ids
        assert table_rows[box.attrs["data-task"]].attrs["id"] == target[1:]
        assert re.fullmatch(r"[a-z0-9_-]+", target[1:])


def test_statuses_and_their_colours(first_run: Path) -> None:
    doc = parse(first_run)
    expected = {
        "Node(source)": Status.SUCCESS,
        "Node(left)": Status.SUCCESS,
        "Boom(right)": Status.FAILURE,
        "Node(join)": Status.CANT_RUN,
    }
    for box in section(doc, "dag").find_all("a"):
        status = expected[box.attrs["data-task"]]
        assert box.attrs["data-status"] == status.value
        assert box.find("rect").attrs["fill"] == STATUS_COLORS[status]
        assert status.value in box.find("text", **{"class": "detail"}).text()
    for name, row in rows(doc).items():
        assert cell(row, "status") == expected[name].value
        chip = row.find("span", **{"class": "chip"})
        assert STATUS_COLORS[expected[name]] in chip.attrs["style"]


def test_failure_shows_error_and_traceback_in_details(first_run: Path) -> None:
    row = rows(parse(first_run))["Boom(right)"]
    details = row.find("details")
    assert "traceback" in details.find("summary").text()
    trace = details.find("pre").text()
    assert "Traceback (most recent call last)" in trace
    assert f"ValueError: {EVIL_ERROR}" in trace
    assert EVIL_ERROR in cell(row, "error")
    assert "upstream task Boom(right) failed" in cell(rows(parse(first_run))["Node(join)"], "error")


def test_reason_column_says_why_each_task_ran(first_run: Path) -> None:
    table = rows(parse(first_run))
    assert cell(table["Node(source)"], "why") == "no cached result"
    assert cell(table["Node(left)"], "why") == "upstream task Node(source) runs"
    assert cell(table["Boom(right)"], "why") == "upstream task Node(source) runs"


def test_table_columns(first_run: Path) -> None:
    table = rows(parse(first_run))
    source = table["Node(source)"]
    assert cell(source, "cached") == "no"
    assert re.fullmatch(r"[0-9a-f]{16,}", cell(source, "key"))
    assert re.fullmatch(r"\d+ B|\d+\.\d (KiB|MiB)", cell(source, "size"))
    assert cell(source, "attempts") == "1"
    assert re.fullmatch(r"\d+ ms|\d+\.\d s", cell(source, "duration"))
    assert cell(table["Node(join)"], "duration") == "-"


def test_cached_rerun_marks_cached_tasks(rerun: Path) -> None:
    doc = parse(rerun)
    table = rows(doc)
    for name in ("Node(source)", "Node(left)"):
        assert cell(table[name], "status") == "CACHED"
        assert cell(table[name], "cached") == "yes"
    assert cell(table["Boom(right)"], "cached") == "no"
    assert cell(table["Boom(right)"], "why") == "no cached result"
    assert cell(table["Node(join)"], "why") == "upstream task Boom(right) runs"
    boxes = {a.attrs["data-task"]: a.find("rect") for a in section(doc, "dag").find_all("a")}
    assert boxes["Node(source)"].attrs["fill"] == STATUS_COLORS[Status.CACHED]
    assert "stroke-dasharray" in boxes["Node(source)"].attrs
    assert "stroke-dasharray" not in boxes["Boom(right)"].attrs
    bars = {r.attrs["data-task"] for r in section(doc, "timeline").find_all("rect")}
    assert bars == {"Boom(right)"}  # cached tasks did not run


def test_timeline_shows_parallel_tasks_overlapping(parallel_run: Path) -> None:
    timeline = section(parse(parallel_run), "timeline")
    bars = {
        r.attrs["data-task"]: (float(r.attrs["x"]), float(r.attrs["x"]) + float(r.attrs["width"]))
        for r in timeline.find_all("rect", **{"class": "bar"})
    }
    assert {"Nap(first nap)", "Nap(second nap)", "Boom(right)"} <= set(bars)
    (a0, a1), (b0, b1) = bars["Nap(first nap)"], bars["Nap(second nap)"]
    overlap = min(a1, b1) - max(a0, b0)
    assert overlap > 0.5 * min(a1 - a0, b1 - b0), bars
    ticks = [t.text() for t in timeline.find_all("text", **{"class": "tick"})]
    assert ticks[0].startswith("0") and all(t.endswith(" s") for t in ticks)
    assert len(ticks) >= 3


def test_environment_lists_the_run_info(parallel_run: Path) -> None:
    env = section(parse(parallel_run), "environment")
    terms = [dt.text() for dt in env.find_all("dt")]
    for term in ("host", "user", "platform", "python", "pyperunner", "executor", "git commit"):
        assert term in terms
    values = dict(zip(terms, (dd.text() for dd in env.find_all("dd")), strict=True))
    assert values["executor"] == "thread"
    assert values["process limit"] == "4"
    packages = env.find("details")
    assert "pyperunner" in packages.text() and "networkx" in packages.text()


# --------------------------------------------------------------------------- safety


def test_no_external_urls(parallel_run: Path) -> None:
    raw = parallel_run.read_text(encoding="utf-8")
    assert "http://" not in raw and "https://" not in raw
    doc = parse(parallel_run)
    for element in doc.iter():
        for name in ("src", "href", "xlink:href", "action", "poster", "data"):
            if name in element.attrs:
                assert element.attrs[name].startswith("#"), (element.tag, element.attrs)
    assert not doc.find_all("link") and not doc.find_all("img") and not doc.find_all("iframe")
    assert re.findall(r"url\(([^)]*)\)", raw) == ["#arrow"] * len(re.findall(r"url\(", raw))
    assert "@import" not in raw


def test_user_strings_are_escaped(first_run: Path) -> None:
    raw = first_run.read_text(encoding="utf-8")
    assert "<script" not in raw
    assert "&lt;script&gt;alert(&#x27;param&#x27;)&lt;/script&gt; &amp; a&lt;b" in raw
    assert "&lt;script&gt;alert(&#x27;boom&#x27;)&lt;/script&gt;" in raw
    doc = parse(first_run)
    assert not doc.find_all("script") and not doc.find_all("b")
    assert f"note={EVIL_PARAM}" in rows(doc)["Node(source)"].text()
    assert doc.find("title").text() == f"diamond <demo> · {first_run.parent.name}"


def test_missing_run_yaml_renders_what_the_journal_tells(tmp_path: Path) -> None:
    run_dir = run_pipeline(tmp_path, diamond())
    recorded = {name: cell(r, "status") for name, r in rows(parse(write_report(run_dir))).items()}
    assert set(recorded.values()) == {"SUCCESS", "FAILURE", "CANT_RUN"}
    (Path(run_dir) / RUN_FILE).unlink()  # as when the runner is killed
    doc = parse(write_report(run_dir))
    assert {name: cell(r, "status") for name, r in rows(doc).items()} == recorded
    assert "run.yaml is missing" in " ".join(doc.find("header").text().split())
    shutil.rmtree(tmp_path / "data")  # nothing stored: the journal alone tells
    doc = parse(write_report(run_dir))
    assert {name: cell(r, "status") for name, r in rows(doc).items()} == recorded
    (Path(run_dir) / "events.jsonl").unlink()  # and without the journal either
    doc = parse(write_report(run_dir))
    assert {cell(r, "status") for r in rows(doc).values()} == {"NOT_STARTED"}
    assert sorted(rows(doc)) == sorted(TASKS)
    assert not section(doc, "timeline").find_all("rect")
    for name in SECTIONS:
        section(doc, name)


def test_report_is_a_pure_function_of_the_run_folder(tmp_path: Path) -> None:
    run_dir = Path(run_pipeline(tmp_path, diamond()))
    before = sorted(p.name for p in run_dir.iterdir())
    first = write_report(run_dir).read_bytes()
    moved = tmp_path / "elsewhere" / run_dir.name
    shutil.copytree(run_dir, moved)
    assert write_report(moved).read_bytes() == first
    assert sorted(p.name for p in run_dir.iterdir()) == sorted({*before, "report.html"})


def test_report_does_not_import_matplotlib(tmp_path: Path) -> None:
    run_dir = run_pipeline(tmp_path, diamond())
    code = (
        "import sys; from pyperunner.report.html import write_report; "
        f"write_report({str(run_dir)!r}); "
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sixty_tasks_render_fast(tmp_path: Path) -> None:
    layers = [[Node(f"L{layer}-{i}") for i in range(10)] for layer in range(6)]
    for layer in range(1, 6):
        for i, node in enumerate(layers[layer]):
            node([layers[layer - 1][i], layers[layer - 1][(3 * i + 1) % 10]])
    run_dir = run_pipeline(tmp_path, Pipeline("sixty", layers[0]))
    start = time.perf_counter()
    path = write_report(run_dir)
    assert time.perf_counter() - start < 1.0
    doc = parse(path)
    assert len(section(doc, "dag").find_all("a")) == 60
    svg = section(doc, "dag").find("svg")  # wider than a page: it scrolls before labels shrink
    assert float(svg.attrs["style"].split(":")[1].rstrip("px")) >= 0.75 * float(svg.attrs["width"])
    assert len(rows(doc)) == 60
    assert len(section(doc, "timeline").find_all("rect", **{"class": "bar"})) == 60


# --------------------------------------------------------------------------- in a browser


def chromium_path() -> str:
    """The Chromium executable; skip without one, but fail in CI where it must be installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not found: CI must install it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


def sync_playwright() -> Any:
    """Playwright's context manager; skip without the package, but fail in CI."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed: CI must install the test extras")
        pytest.skip("playwright is not installed (pip install playwright)")
    return sync_playwright()


def count_colour(image: Image.Image, hex_colour: str) -> int:
    """How many pixels of ``image`` have exactly the colour ``#rrggbb``."""
    rgb = tuple(int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    colours = image.getcolors(maxcolors=image.width * image.height)
    return sum(n for n, colour in colours if colour == rgb)


def test_report_in_headless_chromium(parallel_run: Path, tmp_path: Path) -> None:
    executable = chromium_path()
    shot = tmp_path / "report.png"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            requests: list[str] = []
            page.on("request", lambda request: requests.append(request.url))
            page.goto(parallel_run.as_uri())
            for selector in ("#dag svg", "#tasks table", "#timeline svg", "#environment"):
                element = page.locator(selector).first
                assert element.is_visible(), selector
                box = element.bounding_box()
                assert box is not None and box["width"] > 50 and box["height"] > 50, selector
            for name in ("Boom(right)", "Nap(first nap)"):
                assert page.locator(f'#dag a[data-task="{name}"]').first.is_visible()
            page.screenshot(path=str(shot), full_page=True)
            page.locator('#dag a[data-task="Boom(right)"]').first.click()
            assert page.evaluate("location.hash") == "#task-boom-right"
            assert requests and all(url.startswith("file:") for url in requests), requests
        finally:
            browser.close()
    image = Image.open(shot).convert("RGB")
    assert image.width >= 1400 and image.height > 1000
    for status in (Status.SUCCESS, Status.FAILURE, Status.CANT_RUN):
        assert count_colour(image, STATUS_COLORS[status]) > 500, status


def _edge_points_through_every_row(parent, child, rows):
    """The plain form of ``html._edge_points``: look at every row."""
    x1, y1 = parent[0] + parent[2] / 2, parent[1] + parent[3]
    x2, y2 = child[0] + child[2] / 2, child[1]
    points = [(x1, y1)]
    for top, bottom, row in rows:
        if y1 < top and bottom < y2:
            share = (top - y1) / (y2 - y1)
            x = html._gap_x(row, x1 + (x2 - x1) * share)
            points += [(x, top), (x, bottom)]
    return [*points, (x2, y2 - 1)]


@given(
    layers=st.lists(st.lists(st.floats(0, 900), min_size=1, max_size=4), min_size=2, max_size=12),
    data=st.data(),
)
def test_an_edge_passes_the_same_rows_as_through_every_row(layers, data) -> None:
    """The SVG edges find the layers between their ends by bisection (a long chain's edges
    each looked at every layer); they must pass the same gaps."""
    rects = {
        (i, j): (x, i * 80.0, 60.0, 40.0 + (j % 2) * 5)
        for i, xs in enumerate(layers)
        for j, x in enumerate(xs)
    }
    rows = html._rows(rects)
    parent = data.draw(st.sampled_from(sorted(n for n in rects if n[0] < len(layers) - 1)))
    child = data.draw(st.sampled_from(sorted(n for n in rects if n[0] > parent[0])))
    assert html._edge_points(rects[parent], rects[child], rows) == (
        _edge_points_through_every_row(rects[parent], rects[child], rows)
    )


def test_a_layer_too_wide_to_draw_is_one_box_per_group_and_the_table_keeps_every_task(
    tmp_path: Path,
) -> None:
    """As in status.png: 200 like children side by side would make an SVG 30000 px wide."""
    source = Node("source")
    for i in range(200):
        (Boom if i == 7 else Node)(f"fold-{i}")(source)
    report = write_report(run_pipeline(tmp_path, Pipeline("wide", [source])))
    doc = parse(report)
    dag = section(doc, "dag")
    assert float(dag.find("svg").attrs["width"]) < 1000
    [group] = dag.find_all("a", **{"class": "node group"})
    assert group.attrs["data-group"] == "Node(fold-0 ... fold-199), 199 tasks"
    assert group.attrs["data-status"] == "SUCCESS"
    assert "199 SUCCESS" in group.text()
    assert group.attrs["href"] == "#" + rows(doc)["Node(fold-0)"].attrs["id"]
    assert sorted(a.attrs["data-task"] for a in dag.find_all("a", **{"class": "node"})) == [
        "Boom(fold-7)",
        "Node(source)",
    ]
    assert len(rows(doc)) == 201
    edges = {p.attrs["data-edge"] for p in dag.find_all("path", **{"class": "edge"})}
    assert edges == {
        "Node(source) -> Boom(fold-7)",
        "Node(source) -> Node(fold-0 ... fold-199), 199 tasks",
    }
