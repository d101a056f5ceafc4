"""Property tests over random DAGs with random failing and crashing tasks (issue 3, point 10):
statuses follow the failure rules exactly, no task starts before its parents have finished,
nothing downstream of a failure runs, and a following run without the faults completes everything
by running exactly what did not succeed before."""

from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import networkx as nx
from conftest import record_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyperunner import Pipeline, Runner, Status, Task, run

MAX_TASKS = 8
FAULTS_ENV = "PYPERUNNER_TEST_FAULTS"
DONE = "done "

_counter = itertools.count()


def planned_fault(name: str) -> str:
    """The fault the test planned for task ``name``: "ok", "fail" or "crash".

    The plan is a JSON file named by the environment, not a parameter, so switching the faults
    off leaves every task's key unchanged.
    """
    path = os.environ.get(FAULTS_ENV)
    if not path or not os.path.exists(path):
        return "ok"
    with open(path, encoding="utf-8") as handle:
        return json.load(handle).get(name, "ok")


class Faulty(Task):
    """Records its start, then raises, kills its process or returns as planned for it."""

    @run
    def run(self, data):
        record_call(self.name)
        fault = planned_fault(self.name)
        if fault == "fail":
            raise RuntimeError(f"planned failure of {self.name}")
        if fault == "crash":
            os._exit(1)
        record_call(DONE + self.name)
        return [self.tag, len(data)]


def name(i: int) -> str:
    return f"Faulty({i})"


@st.composite
def faulty_dags(draw: st.DrawFn, faults: list[str]) -> tuple[nx.DiGraph, dict[int, str]]:
    """A random DAG on nodes 0..n-1 (edges from lower to higher index) and a fault per node."""
    n = draw(st.integers(min_value=1, max_value=MAX_TASKS))
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    for child in range(1, n):
        parents = draw(st.lists(st.integers(0, child - 1), unique=True, max_size=child))
        graph.add_edges_from((parent, child) for parent in parents)
    plan = {i: draw(st.sampled_from(faults)) for i in range(n)}
    return graph, plan


def build(graph: nx.DiGraph) -> Pipeline:
    """Fresh task objects wired as ``graph``."""
    tasks = {i: Faulty(str(i)) for i in graph}
    for i in graph:
        parents = list(graph.predecessors(i))
        if parents:
            tasks[i]([tasks[p] for p in parents])
    return Pipeline("faulty-dag", [tasks[i] for i in graph if graph.in_degree(i) == 0])


def expected_statuses(graph: nx.DiGraph, plan: dict[int, str]) -> dict[str, Status]:
    """The rules: a faulty task that runs is FAILURE, everything below a fault CANT_RUN."""
    faulty = {i for i, fault in plan.items() if fault != "ok"}
    below = set().union(*(nx.descendants(graph, i) for i in faulty))
    statuses = {}
    for i in graph:
        if i in below:
            statuses[name(i)] = Status.CANT_RUN
        elif i in faulty:
            statuses[name(i)] = Status.FAILURE
        else:
            statuses[name(i)] = Status.SUCCESS
    return statuses


def check_parents_finished_first(graph: nx.DiGraph, order: list[str]) -> None:
    """Every task that started did so after each of its parents that ran had finished."""
    position = {entry: index for index, entry in enumerate(order)}
    for parent, child in graph.edges:
        if name(child) in position and name(parent) in position:
            done = DONE + name(parent)
            assert done in position, (parent, child, order)
            assert position[done] < position[name(child)], (parent, child, order)


def check_faults(graph, plan, executor, base: Path, calls) -> None:
    calls.reset()
    faults_file = Path(os.environ[FAULTS_ENV])
    faults_file.write_text(json.dumps({name(i): fault for i, fault in plan.items()}))
    folder = base / f"example-{next(_counter)}"
    runner = Runner(
        folder / "data", folder / "log", executor=executor, process_limit=2, console=False
    )

    expected = expected_statuses(graph, plan)
    result = runner.run(build(graph))
    assert result.statuses == expected, plan
    order = calls.order()
    started = [entry for entry in order if not entry.startswith(DONE)]
    # every task that may run ran once; nothing downstream of a failure ran
    assert sorted(started) == sorted(n for n, s in expected.items() if s is not Status.CANT_RUN)
    check_parents_finished_first(graph, order)
    assert set(result.failed) == {n for n, s in expected.items() if s is Status.FAILURE}

    # with the faults switched off (keys unchanged), the next run completes everything,
    # running exactly the tasks that did not succeed before
    faults_file.unlink()
    calls.reset()
    result = runner.run(build(graph))
    rerun = {n for n, s in expected.items() if s is not Status.SUCCESS}
    order = calls.order()
    started = [entry for entry in order if not entry.startswith(DONE)]
    assert sorted(started) == sorted(rerun)
    check_parents_finished_first(graph, order)
    assert result.statuses == {n: Status.SUCCESS if n in rerun else Status.CACHED for n in expected}
    for i in graph:
        assert result[name(i)] == [str(i), graph.in_degree(i)]


@settings(
    max_examples=20,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    case=faulty_dags(["ok", "fail"]),
    executor=st.sampled_from(["thread", "inline", "pool"]),
)
def test_random_dags_with_failing_tasks_follow_the_rules_and_complete_next_run(
    case, executor, tmp_path, calls, monkeypatch
):
    monkeypatch.setenv(FAULTS_ENV, str(tmp_path / "faults.json"))
    graph, plan = case
    check_faults(graph, plan, executor, tmp_path, calls)


@settings(
    max_examples=5,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=faulty_dags(["ok", "fail", "crash"]), executor=st.sampled_from(["process", "pool"]))
def test_random_dags_with_failing_and_crashing_workers_follow_the_rules_and_complete_next_run(
    case, executor, tmp_path, calls, monkeypatch
):
    monkeypatch.setenv(FAULTS_ENV, str(tmp_path / "faults.json"))
    graph, plan = case
    check_faults(graph, plan, executor, tmp_path, calls)
