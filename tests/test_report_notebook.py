"""Tests for what notebooks show of pipelines, plans, results and failures
(pyperunner.report.notebook, through the objects' ``_repr_html_`` and ``_repr_mimebundle_``).

What a real Jupyter kernel shows of them is tested by running the example notebook
(test_notebook.py); here each display is checked directly, on the features pipeline (58 tasks,
2 failures), on one with markup everywhere, and on runs of 5,000 tasks.
"""

from __future__ import annotations

import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from conftest import EVIL, FAILING, feature_pipeline, marked_pipeline, table_rows

from pyperunner import (
    Pipeline,
    PipelineFailedError,
    PipelineResult,
    Runner,
    Status,
    Task,
    TaskOutputUnavailableError,
    TaskRun,
    run,
)
from pyperunner.report.layout import STATUS_COLORS
from pyperunner.report.notebook import MAX_ROWS
from pyperunner.report.svg import escape
from pyperunner.store import Store
from pyperunner.text import user_frame

SVG = "{http://www.w3.org/2000/svg}"
WILL_RUN, CACHED = STATUS_COLORS[Status.RUNNING], STATUS_COLORS[Status.CACHED]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The features pipeline run once; then planned with Clean(s3)'s threshold changed; and the
    pipeline with markup everywhere, run and planned."""
    root = tmp_path_factory.mktemp("notebook")
    runner = Runner(root / "data", root / "log", executor="inline", console=False)
    first = runner.run(feature_pipeline())
    changed = feature_pipeline(0.7)
    plan = runner.plan(changed)
    marked = marked_pipeline()
    marked_result = runner.run(marked)
    return {
        "first": first,
        "changed": changed,
        "plan": plan,
        "marked": marked,
        "marked_result": marked_result,
        "marked_plan": runner.plan(marked),
    }


def svg_boxes(svg: str) -> dict[str, tuple[str, str]]:
    """Each box of a drawing by the name it shows: its fill colour and its tooltip."""
    found = {}
    for group in ET.fromstring(svg).iter(f"{SVG}g"):
        rect, texts = group.find(f"{SVG}rect"), group.findall(f"{SVG}text")
        if rect is not None and texts:
            found[texts[0].text] = (rect.get("fill"), group.find(f"{SVG}title").text)
    return found


def fan_out(count: int) -> Pipeline:
    """One Load feeding ``count`` Fits, each feeding a Score: ``2 * count + 1`` tasks."""
    load = Load("all")
    for i in range(count):
        Score(f"s{i}")(Fit(f"f{i}", i=i)(load))
    return Pipeline("big", [load])


class Load(Task):
    @run
    def run(self):
        return 1


class Fit(Task):
    @run
    def run(self, data, i=0):
        return i


class Score(Task):
    @run
    def run(self, data):
        return data[0]


# --------------------------------------------------------------------------- pipelines


def test_a_pipeline_shows_its_graph_as_svg_and_as_html_under_a_header() -> None:
    pipeline = feature_pipeline()
    bundle = pipeline._repr_mimebundle_()
    assert bundle["text/plain"] == "<Pipeline 'features': 58 tasks, 7 roots>" == repr(pipeline)
    svg, html = bundle["image/svg+xml"], bundle["text/html"]
    assert svg in html and html == pipeline._repr_html_()
    header = re.sub(r"<[^>]+>", "", html[: html.index("<svg")])
    assert "features · 58 tasks · 7 roots" in header
    drawn = svg_boxes(svg)
    # the 42 features side by side are too wide for a notebook: like tasks are one box
    assert "Feature(s0-len ... s6-sum), 42 tasks" in drawn
    assert {f"Source(s{i})" for i in range(7)} <= set(drawn)
    assert len(drawn) == 7 + 7 + 1 + 2
    assert "plan" not in header  # none was made


def test_after_runner_plan_each_box_says_whether_it_runs_and_why(runs: dict[str, Any]) -> None:
    html = runs["changed"]._repr_html_()
    header = re.sub(r"<[^>]+>", "", html[: html.index("<svg")])
    assert "plan: 11 will run47 cached" in header
    drawn = svg_boxes(html[html.index("<svg") : html.index("</svg>") + 6])
    fill, tip = drawn["Clean(s3)"]
    assert fill == WILL_RUN and tip.endswith("will run: parameters changed: threshold")
    assert drawn["Source(s3)"] == (CACHED, "Source(s3)\nrows=100\ncached")
    assert drawn["Train(model)"][0] == WILL_RUN
    assert "will run: upstream task" in drawn["Train(model)"][1]
    group = drawn["Feature(s0-len ... s6-sum), 42 tasks"]  # s3-*, and the 2 that failed
    assert group[0] == WILL_RUN  # some of them run
    assert group[1].startswith("42 tasks:\nFeature(s0-len)\n")
    svg = runs["changed"]._repr_mimebundle_()["image/svg+xml"]
    text = [element.text for element in ET.fromstring(svg).iter(f"{SVG}text")]
    assert "8 will run · 34 cached" in text and "will run" in text and "cached" in text


def test_a_plan_for_another_pipeline_is_not_drawn(runs: dict[str, Any]) -> None:
    pipeline = feature_pipeline()
    pipeline._plan = runs["marked_plan"]  # as if the pipeline changed since it was planned
    drawn = svg_boxes(pipeline._repr_mimebundle_()["image/svg+xml"])
    assert {fill for fill, _ in drawn.values()} == {STATUS_COLORS[Status.NOT_STARTED]}


def test_a_pipeline_that_cannot_run_shows_why_instead_of_a_graph() -> None:
    load = Load("x")
    pipeline = Pipeline("twice", [load])
    Score("s")(load), Score("s")(load)  # wired after it was added: found by graph()
    bundle = pipeline._repr_mimebundle_()
    assert "image/svg+xml" not in bundle
    assert "two different tasks are named &#x27;Score(s)&#x27;" in bundle["text/html"]
    assert repr(pipeline) == "<Pipeline 'twice': 3 tasks, 1 root>"


def test_a_pipeline_of_5000_tasks_is_drawn_as_a_few_boxes() -> None:
    pipeline = fan_out(2500)
    bundle = pipeline._repr_mimebundle_()
    assert set(svg_boxes(bundle["image/svg+xml"])) == {
        "Load(all)",
        "Fit(f0 ... f2499), 2500 tasks",
        "Score(s0 ... s2499), 2500 tasks",
    }
    assert "5,001 tasks · 1 root" in bundle["text/html"]
    assert len(bundle["text/html"]) < 10_000


# --------------------------------------------------------------------------- plans


def test_a_plan_lists_what_will_run_and_why_and_counts_the_cached(runs: dict[str, Any]) -> None:
    plan = runs["plan"]
    assert repr(plan) == "<Plan 'features': 11 of 58 tasks to run, 47 cached>"
    html = plan._repr_html_()
    assert "11 will run" in html and "47 cached" in html and "of 58 tasks" in html
    # Clean(s3), and the two features that failed in the first run; what depends on them
    assert "why: 3 no cached result · 8 an upstream task runs" in html
    rows = table_rows(html)
    assert rows[0] == ["task that will run", "why"]
    assert ["Clean(s3)", "parameters changed: threshold"] in rows
    assert ["Feature(s2-max)", "no cached result"] in rows
    assert [row[0] for row in rows[1:]] == plan.to_run
    folded = re.search(r"<details><summary>47 cached tasks</summary><div>(.*?)</div>", html)
    assert folded is not None and folded.group(1).split(", ") == plan.cached


# --------------------------------------------------------------------------- results


def test_a_result_shows_counts_failures_first_and_a_link_to_its_report(
    runs: dict[str, Any],
) -> None:
    result = runs["first"]
    assert repr(result) == (
        f"<PipelineResult 'features' run {result.run_dir.name}: 54 SUCCESS, 2 FAILURE, 2 CANT_RUN>"
    )
    html = result._repr_html_()
    for status, count in [(Status.FAILURE, 2), (Status.CANT_RUN, 2), (Status.SUCCESS, 54)]:
        assert f"background:{STATUS_COLORS[status]};" in html
        assert f">{count} {status.value}</span>" in html
    report = result.run_dir / "report.html"
    assert f'href="{report.as_uri()}"' in html
    rows = table_rows(html)
    assert rows[0] == ["task", "status", "duration", "why it ran", "output", "error"]
    assert [row[0] for row in rows[1:5]] == [
        "Feature(s2-max)",
        "Feature(s5-std)",
        "Report(final)",
        "Train(model)",
    ]
    assert rows[1][1:4] == ["FAILURE", rows[1][2], "upstream task Clean(s2) runs"]
    assert rows[1][5] == "ValueError: no max for s2-max"
    source = next(row for row in rows if row[0] == "Source(s0)")
    assert source[1] == "SUCCESS" and source[4] == "numpy.ndarray (100, 3) float64"
    assert len(rows) == 1 + 58


def test_a_failed_run_shows_a_red_summary_with_each_error_and_the_users_frame(
    runs: dict[str, Any],
) -> None:
    html = runs["first"]._repr_html_()
    box = html[html.index('class="pyperunner-failures"') : html.index("<table")]
    assert "✗ 2 tasks failed" in box
    for tag in FAILING:
        kind = tag.partition("-")[2]
        assert f"<b>Feature({tag})</b>: " in box
        assert f"ValueError: no {kind} for {tag}" in box
    frame = 'raise ValueError(f"no {kind} for {self.tag}")'
    assert box.count(escape(frame)) == 2 * 2  # the frame, and in the folded traceback
    assert re.search(r"File &quot;.*conftest\.py&quot;, line \d+, in run", box)
    assert "<summary>2 tasks could not run</summary><div>Report(final), Train(model)</div>" in box


def test_a_result_of_5000_tasks_shows_its_first_rows_and_how_many_more(tmp_path: Path) -> None:
    pipeline = fan_out(2500)
    names = [task.name for task in pipeline.tasks()]
    runs = {name: TaskRun(Status.CACHED) for name in names}
    runs["Fit(f7)"] = TaskRun(Status.FAILURE, error="ValueError: seven")
    result = PipelineResult("big", Store(tmp_path), dict.fromkeys(names, "key"), runs)
    html = result._repr_html_()
    rows = table_rows(html)
    assert len(rows) == 1 + MAX_ROWS
    assert rows[1][:2] == ["Fit(f7)", "FAILURE"]
    assert f"… and {5001 - MAX_ROWS:,} more tasks" in html
    assert len(html) < 200_000


def test_a_task_run_and_the_error_of_a_task_without_output(runs: dict[str, Any]) -> None:
    result = runs["first"]
    failed = result.runs["Feature(s2-max)"]
    assert repr(failed).startswith("<TaskRun FAILURE in ")
    assert repr(failed).endswith("(upstream task Clean(s2) runs): ValueError: no max for s2-max>")
    assert repr(result.runs["Source(s0)"]).endswith("(no cached result)>")
    html = failed._repr_html_()
    assert ">FAILURE</span>" in html and "ran: upstream task Clean(s2) runs" in html
    assert "✗ ValueError: no max for s2-max" in html and "<summary>traceback</summary>" in html
    assert "output: numpy.ndarray (100, 3) float64" in result.runs["Source(s0)"]._repr_html_()
    with pytest.raises(TaskOutputUnavailableError) as raised:
        result["Feature(s2-max)"]
    html = raised.value._repr_html_()
    assert "✗ Feature(s2-max) has no output: it ended FAILURE" in html
    assert "ValueError: no max for s2-max" in html
    assert escape('raise ValueError(f"no {kind} for {self.tag}")') in html


def test_the_error_of_a_failed_run_shows_its_red_summary(runs: dict[str, Any]) -> None:
    with pytest.raises(PipelineFailedError) as raised:
        runs["first"].raise_on_failure()
    html = raised.value._repr_html_()
    assert "✗ pipeline &#x27;features&#x27; failed: 54 SUCCESS, 2 FAILURE, 2 CANT_RUN" in html
    assert html.index("Feature(s2-max)") < html.index("Feature(s5-std)")
    assert f"report: {runs['first'].run_dir / 'report.html'}" in html


# --------------------------------------------------------------------------- markup, imports


def test_markup_in_a_run_is_shown_as_text_in_every_display(runs: dict[str, Any]) -> None:
    result, plan = runs["marked_result"], runs["marked_plan"]
    name = f"Marked({EVIL})"
    with pytest.raises(TaskOutputUnavailableError) as unavailable:
        result[name]
    with pytest.raises(PipelineFailedError) as failed:
        result.raise_on_failure()
    bundle = runs["marked"]._repr_mimebundle_()
    shown = {
        "pipeline svg": bundle["image/svg+xml"],
        "pipeline html": bundle["text/html"],
        "plan": plan._repr_html_(),
        "result": result._repr_html_(),
        "task run": result.runs[name]._repr_html_(),
        "no output": unavailable.value._repr_html_(),
        "failed run": failed.value._repr_html_(),
    }
    for what, markup in shown.items():
        assert EVIL not in markup, what
        assert escape(EVIL) in markup, what
    ET.fromstring(bundle["image/svg+xml"])
    assert svg_boxes(bundle["image/svg+xml"])[name][1].startswith(f"{name}\nnote='{EVIL}'")


def test_importing_pyperunner_imports_no_ipython_nor_the_displays() -> None:
    code = (
        "import sys, pyperunner\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] == 'IPython' or m.endswith(\n"
        "    ('report.notebook', 'report.svg'))]\n"
        "print(loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_the_users_frame_is_the_last_frame_outside_libraries(tmp_path: Path) -> None:
    library = Path(re.__file__)
    user = tmp_path / "analysis.py"
    user.write_text("x = 1\nfit(x)\n")
    traceback = (
        "Traceback (most recent call last):\n"
        f'  File "{user}", line 1, in run\n'
        "    x = 1\n"
        f'  File "{user}", line 2, in helper\n'
        f'  File "{library}", line 10, in compile\n'
        "    raise error\n"
        "re.error: bad\n"
    )
    assert user_frame(traceback) == f'File "{user}", line 2, in helper\n  fit(x)'
    only_library = f'  File "{library}", line 10, in compile\n    raise error\n'
    assert user_frame(only_library) == f'File "{library}", line 10, in compile\n  raise error'
    assert user_frame(None) == user_frame("no frames") == ""
