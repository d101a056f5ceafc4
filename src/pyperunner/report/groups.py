"""Pictures of very wide pipelines: many like tasks side by side drawn as one box.

A layer of thousands of tasks cannot be drawn box by box at a readable size. Where some layer
does not fit the picture's width, tasks of one class whose parents are the same (or stand for
the same groups) become one box, ``Name(first ... last), N tasks``, coloured by its worst
status, its second line counting the statuses.
"""

from __future__ import annotations

import collections
import re
from collections.abc import Hashable, Sequence

import networkx as nx

from ..graph import GraphLike
from ..status import Status
from .layout import fits_width, longest_path_layers, node_status

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
    tasks (one class, the same parents, at least ``MIN_GROUP`` of them) is one node."""
    if fits_width(graph):
        return graph
    layers: dict[int, list[Hashable]] = collections.defaultdict(list)
    layer_of = longest_path_layers(graph)
    for node in graph.nodes:  # in the pipeline's order, which names a group's first and last
        layers[layer_of[node]].append(node)
    drawn_as: dict[Hashable, Hashable] = {}  # every task -> the node that stands for it
    groups: dict[Hashable, list[Hashable]] = {}
    for index in sorted(layers):  # parents lie in earlier layers: placed already
        kinds: dict[tuple[str, frozenset[Hashable]], list[Hashable]] = collections.defaultdict(list)
        for node in layers[index]:
            match = _NAME.match(str(node))
            if match is None:
                drawn_as[node] = node
                continue
            parents = frozenset(drawn_as[p] for p in graph.predecessors(node))
            kinds[(match.group(1), parents)].append(node)
        for (name, _), nodes in kinds.items():
            head = _group_name(name, nodes, graph, groups) if len(nodes) >= MIN_GROUP else None
            if head is not None:
                groups[head] = nodes
            for node in nodes:
                drawn_as[node] = node if head is None else head
    drawn = nx.DiGraph()
    for node in graph.nodes:
        if drawn_as[node] == node:
            drawn.add_node(node, **graph.nodes[node])
    for head, nodes in groups.items():
        counts = collections.Counter(node_status(graph, node) for node in nodes)
        worst = next(status for status in _WORST_FIRST if counts[status])
        detail = " · ".join(f"{counts[s]} {s.value}" for s in _WORST_FIRST if counts[s])
        drawn.add_node(head, status=worst, detail=detail)
    drawn.add_edges_from({(drawn_as[u], drawn_as[v]) for u, v in graph.edges})
    return drawn


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


def _tag(node: Hashable) -> str:
    match = _NAME.match(str(node))
    return match.group(2) if match else str(node)
