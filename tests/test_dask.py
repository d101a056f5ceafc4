"""Tests for the Dask executor (issue 5, point 1) on a real ``distributed.LocalCluster`` with two
worker processes: the shared semantics match the local executors, data passes through the store,
retries, timeouts and concurrency limits hold, a killed worker ends the run, and tasks defined in
``__main__`` of a script run on the cluster (``pyperunner.executors.dask``).

The cluster starts once for the module. Its worker processes keep the environment they started
with, so the folders where tasks record their calls and attempts are set before it starts.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import CALLS_ENV, Calls, local_cluster, record_call

from pyperunner import Pipeline, Runner, Status, Task, run, task
from pyperunner.executors.base import Job
from pyperunner.executors.dask import DaskExecutor
from pyperunner.store import Store

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

# A second cluster (or one of another test session) finds the scheduler's default HTTP port taken.
pytestmark = pytest.mark.filterwarnings("ignore:Port .* is already in use:UserWarning")

ATTEMPTS_ENV = "PYPERUNNER_TEST_ATTEMPTS"
BIG = 20 * 1024 * 1024


# --------------------------------------------------------------------------- cluster fixtures


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder the test process and every worker process know, for calls and attempts."""
    folder = tmp_path_factory.mktemp("dask-shared")
    (folder / "attempts").mkdir()
    return folder


@pytest.fixture(scope="module")
def cluster(shared: Path) -> Iterator[distributed.LocalCluster]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(CALLS_ENV, str(shared / "calls.txt"))
        patch.setenv(ATTEMPTS_ENV, str(shared / "attempts"))
        with local_cluster() as started:
            yield started


@pytest.fixture(scope="module")
def client(cluster: distributed.LocalCluster) -> Iterator[distributed.Client]:
    with distributed.Client(cluster, set_as_default=False) as connected:
        yield connected


@pytest.fixture
def executor(client: distributed.Client) -> DaskExecutor:
    return DaskExecutor(client)


@pytest.fixture
def calls(shared: Path, cluster: distributed.LocalCluster) -> Calls:
    """Executions on the workers and in this process (overrides conftest's per-test file)."""
    recorded = Calls(shared / "calls.txt")
    recorded.reset()
    return recorded


@pytest.fixture
def attempts(shared: Path, cluster: distributed.LocalCluster) -> Path:
    folder = shared / "attempts"
    for path in folder.iterdir():
        path.unlink()
    return folder


# --------------------------------------------------------------------------- tasks


def record_attempt(name: str) -> int:
    """Append a line to ``<attempts folder>/<name>``; return this attempt's number."""
    path = Path(os.environ[ATTEMPTS_ENV], name)
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("attempt\n")
    return len(path.read_text(encoding="utf-8").splitlines())


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


class Big(Task):
    """Returns ``size`` bytes."""

    @run
    def run(self, data, size):
        record_call(self.name)
        return bytes(range(256)) * (size // 256)


class Measure(Task):
    """Describes the bytes its parent returned, and where it ran."""

    @run
    def run(self, data):
        blob = data[0]
        return {"len": len(blob), "sha": hashlib.sha256(blob).hexdigest(), "pid": os.getpid()}


@task("Flaky", retries=1)
def flaky(data, fails):
    count = record_attempt("Flaky")
    record_call("Flaky")
    if count <= fails:
        raise RuntimeError(f"flaky-marker: attempt {count} fails")
    return f"succeeded on attempt {count}"


class Sleeper(Task):
    """Sleeps ``seconds``, beyond its timeout."""

    timeout = 0.5

    @run
    def run(self, data, seconds):
        record_call(self.name)
        time.sleep(seconds)
        return "woke up"


class Stamp(Task):
    """Sleeps ``seconds`` and writes its start and end time to ``folder/<name>``."""

    @run
    def run(self, data, folder, seconds):
        start = time.time()
        time.sleep(seconds)
        Path(folder, self.name).write_text(f"{start} {time.time()}")
        return self.name


class Printer(Task):
    """Prints and logs marker lines."""

    @run
    def run(self, data):
        print("hello from print marker")
        self.logger.info("info from logger marker")
        return os.getpid()


class KillsWorkerOnce(Task):
    """SIGKILLs its worker process the first time it runs (``marker`` remembers that)."""

    @run
    def run(self, data, marker):
        record_call(self.name)
        if not os.path.exists(marker):
            Path(marker).write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return "survived"


# --------------------------------------------------------------------------- helpers


def make_runner(folder: Path, executor: str | DaskExecutor, **kwargs) -> Runner:
    return Runner(folder / "data", folder / "log", executor=executor, console=False, **kwargs)


def diamond_with_failing_branch() -> Pipeline:
    top = Node("a")
    left = Node("b-left")(top)
    right = Boom("c-right")(top)
    Collect("d-bottom")([left, right])
    Node("e-below-left")(left)
    return Pipeline("diamond", [top, Node("z-alone")])


def multi_path() -> Pipeline:
    """The manual's pipeline with two paths joined at the end."""
    load_db = Node("database")
    norm_l2 = Node("normalize-l2")(load_db)
    load_csv = Node("csv")
    augment = Node("augment")(Node("normalize-l1")(load_csv))
    Collect("both")([norm_l2, augment])
    return Pipeline("my-pipeline", [load_db, load_csv])


def chain() -> Pipeline:
    first = Node("first")
    Node("third")(Node("second")(first))
    return Pipeline("chain", [first])


# --------------------------------------------------------------------------- shared semantics


def test_diamond_with_failing_branch_gives_the_same_outcome_as_inline(tmp_path, calls, executor):
    expected = {
        "Node(a)": Status.SUCCESS,
        "Node(b-left)": Status.SUCCESS,
        "Boom(c-right)": Status.FAILURE,
        "Collect(d-bottom)": Status.CANT_RUN,
        "Node(e-below-left)": Status.SUCCESS,
        "Node(z-alone)": Status.SUCCESS,
    }
    outcomes = {}
    for name, chosen in [("inline", "inline"), ("dask", executor)]:
        calls.reset()
        result = make_runner(tmp_path / name, chosen).run(diamond_with_failing_branch())
        assert result.statuses == expected, name
        order = calls.order()
        assert (
            order.index("Node(a)") < order.index("Node(b-left)") < order.index("Node(e-below-left)")
        )
        assert "boom-marker in Boom(c-right)" in result.runs["Boom(c-right)"].error
        assert "Traceback (most recent call last)" in result.runs["Boom(c-right)"].traceback
        outcomes[name] = (
            dict(result),
            sorted(calls.counts().items()),
            {task_name: task_run.error for task_name, task_run in result.runs.items()},
            set(result.failed),
        )
    assert outcomes["dask"] == outcomes["inline"]


def test_second_run_is_all_cached_and_executes_nothing(tmp_path, calls, executor):
    runner = make_runner(tmp_path, executor)
    first = runner.run(chain())
    assert set(first.statuses.values()) == {Status.SUCCESS}
    assert calls.counts() == {"Node(first)": 1, "Node(second)": 1, "Node(third)": 1}
    calls.reset()
    second = runner.run(chain())
    assert set(second.statuses.values()) == {Status.CACHED}
    assert calls.order() == []
    assert dict(second) == {
        "Node(first)": "first",
        "Node(second)": "second",
        "Node(third)": "third",
    }


def test_large_output_passes_to_its_child_through_the_store(tmp_path, calls, executor):
    big = Big("blob", size=BIG)
    Measure("m")(big)
    result = make_runner(tmp_path, executor).run(Pipeline("big", [big]))
    assert result.ok
    expected = bytes(range(256)) * (BIG // 256)
    measured = result["Measure(m)"]
    assert measured["len"] == BIG
    assert measured["sha"] == hashlib.sha256(expected).hexdigest()
    assert measured["pid"] != os.getpid()  # it ran on a worker, reading the store
    assert result.path("Big(blob)").exists()
    assert result.runs["Big(blob)"].output_bytes > 0


def test_task_failing_its_first_attempt_succeeds_on_its_retry(tmp_path, calls, attempts, executor):
    first = flaky("x", fails=1)
    Node("after")(first)
    result = make_runner(tmp_path, executor).run(Pipeline("retries", [first]))
    assert result.statuses == {"Flaky(x)": Status.SUCCESS, "Node(after)": Status.SUCCESS}
    assert result.runs["Flaky(x)"].attempts == 2
    assert result["Flaky(x)"] == "succeeded on attempt 2"
    assert calls.counts() == {"Flaky": 2, "Node(after)": 1}


def test_timed_out_task_fails_quickly_and_its_descendants_cant_run(tmp_path, calls, executor):
    sleeper = Sleeper("s", seconds=3.0)
    Node("child")(sleeper)
    result = make_runner(tmp_path, executor).run(Pipeline("timeout", [sleeper, Node("other")]))
    assert result.statuses == {
        "Sleeper(s)": Status.FAILURE,
        "Node(child)": Status.CANT_RUN,
        "Node(other)": Status.SUCCESS,
    }
    error = result.runs["Sleeper(s)"].error
    assert "timed out after 0.5 s" in error
    assert "cancelled" in error


def test_results_are_identical_to_the_process_executor(tmp_path, calls, executor):
    results = {}
    for name, chosen in [("process", "process"), ("dask", executor)]:
        result = make_runner(tmp_path / name, chosen).run(multi_path())
        results[name] = (dict(result), result.statuses)
    assert results["dask"] == results["process"]
    assert results["dask"][0]["Collect(both)"] == ["normalize-l2", "augment"]


def test_process_limit_caps_how_many_tasks_run_at_once(tmp_path, executor):
    folder = tmp_path / "stamps"
    folder.mkdir()
    roots = [Stamp(str(i), folder=str(folder), seconds=0.2) for i in range(3)]
    runner = make_runner(tmp_path, executor, process_limit=1)
    assert runner.run(Pipeline("limit", roots)).ok
    stamps = sorted(tuple(map(float, f.read_text().split())) for f in folder.iterdir())
    assert len(stamps) == 3
    for (_, end), (start, _) in itertools.pairwise(stamps):
        assert start >= end, stamps


def test_task_logs_and_prints_reach_the_run_log(tmp_path, executor):
    runner = make_runner(tmp_path, executor)
    result = runner.run(Pipeline("printing", [Printer("p")]))
    assert result["Printer(p)"] != os.getpid()
    assert runner.run_dir is not None
    lines = (runner.run_dir / "pipeline.log").read_text().splitlines()
    for marker in ("hello from print marker", "info from logger marker"):
        found = [line for line in lines if marker in line]
        assert len(found) == 1, lines
        assert "Printer(p)" in found[0]


class RetriedSleeper(Sleeper):
    """A sleeper allowed a retry: a timed-out attempt goes on on its worker all the same."""

    retries = 1


class LogsOddExtra(Task):
    """Logs a record whose ``extra`` holds something that cannot be pickled."""

    @run
    def run(self, data):
        self.logger.info("odd extra marker", extra={"guard": threading.Lock()})
        return "logged"


def test_a_task_dask_cannot_take_fails_alone_and_the_run_goes_on(tmp_path, calls, executor, capfd):
    guard = threading.Lock()

    @task("UsesLock", receives_input=False)
    def uses_lock():
        with guard:  # the closure holds a lock: cloudpickle cannot send the task
            return 1

    locked = uses_lock("l")
    Node("after")(locked)
    runner = make_runner(tmp_path, executor)
    result = runner.run(Pipeline("unsendable", [locked, Node("other")]))
    assert result.statuses == {
        "UsesLock(l)": Status.FAILURE,
        "Node(after)": Status.CANT_RUN,
        "Node(other)": Status.SUCCESS,
    }
    error = result.runs["UsesLock(l)"].error
    assert "could not be sent to Dask" in error and "lock" in error, error
    assert (runner.run_dir / "run.yaml").is_file()
    assert "Failed to serialize" not in capfd.readouterr().err  # said once, in its own words
    assert "Failed to serialize" not in (runner.run_dir / "pipeline.log").read_text()


def test_a_timed_out_attempt_is_not_retried_while_it_may_go_on(tmp_path, calls, executor):
    result = make_runner(tmp_path, executor).run(
        Pipeline("late", [RetriedSleeper("s", seconds=3.0)])
    )
    assert result.statuses == {"RetriedSleeper(s)": Status.FAILURE}
    assert result.runs["RetriedSleeper(s)"].attempts == 1
    assert "timed out after 0.5 s" in result.runs["RetriedSleeper(s)"].error


def test_a_log_record_that_cannot_be_pickled_does_not_fail_its_task(tmp_path, executor):
    runner = make_runner(tmp_path, executor)
    result = runner.run(Pipeline("odd", [LogsOddExtra("x")]))
    assert result.statuses == {"LogsOddExtra(x)": Status.SUCCESS}
    assert "odd extra marker" in (runner.run_dir / "pipeline.log").read_text()


def test_tasks_fail_once_the_cluster_has_had_no_worker_for_the_timeout(tmp_path):
    with (
        distributed.LocalCluster(n_workers=0, processes=True, dashboard_address=None) as empty,
        distributed.Client(empty, set_as_default=False) as own,
    ):
        executor = DaskExecutor(own, no_worker_timeout=1.0)
        result = make_runner(tmp_path, executor).run(chain())
    assert result.statuses == {
        "Node(first)": Status.FAILURE,
        "Node(second)": Status.CANT_RUN,
        "Node(third)": Status.CANT_RUN,
    }
    assert "no worker for 1 s" in result.runs["Node(first)"].error


# --------------------------------------------------------------------------- dead workers


def killing_pipeline(marker: Path) -> Pipeline:
    killer = KillsWorkerOnce("k", marker=str(marker))
    Node("after-kill")(killer)
    return Pipeline("kill", [killer, Node("other")])


def test_worker_killed_mid_task_is_rescheduled_by_dask(tmp_path, calls, client, executor):
    result = make_runner(tmp_path, executor).run(killing_pipeline(tmp_path / "killed"))
    assert (tmp_path / "killed").exists()  # a worker died
    assert result.statuses == {
        "KillsWorkerOnce(k)": Status.SUCCESS,
        "Node(after-kill)": Status.SUCCESS,
        "Node(other)": Status.SUCCESS,
    }
    assert result["KillsWorkerOnce(k)"] == "survived"
    assert calls.counts()["KillsWorkerOnce(k)"] == 2
    client.wait_for_workers(2, timeout=30)  # the nanny restarted the dead worker
    assert make_runner(tmp_path / "next", executor).run(chain()).ok


def test_worker_killed_with_no_failures_allowed_fails_naming_the_worker(tmp_path, calls):
    with (
        dask.config.set({"distributed.scheduler.allowed-failures": 0}),
        local_cluster() as cluster,
        distributed.Client(cluster, set_as_default=False) as own,
    ):
        pipeline = killing_pipeline(tmp_path / "killed")
        result = make_runner(tmp_path, DaskExecutor(own)).run(pipeline)
    assert result.statuses == {
        "KillsWorkerOnce(k)": Status.FAILURE,
        "Node(after-kill)": Status.CANT_RUN,
        "Node(other)": Status.SUCCESS,
    }
    error = result.runs["KillsWorkerOnce(k)"].error
    assert "KilledWorker" in error
    assert "tcp://" in error  # the worker that died


# --------------------------------------------------------------------------- the executor itself


def test_given_client_is_used_and_never_closed(tmp_path, client):
    executor = DaskExecutor(client)
    assert make_runner(tmp_path, executor).run(chain()).ok
    assert executor.shutdown() == []
    assert executor.client is client
    assert client.status == "running"


def test_a_closed_client_is_refused_at_once(cluster):
    closed = distributed.Client(cluster, set_as_default=False)
    closed.close()
    with pytest.raises(ValueError, match="Client given to DaskExecutor is closed"):
        DaskExecutor(closed)


def test_address_makes_an_own_client_that_shutdown_closes(tmp_path, cluster, client):
    executor = DaskExecutor(cluster.scheduler_address)
    assert executor.client is None
    executor.start(Store(tmp_path / "data"), 2)
    own = executor.client
    assert own is not None and own is not client
    executor.shutdown()
    assert executor.client is None
    assert own.status == "closed"
    assert client.status == "running"


def test_runner_closes_an_own_client_after_each_run(tmp_path, cluster, client):
    executor = DaskExecutor(cluster.scheduler_address)
    runner = make_runner(tmp_path, executor)
    assert runner.run(chain()).ok
    assert executor.client is None  # nothing left open between runs
    assert runner.run(chain(), force_reload=True).ok  # a new client for the next run
    assert client.status == "running"


def test_shutdown_cancels_running_jobs_and_names_them(tmp_path, client):
    executor = DaskExecutor(client)
    executor.start(Store(tmp_path / "data"), 2)
    executor.submit(Job(Sleeper("stopped", seconds=1.0), "key", (), {}))
    assert executor.wait(timeout=0.2) == []
    assert executor.shutdown() == ["Sleeper(stopped)"]
    assert executor.wait(timeout=0.0) == []


def test_tasks_defined_in_main_of_a_script_run_on_the_cluster(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import dataclasses

            from distributed import Client, LocalCluster

            from pyperunner import Pipeline, Runner, Task, run, task
            from pyperunner.executors.dask import DaskExecutor


            class Double(Task):
                @run
                def run(self, data, value):
                    print("main-task-marker", value)
                    return 2 * value


            @task("Sum")
            def total(data):
                return sum(data)


            @dataclasses.dataclass
            class Point:
                x: int
                y: int


            @task("MakePoint", receives_input=False)
            def make_point(x):
                return Point(x, 2 * x)


            if __name__ == "__main__":
                with LocalCluster(
                    n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None
                ) as cluster, Client(cluster) as client:
                    a, b = Double("a", value=1), Double("b", value=20)
                    total("s")([a, b])
                    runner = Runner("data", "log", executor=DaskExecutor(client), console=False)
                    point = make_point("p", x=3)
                    result = runner.run(Pipeline("main", [a, b, point]))
                    assert dict(result) == {
                        "Double(a)": 2, "Double(b)": 40, "Sum(s)": 42, "MakePoint(p)": Point(3, 6)
                    }
                    assert type(result["MakePoint(p)"]) is Point  # this script's own class
                    log = (runner.run_dir / "pipeline.log").read_text()
                    assert "main-task-marker 20" in log, log
                    assert client.status == "running"
                print("script-done")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "script-done" in done.stdout


def test_a_child_reads_a_parents_result_of_a_class_only_the_parent_names(tmp_path):
    """The script is given with ``-c``, so no worker can import its ``__main__``; the parent is
    cached and the workers restarted, so the child's worker never ran the parent's code."""
    code = textwrap.dedent(
        """
        from distributed import Client, LocalCluster

        from pyperunner import Pipeline, Runner, Task, run, task
        from pyperunner.executors.dask import DaskExecutor


        class Box:
            def __init__(self, v):
                self.v = v


        class Make(Task):
            @run
            def run(self):
                return Box(21)


        @task("Child")
        def child(data):
            return data[0].v + 1  # Box is never named here


        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster, Client(cluster) as client:
            runner = Runner("data", "log", executor=DaskExecutor(client), console=False)
            assert runner.run(Pipeline("first", [Make("m")])).ok
            client.restart()
            made = Make("m")
            child("c")(made)
            result = runner.run(Pipeline("second", [made]))
            assert result.ok, {n: r.error for n, r in result.runs.items()}
            assert result["Child(c)"] == 22
        print("script-done")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "script-done" in done.stdout


def test_importing_pyperunner_does_not_import_dask():
    code = (
        "import sys, pyperunner, pyperunner.executors.dask; "
        "print(sorted({'dask', 'distributed'} & set(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_missing_distributed_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)
    with pytest.raises(ImportError, match=r'pip install "pyperunner\[dask\]"'):
        DaskExecutor("tcp://127.0.0.1:8786")


def test_a_malformed_scheduler_address_fails_at_once_and_says_what_to_give():
    with pytest.raises(ValueError, match=r"missing port.*'tcp://host:port'"):
        DaskExecutor("notaurl")


def test_an_unreachable_scheduler_fails_the_run_saying_so(tmp_path):
    """Nothing listens on the address: the run fails at its start with a ConnectionError that
    names the address and how long Dask tried, and what to do."""
    with socket.socket() as unused:  # a free port nothing listens on once closed
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        runner = make_runner(tmp_path, DaskExecutor(f"tcp://127.0.0.1:{port}"))
        with pytest.raises(ConnectionError, match=rf"127.0.0.1:{port}.*start one"):
            runner.run(Pipeline("p", [Node("x")]))


class KillsScheduler(Task):
    """SIGKILLs the Dask scheduler (process ``pid``), then waits to be stopped."""

    @run
    def run(self, data, pid):
        os.kill(pid, signal.SIGKILL)
        time.sleep(60)


def test_a_scheduler_that_dies_mid_run_fails_its_tasks_saying_so(tmp_path):
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    here = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    quiet = {  # and where this module's tasks can be imported (the scheduler unpickles them)
        "stdout": subprocess.DEVNULL,
        "stderr": subprocess.DEVNULL,
        "env": {**os.environ, "PYTHONPATH": here},
    }
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--port", str(port)], **quiet
    )
    worker = subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_worker", address, "--no-nanny"], **quiet
    )
    try:
        with distributed.Client(address, timeout=60, set_as_default=False) as probe:
            probe.wait_for_workers(1, timeout=60)
        task = KillsScheduler("s", pid=scheduler.pid)
        result = make_runner(tmp_path, DaskExecutor(address)).run(Pipeline("p", [task]))
    finally:
        for process in (worker, scheduler):
            process.kill()
            process.wait()
    assert result.statuses == {"KillsScheduler(s)": Status.FAILURE}
    assert "lost the Dask scheduler" in result.runs["KillsScheduler(s)"].error
