"""The ``pyperunner ui`` pages in headless Chromium: a real server process over real runs.

The runs (the feature pipeline twice, the second with a parameter changed, and a run with markup
everywhere) are made once for the module; each test drives a fresh page through Playwright and
checks the DOM: the runs list, a run page (the checks report.html passes too, see ``run_page``),
a comparison, the cache, and a running pipeline followed live.
"""

from __future__ import annotations

import os
import select
import subprocess
import sys
import textwrap
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import run_page
from conftest import EVIL, Served, marked_pipeline, run_inline
from playwright.sync_api import expect

from pyperunner.store import Store

pytest.importorskip("uvicorn")


@pytest.fixture(scope="module")
def server(feature_runs: tuple[Path, Path]) -> Iterator[Served]:
    """The UI over the feature runs and, newest, the marked run; the store also holds a result
    no run uses (as one a deleted run made)."""
    root = feature_runs[0].parent.parent
    run_inline(root, marked_pipeline())
    Store(root / "data").save("Orphan(old)", "0" * 32, list(range(1000)), {})
    served = Served([str(root / "log")], root)
    yield served
    served.stop()


def run_url(server: Served, folder: Path) -> str:
    return f"{server.url}#/run/{urllib.parse.quote(folder.name, safe='')}"


@pytest.fixture
def run_opened(page: Any, server: Served, feature_runs: tuple[Path, Path]) -> Any:
    """The first feature run's page."""
    page.goto(run_url(server, feature_runs[0]))
    page.wait_for_selector("svg.graph g.task")
    return page


# --------------------------------------------------------------------------- the runs


def test_the_runs_list_shows_every_run_newest_first_and_filters(page: Any, server: Served) -> None:
    page.goto(server.url)
    rows = page.locator("table.runs tbody tr")
    expect(rows).to_have_count(3)
    assert rows.evaluate_all("rows => rows.map(r => r.querySelector('.run-link').textContent)") == [
        f"marked {EVIL}",
        "features",
        "features",
    ]
    expect(rows.nth(1).locator(".chip")).to_have_text(
        ["2 failure", "2 can't run", "7 success", "47 cached"]
    )
    expect(rows.nth(1).locator(".state")).to_have_text("finished")
    page.locator("input.run-search").fill("feat")
    expect(rows).to_have_count(2)
    page.locator("select.run-state").select_option("running")
    expect(page.locator(".runs-list")).to_have_text("No run matches.")
    page.locator("select.run-state").select_option("finished")
    expect(rows).to_have_count(2)


def test_a_run_opens_from_the_list(page: Any, server: Served, feature_runs) -> None:
    page.goto(server.url)
    page.locator(f'tr[data-run="{feature_runs[0].name}"] a.run-link').click()
    page.wait_for_selector("svg.graph g.task")
    assert page.evaluate("decodeURIComponent(location.hash)") == f"#/run/{feature_runs[0].name}"
    run_page.check_header(page)


# --------------------------------------------------------------------------- a run


def test_the_graph_fits_the_frame_on_open_with_every_group_visible(run_opened: Any) -> None:
    run_page.check_fits_on_open(run_opened)


def test_pan_and_zoom(run_opened: Any) -> None:
    run_page.check_pan_and_zoom(run_opened)


def test_a_group_expands_on_click_and_folds_again(run_opened: Any) -> None:
    run_page.check_group_expands_and_folds(run_opened)


def test_a_group_of_alike_tasks_unfolds_in_rows_in_name_order(run_opened: Any) -> None:
    run_page.check_alike_group_unfolds_in_rows_in_name_order(run_opened)


def test_no_two_boxes_overlap(run_opened: Any) -> None:
    run_page.check_no_boxes_overlap(run_opened)


def test_a_failed_task_shows_its_traceback_and_its_printed_line(run_opened: Any) -> None:
    run_page.check_failed_task_panel(run_opened)


def test_the_task_table_sorts_and_filters(run_opened: Any) -> None:
    run_page.check_table(run_opened)


def test_the_timeline_shows_when_each_task_ran(run_opened: Any) -> None:
    run_page.check_timeline(run_opened)


def test_the_output_preview_and_its_download(run_opened: Any, server: Served) -> None:
    link = run_page.check_output_preview(run_opened)
    status, body = server.get(link)
    assert status == 200 and len(body) > 100


def test_markup_from_a_run_is_shown_as_text(page: Any, server: Served) -> None:
    page.goto(server.url)
    page.locator("table.runs tbody tr").first.locator("a.run-link").click()
    run_page.check_markup_is_text(page, EVIL)


# --------------------------------------------------------------------------- two runs, the cache


def test_two_runs_compared_name_the_changed_parameter_first(page: Any, server: Served) -> None:
    page.goto(server.url)
    page.locator("input.run-search").fill("features")
    expect(page.locator("table.runs tbody tr")).to_have_count(2)
    for box in page.locator("input.pick").all():
        box.check()
    page.locator("button.compare-button").click()
    rows = page.locator("table.compare tbody tr")
    expect(rows).to_have_count(58)
    first = rows.first
    expect(first.locator("td.name")).to_have_text("Clean(s3)")
    expect(first.locator(".change")).to_have_text("parameters changed: threshold")
    expect(first.locator("td.reason")).to_have_text("parameters changed: threshold")
    expect(page.locator("table.compare tr.changed")).to_have_count(9)
    train = page.locator('table.compare tr[data-name="Train(model)"]')
    expect(train.locator(".change")).to_contain_text("upstream changed: Feature(s3-mean)")
    same = page.locator('table.compare tr[data-name="Clean(s0)"]')
    expect(same.locator(".chip")).to_have_text(["success", "cached"])
    page.locator("input.only-changed").check()
    expect(rows).to_have_count(9 + 47)  # changed, or status differs (cached now)


def test_the_cache_shows_entries_by_task_and_the_runs_using_them(
    page: Any, server: Served, feature_runs
) -> None:
    page.goto(server.url)
    page.locator('a[data-nav="cache"]').click()
    changed = page.locator('details.cache-task[data-task="Clean(s3)"]')
    expect(changed.locator("tbody tr")).to_have_count(2)
    expect(changed.locator("summary")).to_contain_text("2 entries")
    used = changed.locator("tbody tr .run-link")
    assert sorted(used.all_text_contents()) == sorted(run.name for run in feature_runs)
    shared = page.locator('details.cache-task[data-task="Clean(s0)"] tbody tr .run-link')
    expect(shared).to_have_count(2)
    orphan = page.locator('details.cache-task[data-task="Orphan(old)"]')
    expect(orphan.locator("tbody tr .badge")).to_have_text("gc would remove")
    expect(orphan.locator("tbody tr")).to_contain_text("none")  # no run uses it
    expect(page.locator(".garbage-total")).to_contain_text("in 1 entry")
    page.locator("input.only-garbage").check()
    expect(page.locator("details.cache-task")).to_have_count(1)
    expect(page.locator("details.cache-task")).to_have_attribute("data-task", "Orphan(old)")


# --------------------------------------------------------------------------- live

LIVE_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from pyperunner import Pipeline, Runner, Task, run

    class Gate(Task):
        @run
        def run(self, started, release):
            with open(started, "w") as fifo:  # the test reads this: the task runs
                fifo.write("running")
            with open(release) as fifo:  # until the test writes here
                return fifo.read()

    class After(Task):
        @run
        def run(self, data):
            return data

    root, started, release = sys.argv[1:]
    gate = Gate("gate", started=started, release=release)
    After("end")(gate)
    Runner(root + "/data", root + "/log", executor="inline", console=False).run(
        Pipeline("live", [gate])
    )
    """
)


def test_a_running_pipeline_updates_in_place(page: Any, tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    os.mkfifo(started)
    os.mkfifo(release)
    (tmp_path / "log").mkdir()
    script = tmp_path / "live.py"
    script.write_text(LIVE_SCRIPT)
    served = Served([str(tmp_path / "log")], tmp_path)
    running = subprocess.Popen(
        [sys.executable, str(script), str(tmp_path), str(started), str(release)]
    )
    try:
        reading = os.open(started, os.O_RDONLY | os.O_NONBLOCK)
        try:
            assert select.select([reading], [], [], 120)[0], "the gate task never ran"
        finally:
            os.close(reading)
        page.goto(served.url)
        page.locator('table.runs tr[data-state="running"] a.run-link').click()
        gate = page.locator('g.task[data-name="Gate(gate)"]')
        expect(gate).to_have_attribute("data-status", "RUNNING")
        pulse = gate.locator("rect.box").evaluate("rect => getComputedStyle(rect).animationName")
        assert pulse == "pulse"  # a running task's border pulses
        expect(page.locator(".run-head .state")).to_have_text("running")
        page.evaluate("window.notReloaded = true")
        page.locator("input.name-filter").fill("gate")  # what a user typed stays through updates
        with open(release, "w") as fifo:
            fifo.write("done")
        expect(page.locator('g.task[data-name="After(end)"]')).to_have_attribute(
            "data-status", "SUCCESS", timeout=30_000
        )
        expect(gate).to_have_attribute("data-status", "SUCCESS")
        expect(page.locator(".run-head .state")).to_have_text("finished")
        expect(page.locator(".run-head .counts .chip")).to_have_text(["2 success"])
        expect(page.locator(".task-table tbody tr")).to_have_count(1)
        expect(page.locator('.task-table tr[data-name="Gate(gate)"]')).to_have_attribute(
            "data-status", "SUCCESS"
        )
        expect(page.locator("input.name-filter")).to_have_value("gate")
        expect(page.locator("input.name-filter")).to_be_focused()
        assert page.evaluate("window.notReloaded") is True
        assert running.wait(timeout=60) == 0
    finally:
        if running.poll() is None:
            running.kill()
            running.wait()
        served.stop()


def test_a_run_that_is_not_there_says_why(page: Any, server: Served) -> None:
    page.goto(f"{server.url}#/run/no-such-run")
    expect(page.locator(".error-box")).to_contain_text("404: no such run")
