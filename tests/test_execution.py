"""Tests for the fault-tolerant execution engine on real runs (issue 3, points 5-9): retries and
timeouts, fail fast, bad values, the run outcome, dead workers retried, and the semantics every
executor shares (``pyperunner.scheduler`` with ``pyperunner.executors`` and ``pyperunner.runner``).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import select
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import yaml
from conftest import double_fork_sleeper, record_call
from test_faults import wait_gone

from pyperunner import (
    Pipeline,
    PipelineResult,
    Runner,
    Status,
    Task,
    TaskDefinitionError,
    TaskOutputUnavailableError,
    UnhashableParameterError,
    run,
    task,
)

EXECUTORS = ["process", "pool", "thread", "inline"]
ATTEMPTS_ENV = "PYPERUNNER_TEST_ATTEMPTS"
TIMEOUT = 0.5
TIMEOUT_TEXT = "timed out after 0.5 s"

# Set at the end of a test so that sleepers left running on threads wake up and end.
WAKE = threading.Event()


# --------------------------------------------------------------------------- attempt counting


def record_attempt(name: str) -> int:
    """Append the current time to ``<attempts dir>/<name>``; return this attempt's number.

    The folder comes from the environment, not from a parameter, so the task's key stays the same
    from one attempt to the next; appending works across processes and threads.
    """
    folder = Path(os.environ[ATTEMPTS_ENV])
    path = folder / name
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(f"{time.time()!r}\n")
    return len(path.read_text(encoding="utf-8").splitlines())


class Attempts:
    """Reads back the start times of each task's attempts."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def times(self, name: str) -> list[float]:
        path = self.folder / name
        if not path.exists():
            return []
        return [float(line) for line in path.read_text(encoding="utf-8").splitlines()]

    def count(self, name: str) -> int:
        return len(self.times(name))

    def gaps(self, name: str) -> list[float]:
        """Seconds between the starts of successive attempts."""
        return [later - earlier for earlier, later in itertools.pairwise(self.times(name))]


@pytest.fixture
def attempts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Attempts:
    folder = tmp_path / "attempts"
    folder.mkdir()
    monkeypatch.setenv(ATTEMPTS_ENV, str(folder))
    return Attempts(folder)


@pytest.fixture
def wake_sleepers():
    """Let sleeping tasks left on threads (thread executor after a timeout) end with the test."""
    WAKE.clear()
    yield
    WAKE.set()
    for thread in threading.enumerate():
        if thread.name.startswith("pyperunner:") and thread is not threading.current_thread():
            thread.join(timeout=10)
    WAKE.clear()


# --------------------------------------------------------------------------- tasks


class Node(Task):
    """Records its execution and returns its tag."""

    @run
    def run(self, data):
        record_call(self.name)
        return self.tag


class Collect(Task):
    """Records its execution and returns its inputs."""

    @run
    def run(self, data):
        record_call(self.name)
        return list(data)


class Boom(Task):
    """Records its execution and raises."""

    @run
    def run(self, data):
        record_call(self.name)
        raise ZeroDivisionError(f"boom-marker in {self.name}")


class Slow(Task):
    """Records its execution, sleeps ``seconds`` and returns its tag."""

    @run
    def run(self, data, seconds):
        record_call(self.name)
        time.sleep(seconds)
        return self.tag


def flaky_task(**settings):
    """A function task ``Flaky(<tag>)`` failing its first ``fails`` attempts; ``settings`` go to
    ``@task`` (retries, retry_delay, timeout)."""

    @task("Flaky", **settings)
    def flaky(data, fails):
        count = record_attempt("Flaky")
        record_call("Flaky")
        if count <= fails:
            raise RuntimeError(f"flaky-marker: attempt {count} fails")
        return f"succeeded on attempt {count}"

    return flaky


class FlakyWithClassSettings(Task):
    """Fails its first ``fails`` attempts; retries and delay set as class attributes."""

    retries = 2
    retry_delay = 0.1

    @run
    def run(self, data, fails):
        count = record_attempt(self.name)
        record_call(self.name)
        if count <= fails:
            raise RuntimeError(f"flaky-marker: attempt {count} fails")
        return count


class Sleeper(Task):
    """Sleeps 30 s (waking early only when a test sets ``WAKE``), far beyond its timeout."""

    timeout = TIMEOUT

    @run
    def run(self, data):
        record_call(self.name)
        WAKE.wait(30)
        return "woke up"


class RetriedSleeper(Sleeper):
    """A sleeper that is retried once after timing out."""

    retries = 1


class SpawningSleeper(Task):
    """Starts a child process, writes its own pid and the child's to ``folder``, sleeps 30 s."""

    timeout = TIMEOUT

    @run
    def run(self, data, folder):
        record_call(self.name)
        child = subprocess.Popen([shutil.which("sleep") or "sleep", "30"])
        Path(folder, "pids.tmp").write_text(f"{os.getpid()} {child.pid}")
        os.replace(Path(folder, "pids.tmp"), Path(folder, "pids"))
        time.sleep(30)
        return "never"


class Stubborn(Task):
    """Ignores SIGTERM and sleeps past its timeout: stopping it takes the whole grace period."""

    timeout = TIMEOUT

    @run
    def run(self, data):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(30)
        return "never"


class BadValue(Task):
    """Returns a value that cannot be pickled: a lambda, a lock or a generator."""

    @run
    def run(self, data, kind):
        record_call(self.name)
        if kind == "lambda":
            return lambda x: x
        if kind == "lock":
            return threading.Lock()
        return (i for i in range(3))


class WithHandle(Task):
    """Takes one parameter, ``handle``."""

    @run
    def run(self, data, handle):
        return "unused"


@task("with-handle")
def with_handle(data, handle):
    return "unused"


@task("explode")
def explode_with_marker(data):
    record_call("explode")
    raise ValueError("outcome-marker-7")


class DiesOnce(Task):
    """Kills its worker process on the first attempt, succeeds on the next; retried once."""

    retries = 1

    @run
    def run(self, data):
        record_call(self.name)
        if record_attempt(self.name) == 1:
            os._exit(3)
        return "survived"


class DiesAlways(Task):
    """Kills its worker process on every attempt; retried once."""

    retries = 1

    @run
    def run(self, data):
        record_call(self.name)
        record_attempt(self.name)
        os._exit(3)


# --------------------------------------------------------------------------- helpers


def make_runner(tmp_path: Path, executor: str, **kwargs) -> Runner:
    return Runner(tmp_path / "data", tmp_path / "log", executor=executor, console=False, **kwargs)


def the_run_dir(runner: Runner) -> Path:
    assert runner.run_dir is not None
    return runner.run_dir


def log_lines(runner: Runner) -> list[str]:
    return (the_run_dir(runner) / "pipeline.log").read_text().splitlines()


def process_is_gone(pid: int, within: float = 5.0) -> bool:
    """True if process ``pid`` has ended (or ends within ``within`` s; waits on a pidfd)."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], within)
        return bool(ready)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------- retries


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("failures", [1, 3])
def test_task_failing_its_first_attempts_succeeds_with_as_many_retries(
    tmp_path, calls, attempts, executor, failures
):
    flaky = flaky_task(retries=failures)("x", fails=failures)
    Node("after")(flaky)
    result = make_runner(tmp_path, executor).run(Pipeline("retries", [flaky]))
    assert result.statuses == {"Flaky(x)": Status.SUCCESS, "Node(after)": Status.SUCCESS}
    assert result.runs["Flaky(x)"].attempts == failures + 1
    assert result["Flaky(x)"] == f"succeeded on attempt {failures + 1}"
    assert attempts.count("Flaky") == failures + 1
    assert calls.counts() == {"Flaky": failures + 1, "Node(after)": 1}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_task_failing_more_often_than_its_retries_fails_after_retries_plus_one_attempts(
    tmp_path, calls, attempts, executor
):
    flaky = flaky_task(retries=1)("x", fails=5)
    Node("after")(flaky)
    result = make_runner(tmp_path, executor).run(Pipeline("retries", [flaky]))
    assert result.statuses == {"Flaky(x)": Status.FAILURE, "Node(after)": Status.CANT_RUN}
    assert result.runs["Flaky(x)"].attempts == 2
    assert "flaky-marker: attempt 2 fails" in result.runs["Flaky(x)"].error
    assert attempts.count("Flaky") == 2
    assert calls.counts() == {"Flaky": 2}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_each_failed_attempt_is_logged_saying_it_retries(tmp_path, calls, attempts, executor):
    flaky = flaky_task(retries=2)("x", fails=5)
    runner = make_runner(tmp_path, executor)
    result = runner.run(Pipeline("retries", [flaky]))
    assert result.statuses == {"Flaky(x)": Status.FAILURE}
    lines = log_lines(runner)
    retry_lines = [line for line in lines if "Flaky(x)" in line and "retrying" in line]
    assert len(retry_lines) == 2, "\n".join(lines)
    for number, line in enumerate(retry_lines, start=1):
        assert f"attempt {number}" in line, line
        assert f"flaky-marker: attempt {number} fails" in line, line
    # the error of every attempt is in the log, including the last one's
    for number in (1, 2, 3):
        assert any(f"flaky-marker: attempt {number} fails" in line for line in lines), number


@pytest.mark.parametrize("executor", EXECUTORS)
def test_retry_delay_separates_attempts(tmp_path, calls, attempts, executor):
    flaky = flaky_task(retries=2, retry_delay=0.2)("x", fails=2)
    result = make_runner(tmp_path, executor).run(Pipeline("delay", [flaky]))
    assert result.statuses == {"Flaky(x)": Status.SUCCESS}
    gaps = attempts.gaps("Flaky")
    assert len(gaps) == 2
    assert all(gap >= 0.2 for gap in gaps), gaps


@pytest.mark.parametrize("executor", EXECUTORS)
def test_retries_and_retry_delay_as_class_attributes(tmp_path, calls, attempts, executor):
    flaky = FlakyWithClassSettings("x", fails=2)
    result = make_runner(tmp_path, executor).run(Pipeline("class-settings", [flaky]))
    name = "FlakyWithClassSettings(x)"
    assert result.statuses == {name: Status.SUCCESS}
    assert result.runs[name].attempts == 3
    assert result[name] == 3
    gaps = attempts.gaps(name)
    assert len(gaps) == 2
    assert all(gap >= 0.1 for gap in gaps), gaps


def function_task_with(**settings):
    @task("Tunable", receives_input=False, **settings)
    def tunable(value):
        record_call("Tunable")
        return value

    return tunable


def class_task_with(n_retries=0, n_retry_delay=0.0, n_timeout=None):
    class Tunable(Task):
        retries = n_retries
        retry_delay = n_retry_delay
        timeout = n_timeout

        @run
        def run(self, value):
            return value

    return Tunable


def test_retries_retry_delay_and_timeout_are_not_part_of_the_key_with_task_decorator():
    plain = function_task_with()("t", value=1)
    tuned = function_task_with(retries=3, retry_delay=2.5, timeout=60)("t", value=1)
    assert tuned.retries == 3 and tuned.retry_delay == 2.5 and tuned.timeout == 60
    assert plain.hash() == tuned.hash()
    # the key still follows what is part of it
    assert function_task_with()("t", value=2).hash() != plain.hash()


def test_retries_retry_delay_and_timeout_are_not_part_of_the_key_as_class_attributes():
    plain = class_task_with()("t", value=1)
    tuned = class_task_with(3, 2.5, 60)("t", value=1)
    assert tuned.retries == 3 and tuned.retry_delay == 2.5 and tuned.timeout == 60
    assert plain.hash() == tuned.hash()
    assert class_task_with()("t", value=2).hash() != plain.hash()


def test_changing_retries_and_timeout_keeps_the_cached_result(tmp_path, calls):
    runner = make_runner(tmp_path, "inline")
    runner.run(Pipeline("tunable", [function_task_with()("t", value=1)]))
    tuned = function_task_with(retries=3, retry_delay=2.5, timeout=60)("t", value=1)
    result = runner.run(Pipeline("tunable", [tuned]))
    assert result.statuses == {"Tunable(t)": Status.CACHED}
    assert calls.counts() == {"Tunable": 1}


INVALID_SETTINGS = [
    pytest.param({"retries": -1}, "retries", id="retries=-1"),
    pytest.param({"retry_delay": -1}, "retry_delay", id="retry_delay=-1"),
    pytest.param({"timeout": 0}, "timeout", id="timeout=0"),
]


@pytest.mark.parametrize(("setting", "word"), INVALID_SETTINGS)
def test_invalid_execution_setting_on_task_decorator_raises_at_definition(setting, word):
    with pytest.raises(TaskDefinitionError, match=word):
        function_task_with(**setting)


@pytest.mark.parametrize(("setting", "word"), INVALID_SETTINGS)
def test_invalid_execution_setting_as_class_attribute_raises_at_definition(setting, word):
    values = {"n_retries": 0, "n_retry_delay": 0.0, "n_timeout": None}
    values["n_" + word] = setting[word]
    with pytest.raises(TaskDefinitionError, match=word):
        class_task_with(**values)


@pytest.mark.parametrize(("setting", "word"), INVALID_SETTINGS)
def test_invalid_execution_setting_on_task_decorator_of_a_class_raises(setting, word):
    with pytest.raises(TaskDefinitionError, match=word):
        task("Decorated", **setting)(class_task_with())


# --------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("executor", EXECUTORS)
def test_timed_out_task_fails_quickly_and_its_descendants_cant_run(
    tmp_path, calls, wake_sleepers, executor
):
    sleeper = Sleeper("s")
    Node("grandchild")(Node("child")(sleeper))
    other = Node("other")
    result = make_runner(tmp_path, executor).run(Pipeline("timeout", [sleeper, other]))
    assert result.statuses == {  # SUCCESS, had the run waited for the sleeper to wake
        "Sleeper(s)": Status.FAILURE,
        "Node(child)": Status.CANT_RUN,
        "Node(grandchild)": Status.CANT_RUN,
        "Node(other)": Status.SUCCESS,
    }
    run_ = result.runs["Sleeper(s)"]
    assert TIMEOUT_TEXT in run_.error
    assert calls.counts() == {"Sleeper(s)": 1, "Node(other)": 1}
    with pytest.raises(TaskOutputUnavailableError, match="timed out"):
        result["Sleeper(s)"]
    if executor == "thread":  # a thread cannot be killed: reported, and left running
        alive = [t.name for t in threading.enumerate() if t.name == "pyperunner:Sleeper(s)"]
        assert alive == ["pyperunner:Sleeper(s)"]
    if executor == "inline":  # SIGALRM interrupts the task in the main thread
        assert threading.current_thread() is threading.main_thread()
        assert "TaskTimeoutError" in run_.traceback


def test_process_timeout_kills_the_worker_and_its_child_processes(tmp_path, calls):
    sleeper = SpawningSleeper("s", folder=str(tmp_path))
    result = make_runner(tmp_path, "process").run(Pipeline("timeout", [sleeper]))
    assert result.statuses == {"SpawningSleeper(s)": Status.FAILURE}
    assert TIMEOUT_TEXT in result.runs["SpawningSleeper(s)"].error
    worker, grandchild = map(int, (tmp_path / "pids").read_text().split())
    assert worker != os.getpid()
    assert process_is_gone(worker)
    assert process_is_gone(grandchild), f"process {grandchild} started by the task survived"


@pytest.mark.parametrize("executor", ["process", "pool"])
def test_workers_timed_out_together_are_stopped_together(tmp_path, calls, executor, monkeypatch):
    """Each stop waits a grace period for SIGTERM: one after another, six stubborn workers took
    six of them, the whole run standing still meanwhile. Their deadlines come a few ms apart,
    so the first may be stopped alone, and all the others in the grace period it took."""
    from pyperunner.executors import process

    stops: list[int] = []

    def stop_groups(processes):
        if processes:
            stops.append(len(processes))
        stop_all_at_once(processes)

    stop_all_at_once = process.stop_groups
    monkeypatch.setattr(process, "stop_groups", stop_groups)
    tasks = [Stubborn(str(i)) for i in range(6)]
    result = make_runner(tmp_path, executor, process_limit=6).run(Pipeline("stubborn", tasks))
    assert all(TIMEOUT_TEXT in (r.error or "") for r in result.runs.values()), result.failed
    assert sum(stops) == 6 and len(stops) <= 2, f"grace periods: {stops}"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_timed_out_task_with_one_retry_is_attempted_twice_unless_its_thread_goes_on(
    tmp_path, calls, wake_sleepers, executor
):
    result = make_runner(tmp_path, executor).run(Pipeline("timeout", [RetriedSleeper("s")]))
    run_ = result.runs["RetriedSleeper(s)"]
    assert run_.status is Status.FAILURE
    assert TIMEOUT_TEXT in run_.error
    if executor == "thread":
        # A thread cannot be killed: the timed-out attempt goes on holding the entry's lock, so
        # a retry could only wait for it; it is not retried, and the log says why.
        assert run_.attempts == 1
        assert calls.counts() == {"RetriedSleeper(s)": 1}
        log = next((tmp_path).rglob("pipeline.log")).read_text()
        assert "RetriedSleeper(s) is not retried: its attempt still runs in a thread" in log
    else:
        assert run_.attempts == 2
        assert calls.counts() == {"RetriedSleeper(s)": 2}


# --------------------------------------------------------------------------- fail fast


def fail_fast_pipeline() -> Pipeline:
    """``Boom(a)`` comes first in the ready order; ``Node(b)`` and ``Node(c)`` are independent."""
    boom = Boom("a")
    Node("a-child")(boom)
    b = Node("b")
    Node("b-child")(b)
    return Pipeline("fail-fast", [boom, b, Node("c")])


@pytest.mark.parametrize("executor", EXECUTORS)
def test_fail_fast_starts_no_task_after_the_first_failure(tmp_path, calls, executor):
    runner = make_runner(tmp_path, executor, process_limit=1)
    result = runner.run(fail_fast_pipeline(), fail_fast=True)
    assert calls.order() == ["Boom(a)"]
    assert result.statuses == {
        "Boom(a)": Status.FAILURE,
        "Node(a-child)": Status.CANT_RUN,
        "Node(b)": Status.NOT_STARTED,
        "Node(b-child)": Status.NOT_STARTED,
        "Node(c)": Status.NOT_STARTED,
    }
    assert set(result.failed) == {"Boom(a)"}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_without_fail_fast_independent_tasks_complete(tmp_path, calls, executor):
    runner = make_runner(tmp_path, executor, process_limit=1)
    result = runner.run(fail_fast_pipeline())
    assert calls.order()[0] == "Boom(a)"
    assert calls.counts() == {"Boom(a)": 1, "Node(b)": 1, "Node(b-child)": 1, "Node(c)": 1}
    assert result.statuses == {
        "Boom(a)": Status.FAILURE,
        "Node(a-child)": Status.CANT_RUN,
        "Node(b)": Status.SUCCESS,
        "Node(b-child)": Status.SUCCESS,
        "Node(c)": Status.SUCCESS,
    }


@pytest.mark.parametrize("executor", EXECUTORS)
def test_fail_fast_lets_running_tasks_finish(tmp_path, calls, executor):
    boom = Boom("a")
    Node("a-child")(boom)
    slow = Slow("b", seconds=0.3)
    Node("b-child")(slow)
    runner = make_runner(tmp_path, executor, process_limit=2)
    late = Slow("c", seconds=0.0)  # ready order: Boom(a), Slow(b), Slow(c)
    result = runner.run(Pipeline("fail-fast", [boom, slow, late]), fail_fast=True)
    if executor == "inline":  # one task at a time: nothing runs alongside the failure
        assert calls.counts() == {"Boom(a)": 1}
        assert result.statuses["Slow(b)"] is Status.NOT_STARTED
        return
    assert calls.counts() == {"Boom(a)": 1, "Slow(b)": 1}
    assert result.statuses == {
        "Boom(a)": Status.FAILURE,
        "Node(a-child)": Status.CANT_RUN,
        "Slow(b)": Status.SUCCESS,
        "Node(b-child)": Status.NOT_STARTED,
        "Slow(c)": Status.NOT_STARTED,
    }
    assert result["Slow(b)"] == "b"
    assert result.runs["Slow(b)"].finished > result.runs["Boom(a)"].finished


# --------------------------------------------------------------------------- bad values


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize(
    ("kind", "type_name"), [("lambda", "function"), ("lock", "lock"), ("generator", "generator")]
)
def test_unpicklable_result_fails_its_task_naming_task_and_type(
    tmp_path, calls, executor, kind, type_name
):
    bad = BadValue(kind, kind=kind)
    Node("after")(bad)
    name = f"BadValue({kind})"
    result = make_runner(tmp_path, executor).run(Pipeline("bad-value", [bad, Node("other")]))
    assert result.statuses == {
        name: Status.FAILURE,
        "Node(after)": Status.CANT_RUN,
        "Node(other)": Status.SUCCESS,
    }
    error = result.runs[name].error
    assert name in error, error
    assert type_name in error, error
    assert not result.path(name).exists()


@pytest.mark.parametrize("factory", [WithHandle, with_handle], ids=["class", "function"])
@pytest.mark.parametrize(
    "value", [threading.Lock(), (i for i in range(3))], ids=["lock", "generator"]
)
def test_unhashable_parameter_fails_at_creation_naming_the_parameter(factory, value):
    with pytest.raises(UnhashableParameterError) as info:
        factory("x", handle=value)
    message = str(info.value)
    assert "'handle'" in message, message
    assert "(x)" in message, message


# --------------------------------------------------------------------------- run outcome


def outcome_pipeline() -> Pipeline:
    a = Node("a")
    boom = explode_with_marker("x")(a)
    Node("after")(boom)
    return Pipeline("outcome", [a, Node("b")])


EXPECTED_OUTCOME = {
    "Node(a)": Status.SUCCESS,
    "explode(x)": Status.FAILURE,
    "Node(after)": Status.CANT_RUN,
    "Node(b)": Status.SUCCESS,
}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_run_returns_statuses_durations_and_failed_tasks_with_errors(tmp_path, calls, executor):
    result = make_runner(tmp_path, executor).run(outcome_pipeline())
    assert isinstance(result, PipelineResult)
    assert result.statuses == EXPECTED_OUTCOME
    durations = result.durations
    assert set(durations) == set(EXPECTED_OUTCOME)
    for name in ("Node(a)", "Node(b)", "explode(x)"):
        assert isinstance(durations[name], float) and durations[name] >= 0, name
    assert durations["Node(after)"] is None
    assert list(result.failed) == ["explode(x)"]
    failed = result.failed["explode(x)"]
    assert "ValueError: outcome-marker-7" in failed.error
    assert "Traceback (most recent call last)" in failed.traceback
    assert "explode_with_marker" in failed.traceback
    assert "outcome-marker-7" in failed.traceback


def test_run_result_is_a_mapping_of_the_available_outputs(tmp_path, calls):
    result = make_runner(tmp_path, "inline").run(outcome_pipeline())
    assert list(result) == ["Node(a)", "Node(b)"]
    assert dict(result) == {"Node(a)": "a", "Node(b)": "b"}
    assert list(result.keys()) == ["Node(a)", "Node(b)"]
    assert "explode(x)" not in result


def test_run_outcome_is_stored_in_run_yaml(tmp_path, calls):
    runner = make_runner(tmp_path, "process")
    result = runner.run(outcome_pipeline())
    doc = yaml.safe_load((the_run_dir(runner) / "run.yaml").read_text())
    tasks = doc["tasks"]
    assert {name: Status(t["status"]) for name, t in tasks.items()} == EXPECTED_OUTCOME
    for name, t in tasks.items():
        assert t["duration"] == pytest.approx(result.durations[name]), name
    assert "outcome-marker-7" in tasks["explode(x)"]["error"]
    assert "explode_with_marker" in tasks["explode(x)"]["traceback"]
    assert tasks["Node(after)"]["error"]  # says which upstream task failed
    assert tasks["Node(b)"]["error"] is None


def test_from_file_exposes_each_tasks_status_duration_and_error(tmp_path, calls):
    runner = make_runner(tmp_path, "process")
    result = runner.run(outcome_pipeline())
    loaded = PipelineResult.from_file(the_run_dir(runner) / "pipeline.yaml")
    assert loaded.statuses == EXPECTED_OUTCOME
    assert loaded.durations == pytest.approx(result.durations)
    for name in EXPECTED_OUTCOME:
        assert loaded.runs[name].error == result.runs[name].error, name
    assert "outcome-marker-7" in loaded.runs["explode(x)"].error
    assert list(loaded.failed) == ["explode(x)"]
    assert loaded["Node(b)"] == "b"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_output_of_failed_task_raises_error_carrying_its_traceback(tmp_path, calls, executor):
    runner = make_runner(tmp_path, executor)
    result = runner.run(outcome_pipeline())
    loaded = PipelineResult.from_file(the_run_dir(runner) / "pipeline.yaml")
    for source in (result, loaded):
        with pytest.raises(TaskOutputUnavailableError) as info:
            source["explode(x)"]
        message = str(info.value)
        assert "explode(x)" in message
        assert "ValueError: outcome-marker-7" in message
        assert "Traceback (most recent call last)" in message
        assert "explode_with_marker" in message
        with pytest.raises(TaskOutputUnavailableError, match="CANT_RUN"):
            source["Node(after)"]


# --------------------------------------------------------------------------- dead workers


def test_worker_that_dies_is_retried(tmp_path, calls, attempts):
    dies = DiesOnce("x")
    Node("after")(dies)
    runner = make_runner(tmp_path, "process")
    result = runner.run(Pipeline("dies", [dies]))
    assert result.statuses == {"DiesOnce(x)": Status.SUCCESS, "Node(after)": Status.SUCCESS}
    assert result.runs["DiesOnce(x)"].attempts == 2
    assert result["DiesOnce(x)"] == "survived"
    assert calls.counts() == {"DiesOnce(x)": 2, "Node(after)": 1}
    retry_lines = [line for line in log_lines(runner) if "DiesOnce(x)" in line and "retry" in line]
    assert len(retry_lines) == 1
    assert "code 3" in retry_lines[0]


def test_worker_that_dies_on_every_attempt_fails_after_its_retries(tmp_path, calls, attempts):
    dies = DiesAlways("x")
    Node("after")(dies)
    result = make_runner(tmp_path, "process").run(Pipeline("dies", [dies, Node("other")]))
    assert result.statuses == {
        "DiesAlways(x)": Status.FAILURE,
        "Node(after)": Status.CANT_RUN,
        "Node(other)": Status.SUCCESS,
    }
    assert result.runs["DiesAlways(x)"].attempts == 2
    assert "code 3" in result.runs["DiesAlways(x)"].error
    assert attempts.count("DiesAlways(x)") == 2


# --------------------------------------------------------------------------- shared semantics


def diamond_with_failing_branch() -> Pipeline:
    top = Node("a")
    left = Node("b-left")(top)
    right = Boom("c-right")(top)
    Collect("d-bottom")([left, right])
    Node("e-below-left")(left)
    return Pipeline("diamond", [top, Node("z-alone")])


def test_diamond_with_failing_branch_gives_the_same_outcome_on_every_executor(tmp_path, calls):
    expected_statuses = {
        "Node(a)": Status.SUCCESS,
        "Node(b-left)": Status.SUCCESS,
        "Boom(c-right)": Status.FAILURE,
        "Collect(d-bottom)": Status.CANT_RUN,
        "Node(e-below-left)": Status.SUCCESS,
        "Node(z-alone)": Status.SUCCESS,
    }
    outcomes = {}
    for executor in EXECUTORS:
        calls.reset()
        result = make_runner(tmp_path / executor, executor).run(diamond_with_failing_branch())
        assert result.statuses == expected_statuses, executor
        order = calls.order()
        assert (
            order.index("Node(a)") < order.index("Node(b-left)") < order.index("Node(e-below-left)")
        )
        outcomes[executor] = (
            {name: result[name] for name in result},
            sorted(calls.counts().items()),
            {name: run_.error for name, run_ in result.runs.items()},
            set(result.failed),
        )
        assert "boom-marker in Boom(c-right)" in result.runs["Boom(c-right)"].error
    assert outcomes["process"] == outcomes["thread"] == outcomes["inline"]
    assert outcomes["process"][0] == {
        "Node(a)": "a",
        "Node(b-left)": "b-left",
        "Node(e-below-left)": "e-below-left",
        "Node(z-alone)": "z-alone",
    }


# --------------------------------------------------------------------------- what tasks raise


class RaisesBase(Task):
    """Raises an exception that is no ``Exception``: the task's failure all the same."""

    @run
    def run(self, data, kind):
        record_call(self.name)
        raise {"interrupt": KeyboardInterrupt, "generator-exit": GeneratorExit}[kind]("mine")


@pytest.mark.parametrize("executor", EXECUTORS)
@pytest.mark.parametrize("kind", ["interrupt", "generator-exit"])
def test_a_task_raising_a_base_exception_fails_with_its_traceback(tmp_path, calls, executor, kind):
    if executor == "inline" and kind == "interrupt":
        pytest.skip("inline runs in the runner's thread: KeyboardInterrupt there is Ctrl-C")
    result = make_runner(tmp_path, executor).run(
        Pipeline("base", [Node("after")(RaisesBase("x", kind=kind)), Node("other")])
    )
    run_ = result.runs["RaisesBase(x)"]
    assert run_.status is Status.FAILURE
    assert "mine" in run_.error and ", in run\n" in (run_.traceback or "")
    assert result.statuses["Node(after)"] is Status.CANT_RUN
    assert result.statuses["Node(other)"] is Status.SUCCESS


class SwallowsEverything(Task):
    """Sleeps inside a broad ``except Exception``, as careless task code does."""

    timeout = TIMEOUT

    @run
    def run(self, data):
        record_call(self.name)
        try:
            WAKE.wait(30)
        except Exception:
            return "swallowed"
        return "woke"


def test_an_inline_timeout_is_not_swallowed_by_except_exception(tmp_path, calls):
    result = make_runner(tmp_path, "inline").run(Pipeline("swallow", [SwallowsEverything()]))
    assert result.statuses["SwallowsEverything()"] is Status.FAILURE
    assert TIMEOUT_TEXT in result.runs["SwallowsEverything()"].error


@task("UsesPool", receives_input=False)
def uses_pool(n):
    import multiprocessing

    with multiprocessing.get_context("fork").Pool(2) as pool:  # its exit terminates the pool
        return sum(pool.map(abs, range(-n, 0)))


@pytest.mark.parametrize("executor", ["process", "pool", "thread"])
def test_a_task_may_use_a_multiprocessing_pool(tmp_path, executor):
    result = make_runner(tmp_path, executor).run(Pipeline("pool", [uses_pool(n=10)]))
    assert result.ok, result.failed
    assert result["UsesPool()"] == 55


@task("ForksAChild", receives_input=False)
def forks_a_child():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # only os calls here: the parent has other threads
        is_default = signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
        os.write(write_end, b"default" if is_default else b"the runner's")
        os._exit(0)
    os.close(write_end)
    os.waitpid(pid, 0)
    with os.fdopen(read_end, "rb") as reading:
        return reading.read().decode()


@pytest.mark.parametrize("executor", ["thread", "inline"])
def test_a_process_a_task_forks_handles_sigterm_as_before_the_run(tmp_path, executor):
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL
    result = make_runner(tmp_path, executor).run(Pipeline("forks", [forks_a_child()]))
    assert result["ForksAChild()"] == "default"  # so Pool.terminate() can end its workers


@task("Daemonizes", receives_input=False)
def daemonizes(pid_file, how):
    pid = subprocess.Popen(["sleep", "60"]).pid if how == "child" else double_fork_sleeper()
    Path(pid_file).write_text(str(pid))
    return "left it running"


@pytest.mark.parametrize("how", ["child", "double-forked daemon"])
@pytest.mark.parametrize("executor", EXECUTORS)
def test_processes_a_task_leaves_running_end_with_the_run(tmp_path, executor, how):
    pid_file = tmp_path / "sleeper.pid"
    bystander = subprocess.Popen(["sleep", "60"])  # the caller's own: left alone
    caller_daemon = double_fork_sleeper()  # started before the run: left alone too
    try:
        result = make_runner(tmp_path, executor).run(
            Pipeline("leaves", [daemonizes(pid_file=str(pid_file), how=how)])
        )
        assert result.ok
        sleeper = int(pid_file.read_text())
        assert wait_gone(sleeper, 5.0)
        assert bystander.poll() is None
        os.kill(caller_daemon, 0)  # still there
    finally:
        bystander.kill()
        bystander.wait()
        with contextlib.suppress(ProcessLookupError):
            os.kill(caller_daemon, signal.SIGKILL)
        if pid_file.exists():
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid_file.read_text()), signal.SIGKILL)


@task("Appends", receives_input=False)
def appends(items):
    items.append("more")
    return len(items)


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_task_that_changes_its_parameters_changes_neither_itself_nor_its_key(tmp_path, executor):
    appender = appends(items=["one"])
    key = appender.hash()
    pipeline = Pipeline("appends", [appender])
    runner = make_runner(tmp_path, executor)
    assert runner.run(pipeline)["Appends()"] == 2
    assert appender.params == {"items": ["one"]} and appender.hash() == key
    again = runner.run(pipeline)  # in the same interpreter: cached, one stored entry
    assert again.statuses == {"Appends()": Status.CACHED}
    assert len(list((tmp_path / "data" / "Appends()").iterdir())) == 1
