"""Tasks that misbehave in ways real code does, on every local executor: a task that sets up
logging to the console, an exception whose ``str`` raises, a result that pickles but cannot be
read back, file names that are not UTF-8, long output lines, odd settings. Each must end as a
clear outcome of its own task, the run recorded, never a hang or a crash of the run."""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from pyperunner import (
    Pipeline,
    PipelineResult,
    Runner,
    Status,
    Task,
    TaskDefinitionError,
    run,
    task,
)

EXECUTORS = ["process", "pool", "thread", "inline"]
UNDECODABLE = os.fsdecode(b"report-\xff.csv")  # as os.listdir returns a name that is not UTF-8


@pytest.fixture(autouse=True)
def own_logging() -> Iterator[None]:
    """What tasks run in this process (thread, inline) do to logging is undone after the test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def make_runner(tmp_path: Path, executor: str) -> Runner:
    return Runner(tmp_path / "data", tmp_path / "log", executor=executor, console=False)


def log_text(runner: Runner) -> str:
    assert runner.run_dir is not None
    return (runner.run_dir / "pipeline.log").read_text()


@task("ConsoleLogging", receives_input=False)
def console_logging(how):
    """Sets up logging to the console as a script or a library might, then logs."""
    if how == "handler":
        logging.getLogger().addHandler(logging.StreamHandler(sys.stdout))
    else:
        logging.basicConfig(level=logging.INFO, force=True)
    logging.getLogger("mylib").warning("fitting-marker")
    return 42


class ApiError(Exception):
    def __init__(self, response):
        super().__init__(response)
        self.response = response

    def __str__(self):
        return f"API said {self.response['status']}"  # the response has no status: KeyError


@task("CallsApi", receives_input=False)
def calls_api():
    raise ApiError({})


class RowError(Exception):
    def __init__(self, row, reason):  # pickles as RowError(f"...") but cannot be rebuilt so
        super().__init__(f"row {row}: {reason}")


@task("Validate", receives_input=False)
def validate():
    return [RowError(3, "empty"), RowError(7, "negative")]


@task("Report")
def report(data):
    return len(data[0])


@task("Parse", receives_input=False)
def parse(name):
    raise ValueError(f"cannot parse {name}")


@task("Pieces", receives_input=False)
def pieces(below_python):
    """Writes a line in many pieces: prints, or (``below_python``) writes to file descriptor 1."""
    if below_python:
        for _ in range(3000):
            os.write(1, b"x")
        os.write(1, b"\n")
    else:
        for i in range(2000):
            print(i % 10, end="")
        print()
    return "done"


class Patient(Task):
    timeout = 30 * 24 * 3600.0  # a month: beyond what poll() takes in milliseconds

    @run
    def run(self, data):
        return "on time"


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("how", ["handler", "basicConfig"])
def test_a_task_that_logs_to_the_console_itself_succeeds(tmp_path, executor, how):
    runner = make_runner(tmp_path, executor)
    result = runner.run(Pipeline("console", [console_logging(how=how)]))
    assert result.statuses == {"ConsoleLogging()": Status.SUCCESS}
    assert result["ConsoleLogging()"] == 42
    text = log_text(runner)
    assert "fitting-marker" in text
    assert "Pipeline finished successfully" in text  # the run's log was not taken away


@task("Chatty", receives_input=False)
def chatty():
    print("print-once-marker")
    logging.getLogger("lib").warning("log-once-marker")
    return 1


@pytest.mark.parametrize("executor", EXECUTORS)
def test_what_a_task_prints_and_logs_is_in_the_log_once(tmp_path, executor):
    runner = make_runner(tmp_path, executor)
    for _ in range(2):  # the second run's workers fork from a runner whose run has ended
        runner.run(Pipeline("chatty", [chatty()]), force_reload=True)
        text = log_text(runner)
        assert text.count("print-once-marker") == 1, text
        assert text.count("log-once-marker") == 1, text


@pytest.mark.parametrize("executor", ["thread", "inline"])
def test_a_run_in_this_process_gives_stdout_and_stderr_back(tmp_path, executor):
    before = sys.stdout, sys.stderr
    make_runner(tmp_path, executor).run(Pipeline("streams", [console_logging(how="handler")]))
    assert (sys.stdout, sys.stderr) == before


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_exception_whose_str_fails_is_still_its_task_s_failure(tmp_path, executor):
    runner = make_runner(tmp_path, executor)
    result = runner.run(Pipeline("api", [calls_api()]))
    assert result.statuses == {"CallsApi()": Status.FAILURE}
    error = result.runs["CallsApi()"].error
    assert error.startswith("ApiError: <str() of the exception failed: KeyError")
    assert "ApiError" in result.runs["CallsApi()"].traceback
    assert "Task CallsApi() failed" in log_text(runner)


@pytest.mark.parametrize("executor", ["process", "thread"])
def test_a_result_that_cannot_be_read_back_fails_the_task_that_made_it(tmp_path, executor):
    made = validate()
    report()(made)
    for _ in range(2):  # nothing was cached: the second run says the same
        result = make_runner(tmp_path, executor).run(Pipeline("rows", [made]))
        assert result.statuses == {"Validate()": Status.FAILURE, "Report()": Status.CANT_RUN}
        error = result.runs["Validate()"].error
        assert "cannot be read back" in error and "missing 1 required positional" in error


@pytest.mark.parametrize("executor", ["process", "inline"])
def test_undecodable_file_names_in_errors_and_parameters_keep_the_run_readable(tmp_path, executor):
    runner = make_runner(tmp_path, executor)
    pipeline = Pipeline("names", [parse(name=UNDECODABLE)])
    runner.run(pipeline)
    outcome = yaml.safe_load((runner.run_dir / "run.yaml").read_text())
    assert "report-\\udcff.csv" in outcome["tasks"]["Parse()"]["error"]
    assert yaml.safe_load((runner.run_dir / "pipeline.yaml").read_text())
    loaded = PipelineResult.from_file(runner.run_dir / "pipeline.yaml")
    assert loaded.statuses == {"Parse()": Status.FAILURE}
    assert "cannot parse report-\\udcff.csv" in log_text(runner)
    assert (runner.run_dir / "report.html").stat().st_size > 0


@pytest.mark.parametrize(
    ("executor", "below_python"), [("process", True), ("process", False), ("inline", False)]
)
def test_a_line_written_in_many_pieces_is_one_line_of_the_log(tmp_path, executor, below_python):
    runner = make_runner(tmp_path, executor)
    assert runner.run(Pipeline("pieces", [pieces(below_python=below_python)])).ok
    line = "x" * 3000 if below_python else "0123456789" * 200
    lines = log_text(runner).splitlines()
    assert any("Pieces()" in text and text.endswith(f" {line}") for text in lines)


def test_a_timeout_of_a_month_is_a_timeout_like_any_other(tmp_path):
    result = make_runner(tmp_path, "process").run(Pipeline("month", [Patient()]))
    assert result["Patient()"] == "on time"


@pytest.mark.parametrize(
    "settings",
    [
        {"timeout": math.nan},
        {"timeout": math.inf},
        {"timeout": True},
        {"retries": 1, "retry_delay": math.nan},
        {"retries": 1, "retry_delay": math.inf},
    ],
)
def test_settings_that_are_not_a_finite_number_of_seconds_are_refused(settings):
    with pytest.raises(TaskDefinitionError, match=r"task Odd: .* must be a number of seconds"):

        @task("Odd", receives_input=False, **settings)
        def odd():
            return 1


@pytest.mark.parametrize("limit", [2.5, "2", True, 0])
def test_a_process_limit_that_is_not_a_whole_number_is_refused(tmp_path, limit):
    with pytest.raises(ValueError, match="process_limit must be a whole number of at least 1"):
        Runner(tmp_path / "data", tmp_path / "log", process_limit=limit)


def test_a_task_class_setting_receives_input_is_told_how_it_works():
    with pytest.raises(TaskDefinitionError, match=r"Loader sets receives_input.*data"):

        class Loader(Task):
            receives_input = False

            @run
            def run(self):
                return 1


def test_a_pipeline_file_whose_reload_is_not_a_boolean_is_refused(tmp_path):
    from pyperunner import PipelineError

    path = Pipeline("p", [Patient()]).to_file(tmp_path / "p.yml")
    path.write_text(path.read_text().replace("reload: false", 'reload: "no"'))
    with pytest.raises(PipelineError, match="its 'reload' is not true or false"):
        Pipeline.from_file(path)


RELEASE, PRINTED = threading.Event(), threading.Event()


class Late(Task):
    """Outlives its timeout on a thread, then prints and logs."""

    timeout = 0.3

    @run
    def run(self):
        RELEASE.wait(10)
        print("late-print-marker")
        logging.getLogger("lib").warning("late-log-marker")
        PRINTED.set()
        return 1


@task("Releases", receives_input=False)
def releases():
    RELEASE.set()
    PRINTED.wait(10)  # the late task writes while this run goes on
    return 2


def test_a_timed_out_thread_task_does_not_write_into_a_later_run_s_log(tmp_path):
    first = make_runner(tmp_path, "thread").run(Pipeline("late", [Late()]))
    assert first.statuses == {"Late()": Status.FAILURE}
    runner = make_runner(tmp_path, "thread")
    assert runner.run(Pipeline("later", [releases()])).ok
    assert PRINTED.is_set()
    text = log_text(runner)
    assert "late-print-marker" not in text and "late-log-marker" not in text


@task("PartialThenFails", receives_input=False)
def partial_then_fails():
    sys.stdout.write("progress-50%-marker")  # no newline
    raise ValueError("fails-marker")


@pytest.mark.parametrize("executor", EXECUTORS)
def test_an_unfinished_line_is_logged_before_the_failure_it_preceded(tmp_path, executor):
    runner = make_runner(tmp_path, executor)
    runner.run(Pipeline("partial", [partial_then_fails()]))
    text = log_text(runner)
    assert 0 <= text.index("progress-50%-marker") < text.index("failed: ValueError: fails-marker")


@task("ClearsLogging", receives_input=False)
def clears_logging(how):
    root = logging.getLogger()
    if how == "clear":
        root.handlers.clear()
    elif how == "slice":
        root.handlers[:] = []
    else:
        del root.handlers[:]
    logging.getLogger("lib").warning("after-clearing-marker")
    return 1


@pytest.mark.parametrize("executor", ["process", "inline"])
@pytest.mark.parametrize("how", ["clear", "slice", "del"])
def test_a_task_clearing_the_root_logger_does_not_silence_the_run(tmp_path, executor, how):
    runner = make_runner(tmp_path, executor)
    assert runner.run(Pipeline("clears", [clears_logging(how=how)])).ok
    text = log_text(runner)
    assert "after-clearing-marker" in text and "Pipeline finished successfully" in text


@task("Says", receives_input=False)
def says(word):
    print(f"says-{word}")
    logging.getLogger("lib").warning(f"logs-{word}")
    return word


@pytest.mark.parametrize("executor", EXECUTORS)
def test_runs_going_on_at_once_in_threads_keep_their_logs_apart(tmp_path, executor):
    runners = {w: make_runner(tmp_path / w, executor) for w in ("left", "right")}
    threads = [
        threading.Thread(target=r.run, args=(Pipeline(w, [says(w, word=w)]),))
        for w, r in runners.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    for word, other in (("left", "right"), ("right", "left")):
        text = log_text(runners[word])
        assert f"says-{word}" in text and f"logs-{word}" in text and f"Says({word})" in text
        assert other not in text, text


class StuckMidLine(Task):
    """Writes half a line (by print and below Python), then runs past its timeout."""

    timeout = 0.5

    @run
    def run(self):
        sys.stdout.write("half-a-print-marker")
        sys.stdout.flush()
        os.write(2, b"half-an-fd-line-marker")
        time.sleep(30)


@pytest.mark.parametrize("executor", ["process", "pool"])
def test_what_a_timed_out_task_wrote_last_is_logged_even_unfinished(tmp_path, executor):
    runner = make_runner(tmp_path, executor)
    result = runner.run(Pipeline("stuck", [StuckMidLine()]))
    assert "timed out" in result.runs["StuckMidLine()"].error
    text = log_text(runner)
    assert "half-a-print-marker" in text and "half-an-fd-line-marker" in text
