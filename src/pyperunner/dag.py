"""The graph of a pipeline: task names, edges parent -> child, and the orders a run walks them in.

:class:`Dag` offers the part of ``networkx.DiGraph``'s interface that planning, scheduling and
the pictures use, so those take either (:class:`GraphLike`). It knows nothing of tasks.
"""

from __future__ import annotations

import graphlib
import heapq
from collections.abc import Hashable, Iterable, Iterator, Mapping
from typing import Any, Protocol


class GraphLike(Protocol):
    """What planning, scheduling and the pictures need of a graph: a :class:`Dag` or a
    ``networkx.DiGraph``."""

    @property
    def nodes(self) -> Any: ...
    @property
    def edges(self) -> Any: ...
    def predecessors(self, node: Any) -> Iterator[Any]: ...
    def successors(self, node: Any) -> Iterator[Any]: ...


class Dag:
    """A directed graph of task names, edges parent -> child, each node with a dict of attributes.

    It offers the part of ``networkx.DiGraph``'s interface that planning, scheduling and the
    pictures use (``nodes[name]``, ``edges``, ``predecessors``, ``successors``), so those take
    either. A run never imports networkx: its import alone (about 0.1 s) is most of the budget of
    a fully cached run; the algorithms a run needs come from the standard library's ``graphlib``.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.nodes: dict[Hashable, dict[str, Any]] = {}
        self._parents: dict[Hashable, list[Hashable]] = {}
        self._children: dict[Hashable, dict[Hashable, None]] = {}
        # topological_order's result, kept until a node or an edge is added
        self._order: list[Hashable] | None = None

    @classmethod
    def from_parents(
        cls,
        attrs: Mapping[Hashable, dict[str, Any]],
        parents: Mapping[Hashable, Iterable[Hashable]],
    ) -> Dag:
        """The graph of the nodes of ``attrs``, in its order and with those attributes, and an
        edge to each from each of its ``parents`` (nodes too): what ``add_node`` and
        ``add_edge`` build, in a fraction of their time for a graph of thousands of nodes."""
        dag = cls()
        dag.nodes = dict(attrs)
        dag._parents = {node: list(dict.fromkeys(parents.get(node, ()))) for node in dag.nodes}
        dag._children = {node: {} for node in dag.nodes}
        for node, above in dag._parents.items():
            for parent in above:
                dag._children[parent][node] = None
        return dag

    def add_node(self, node: Hashable, **attrs: Any) -> None:
        """Add ``node`` (if new) and set its attributes."""
        if node not in self.nodes:
            self.nodes[node], self._parents[node], self._children[node] = {}, [], {}
            self._order = None
        self.nodes[node].update(attrs)

    def add_edge(self, parent: Hashable, child: Hashable) -> None:
        """Add the edge ``parent -> child`` (and the nodes); a child's parents keep their order."""
        self.add_node(parent)
        self.add_node(child)
        if child not in self._children[parent]:
            self._children[parent][child] = None
            self._parents[child].append(parent)
            self._order = None

    @property
    def edges(self) -> list[tuple[Hashable, Hashable]]:
        """Every edge as ``(parent, child)``."""
        return [(p, c) for p, children in self._children.items() for c in children]

    def predecessors(self, node: Hashable) -> Iterator[Hashable]:
        """The parents of ``node``, in the order they were connected."""
        return iter(self._parents[node])

    def successors(self, node: Hashable) -> Iterator[Hashable]:
        """The children of ``node``."""
        return iter(self._children[node])

    def copy(self) -> Dag:
        """A copy whose node attributes can change without touching this graph's."""
        other = Dag(self.name)
        other.nodes = {node: dict(attrs) for node, attrs in self.nodes.items()}
        other._parents = {node: list(ps) for node, ps in self._parents.items()}
        other._children = {node: dict(cs) for node, cs in self._children.items()}
        other._order = self._order
        return other

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, node: object) -> bool:
        return node in self.nodes


def topological_order(graph: GraphLike) -> list[Any]:
    """The nodes of ``graph``, parents before children, ties broken by name (stable output).

    Raises ``ValueError`` naming a cycle if there is one. A :class:`Dag` keeps its order, so a
    run sorts its graph once, not once per use (planning, keys, YAML, each picture).
    """
    if isinstance(graph, Dag):
        if graph._order is None:
            graph._order = _sorted(graph)
        return list(graph._order)
    return _sorted(graph)


def _sorted(graph: GraphLike) -> list[Any]:
    """Kahn's algorithm, the ready nodes in a heap so that ties go by name."""
    waiting = {node: len(set(graph.predecessors(node))) for node in graph.nodes}
    ready = [node for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for child in graph.successors(node):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(order) < len(waiting):
        _raise_cycle(graph)
    return order


def _raise_cycle(graph: GraphLike) -> None:
    """Raise ``ValueError`` naming a cycle of ``graph`` (found by ``graphlib``)."""
    try:
        graphlib.TopologicalSorter({n: graph.predecessors(n) for n in graph.nodes}).prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(str(node) for node in exc.args[1])
        raise ValueError(f"the graph has a cycle: {cycle}") from None
    raise AssertionError("unreachable: Kahn's algorithm left nodes but graphlib finds no cycle")


def descendants(graph: GraphLike, node: Any) -> set[Any]:
    """Every node reachable from ``node`` (not ``node`` itself)."""
    found: set[Any] = set()
    stack = list(graph.successors(node))
    while stack:
        below = stack.pop()
        if below not in found:
            found.add(below)
            stack.extend(graph.successors(below))
    return found
