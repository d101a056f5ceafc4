"""Drawings of big pipelines: many like tasks drawn as one box, so the drawing fits its room.

A drawing has so much room (a :class:`Room`): ``status.png`` about ``PICTURE_PIXELS`` on its
longest side, ``pyperunner show`` the terminal's width. Where a layer is too wide for it, tasks
of one class whose parents are the same (or stand for the same groups) become one box, and where
the layer stays too wide, all its tasks of one class; where the layers are too many, so do
chains of tasks of one class. Such a box reads ``Name(first ... last), N tasks``, is coloured by
its worst status, and its second line counts the statuses. A drawing that fits is left alone.
"""

from __future__ import annotations

import collections
import itertools
import math
import re
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..dag import Dag, GraphLike
from ..status import Status
from .layout import (
    DPI,
    H_GAP,
    MARGIN,
    PICTURE_PIXELS,
    READABLE_DPI,
    box_width,
    longest_path_layers,
    most_layers,
    status_of,
)

MIN_GROUP = 3
"""The fewest tasks drawn as one box."""

WORST_FIRST = [
    Status.FAILURE,
    Status.INTERRUPTED,
    Status.CANT_RUN,
    Status.RUNNING,
    Status.NOT_STARTED,
    Status.SUCCESS,
    Status.CACHED,
]
"""Statuses from the worst: a group is drawn in its worst, and lists show failures first."""
_NAME = re.compile(r"(.+?)\((.*)\)\Z", re.DOTALL)
_DIGITS = re.compile(r"(\d+)")


@dataclass(frozen=True)
class Room:
    """How much room a drawing has, in its own unit (inches, columns), and how wide it draws
    the box of a node, given the node and its attributes."""

    box: Callable[[Hashable, Mapping[str, Any]], float]
    gap: float  # between two boxes of a layer
    width: float  # a layer wider than this has its like tasks drawn as one box each
    widest: float  # where it stays wider than this, all its tasks of one class
    layers: float = math.inf  # more layers than this: chains of like tasks as one box each

    def fits(self, boxes: Iterable[tuple[Hashable, Mapping[str, Any]]], width: float) -> bool:
        """Whether ``(node, attributes)`` boxes side by side are at most ``width`` wide."""
        row = -self.gap
        for node, attrs in boxes:
            row += self.gap + self.box(node, attrs)
            if row > width:
                return False
        return True


PICTURE = Room(
    box_width,
    H_GAP,
    width=PICTURE_PIXELS / DPI - 2 * MARGIN,
    widest=PICTURE_PIXELS / READABLE_DPI - 2 * MARGIN,
    layers=most_layers(PICTURE_PIXELS / DPI),
)
"""The room of ``status.png`` and of the task graph of ``report.html``: ``PICTURE_PIXELS`` at
``DPI``, or at ``READABLE_DPI`` if the picture is drawn smaller to fit."""


def grouped(graph: GraphLike, room: Room = PICTURE) -> GraphLike:
    """``graph`` itself where it fits ``room``, else a copy in which each group of like tasks
    (see :func:`like_groups`) is one node, with the attributes ``status`` (the worst among
    them), ``counts`` (by status), ``detail`` (the counts in words) and ``tasks``."""
    groups = like_groups(graph, room)
    if not groups:
        return graph
    drawn_as: dict[Hashable, Hashable] = {node: node for node in graph.nodes}
    drawn_as.update((node, head) for head, nodes in groups.items() for node in nodes)
    drawn = Dag()
    for node in graph.nodes:
        if drawn_as[node] == node:
            drawn.add_node(node, **graph.nodes[node])
    for head, nodes in groups.items():
        drawn.add_node(head, **_group_attrs(graph, nodes))
    edges = dict.fromkeys((drawn_as[u], drawn_as[v]) for u, v in graph.edges)
    for u, v in edges:  # once each, in the order of the first edge each stands for
        if u != v:
            drawn.add_edge(u, v)
    return drawn


def like_groups(graph: GraphLike, room: Room = PICTURE) -> dict[Hashable, list[Hashable]]:
    """The groups of like tasks ``graph`` needs to fit ``room``, each by its name (``Name(first
    ... last), N tasks``): in each layer too wide, tasks side by side of one class with the same
    parents (or parents in the same groups), at least ``MIN_GROUP`` of them, or all those of a
    class where that is still too wide; then, if the layers are too many, chains of one class
    (each task the only child of the one before and that one its only parent)."""
    layer_of = longest_path_layers(graph)
    # layer by layer, so that a task's parents come before it
    in_order = sorted(graph.nodes, key=layer_of.__getitem__)
    drawn_as: dict[Hashable, Hashable] = {node: node for node in graph.nodes}
    groups: dict[Hashable, list[Hashable]] = {}
    for _, layer in itertools.groupby(in_order, key=layer_of.__getitem__):
        _side_by_side(graph, room, list(layer), drawn_as, groups)
    if max(layer_of.values(), default=-1) + 1 > room.layers:
        _in_a_row(graph, in_order, drawn_as, groups)
    return groups


def _side_by_side(
    graph: GraphLike,
    room: Room,
    layer: list[Hashable],
    drawn_as: dict[Hashable, Hashable],
    groups: dict[Hashable, list[Hashable]],
) -> None:
    """Group the like tasks of one layer if it is too wide for ``room`` (its tasks' parents lie
    in earlier layers, so they are grouped already)."""
    if len(layer) < MIN_GROUP or room.fits(((n, graph.nodes[n]) for n in layer), room.width):
        return

    def same_parents(node: Hashable) -> frozenset[Hashable]:
        return frozenset(drawn_as[p] for p in graph.predecessors(node))

    proposal = _proposal(graph, layer, same_parents, groups)
    if not room.fits(_boxes_with(graph, layer, proposal), room.widest):
        proposal = _proposal(graph, layer, lambda node: None, groups)
    for head, nodes in proposal.items():
        _group(head, nodes, drawn_as, groups)


def _proposal(
    graph: GraphLike,
    layer: list[Hashable],
    alike: Callable[[Hashable], Hashable],
    taken: Mapping[Hashable, object],
) -> dict[Hashable, list[Hashable]]:
    """The groups of ``layer``'s tasks of one class and the same ``alike(task)``, by name."""
    kinds: dict[tuple[str, Hashable], list[Hashable]] = collections.defaultdict(list)
    for node in layer:
        match = _NAME.match(str(node))
        if match is not None:
            kinds[(match.group(1), alike(node))].append(node)
    proposal: dict[Hashable, list[Hashable]] = {}
    for (name, _), nodes in kinds.items():
        if len(nodes) >= MIN_GROUP:  # named by the first and last tag: fold-2 before fold-10
            nodes = sorted(nodes, key=natural_order)
            proposal[_group_name(name, nodes, graph, taken, proposal)] = nodes
    return proposal


def _boxes_with(
    graph: GraphLike, layer: list[Hashable], proposal: Mapping[Hashable, list]
) -> Iterator[tuple[Hashable, Mapping[str, Any]]]:
    """The boxes of ``layer`` with the groups of ``proposal`` drawn as one box each."""
    inside = {node for nodes in proposal.values() for node in nodes}
    yield from ((head, _group_attrs(graph, nodes)) for head, nodes in proposal.items())
    yield from ((node, graph.nodes[node]) for node in layer if node not in inside)


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
            _group(_group_name(name, nodes, graph, groups), nodes, drawn_as, groups)


def _children(graph: GraphLike, node: Hashable) -> int:
    return sum(1 for _ in graph.successors(node))


def _group(
    head: Hashable,
    nodes: list[Hashable],
    drawn_as: dict[Hashable, Hashable],
    groups: dict[Hashable, list[Hashable]],
) -> None:
    groups[head] = nodes
    for node in nodes:
        drawn_as[node] = head


def _group_attrs(graph: GraphLike, nodes: list[Hashable]) -> dict[str, Any]:
    """The attributes of the node standing for ``nodes``."""
    counts = collections.Counter(status_of(graph.nodes[node]) for node in nodes)
    worst = next(status for status in WORST_FIRST if counts[status])
    detail = " · ".join(f"{counts[s]} {s.value}" for s in WORST_FIRST if counts[s])
    return {"status": worst, "counts": counts, "detail": detail, "tasks": nodes}


def _group_name(
    name: str, nodes: Sequence[Hashable], graph: GraphLike, *taken: Mapping[Hashable, object]
) -> str:
    """``Name(first ... last), N tasks``, the tags of the first and last task, unique in the
    drawing (not a task's name nor in ``taken``)."""
    first, last = (_tag(node) for node in (nodes[0], nodes[-1]))
    head = f"{name}({first} ... {last}), {len(nodes)} tasks"
    while head in graph.nodes or any(head in names for names in taken):
        head += "'"
    return head


def natural_order(node: Hashable) -> list[str | int]:
    """A sort key that orders the numbers in names by value: text at even places, numbers at
    odd ones, so any two keys compare."""
    return [int(p) if i % 2 else p for i, p in enumerate(_DIGITS.split(str(node)))]


def _tag(node: Hashable) -> str:
    match = _NAME.match(str(node))
    return match.group(2) if match else str(node)
