"""How fast the run page draws: ``python benchmarks/ui_pages.py [--sizes 64 500 5000]``.

Three pipelines are run for real (inline executor, in a temporary folder): the feature pipeline
(7 sources -> a Clean each -> 6 features each -> Train -> Report), a grid search (10 datasets x
50 parameter sets -> an evaluation per dataset -> the best) and a fan-out (one source -> 5,000
tasks -> one gather). For each it prints:

- ``write``: what writing ``report.html`` costs (``write_report``, best of 5), per run and per
  task: as the runner does at the end of a run (the run's documents in memory) and as
  ``pyperunner report`` does (read from the folder);
- ``report``/``ui``: the first frame of the run page in headless Chromium, from ``file://`` and
  from a ``pyperunner ui`` server: milliseconds from the start of navigation to the first
  contentful paint and to the frame after the graph and the table are drawn (in the UI, of
  which the server took so long to send the run document);
- ``zoom``/``pan``: milliseconds per frame while 30 wheel steps (or 30 drag steps) are applied,
  folded as on open and again with every group expanded (``expand``: how long expanding took);
- ``sort``: sorting the task table by name, and filtering it by a name, to the next frame;
- ``runs``: the runs page over 1,000 runs (the feature run's folder linked 1,000 times): its
  first frame, the next page, and a search, each to the frame that shows the rows.

Run by hand; nothing here is a test. Needs Chromium (``/usr/bin/chromium``) and the test extras.
"""

from __future__ import annotations

import argparse
import functools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from pyperunner import Pipeline, Runner, Task, run, runfolder
from pyperunner.report.html import write_report

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking"]
VIEWPORT = {"width": 1400, "height": 900}


class Step(Task):
    """Returns a small number; every task of the benchmark is one."""

    @run
    def run(self, data=None, value=0):
        return value


def features() -> Pipeline:
    sources = [Step(f"s{i}") for i in range(7)]
    leaves = []
    for i, source in enumerate(sources):
        clean = Step(f"clean-s{i}")(source)
        leaves += [
            Step(f"s{i}-{kind}")(clean) for kind in ("mean", "max", "min", "std", "sum", "len")
        ]
    Step("report")(Step("train")(leaves))
    return Pipeline("features", sources)


def grid_search() -> Pipeline:
    datasets = [Step(f"d{i}") for i in range(10)]
    scores = [
        Step(f"eval-d{i}")([Step(f"d{i}-p{j}", value=j)(d) for j in range(50)])
        for i, d in enumerate(datasets)
    ]
    Step("best")(scores)
    return Pipeline("grid", datasets)


def fan_out() -> Pipeline:
    source = Step("source")
    Step("gather")([Step(f"w{i}", value=i)(source) for i in range(5000)])
    return Pipeline("fanout", [source])


PIPELINES: dict[int, Callable[[], Pipeline]] = {64: features, 500: grid_search, 5000: fan_out}

FRAME = "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => done())))"
FIRST_FRAME = """async () => {
    await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
    const paint = performance.getEntriesByName('first-contentful-paint')[0];
    const api = performance.getEntriesByType('resource').find(r => r.name.includes('/api/runs/'));
    return {fcp: paint ? paint.startTime : null, drawn: performance.now(),
            'of which the run document': api ? api.responseEnd - api.startTime : null};
}"""
STEPS = """async ([kind, n]) => {
    const svg = document.querySelector('svg.graph');
    const box = svg.getBoundingClientRect();
    const x = box.left + box.width / 2;
    const y = box.top + box.height / 2;
    const at = (dx) => ({clientX: x + dx, clientY: y, bubbles: true, button: 0, pointerId: 1});
    const frame = () => new Promise(done => requestAnimationFrame(done));
    await frame();
    const start = performance.now();
    if (kind === 'pan') svg.dispatchEvent(new PointerEvent('pointerdown', at(0)));
    for (let i = 0; i < n; i++) {
        svg.dispatchEvent(kind === 'zoom'
            ? new WheelEvent('wheel', {...at(0), deltaY: i % 2 ? 120 : -100})
            : new PointerEvent('pointermove', at(5 * i)));
        await frame();
    }
    if (kind === 'pan') svg.dispatchEvent(new PointerEvent('pointerup', at(5 * n)));
    return (performance.now() - start) / n;
}"""
TIMED = """async (action) => {
    const start = performance.now();
    action === 'expand' ? document.querySelector('button.expand-all').click()
        : action === 'sort' ? document.querySelector('button.sort[data-sort="name"]').click()
        : (() => { const input = document.querySelector('input.name-filter');
                   input.value = '7'; input.dispatchEvent(new Event('input')); })();
    await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
    return performance.now() - start;
}"""


def measure_page(browser: Any, url: str) -> dict[str, float]:
    """First frame, then zoom and pan folded, sorting and filtering, expanding, zoom and pan."""
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(url)
    page.wait_for_selector("svg.graph g.task, svg.graph g.group")
    page.wait_for_selector(".task-table tbody tr")
    figures = page.evaluate(FIRST_FRAME)
    figures["zoom"] = page.evaluate(STEPS, ["zoom", 30])
    figures["pan"] = page.evaluate(STEPS, ["pan", 30])
    figures["sort"] = page.evaluate(TIMED, "sort")
    figures["filter"] = page.evaluate(TIMED, "filter")
    if page.locator("button.expand-all").count():
        figures["expand"] = page.evaluate(TIMED, "expand")
        figures["boxes"] = page.locator("g.task").count()
        figures["zoom expanded"] = page.evaluate(STEPS, ["zoom", 30])
        figures["pan expanded"] = page.evaluate(STEPS, ["pan", 30])
    page.close()
    return figures


def timed(action: Callable[[], Any]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


RUNS_SHOWN = """async ([action, before]) => {
    const start = performance.now();
    if (action === 'next') document.querySelector('button.pager-next').click();
    if (action === 'search') {
        const input = document.querySelector('input.run-search');
        input.value = 'features';
        input.dispatchEvent(new Event('input'));
    }
    const rows = () => document.querySelector('table.runs tbody tr');
    while (!rows() || rows().dataset.run === before) {
        await new Promise(done => setTimeout(done, 5));
    }
    await new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)));
    return performance.now() - start;
}"""


def many_runs(folder: Path, log: Path, count: int) -> None:
    """``count`` runs in ``log``, each the files of ``folder`` a listing reads, linked."""
    for i in range(count):
        copy = log / f"{folder.name}_{i:06d}"
        copy.mkdir(parents=True)
        for name in ("pipeline.yaml", "summary.json", "run.yaml"):
            os.link(folder / name, copy / name)


def measure_runs(browser: Any, url: str) -> dict[str, float]:
    page = browser.new_page(viewport=VIEWPORT)
    page.goto(url)
    page.wait_for_selector("table.runs tbody tr")
    figures = page.evaluate(FIRST_FRAME)
    first = page.get_attribute("table.runs tbody tr", "data-run")
    figures["next page"] = page.evaluate(RUNS_SHOWN, ["next", first])
    second = page.get_attribute("table.runs tbody tr", "data-run")
    figures["search"] = page.evaluate(RUNS_SHOWN, ["search", second])
    figures.pop("of which the run document")
    page.close()
    return figures


def serve(log: Path) -> tuple[subprocess.Popen[str], str]:
    command = [sys.executable, "-c", "from pyperunner.cli import main; main()", "ui", str(log)]
    command += ["--port", "0"]
    server = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    return server, server.stdout.readline().split()[2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=sorted(PIPELINES))
    sizes = parser.parse_args().sizes
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        runner = Runner(root / "data", root / "log", executor="inline", console=False)
        folders = {}
        for size in sizes:
            pipeline = PIPELINES[size]()
            start = time.perf_counter()
            folders[size] = runner.run(pipeline).run_dir
            tasks = len(pipeline.keys())
            print(f"{size:>5}: {tasks} tasks ran in {time.perf_counter() - start:.1f} s")
            docs = (
                runfolder.read_pipeline(runfolder.pipeline_file(folders[size])),
                runfolder.read_outcome(folders[size]),
            )
            for how, given in (("as the runner does", docs), ("from the folder", None)):
                write = functools.partial(write_report, folders[size], given)
                best = min(timed(write) for _ in range(5))
                print(
                    f"       write {how}: {best * 1000:.0f} ms ({best / tasks * 1e6:.0f} µs a task)"
                )
            size_kib = (folders[size] / "report.html").stat().st_size / 1024
            print(f"       report.html: {size_kib:.0f} KiB")
        server, url = serve(root / "log")
        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for size in sizes:
                    report = (folders[size] / "report.html").as_uri()
                    ui = f"{url}#/run/{folders[size].name}"
                    for mode, address in (("report", report), ("ui", ui)):
                        shown = measure_page(browser, address)
                        line = ", ".join(f"{k} {v:.0f}" for k, v in shown.items() if v is not None)
                        print(f"{size:>5} {mode:>6} (ms): {line}")
                many_runs(folders[min(sizes)], root / "many", 1000)
                listing, listed = serve(root / "many")
                try:
                    shown = measure_runs(browser, listed)
                finally:
                    listing.terminate()
                    listing.wait()
                line = ", ".join(f"{k} {v:.0f}" for k, v in shown.items() if v is not None)
                print(f" runs list of 1,000 runs (ms): {line}")
                browser.close()
        finally:
            server.terminate()
            server.wait()


if __name__ == "__main__":
    main()
