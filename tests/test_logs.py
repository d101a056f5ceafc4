"""The run's log (``pyperunner.logs``): ``run_logging`` alone (records to ``pipeline.log`` in one
line format, a task's records and prints under its name, each task's own log, what the console
shows beside a live view, logging put back afterwards); and with the executors, a task's output
logged once and never blocking it: a console handler the task adds, as many libraries do on
import, and a run inside a task."""

from __future__ import annotations

import io
import logging
import os
import re
import sys
from collections import Counter
from pathlib import Path

import pytest

from pyperunner import Pipeline, Runner, Status, task
from pyperunner.logs import HEADLINE, TASK_STATUS, run_logging
from pyperunner.output import ECHOED, task_context
from pyperunner.runwriter import RunWriter

EXECUTORS = ["process", "pool", "thread", "inline"]
FILLER = "x" * 100  # a few hundred such lines fill a pipe
NESTED_ENV = "PYPERUNNER_TEST_NESTED"
MANY = 5000


@task("OwnHandler", receives_input=False)
def own_handler(stream, lines):
    """Logs ``lines`` warnings with a handler of its own on stderr (``sys.stderr`` or
    ``sys.__stderr__``) on the root logger, then writes more than a pipe holds to stdout: in a
    worker, that returns only once the output thread, which reads both pipes in turn, has also
    read what the handler wrote."""
    handler = logging.StreamHandler(getattr(sys, stream))
    handler.setLevel(logging.WARNING)  # not the stdout lines, logged at INFO
    logging.getLogger().addHandler(handler)
    try:
        for i in range(lines):
            logging.getLogger("lib").warning("own-line %d %s", i, FILLER)
        os.write(1, f"{FILLER}\n".encode() * 2000)
    finally:
        logging.getLogger().removeHandler(handler)
    return lines


def copies_expected(executor: str, stream: str) -> int:
    """The record itself, and the copy its handler writes where that stream is the task's
    stderr, which is logged: ``sys.__stderr__`` is the runner's own in the runner's process."""
    in_runner = executor in ("thread", "inline")
    return 1 if in_runner and stream == "__stderr__" else 2


def numbered(log: str, word: str) -> Counter[int]:
    """How many times ``log`` has each line ``<word> <number> ...``, by number."""
    return Counter(int(number) for number in re.findall(rf"{word} (\d+) ", log))


def run_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, executor: str, pipeline: Pipeline
) -> tuple[dict[str, Status], str]:
    """Run ``pipeline``; its statuses and log. As in a script, ``sys.stderr`` writes to file
    descriptor 2: pytest puts its own in its place again before each test's call."""
    monkeypatch.setattr(sys, "stderr", sys.__stderr__)
    runner = Runner(tmp_path / "data", tmp_path / "log", executor=executor, progress=False)
    statuses = runner.run(pipeline).statuses
    assert runner.run_dir is not None
    return statuses, (runner.run_dir / "pipeline.log").read_text()


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stream", ["__stderr__", "stderr"])
@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_line_logged_through_a_task_s_own_stderr_handler_is_not_logged_again_and_again(
    tmp_path, monkeypatch, executor, stream
):
    made = own_handler(stream=stream, lines=1)
    statuses, log = run_log(tmp_path, monkeypatch, executor, Pipeline("one", [made]))
    assert statuses == {made.name: Status.SUCCESS}
    assert log.count("own-line 0 ") == copies_expected(executor, stream)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("stream", ["__stderr__", "stderr"])
@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_task_logging_thousands_of_lines_through_its_own_stderr_handler_finishes(
    tmp_path, monkeypatch, executor, stream
):
    made = own_handler(stream=stream, lines=MANY)
    statuses, log = run_log(tmp_path, monkeypatch, executor, Pipeline("many", [made]))
    assert statuses == {made.name: Status.SUCCESS}
    copies = copies_expected(executor, stream)
    assert numbered(log, "own-line") == {i: copies for i in range(MANY)}


@task("Inner", receives_input=False)
def inner():
    for i in range(MANY):
        print(f"inner-line {i} {FILLER}")
    return MANY


@task("RunsAPipeline", receives_input=False)
def runs_a_pipeline():
    """Runs a pipeline of its own in the folder the environment names, with a runner's defaults
    (process executor, console on stderr)."""
    base = Path(os.environ[NESTED_ENV])
    result = Runner(base / "data", base / "log").run(Pipeline("inner", [inner()]))
    return result.statuses["Inner()"].value


@pytest.mark.timeout(60)
@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_task_may_run_a_pipeline_with_a_runner_of_its_own(tmp_path, monkeypatch, executor):
    monkeypatch.setenv(NESTED_ENV, str(tmp_path / "nested"))
    statuses, log = run_log(tmp_path, monkeypatch, executor, Pipeline("outer", [runs_a_pipeline()]))
    assert statuses == {"RunsAPipeline()": Status.SUCCESS}
    inner_log = next((tmp_path / "nested" / "log").glob("inner_*/pipeline.log")).read_text()
    assert numbered(inner_log, "inner-line") == {i: 1 for i in range(MANY)}
    # in a worker, the inner run's records go to the outer run's log, and so does what its console
    # wrote; in the runner's process, each run keeps its lines to its own log
    in_worker = executor in ("process", "pool")
    assert numbered(log, "inner-line") == ({i: 2 for i in range(MANY)} if in_worker else {})


# --------------------------------------------------------------------------- run_logging alone

LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d (?P<level>[A-Z]+) +(?P<process>\S+) +(?P<task>\S+) +"
    r"(?P<message>.*)$"
)
log = logging.getLogger()


def lines_of(path: Path) -> list[dict[str, str]]:
    parsed = [LINE.match(line) for line in path.read_text().splitlines()]
    assert all(parsed), path.read_text()
    return [match.groupdict() for match in parsed if match]


def test_records_go_to_the_log_file_in_one_format_and_logging_is_put_back(tmp_path):
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    with run_logging(tmp_path / "pipeline.log", console=False) as console:
        assert console is None
        log.info("the run's own line")
        log.debug("too detailed for the log")
        logging.getLogger("library").warning("a library's warning")
    assert root.handlers == handlers and root.level == level
    log.info("after the run")
    assert [
        (line["level"], line["task"], line["message"])
        for line in lines_of(tmp_path / "pipeline.log")
    ] == [
        ("INFO", "root", "the run's own line"),
        ("WARNING", "library", "a library's warning"),
    ]


def test_what_a_task_logs_and_prints_is_logged_under_its_name_and_in_its_own_log(tmp_path):
    writer = RunWriter(tmp_path, {"Node(a)": "a" * 32})
    with run_logging(tmp_path / "pipeline.log", console=False, also=writer.handlers()):
        with task_context("Node(a)"):
            log.warning("logged by the task")
            print("printed by the task")
        log.info("the runner's")
    writer.close()
    lines = [(line["task"], line["message"]) for line in lines_of(tmp_path / "pipeline.log")]
    assert lines == [
        ("Node(a)", "logged by the task"),
        ("Node(a)", "printed by the task"),
        ("root", "the runner's"),
    ]
    own = (tmp_path / "tasks" / f"{'a' * 32}.log").read_text()
    assert "logged by the task" in own and "printed by the task" in own
    assert "the runner's" not in own


def console_lines(tmp_path: Path, live: bool) -> list[str]:
    """What a console shows of a run's records, beside a live view or not."""
    shown = io.StringIO()
    with run_logging(tmp_path / "pipeline.log", logging.StreamHandler(shown), live):
        log.info("plain info")
        log.info("headline", extra={HEADLINE: True})
        log.warning("the run's warning")
        log.error("Task X failed", extra={TASK_STATUS: True})
        log.info("echoed by a task", extra={ECHOED: True})
        with task_context("Node(a)"):
            log.warning("a task's warning")
    assert len(lines_of(tmp_path / "pipeline.log")) == 6  # the file has everything
    return [line.split(maxsplit=5)[-1] for line in shown.getvalue().splitlines()]


def test_the_console_shows_every_line_but_those_a_task_printed_there_itself(tmp_path):
    assert console_lines(tmp_path, live=False) == [
        "plain info",
        "headline",
        "the run's warning",
        "Task X failed",
        "a task's warning",
    ]


def test_beside_a_live_view_the_console_shows_only_the_runs_headlines_warnings_and_errors(
    tmp_path,
):
    assert console_lines(tmp_path, live=True) == ["headline", "the run's warning"]
