"""Take the pictures of the UI and of report.html in docs/images: ``python docs/screenshots.py``.

Makes real runs in a temporary folder (the test suite's feature pipeline twice, the second with a
parameter changed; the benchmark's grid search; a small ETL pipeline; one run killed and one still
running, held by a task that waits on a FIFO), serves them with ``pyperunner ui`` and takes
``ui-runs.png``, ``ui-run.png``, ``ui-compare.png`` and ``report.png`` with headless Chromium
(``/usr/bin/chromium``); executes ``examples/notebook.ipynb`` in the ``python3`` kernel and takes
``notebook.png`` of it as nbconvert's HTML shows it. Needs the test extras; looks best with the
Inter font installed.
"""

from __future__ import annotations

import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from urllib.parse import quote

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent / "tests"), str(HERE.parent / "benchmarks")]

from conftest import CHROMIUM_ARGS, feature_pipeline, run_inline  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402
from ui_pages import grid_search  # noqa: E402

from pyperunner import Pipeline, Task, run  # noqa: E402

IMAGES = HERE / "images"
VIEWPORT = {"width": 1440, "height": 900}

HELD = textwrap.dedent(
    """
    import sys
    from pyperunner import Pipeline, Runner, Task, run

    class Download(Task):
        @run
        def run(self, url="https://example.org/data.csv"):
            return url

    class Train(Task):
        @run
        def run(self, data, started="", release="", epochs=20):
            with open(started, "w") as fifo:
                fifo.write("running")
            with open(release) as fifo:
                return fifo.read()

    root, name, started, release = sys.argv[1:]
    data = Download("data")
    Train("model", started=started, release=release)(data)
    Runner(root + "/data", root + "/log", executor="inline", console=False).run(
        Pipeline(name, [data])
    )
    """
)


class Extract(Task):
    @run
    def run(self, table="orders"):
        return list(range(1000))


class Transform(Task):
    @run
    def run(self, data):
        return [x * 2 for x in data]


class Load(Task):
    @run
    def run(self, data):
        return len(data)


def etl() -> Pipeline:
    tables = [Extract(t, table=t) for t in ("orders", "customers", "products")]
    Load("warehouse")([Transform(t.tag)(t) for t in tables])
    return Pipeline("nightly-etl", tables)


def held_run(root: Path, name: str, fifos: str) -> tuple[subprocess.Popen[bytes], Path]:
    """A run whose Train task waits until the FIFO returned is written to."""
    started, release = root / f"{fifos}.started", root / f"{fifos}.release"
    os.mkfifo(started)
    os.mkfifo(release)
    script = root / "held.py"
    script.write_text(HELD)
    process = subprocess.Popen(
        [sys.executable, str(script), str(root), name, str(started), str(release)]
    )
    reading = os.open(started, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert select.select([reading], [], [], 120)[0], "the held task never ran"
    finally:
        os.close(reading)
    return process, release


def main() -> None:
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        killed, _ = held_run(root, "train-model", "killed")
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        first = run_inline(root, feature_pipeline())
        time.sleep(1)
        second = run_inline(root, feature_pipeline(0.7))
        run_inline(root, etl())
        run_inline(root, grid_search())
        running, release = held_run(root, "train-model", "running")
        command = [sys.executable, "-c", "from pyperunner.cli import main; main()", "ui"]
        server = subprocess.Popen(
            [*command, str(root / "log"), "--port", "0"], stdout=subprocess.PIPE, text=True
        )
        url = server.stdout.readline().split()[2]
        try:
            shoot(url, first, second, notebook_page(root))
        finally:
            with open(release, "w") as fifo:
                fifo.write("done")
            running.wait()
            server.terminate()
            server.wait()


def notebook_page(root: Path) -> Path:
    """The example notebook, executed in ``root/notebook`` and exported as an HTML page."""
    import nbclient
    import nbconvert
    import nbformat

    work = root / "notebook"
    work.mkdir()
    notebook = nbformat.read(HERE.parent / "examples" / "notebook.ipynb", as_version=4)
    nbclient.NotebookClient(notebook, resources={"metadata": {"path": work}}).execute()
    page = work / "notebook.html"
    page.write_text(nbconvert.HTMLExporter().from_notebook_node(notebook)[0], encoding="utf-8")
    return page


def shoot(url: str, first: Path, second: Path, notebook: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        page = browser.new_page(viewport=VIEWPORT)

        page.goto(url)
        page.wait_for_selector("table.runs tbody tr")
        for box in page.locator("input.pick").all()[2:4]:
            box.check()
        page.screenshot(path=IMAGES / "ui-runs.png")

        page.goto(f"{url}#/run/{quote(first.name)}")
        page.wait_for_selector("svg.graph g.group")
        page.screenshot(path=IMAGES / "ui-run.png")

        page.goto(f"{url}#/compare/{quote(first.name)}/{quote(second.name)}")
        page.wait_for_selector("table.compare tbody tr")
        page.screenshot(path=IMAGES / "ui-compare.png")

        page.goto((first / "report.html").as_uri())
        page.wait_for_selector('g.group[data-group^="Feature("]')
        page.locator('g.group[data-group^="Feature("]').click()
        page.locator('g.task[data-name="Feature(s2-max)"]').click()
        page.wait_for_selector(".task-panel pre.traceback")
        page.screenshot(path=IMAGES / "report.png")

        page.set_viewport_size({"width": 1100, "height": 1250})
        page.route(re.compile(r"^https?://"), lambda route: route.abort())  # offline, as CI
        page.goto(notebook.as_uri())
        page.locator(
            ".jp-Cell", has_text="failed = runner.run(with_typo)"
        ).scroll_into_view_if_needed()
        page.evaluate("window.scrollBy(0, -40)")
        page.screenshot(path=IMAGES / "notebook.png")
        browser.close()


if __name__ == "__main__":
    main()
