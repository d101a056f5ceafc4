"""The scheduler alone (``pyperunner.scheduler.run_plan``): the order tasks start in, the limit of
tasks at once, failures marking what is downstream CANT_RUN, retries, ``fail_fast`` and
interrupts; with an in-test executor that runs nothing and ends jobs as each test scripts."""

from __future__ import annotations

import signal
from collections.abc import Iterable

import pytest

from pyperunner import Pipeline, Status, Task, TaskRun, run
from pyperunner.dag import Dag
from pyperunner.executors import Executor, Job, Outcome
from pyperunner.graph import graph_keys
from pyperunner.plan import Plan, make_plan
from pyperunner.scheduler import RunInterrupted, run_plan


class Node(Task):
    @run
    def run(self, data):
        return self.tag


class Flaky(Node):
    retries = 1


class ScriptedExecutor(Executor):
    """Runs nothing: each ``wait`` ends the job submitted first among those running, failing it
    where ``fails`` names its (task, attempt); ``interrupt_at`` makes that wait a Ctrl-C."""

    def __init__(self, fails: Iterable[tuple[str, int]] = (), interrupt_at: int | None = None):
        super().__init__()
        self.fails = set(fails)
        self.interrupt_at = interrupt_at
        self.submitted: list[tuple[str, int]] = []
        self.running: list[Job] = []
        self.most = 0  # jobs running at once, at most
        self.waits = 0
        self.stopped: list[str] = []

    def submit(self, job: Job) -> None:
        self.submitted.append((job.name, job.attempt))
        self.running.append(job)
        self.most = max(self.most, len(self.running))

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        self.waits += 1
        if self.waits == self.interrupt_at:
            raise KeyboardInterrupt
        if not self.running:
            return []
        job = self.running.pop(0)
        error = "boom" if (job.name, job.attempt) in self.fails else None
        return [Outcome(job.name, started=1.0, finished=2.0, error=error)]

    def shutdown(self) -> list[str]:
        stopped = [job.name for job in self.running]
        self.stopped += stopped
        self.running.clear()
        return stopped


class NoHolds:
    """Holds nothing: the scripted executor stores no result to hold."""

    def take(self, name: str) -> bool:
        return True

    def keep(self, name: str, hold: object) -> bool:
        return True

    def track(self, name: str, status: Status) -> None:
        pass


def schedule(
    tasks: list[Task],
    executor: ScriptedExecutor,
    workers: int = 1,
    cached: Iterable[str] = (),
    fail_fast: bool = False,
) -> tuple[dict[str, TaskRun], list[tuple[str, Status]]]:
    """Run the plan of the pipeline of ``tasks`` (``cached`` taken from the store); return the
    records and every status change the listener heard."""
    graph, plan = _planned(tasks, cached)
    keys = graph_keys(graph)
    jobs = {name: Job(graph.nodes[name]["task"], keys[name], (), {}) for name in graph}
    heard: list[tuple[str, Status]] = []
    runs = run_plan(
        graph,
        plan,
        jobs,
        executor,
        workers,
        NoHolds(),  # type: ignore[arg-type]
        lambda name, record: heard.append((name, record.status)),
        fail_fast,
    )
    return runs, heard


def _planned(tasks: list[Task], cached: Iterable[str]) -> tuple[Dag, Plan]:
    graph = Pipeline("scheduled", tasks).graph()
    stored = set(cached)
    return graph, make_plan(graph, is_cached=stored.__contains__, reload=lambda name: False)


def diamond() -> list[Task]:
    """a -> b, a -> c, (b, c) -> d, and e on its own."""
    a = Node("a")
    d = Node("d")([Node("b")(a), Node("c")(a)])
    return [d, Node("e")]


def test_a_task_starts_only_once_its_parents_are_stored():
    executor = ScriptedExecutor()
    runs, heard = schedule(diamond(), executor)
    started = [name for name, _ in executor.submitted]
    assert sorted(started) == ["Node(a)", "Node(b)", "Node(c)", "Node(d)", "Node(e)"]
    assert started.index("Node(a)") < started.index("Node(b)") < started.index("Node(d)")
    assert started.index("Node(c)") < started.index("Node(d)")
    assert {name: run.status for name, run in runs.items()} == dict.fromkeys(runs, Status.SUCCESS)
    assert [status for name, status in heard if name == "Node(d)"] == [
        Status.RUNNING,
        Status.SUCCESS,
    ]
    assert runs["Node(d)"].duration == 1.0 and runs["Node(d)"].attempts == 1


def test_cached_tasks_are_not_submitted_and_their_children_run():
    executor = ScriptedExecutor()
    runs, _ = schedule(diamond(), executor, cached={"Node(a)", "Node(e)"})
    assert sorted(name for name, _ in executor.submitted) == ["Node(b)", "Node(c)", "Node(d)"]
    assert runs["Node(a)"].status is Status.CACHED and runs["Node(e)"].status is Status.CACHED
    assert runs["Node(d)"].status is Status.SUCCESS


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_no_more_tasks_run_at_once_than_workers(workers):
    executor = ScriptedExecutor()
    runs, _ = schedule([Node(str(i)) for i in range(6)], executor, workers=workers)
    assert executor.most == workers
    assert len(executor.submitted) == 6
    assert all(run.status is Status.SUCCESS for run in runs.values())


def test_a_failure_marks_everything_downstream_cant_run_and_other_branches_finish():
    executor = ScriptedExecutor(fails={("Node(b)", 1)})
    runs, heard = schedule(diamond(), executor, workers=2)
    assert runs["Node(b)"].status is Status.FAILURE and runs["Node(b)"].error == "boom"
    assert runs["Node(d)"].status is Status.CANT_RUN
    assert runs["Node(d)"].error == "upstream task Node(b) failed"
    assert ("Node(d)", Status.CANT_RUN) in heard
    assert {runs[n].status for n in ("Node(a)", "Node(c)", "Node(e)")} == {Status.SUCCESS}
    assert "Node(d)" not in {name for name, _ in executor.submitted}


def test_fail_fast_launches_nothing_after_the_first_failure():
    executor = ScriptedExecutor(fails={("Node(0)", 1)})
    runs, _ = schedule([Node(str(i)) for i in range(4)], executor, fail_fast=True)
    assert executor.submitted == [("Node(0)", 1)]
    assert runs["Node(0)"].status is Status.FAILURE
    assert {runs[f"Node({i})"].status for i in (1, 2, 3)} == {Status.NOT_STARTED}


def test_a_task_with_retries_runs_again_after_a_failed_attempt():
    executor = ScriptedExecutor(fails={("Flaky(x)", 1)})
    runs, heard = schedule([Node("child")(Flaky("x"))], executor)
    assert executor.submitted == [("Flaky(x)", 1), ("Flaky(x)", 2), ("Node(child)", 1)]
    assert runs["Flaky(x)"].status is Status.SUCCESS and runs["Flaky(x)"].attempts == 2
    assert [status for name, status in heard if name == "Flaky(x)"] == [
        Status.RUNNING,
        Status.NOT_STARTED,  # waiting for its retry
        Status.RUNNING,
        Status.SUCCESS,
    ]


def test_an_interrupt_stops_the_running_tasks_and_carries_every_record_out():
    executor = ScriptedExecutor(interrupt_at=2)
    tasks = [Node("after")(Node("a")), Node("b"), Node("c")]
    with pytest.raises(RunInterrupted) as caught:
        schedule(tasks, executor, workers=2)
    interrupted = caught.value
    try:
        assert interrupted.signum == signal.SIGINT
        assert executor.submitted == [("Node(a)", 1), ("Node(b)", 1), ("Node(c)", 1)]
        assert executor.stopped == ["Node(b)", "Node(c)"]
        assert {name: run.status for name, run in interrupted.runs.items()} == {
            "Node(a)": Status.SUCCESS,  # ended at the first wait
            "Node(b)": Status.INTERRUPTED,
            "Node(c)": Status.INTERRUPTED,
            "Node(after)": Status.NOT_STARTED,  # ready, but the interrupt came first
        }
        assert interrupted.runs["Node(b)"].error == "interrupted"
    finally:
        interrupted.restore_signals()


def test_an_interrupt_whose_stopping_fails_puts_the_signal_handlers_back():
    class BrokenShutdown(ScriptedExecutor):
        def shutdown(self) -> list[str]:
            raise OSError("the workers could not be reached")

    handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(OSError, match="could not be reached"):
        schedule([Node("a"), Node("b")], BrokenShutdown(interrupt_at=1), workers=2)
    assert {sig: signal.getsignal(sig) for sig in handlers} == handlers  # not left ignored
