"""Pictures of very big pipelines: many like tasks drawn as one box.

A layer of thousands of tasks, or a chain of hundreds, cannot be drawn box by box at a readable
size. Where a layer does not fit the picture's width, tasks of one class whose parents are the
same (or stand for the same groups) become one box; where the layers do not fit its height, so
do chains of tasks of one class. Such a box reads ``Name(first ... last), N tasks``, is coloured
by its worst status, and its second line counts the statuses.
"""

from __future__ import annotations

import collections
import itertools
import re
from collections.abc import Hashable, Mapping, Sequence

from ..graph import Dag, GraphLike
from ..status import Status
from .layout import fits_height, fits_width, longest_path_layers, node_status

MIN_GROUP = 3
"""The fewest tasks drawn as one box."""

_WORST_FIRST = [
    Status.FAILURE,
    Status.INTERRUPTED,
    Status.CANT_RUN,
    Status.RUNNING,
    Status.NOT_STARTED,
    Status.SUCCESS,
    Status.CACHED,
]
_NAME = re.compile(r"(.+?)\((.*)\)\Z", re.DOTALL)


def grouped(graph: GraphLike) -> GraphLike:
    """``graph`` itself where it fits the picture, else a copy in which each group of like
    tasks is one node: side by side (one class, the same parents, at least ``MIN_GROUP`` of
    them) where a layer is too wide, one after the other (one class, each the only child of the
    one before and its only parent) where the layers are too many."""
    layer_of = longest_path_layers(graph)
    groups = like_groups(graph, not fits_width(graph, layer_of), not fits_height(layer_of))
    if not groups:
        return graph
    drawn_as: dict[Hashable, Hashable] = {node: node for node in graph.nodes}
    drawn_as.update((node, head) for head, nodes in groups.items() for node in nodes)
    drawn = Dag()
    for node in graph.nodes:
        if drawn_as[node] == node:
            drawn.add_node(node, **graph.nodes[node])
    for head, nodes in groups.items():
        counts = collections.Counter(node_status(graph, node) for node in nodes)
        worst = next(status for status in _WORST_FIRST if counts[status])
        detail = " · ".join(f"{counts[s]} {s.value}" for s in _WORST_FIRST if counts[s])
        drawn.add_node(head, status=worst, detail=detail, tasks=nodes)
    for u, v in graph.edges:
        if drawn_as[u] != drawn_as[v]:
            drawn.add_edge(drawn_as[u], drawn_as[v])
    return drawn


def like_groups(
    graph: GraphLike, side_by_side: bool = True, in_a_row: bool = True
) -> dict[Hashable, list[Hashable]]:
    """The groups of like tasks in ``graph``, each by its name (``Name(first ... last), N
    tasks``): side by side (one class, the same parents, at least ``MIN_GROUP`` of them), then
    one after the other (one class, each the only child of the one before and its only parent)."""
    layer_of = longest_path_layers(graph)
    # layer by layer, so that a task's parents come before it
    in_order = sorted(graph.nodes, key=layer_of.__getitem__)
    drawn_as: dict[Hashable, Hashable] = {node: node for node in graph.nodes}
    groups: dict[Hashable, list[Hashable]] = {}
    if side_by_side:
        _side_by_side(graph, layer_of, in_order, drawn_as, groups)
    if in_a_row:
        _in_a_row(graph, in_order, drawn_as, groups)
    return groups


def _side_by_side(
    graph: GraphLike,
    layer_of: Mapping[Hashable, int],
    in_order: list[Hashable],
    drawn_as: dict[Hashable, Hashable],
    groups: dict[Hashable, list[Hashable]],
) -> None:
    """Group the like tasks of each layer: one class, parents that are the same or stand for
    the same groups (parents lie in earlier layers, so they are placed already)."""
    for _, layer in itertools.groupby(in_order, key=layer_of.__getitem__):
        kinds: dict[tuple[str, frozenset[Hashable]], list[Hashable]] = collections.defaultdict(list)
        for node in layer:
            match = _NAME.match(str(node))
            if match is not None:
                parents = frozenset(drawn_as[p] for p in graph.predecessors(node))
                kinds[(match.group(1), parents)].append(node)
        for (name, _), nodes in kinds.items():
            if len(nodes) >= MIN_GROUP:  # named by the first and last tag: fold-2 before fold-10
                _group(name, sorted(nodes, key=_natural), graph, drawn_as, groups)


def _in_a_row(
    graph: GraphLike,
    in_order: list[Hashable],
    drawn_as: dict[Hashable, Hashable],
    groups: dict[Hashable, list[Hashable]],
) -> None:
    """Group each chain of like tasks not grouped yet: one class, each task the only child of
    the one before it and that one its only parent."""
    chains: list[tuple[str, list[Hashable]]] = []
    chain_of: dict[Hashable, tuple[str, list[Hashable]]] = {}
    for node in in_order:  # a node's parent comes before it
        match = _NAME.match(str(node))
        if match is None or drawn_as[node] != node:
            continue
        parents = list(graph.predecessors(node))
        before = parents[0] if len(parents) == 1 else None
        chain = chain_of.get(before)
        if chain is not None and chain[0] == match.group(1) and _children(graph, before) == 1:
            chain[1].append(node)
        else:
            chain = (match.group(1), [node])
            chains.append(chain)
        chain_of[node] = chain
    for name, nodes in chains:
        if len(nodes) >= MIN_GROUP:
            _group(name, nodes, graph, drawn_as, groups)


def _children(graph: GraphLike, node: Hashable) -> int:
    return sum(1 for _ in graph.successors(node))


def _group(
    name: str,
    nodes: list[Hashable],
    graph: GraphLike,
    drawn_as: dict[Hashable, Hashable],
    groups: dict[Hashable, list[Hashable]],
) -> None:
    head = _group_name(name, nodes, graph, groups)
    groups[head] = nodes
    for node in nodes:
        drawn_as[node] = head


def _group_name(
    name: str, nodes: Sequence[Hashable], graph: GraphLike, taken: dict[Hashable, object]
) -> str:
    """``Name(first ... last), N tasks``, the tags of the first and last task, unique in the
    picture."""
    first, last = (_tag(node) for node in (nodes[0], nodes[-1]))
    head = f"{name}({first} ... {last}), {len(nodes)} tasks"
    while head in taken or head in graph.nodes:
        head += "'"
    return head


def _natural(node: Hashable) -> list[str | int]:
    """A sort key that orders the numbers in names by value: text at even places, numbers at
    odd ones, so any two keys compare."""
    return [int(p) if i % 2 else p for i, p in enumerate(re.split(r"(\d+)", str(node)))]


def _tag(node: Hashable) -> str:
    match = _NAME.match(str(node))
    return match.group(2) if match else str(node)
