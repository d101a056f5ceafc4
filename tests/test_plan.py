"""Tests for ``pyperunner.plan.make_plan``: which tasks run and why, as a pure function of a graph.

The graph is a ``networkx.DiGraph`` of task names with edges parent -> child; ``is_cached`` and
``reload`` are plain callables, so every caching rule of the manual can be checked without a run.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterable

import networkx as nx
import pytest

from pyperunner.plan import Plan, Reason, make_plan

CHAIN = ["first", "second", "third", "fourth"]


def chain_graph(names: list[str]) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_nodes_from(names)
    graph.add_edges_from(itertools.pairwise(names))
    return graph


def diamond_graph() -> nx.DiGraph:
    #     top
    #    /   \
    # left   right
    #    \   /
    #    bottom
    return nx.DiGraph([("top", "left"), ("top", "right"), ("left", "bottom"), ("right", "bottom")])


def multi_root_graph() -> nx.DiGraph:
    # the manual's multi-path pipeline: two roots merging in Evaluate(both)
    return nx.DiGraph(
        [
            ("LoadData(csv)", "ProcessData(normalize-l1)"),
            ("ProcessData(normalize-l1)", "AugmentData(augment)"),
            ("AugmentData(augment)", "Evaluate(both)"),
            ("LoadData(database)", "ProcessData(normalize-l2)"),
            ("ProcessData(normalize-l2)", "Evaluate(both)"),
        ]
    )


class CountingCache:
    """An ``is_cached`` callable that answers from a set and counts who asked."""

    def __init__(self, cached: Iterable[str]) -> None:
        self.cached = set(cached)
        self.asked: Counter[str] = Counter()

    def __call__(self, name: str) -> bool:
        self.asked[name] += 1
        return name in self.cached


def no_reload(name: str) -> bool:
    return False


def reload_only(*names: str) -> Callable[[str], bool]:
    return lambda name: name in names


def assert_topological(graph: nx.DiGraph, names: list[str]) -> None:
    position = {name: i for i, name in enumerate(names)}
    for parent, child in graph.edges:
        if parent in position and child in position:
            assert position[parent] < position[child], (parent, child, names)


# -- the five caching rules at the planning level -------------------------------------------------


def test_nothing_cached_runs_every_task_because_not_cached() -> None:
    graph = chain_graph(CHAIN)

    plan = make_plan(graph, CountingCache([]), no_reload)

    assert plan.to_run == CHAIN
    assert plan.cached == []
    assert plan.reasons["first"] is Reason.NOT_CACHED
    # downstream tasks run because their upstream runs; the store is not asked about them
    assert all(plan.reasons[name] is Reason.UPSTREAM for name in CHAIN[1:])


def test_nothing_cached_in_independent_tasks_gives_not_cached_for_each() -> None:
    graph = nx.DiGraph()
    graph.add_nodes_from(["a", "b", "c"])

    plan = make_plan(graph, CountingCache([]), no_reload)

    assert plan.reasons == {name: Reason.NOT_CACHED for name in ["a", "b", "c"]}


def test_everything_cached_runs_nothing() -> None:
    graph = chain_graph(CHAIN)

    plan = make_plan(graph, CountingCache(CHAIN), no_reload)

    assert plan.to_run == []
    assert plan.cached == CHAIN
    assert dict(plan.reasons) == {}


def test_reload_on_one_task_runs_it_and_its_descendants_only() -> None:
    graph = chain_graph(CHAIN)

    plan = make_plan(graph, CountingCache(CHAIN), reload_only("third"))

    assert plan.to_run == ["third", "fourth"]
    assert plan.cached == ["first", "second"]
    assert plan.reasons["third"] is Reason.RELOAD
    assert plan.reasons["fourth"] is Reason.UPSTREAM


def test_force_reload_runs_every_task_with_reason_force_reload() -> None:
    graph = chain_graph(CHAIN)
    cache = CountingCache(CHAIN)

    plan = make_plan(graph, cache, no_reload, force_reload=True)

    assert plan.to_run == CHAIN
    assert plan.cached == []
    assert all(plan.reasons[name] is Reason.FORCE_RELOAD for name in CHAIN)
    assert sum(cache.asked.values()) == 0, "the store need not be consulted under force_reload"


def test_uncached_task_in_the_middle_runs_with_its_descendants() -> None:
    # e.g. a changed parameter gives the second task a key that is not in the store
    graph = chain_graph(CHAIN)

    plan = make_plan(graph, CountingCache(["first", "third", "fourth"]), no_reload)

    assert plan.to_run == ["second", "third", "fourth"]
    assert plan.cached == ["first"]
    assert plan.reasons == {
        "second": Reason.NOT_CACHED,
        "third": Reason.UPSTREAM,
        "fourth": Reason.UPSTREAM,
    }


def test_uncached_leaf_runs_alone() -> None:
    graph = chain_graph(CHAIN)

    plan = make_plan(graph, CountingCache(CHAIN[:-1]), no_reload)

    assert plan.to_run == ["fourth"]
    assert plan.reasons == {"fourth": Reason.NOT_CACHED}


# -- shapes -------------------------------------------------------------------------------------


def test_diamond_with_one_uncached_branch_runs_that_branch_and_the_merge() -> None:
    graph = diamond_graph()

    plan = make_plan(graph, CountingCache(["top", "right", "bottom"]), no_reload)

    assert set(plan.to_run) == {"left", "bottom"}
    assert set(plan.cached) == {"top", "right"}
    assert plan.reasons == {"left": Reason.NOT_CACHED, "bottom": Reason.UPSTREAM}
    assert_topological(graph, plan.to_run)


def test_diamond_with_reload_on_top_runs_everything_below() -> None:
    graph = diamond_graph()

    plan = make_plan(graph, CountingCache(graph.nodes), reload_only("top"))

    assert set(plan.to_run) == {"top", "left", "right", "bottom"}
    assert plan.reasons["top"] is Reason.RELOAD
    assert {plan.reasons[n] for n in ["left", "right", "bottom"]} == {Reason.UPSTREAM}
    assert plan.to_run[0] == "top" and plan.to_run[-1] == "bottom"


def test_multi_root_graph_reruns_only_the_path_below_the_uncached_root() -> None:
    graph = multi_root_graph()
    cached = set(graph.nodes) - {"LoadData(database)"}

    plan = make_plan(graph, CountingCache(cached), no_reload)

    assert set(plan.to_run) == {
        "LoadData(database)",
        "ProcessData(normalize-l2)",
        "Evaluate(both)",
    }
    assert set(plan.cached) == {
        "LoadData(csv)",
        "ProcessData(normalize-l1)",
        "AugmentData(augment)",
    }
    assert plan.reasons["LoadData(database)"] is Reason.NOT_CACHED
    assert plan.reasons["Evaluate(both)"] is Reason.UPSTREAM
    assert_topological(graph, plan.to_run)


def test_multi_root_graph_with_reload_in_one_branch_leaves_the_other_branch_cached() -> None:
    graph = multi_root_graph()

    plan = make_plan(graph, CountingCache(graph.nodes), reload_only("ProcessData(normalize-l1)"))

    assert set(plan.to_run) == {
        "ProcessData(normalize-l1)",
        "AugmentData(augment)",
        "Evaluate(both)",
    }
    assert plan.reasons["ProcessData(normalize-l1)"] is Reason.RELOAD
    assert "LoadData(database)" in plan.cached
    assert "ProcessData(normalize-l2)" in plan.cached


# -- order ----------------------------------------------------------------------------------------


def test_to_run_and_cached_are_in_topological_order_not_alphabetical() -> None:
    # names sort in the opposite order of the edges
    names = ["z", "y", "x", "w", "v"]
    graph = chain_graph(names)

    plan = make_plan(graph, CountingCache(["z", "x"]), no_reload)

    assert list(plan.order) == names
    assert plan.to_run == ["y", "x", "w", "v"]
    assert plan.cached == ["z"]


@pytest.mark.parametrize("cached", [set(), {"top"}, {"top", "left"}, {"top", "right", "bottom"}])
def test_to_run_and_cached_partition_the_graph_in_topological_order(cached: set[str]) -> None:
    graph = diamond_graph()

    plan = make_plan(graph, CountingCache(cached), no_reload)

    assert sorted(plan.to_run + plan.cached) == sorted(graph.nodes)
    assert not set(plan.to_run) & set(plan.cached)
    assert_topological(graph, list(plan.order))
    assert_topological(graph, plan.to_run)
    assert_topological(graph, plan.cached)
    assert plan.to_run == [n for n in plan.order if n in plan.to_run]
    assert plan.cached == [n for n in plan.order if n in plan.cached]


# -- purity and store consultation --------------------------------------------------------------


def test_is_cached_is_not_consulted_for_tasks_that_run_because_of_upstream() -> None:
    graph = chain_graph(CHAIN)
    cache = CountingCache(["first", "third", "fourth"])

    make_plan(graph, cache, no_reload)

    assert set(cache.asked) == {"first", "second"}
    assert all(count == 1 for count in cache.asked.values())


def test_is_cached_is_not_consulted_for_a_reloaded_task_or_its_descendants() -> None:
    graph = diamond_graph()
    cache = CountingCache(graph.nodes)

    make_plan(graph, cache, reload_only("left"))

    assert "left" not in cache.asked
    assert "bottom" not in cache.asked
    assert set(cache.asked) == {"top", "right"}
    assert all(count == 1 for count in cache.asked.values())


def test_make_plan_is_pure_same_inputs_same_plan_and_graph_untouched() -> None:
    graph = multi_root_graph()
    before_nodes = dict(graph.nodes(data=True))
    before_edges = list(graph.edges(data=True))
    cached = set(graph.nodes) - {"ProcessData(normalize-l2)"}

    first = make_plan(graph, CountingCache(cached), no_reload)
    second = make_plan(graph, CountingCache(cached), no_reload)

    assert first == second
    assert isinstance(first, Plan)
    assert dict(graph.nodes(data=True)) == before_nodes
    assert list(graph.edges(data=True)) == before_edges


def test_empty_graph_gives_an_empty_plan() -> None:
    plan = make_plan(nx.DiGraph(), CountingCache([]), no_reload)

    assert plan.to_run == []
    assert plan.cached == []


def test_reason_values_are_readable_sentences() -> None:
    for reason in Reason:
        assert isinstance(reason.value, str) and reason.value
