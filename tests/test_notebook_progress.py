"""Runs in a Jupyter notebook: one live HTML display per run, its log lines folded in it, and a
red summary when the run failed; run in a real kernel with nbclient, and the view on its own."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import nbformat
import pytest
from nbclient import NotebookClient

from pyperunner.report.notebook_progress import INTERVAL, NotebookProgress
from pyperunner.report.observers import in_notebook
from pyperunner.status import Status, TaskRun

EXECUTORS = ["process", "pool", "thread", "inline"]

TASKS = """
import logging
import os
import signal
import sys
import time
{before}
from pyperunner import Pipeline, Runner, task


@task("Chatty", receives_input=False)
def chatty(n):
    print(f"marker: printed {{n}}")
    sys.stderr.write(f"marker: to stderr {{n}}\\n")
    logging.getLogger("mine").warning("marker: warned %d", n)
    return n


@task("Broken")
def broken(data):
    raise ValueError("marker: broken <on purpose>")


@task("Nests", receives_input=False)
def nests():
    runner = Runner("nested-data", "nested-log", executor="inline")
    return runner.run(Pipeline("nested", [chatty("d", n=4)]))["Chatty(d)"]


@task("Interrupts", receives_input=False)
def interrupts():
    os.kill(os.getpid(), signal.SIGINT)  # what the kernel's stop button does
    time.sleep(60)  # never ends: the signal stops the run


def good():
    return Pipeline("good", [chatty("a", n=1), chatty("b", n=2)])
"""


class _Recording(NotebookClient):
    """Executes a notebook and keeps the HTML of every display update, by cell."""

    def process_message(self, msg: dict[str, Any], cell: Any, cell_index: int) -> Any:
        if msg["msg_type"] == "update_display_data":
            self.updates.setdefault(cell_index, []).append(msg["content"]["data"]["text/html"])
        return super().process_message(msg, cell, cell_index)


RAISES = "# raises\n"
"""The start of a cell that is to end in an exception."""


def execute(folder: Path, monkeypatch: pytest.MonkeyPatch, *cells: str) -> tuple[Any, dict]:
    """Run ``cells`` in a fresh kernel working in ``folder``; the notebook and its updates."""
    for variable, name in (("IPYTHONDIR", "ipython"), ("JUPYTER_RUNTIME_DIR", "runtime")):
        monkeypatch.setenv(variable, str(folder / name))  # the kernel writes only there
    monkeypatch.setenv("TMPDIR", str(folder))
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    for cell in notebook.cells:
        if cell.source.startswith(RAISES):
            cell.metadata["tags"] = ["raises-exception"]
    client = _Recording(
        notebook, kernel_name="python3", timeout=120, resources={"metadata": {"path": str(folder)}}
    )
    client.updates = {}
    client.execute()
    return notebook, client.updates


def outputs(notebook: Any) -> str:
    """All the notebook's outputs, as text."""
    return json.dumps([cell.outputs for cell in notebook.cells])


def the_display(cell: Any) -> str:
    """The HTML of the cell's one output, the run's display, as it ended."""
    assert len(cell.outputs) == 1, cell.outputs  # no stream output: no pink blocks, no echo
    (output,) = cell.outputs
    assert output.output_type == "display_data"
    return output.data["text/html"]  # type: ignore[no-any-return]


def run_log(folder: Path, pipeline: str) -> str:
    """The log of the first run of ``pipeline``."""
    return min(folder.glob(f"log/{pipeline}_*/pipeline.log")).read_text()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_run_in_a_notebook_is_one_display_updated_in_place(tmp_path, monkeypatch, executor):
    notebook, updates = execute(
        tmp_path,
        monkeypatch,
        TASKS.format(before="logging.basicConfig(level=logging.INFO)  # to stderr, as many do"),
        f'runner = Runner("data", "log", executor="{executor}")\nok = runner.run(good())',
        'failed = runner.run(Pipeline("bad", [broken()(chatty("c", n=3))]))',
        "again = runner.run(good())",
    )
    assert "ipywidgets" not in outputs(notebook)
    good, bad, again = (the_display(cell) for cell in notebook.cells[1:])
    for index in (1, 2, 3):
        assert updates.get(index), f"cell {index}'s display was never updated"
    assert updates[2][-1] == bad  # the last update is what the cell shows

    assert "2 SUCCESS" in good and "2/2 tasks to run" in good
    assert "marker: printed 1" in good and "marker: to stderr 2" in good  # the log, folded
    assert "Run finished" in good and "failed" not in good.lower()
    assert "marker: warned 1" in good
    assert "marker: printed 1" in run_log(tmp_path, "good")
    first = min(tmp_path.glob("log/good_*"))
    task_logs = "".join(path.read_text() for path in first.glob("tasks/*.log"))
    assert "marker: printed 1" in task_logs and "marker: warned 2" in task_logs

    assert "1 FAILURE" in bad and "1 SUCCESS" in bad
    summary = bad[bad.index("Run failed") :]  # the red summary the display ends with
    assert "Broken()" in summary
    assert "ValueError: marker: broken &lt;on purpose&gt;" in summary
    assert re.search(r"Cell In\[1\], line \d+, in broken", summary)  # named as IPython does
    assert "raise ValueError(&quot;marker: broken &lt;on purpose&gt;&quot;)" in summary
    assert "executors/base.py" not in bad  # the full traceback is in the log file only
    text = notebook.cells[2].outputs[0].data["text/plain"]  # for front ends without HTML
    assert text.startswith("\u2717 Run failed: 1 SUCCESS, 1 FAILURE in ")
    assert text.endswith("\n  Broken(): ValueError: marker: broken <on purpose>")
    assert "executors/base.py" in run_log(tmp_path, "bad")

    assert "2 CACHED" in again and "0/0 tasks to run" in again


def test_progress_settings_and_no_ipywidgets_in_a_notebook(tmp_path, monkeypatch):
    notebook, _ = execute(
        tmp_path,
        monkeypatch,
        TASKS.format(before='sys.modules["ipywidgets"] = None  # as if it were not installed'),
        'Runner("data", "log", executor="inline", progress=True).run(good());',
        'Runner("d2", "log", executor="inline", progress=False).run(good());',
        'Runner("d3", "log", executor="inline", console=False).run(good());',
        'print("marker: a print of the notebook\'s own")',
        RAISES + 'Runner("d4", "log", executor="inline").run(Pipeline("stop", [interrupts()]));',
        'Runner("d5", "log", executor="process").run(Pipeline("outer", [nests()]));',
    )
    assert "ipywidgets" not in outputs(notebook)
    shown = the_display(notebook.cells[1])
    assert "2 SUCCESS" in shown and "2/2 tasks to run" in shown
    plain = the_display(notebook.cells[2])  # no progress: the log and the outcome only
    assert "tasks to run" not in plain
    assert "marker: printed 1" in plain and "Run finished" in plain
    assert notebook.cells[3].outputs == []  # console=False: quiet
    (printed,) = notebook.cells[4].outputs  # after the runs, prints are the notebook's again
    assert printed.name == "stdout" and printed.text == "marker: a print of the notebook's own\n"
    stopped, error = notebook.cells[5].outputs  # the kernel's stop button, as a signal
    assert "Run interrupted" in stopped.data["text/html"] and error.ename == "KeyboardInterrupt"
    outer = the_display(notebook.cells[6])  # a run in a worker's task is the worker's output
    assert "1 SUCCESS" in outer and "Stored pipeline parameters in" in outer
    assert "marker: printed 4" in run_log(tmp_path, "outer")


def test_only_an_ipython_kernel_is_a_notebook(monkeypatch):
    def ipython(shell: object) -> types.ModuleType:
        module = types.ModuleType("IPython")
        module.get_ipython = lambda: shell  # type: ignore[attr-defined]
        return module

    terminal = types.SimpleNamespace()  # IPython in a terminal: a shell without a kernel
    monkeypatch.setitem(sys.modules, "IPython", ipython(terminal))
    assert not in_notebook()
    monkeypatch.setitem(sys.modules, "IPython", ipython(None))  # imported, no shell running
    assert not in_notebook()
    kernel = types.SimpleNamespace(session=types.SimpleNamespace(pid=os.getpid()))
    monkeypatch.setitem(sys.modules, "IPython", ipython(types.SimpleNamespace(kernel=kernel)))
    assert in_notebook()
    kernel.session.pid += 1  # a worker forked from the kernel: it has the kernel's shell
    assert not in_notebook()
    monkeypatch.delitem(sys.modules, "IPython")
    assert not in_notebook()


def test_pyperunner_and_a_run_outside_a_notebook_do_not_import_ipython(tmp_path):
    script = (
        "import sys\n"
        "from pyperunner import Pipeline, Runner, task\n"
        "assert 'IPython' not in sys.modules\n"
        "@task('T', receives_input=False)\n"
        "def t():\n"
        "    return 1\n"
        f"Runner({str(tmp_path / 'd')!r}, {str(tmp_path / 'l')!r}, executor='inline')"
        ".run(Pipeline('p', [t()]))\n"
        "assert 'IPython' not in sys.modules\n"
        "assert 'pyperunner.report.notebook_progress' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, capture_output=True)


def view(clock: Any = None, live: bool = True) -> tuple[NotebookProgress, list[str]]:
    shown: list[str] = []

    def publish(bundle: dict[str, str]) -> None:
        shown.append(bundle["text/html"])

    return NotebookProgress("demo", Path("log/pipeline.log"), live, publish, clock), shown


def record(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("root", level, __file__, 0, message, None, None)


def test_a_run_of_5000_tasks_updates_its_display_a_few_times_a_second_and_at_the_end():
    now = [0.0]
    progress, shown = view(clock=lambda: now[0])
    names = [f"T({i})" for i in range(5000)]
    with progress:
        progress.plan(names, [])
        for name in names:
            progress.update(name, TaskRun(Status.RUNNING))
            progress.update(name, TaskRun(Status.SUCCESS))
            now[0] += 0.002  # ten seconds in all
    assert 10 <= len(shown) <= 10 / INTERVAL + 2  # while it ran, then the final state
    assert "5000 SUCCESS" in shown[-1] and "5000/5000 tasks to run" in shown[-1]


def test_without_time_passing_the_display_shows_only_its_first_and_final_state():
    progress, shown = view(clock=lambda: 0.0)
    with progress:
        progress.plan(["A()", "B()"], [])
        for name in ("A()", "B()"):
            progress.update(name, TaskRun(Status.RUNNING))
            progress.handler.handle(record(f"{name} says hello"))
            progress.update(name, TaskRun(Status.SUCCESS))
    assert len(shown) == 2
    assert "0/2 tasks to run" in shown[0] and "2/2 tasks to run" in shown[1]
    assert "B() says hello" in shown[1] and "2 lines" in shown[1]


def test_what_the_run_names_is_shown_as_text_never_as_markup():
    evil = "<img src=x onerror=alert(1)>"
    name = f"Tagged({evil})"
    progress, shown = view(clock=lambda: 0.0)
    with progress:
        progress.plan([name], [])
        progress.update(name, TaskRun(Status.RUNNING))
        progress.handler.handle(record(f"logged {evil}"))
        error = f"ValueError: {evil}"
        progress.update(name, TaskRun(Status.FAILURE, error=error, traceback=f"{error}\n"))
    html = shown[-1]
    assert "<img" not in html
    assert html.count("&lt;img src=x onerror=alert(1)&gt;") >= 4  # name, log, error, traceback


def test_a_failed_run_ends_red_naming_each_failed_task_and_its_error():
    progress, shown = view(clock=lambda: 0.0)
    with progress:
        progress.plan(["A()", "B()", "C()"], [])
        for name in ("A()", "B()"):
            progress.update(name, TaskRun(Status.RUNNING))
            progress.update(
                name,
                TaskRun(Status.FAILURE, error=f"KeyError: {name}", traceback=f"in {name}\n"),
            )
        progress.update("C()", TaskRun(Status.CANT_RUN, error="upstream task A() failed"))
        progress.handler.handle(record("oops", logging.ERROR))
    html = shown[-1]
    summary = html[html.index("Run failed") :]
    assert "2 FAILURE, 1 CANT_RUN" in summary
    for name in ("A()", "B()"):
        assert f"KeyError: {name}" in summary and f"in {name}" in summary
    assert "1 error" in html


def test_the_summary_of_a_run_with_many_failures_stays_short():
    progress, shown = view(clock=lambda: 0.0)
    names = [f"T({i})" for i in range(1000)]
    with progress:
        progress.plan(names, [])
        for name in names:
            progress.update(name, TaskRun(Status.FAILURE, error="E", traceback=f"at {name}\n"))
    summary = shown[-1][shown[-1].index("Run failed") :]
    assert [f"at T({i})" in summary for i in range(6)] == [True] * 5 + [False]
    assert "and 995 more failed task(s), their errors in the log: T(5), T(6)," in summary
    assert "T(54), ..." in summary and "T(55)" not in summary
    assert len(shown[-1]) < 20_000


def test_an_interrupted_run_says_so():
    progress, shown = view(clock=lambda: 0.0)
    with pytest.raises(KeyboardInterrupt), progress:
        progress.plan(["A()"], [])
        progress.update("A()", TaskRun(Status.RUNNING))
        raise KeyboardInterrupt
    assert "Run interrupted" in shown[-1]


def test_without_progress_the_display_is_the_log_and_the_outcome():
    progress, shown = view(clock=lambda: 0.0, live=False)
    with progress:
        progress.handler.handle(record("hello"))
        progress.plan(["A()"], [])
        progress.update("A()", TaskRun(Status.SUCCESS))
    assert "tasks to run" not in shown[-1] and "hello" in shown[-1]
    assert "Run finished" in shown[-1]
