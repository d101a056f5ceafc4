"""``report.html``: the UI's run page as one file, opened from ``file://`` in headless Chromium.

The runs are real (the inline executor, built once for the module); the page is driven through
Playwright and checked from the DOM with the checks the UI's run page passes (``run_page``).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest
import run_page
from conftest import EVIL, Clean, Report, Source, marked_pipeline, run_inline

from pyperunner import Pipeline
from pyperunner.report.html import DATA_ID, REPORT_FILE, write_report
from pyperunner.report.rundata import run_document

SVG_NS = "http://www.w3.org/2000/svg"


@pytest.fixture(scope="module")
def report(feature_runs: tuple[Path, Path]) -> Path:
    """The report the runner wrote for the feature pipeline's first run."""
    return feature_runs[0] / REPORT_FILE


@pytest.fixture(scope="module")
def marked_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return run_inline(tmp_path_factory.mktemp("marked"), marked_pipeline()) / REPORT_FILE


@pytest.fixture
def opened(page: Any, report: Path) -> Any:
    """The report open in a page that may load nothing but the file itself."""
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto(report.as_uri())
    page.wait_for_selector("svg.graph g.task")
    yield page
    assert requests == [report.as_uri()]


def embedded(path: Path) -> Any:
    """The run document a report carries."""
    raw = path.read_text(encoding="utf-8")
    match = re.search(rf'<script type="application/json" id="{DATA_ID}">(.*?)</script>', raw, re.S)
    assert match is not None
    return json.loads(match.group(1))


# --------------------------------------------------------------------------- the file


def test_every_run_writes_a_report_carrying_its_run_with_logs(feature_runs, report) -> None:
    assert report.exists()
    data = embedded(report)
    assert data == run_document(feature_runs[0], logs=True)
    failed = next(task for task in data["tasks"] if task["name"] == "Feature(s2-max)")
    assert "computing s2-max went wrong" in failed["log"]


def test_a_cached_task_shows_the_preview_of_the_run_that_computed_it(feature_runs) -> None:
    first, second = (
        {t["name"]: t for t in embedded(run / REPORT_FILE)["tasks"]} for run in feature_runs
    )
    assert second["Source(s0)"]["status"] == "CACHED"
    assert second["Source(s0)"]["preview"] == first["Source(s0)"]["preview"]
    assert first["Source(s0)"]["preview"]["shape"] == [100, 3]


def test_the_report_is_one_file_that_loads_nothing(report: Path) -> None:
    raw = report.read_text(encoding="utf-8")
    assert not re.search(r"<(script|img|iframe)[^>]*\ssrc=", raw)
    assert not re.search(r"<link[^>]*stylesheet", raw) and "@import" not in raw
    assert "static/" not in raw
    assert re.findall(r"https?://[^'\"\s]*", raw) == [SVG_NS]  # a name, never fetched
    assert "dagre" in raw and "class TaskGraph" in raw  # the layout library and pages inlined


def test_no_string_from_a_run_can_end_the_data_script(marked_report: Path) -> None:
    raw = marked_report.read_text(encoding="utf-8")
    assert "<img" not in raw
    assert len(re.findall("</script>", raw)) == len(re.findall("<script", raw))
    assert f"Marked({EVIL})" in [task["name"] for task in embedded(marked_report)["tasks"]]


def test_write_report_writes_it_again_from_the_folder(feature_runs, report) -> None:
    """As ``pyperunner report RUN`` does, with run.yaml read back (or the journal, once run.yaml
    is gone, as when a runner is killed)."""
    first = report.read_bytes()
    assert write_report(feature_runs[0]) == report
    assert report.read_bytes() == first
    outcome = feature_runs[0] / "run.yaml"
    saved = outcome.read_bytes()
    outcome.unlink()
    try:
        again = embedded(write_report(feature_runs[0]))
        statuses = {t["name"]: t["status"] for t in again["tasks"]}
    finally:
        outcome.write_bytes(saved)
        write_report(feature_runs[0])
    assert statuses == {t["name"]: t["status"] for t in embedded(report)["tasks"]}


def test_writing_a_report_does_not_import_matplotlib(feature_runs) -> None:
    code = (
        "import sys; from pyperunner.report.html import write_report; "
        f"write_report({str(feature_runs[1])!r}); "
        "assert 'matplotlib' not in sys.modules, 'matplotlib was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- in a browser


def test_header(opened: Any) -> None:
    run_page.check_header(opened)


def test_the_graph_fits_the_frame_on_open_with_every_group_visible(opened: Any) -> None:
    run_page.check_fits_on_open(opened)


def test_pan_and_zoom(opened: Any) -> None:
    run_page.check_pan_and_zoom(opened)


def test_a_group_expands_on_click_and_folds_again(opened: Any) -> None:
    run_page.check_group_expands_and_folds(opened)


def test_a_group_of_alike_tasks_unfolds_in_rows_in_name_order(opened: Any) -> None:
    run_page.check_alike_group_unfolds_in_rows_in_name_order(opened)


def test_no_two_boxes_overlap(opened: Any) -> None:
    run_page.check_no_boxes_overlap(opened)


def test_a_failed_task_shows_its_traceback_and_its_printed_line(opened: Any) -> None:
    run_page.check_failed_task_panel(opened)


def test_the_task_table_sorts_and_filters(opened: Any) -> None:
    run_page.check_table(opened)


def test_the_timeline_shows_when_each_task_ran(opened: Any) -> None:
    run_page.check_timeline(opened)


def test_the_output_preview_and_a_file_link_to_the_result(opened: Any, feature_runs) -> None:
    link = run_page.check_output_preview(opened)
    source = next(t for t in embedded(feature_runs[0] / REPORT_FILE)["tasks"] if t["tag"] == "s0")
    assert link.startswith("file:///") and unquote(link) == f"file://{source['result_path']}"


def test_tasks_side_by_side_are_drawn_in_name_order(page: Any, tmp_path: Path) -> None:
    """Twelve shards, each with its own child: each row reads Source(s0), Source(s1), ...,
    Source(s11), numbers by value, not as the names sort as text."""
    sources = [Source(f"s{i}", rows=2) for i in range(12)]
    Report("all")([Clean(f"s{i}")(source) for i, source in enumerate(sources)])
    folder = run_inline(tmp_path, Pipeline("shards", sources))
    page.goto((folder / REPORT_FILE).as_uri())
    page.wait_for_selector("svg.graph g.task")
    for kind in ("Source", "Clean"):
        row = run_page.boxes(page, f'g.task[data-name^="{kind}("]')
        assert len({round(b["top"]) for b in row}) == 1
        assert [b["name"] for b in sorted(row, key=lambda b: b["left"])] == [
            f"{kind}(s{i})" for i in range(12)
        ]


def test_a_small_graph_gets_a_frame_its_height(page: Any, marked_report: Path) -> None:
    """Two tasks side by side: the frame shrinks to the graph, drawn at its natural size, every
    box below the toolbar and inside the frame."""
    page.goto(marked_report.as_uri())
    page.wait_for_selector("svg.graph g.task")
    frame = page.locator("svg.graph").bounding_box()
    tools = page.locator(".graph-tools").bounding_box()
    assert frame["height"] < 300 and run_page.scale(page) == 1.0
    for box in run_page.boxes(page):
        assert tools["y"] + tools["height"] <= box["top"], box
        assert box["bottom"] <= frame["y"] + frame["height"], box


def test_markup_from_a_run_is_shown_as_text(page: Any, marked_report: Path) -> None:
    page.goto(marked_report.as_uri())
    run_page.check_markup_is_text(page, EVIL)
