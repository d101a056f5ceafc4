"""The example notebook, run top to bottom in a real Jupyter kernel: what its cells show.

``examples/notebook.ipynb`` sweeps ridge fits over a grid with tasks defined in its cells and the
process executor: it shows the pipeline, the plan, the run, a cached re-run, a re-run after a
task is edited, and a failure. The kernel is this interpreter's (a kernel spec of our own, first
on ``JUPYTER_PATH``), and Jupyter and IPython keep their files under ``tmp_path``.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import table_rows

from pyperunner.report.svg import escape

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "notebook.ipynb"
TASKS = 39  # Generate, Split, 18 fits, 18 scores, Best


def need(module: str) -> Any:
    """``module``, or skip without it (but fail in CI, which installs the test extras)."""
    try:
        return importlib.import_module(module)
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail(f"{module} is not installed: CI must install the test extras")
        pytest.skip(f"{module} is not installed (pip install -e '.[test]')")


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The notebook executed in a fresh folder (the cell tagged ``raises-exception`` may
    fail: its output is the error)."""
    nbformat, nbclient = need("nbformat"), need("nbclient")
    need("ipykernel")
    root = tmp_path_factory.mktemp("notebook")
    spec = root / "jupyter-path" / "kernels" / "python3"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "Python 3",
                "language": "python",
            }
        )
    )
    work = root / "work"
    work.mkdir()
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("JUPYTER_PATH", str(root / "jupyter-path"))
        for name in ("JUPYTER_DATA_DIR", "JUPYTER_RUNTIME_DIR", "JUPYTER_CONFIG_DIR", "IPYTHONDIR"):
            patch.setenv(name, str(root / name.lower()))
        client = nbclient.NotebookClient(
            notebook, kernel_name="python3", timeout=240, resources={"metadata": {"path": work}}
        )
        client.execute()
    assert (work / "data").is_dir() and (work / "log").is_dir()  # where the notebook ran
    return notebook


def outputs_by_tag(notebook: Any, *kinds: str) -> dict[str, list[dict[str, Any]]]:
    """Each tagged cell's outputs of the given kinds: their data (an error as it is)."""
    return {
        tag: [
            output.get("data") or output
            for output in cell.get("outputs", [])
            if output["output_type"] in kinds
        ]
        for cell in notebook.cells
        for tag in cell.metadata.get("tags", [])
    }


@pytest.fixture(scope="module")
def cells(executed: Any) -> dict[str, list[dict[str, Any]]]:
    """What each tagged cell shows as its value, or the error it ended in."""
    return outputs_by_tag(executed, "execute_result", "error")


@pytest.fixture(scope="module")
def live(executed: Any) -> dict[str, list[dict[str, Any]]]:
    """The displays each tagged cell made as it ran: a run's view, updated in place."""
    return outputs_by_tag(executed, "display_data")


def test_no_cell_writes_to_stderr(executed: Any) -> None:
    streams = [
        o
        for cell in executed.cells
        for o in cell.get("outputs", [])
        if o["output_type"] == "stream" and o["name"] == "stderr"
    ]
    assert not streams


def test_each_run_shows_its_live_view_and_a_failed_one_ends_in_red(
    live: dict[str, list[dict[str, Any]]],
) -> None:
    for tag in ("first-run", "cached-rerun", "edited-rerun"):
        (view,) = live[tag]
        assert "Run finished" in view["text/html"] and "Run failed" not in view["text/html"]
    (view,) = live["failed-run"]
    summary = view["text/html"][view["text/html"].index("Run failed") :]
    assert "Fit(d-2-p0.1)" in summary
    assert escape("negative dimensions are not allowed") in summary
    assert not live["pipeline"] and not live["plan"]  # showing an object is not a run


def html_of(cells: dict[str, list[dict[str, Any]]], tag: str) -> str:
    """The HTML the cell tagged ``tag`` shows (its only rich output)."""
    (data,) = cells[tag]
    return data["text/html"]


def statuses(markup: str) -> dict[str, str]:
    """Each task's status from a result's table of tasks."""
    rows = table_rows(markup)
    assert rows[0][:2] == ["task", "status"]
    return {row[0]: row[1] for row in rows[1:]}


def test_the_committed_notebook_has_no_outputs() -> None:
    notebook = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [cell for cell in notebook["cells"] if cell["cell_type"] == "code"]
    assert code and all(not cell["outputs"] and cell["execution_count"] is None for cell in code)


def test_the_pipeline_is_shown_as_its_graph(cells: dict[str, list[dict[str, Any]]]) -> None:
    (data,) = cells["pipeline"]
    assert data["text/plain"] == f"<Pipeline 'sweep': {TASKS} tasks, 1 root>"
    assert data["image/svg+xml"].startswith("<svg") and "<svg" in data["text/html"]
    assert f"{TASKS} tasks · 1 root" in data["text/html"]
    for box in ("Generate(curve)", "Split(30%)", "Best(model)", ", 18 tasks</text>"):
        assert box in data["image/svg+xml"]
    planned = html_of(cells, "planned-pipeline")
    assert f"{TASKS} will run" in planned and ">will run</text>" in planned


def test_the_plan_says_everything_will_run(cells: dict[str, list[dict[str, Any]]]) -> None:
    (data,) = cells["plan"]
    assert data["text/plain"] == f"<Plan 'sweep': {TASKS} of {TASKS} tasks to run, 0 cached>"
    rows = table_rows(data["text/html"])
    assert rows[0] == ["task that will run", "why"] and len(rows) == 1 + TASKS
    assert ["Generate(curve)", "no cached result"] in rows


def test_the_first_run_succeeds_and_the_best_fit_is_shown(
    cells: dict[str, list[dict[str, Any]]],
) -> None:
    (data,) = cells["first-run"]
    assert data["text/plain"].endswith(f": {TASKS} SUCCESS>")
    assert f">{TASKS} SUCCESS</span>" in data["text/html"]
    assert set(statuses(data["text/html"]).values()) == {"SUCCESS"}
    assert len(statuses(data["text/html"])) == TASKS
    assert 'href="file://' in data["text/html"] and "report.html</a>" in data["text/html"]
    best = cells["best"][0]["text/plain"]
    assert re.fullmatch(r"\{'degree': \d+, 'penalty': [\d.]+, 'error': [\d.]+\}", best)
    assert ">SUCCESS</span>" in html_of(cells, "best-run")


def test_running_again_takes_everything_from_the_cache(
    cells: dict[str, list[dict[str, Any]]],
) -> None:
    (data,) = cells["cached-rerun"]
    assert data["text/plain"].endswith(f": {TASKS} CACHED>")
    found = statuses(data["text/html"])
    assert len(found) == TASKS and set(found.values()) == {"CACHED"}


def test_an_edited_task_runs_again_with_what_depends_on_it_only(
    cells: dict[str, list[dict[str, Any]]],
) -> None:
    plan = cells["edited-plan"][0]
    assert plan["text/plain"] == f"<Plan 'sweep': 19 of {TASKS} tasks to run, 20 cached>"
    assert ["Evaluate(d3-p0.1)", "code changed"] in table_rows(plan["text/html"])
    found = statuses(html_of(cells, "edited-rerun"))
    assert len(found) == TASKS
    for name, status in found.items():
        edited = name.startswith(("Evaluate(", "Best("))
        assert status == ("SUCCESS" if edited else "CACHED"), name


def test_a_failed_task_is_shown_in_red_with_its_error_and_line(
    cells: dict[str, list[dict[str, Any]]],
) -> None:
    (data,) = cells["failed-run"]
    assert data["text/plain"].endswith(": 38 CACHED, 1 FAILURE, 2 CANT_RUN>")
    markup = data["text/html"]
    box = markup[markup.index('class="pyperunner-failures"') : markup.index("<table")]
    assert "✗ 1 task failed" in box
    assert "<b>Fit(d-2-p0.1)</b>: " in box
    assert "ValueError: negative dimensions are not allowed" in box
    assert "features = np.vander(x, degree + 1)" in box  # the notebook's line, not numpy's
    assert re.search(r"Cell In\[\d+\], line \d+, in fit", box)  # named as IPython names it
    assert "<summary>2 tasks could not run</summary><div>Best(model), Evaluate(d-2-p0.1)" in box
    found = statuses(markup)
    assert list(found.items())[:3] == [
        ("Fit(d-2-p0.1)", "FAILURE"),
        ("Best(model)", "CANT_RUN"),
        ("Evaluate(d-2-p0.1)", "CANT_RUN"),
    ]


def test_raise_on_failure_is_caught_and_shows_the_failure(
    cells: dict[str, list[dict[str, Any]]],
) -> None:
    (data,) = cells["raise"]
    assert data["text/plain"].startswith("PipelineFailedError(\"pipeline 'sweep' (run sweep_")
    markup = data["text/html"]
    assert "✗ pipeline &#x27;sweep&#x27; failed: 38 CACHED, 1 FAILURE, 2 CANT_RUN" in markup
    assert "<b>Fit(d-2-p0.1)</b>: " in markup
    assert escape("ValueError: negative dimensions are not allowed") in markup


def test_the_error_left_uncaught_shows_the_failures_not_pyperunners_frames(
    cells: dict[str, list[dict[str, Any]]],
) -> None:
    (error,) = cells["raises-exception"]
    assert error["ename"] == "PipelineFailedError"
    shown = [re.sub(r"\x1b\[[\d;]*m", "", line) for line in error["traceback"]]
    assert shown[0].startswith("PipelineFailedError: pipeline 'sweep' (run sweep_")
    assert shown[0].endswith("failed: 38 CACHED, 1 FAILURE, 2 CANT_RUN")
    assert shown[1] == "  Fit(d-2-p0.1): ValueError: negative dimensions are not allowed"
    assert re.fullmatch(r"      Cell In\[\d+\], line \d+, in fit", shown[2])
    assert shown[3] == "        features = np.vander(x, degree + 1)"
    assert not any("pyperunner" in line and "File" in line for line in shown)


def test_the_notebook_as_html_shows_its_graphs_and_tables_in_a_browser(
    executed: Any, tmp_path: Path, page: Any
) -> None:
    """What a reader of the executed notebook sees once nbconvert made it a page, offline."""
    exporter = need("nbconvert").HTMLExporter()
    body, _ = exporter.from_notebook_node(executed)
    (tmp_path / "notebook.html").write_text(body, encoding="utf-8")
    page.route(re.compile(r"^https?://"), lambda route: route.abort())  # no network
    page.goto((tmp_path / "notebook.html").as_uri())

    graphs = page.locator("svg:has(title)")
    assert graphs.count() >= 2  # the pipeline, then marked with its plan
    first = graphs.first
    first.scroll_into_view_if_needed()
    assert first.is_visible()
    box = first.bounding_box()
    assert box is not None and box["width"] > 300 and box["height"] > 100
    assert first.locator("text", has_text="Generate(curve)").count() == 1

    tables = page.locator("table:has(th:text-is('status'))")
    assert tables.count() >= 4  # each run's result
    failed = page.locator(".pyperunner-failures").first
    failed.scroll_into_view_if_needed()
    assert failed.is_visible() and "Fit(d-2-p0.1)" in failed.inner_text()
    row = tables.last.locator("tr").nth(1)  # failures first
    assert row.is_visible() and row.inner_text().split("\t")[:2] == ["Fit(d-2-p0.1)", "FAILURE"]
