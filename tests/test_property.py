"""Property tests over random DAGs: every task runs once, after its parents; a changed parameter
re-runs exactly that task and everything downstream of it."""

from __future__ import annotations

import itertools
from pathlib import Path

import networkx as nx
from conftest import record_call
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pyperunner import Pipeline, Runner, Status, Task, run

MAX_TASKS = 8

_counter = itertools.count()


class Step(Task):
    """Records that it ran and returns its tag with its inputs."""

    @run
    def run(self, data, value):
        record_call(self.name)
        return [self.tag, value, len(data)]


@st.composite
def dags(draw: st.DrawFn) -> nx.DiGraph:
    """A random DAG on nodes 0..n-1 whose edges go from a lower to a higher index."""
    n = draw(st.integers(min_value=1, max_value=MAX_TASKS))
    graph = nx.DiGraph()
    graph.add_nodes_from(range(n))
    for child in range(1, n):
        parents = draw(st.lists(st.integers(0, child - 1), unique=True, max_size=child))
        graph.add_edges_from((parent, child) for parent in parents)
    return graph


def name(i: int) -> str:
    return f"Step({i})"


def build(graph: nx.DiGraph, values: dict[int, int]) -> Pipeline:
    """Fresh task objects wired as ``graph`` (parents connected in the order drawn)."""
    tasks = {i: Step(str(i), value=values.get(i, 0)) for i in graph}
    for i in graph:
        parents = list(graph.predecessors(i))
        if parents:
            tasks[i]([tasks[p] for p in parents])
    roots = [tasks[i] for i in graph if graph.in_degree(i) == 0]
    return Pipeline("random-dag", roots)


def fresh_paths(base: Path) -> tuple[Path, Path]:
    folder = base / f"example-{next(_counter)}"
    return folder / "data", folder / "log"


def check_dag(graph: nx.DiGraph, changed: int, executor: str, base: Path, calls) -> None:
    calls.reset()
    data, log = fresh_paths(base)
    runner = Runner(data, log, executor=executor, process_limit=2, console=False)

    result = runner.run(build(graph, {}))
    order = calls.order()
    # every task ran exactly once ...
    assert sorted(order) == sorted(name(i) for i in graph)
    # ... and after all of its parents
    position = {task_name: index for index, task_name in enumerate(order)}
    for parent, child in graph.edges:
        assert position[name(parent)] < position[name(child)], order
    assert set(result.statuses.values()) == {Status.SUCCESS}
    for i in graph:
        assert result[name(i)] == [str(i), 0, graph.in_degree(i)]

    # changing one task's parameter re-runs exactly that task and its descendants
    calls.reset()
    result = runner.run(build(graph, {changed: 1}))
    expected = {name(i) for i in {changed} | nx.descendants(graph, changed)}
    order = calls.order()
    assert len(order) == len(set(order)), order
    assert set(order) == expected
    for i in graph:
        status = Status.SUCCESS if name(i) in expected else Status.CACHED
        assert result.statuses[name(i)] is status
    assert result[name(changed)] == [str(changed), 1, graph.in_degree(changed)]


@st.composite
def dag_and_changed(draw: st.DrawFn) -> tuple[nx.DiGraph, int]:
    graph = draw(dags())
    return graph, draw(st.integers(0, len(graph) - 1))


@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=dag_and_changed(), executor=st.sampled_from(["inline", "thread", "pool"]))
def test_random_dags_run_in_order_and_rerun_descendants(case, executor, tmp_path, calls):
    graph, changed = case
    check_dag(graph, changed, executor, tmp_path, calls)


@settings(
    max_examples=5,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(case=dag_and_changed())
def test_random_dags_with_process_executor(case, tmp_path, calls):
    graph, changed = case
    check_dag(graph, changed, "process", tmp_path, calls)
