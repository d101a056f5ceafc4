"""A run's task graph as ``pyperunner show`` prints it: no wider than the terminal.

It is the layered drawing of :mod:`.ascii`, each box reading ``Name(tag) [STATUS duration]``.
Where a layer is too wide for the terminal, like tasks are drawn as one box (see :mod:`.groups`)
reading ``Name(first ... last), N tasks [5 SUCCESS, 1 FAILURE]``, and so are chains of like
tasks where the layers are more than ``MOST_LAYERS``; where even that is too wide, the boxes are
listed layer by layer instead, each followed by its parents.
"""

from __future__ import annotations

import collections
import os
import shutil
import textwrap
from collections.abc import Hashable, Mapping
from typing import Any, TextIO

from ..dag import Dag, GraphLike
from ..status import TaskRun, format_counts
from ..text import format_duration
from .ascii import BOX_GAP, BOX_PADDING, draw_ascii
from .groups import Room, grouped
from .layout import longest_path_layers, status_of

__all__ = ["DEFAULT_WIDTH", "draw_run", "label", "terminal_width"]

DEFAULT_WIDTH = 120
"""The columns of a drawing printed to something that is not a terminal (a pipe, a file)."""
MIN_WIDTH = 20
"""The fewest columns a drawing is given, whatever the terminal or ``COLUMNS`` says."""
MOST_LAYERS = 100
"""More layers than this (300 lines of boxes) and chains of like tasks are drawn as one box."""


def terminal_width(stream: TextIO) -> int:
    """The columns a drawing printed to ``stream`` may fill: ``COLUMNS`` if set, else the
    terminal's width if ``stream`` is a terminal, else ``DEFAULT_WIDTH``."""
    if os.environ.get("COLUMNS") or stream.isatty():
        return max(MIN_WIDTH, shutil.get_terminal_size((DEFAULT_WIDTH, 24)).columns)
    return DEFAULT_WIDTH


def label(node: Hashable, attrs: Mapping[str, Any]) -> str:
    """What the box of a task or of a group of tasks says, on one line."""
    name = _one_line(node)
    if "counts" in attrs:
        return f"{name} [{format_counts(attrs['counts'])}]"
    duration = attrs.get("duration")
    took = "" if duration is None else f" {format_duration(duration)}"
    return f"{name} [{status_of(attrs).value}{took}]"


def draw_run(
    tasks: Mapping[str, Mapping[str, Any]], runs: Mapping[str, TaskRun], width: int
) -> str:
    """The drawing of a run's tasks (the entries of its ``pipeline.yaml``, by name), with what
    happened to each (``runs``), at most ``width`` columns wide."""
    unrun = TaskRun()
    graph = Dag.from_parents(
        {name: _attrs(runs.get(name, unrun)) for name in tasks},
        {name: spec.get("parents") or [] for name, spec in tasks.items()},
    )
    room = Room(_box_width, BOX_GAP, width, width, MOST_LAYERS)
    drawn = grouped(graph, room)
    labels = {node: label(node, drawn.nodes[node]) for node in drawn.nodes}
    layers = _layers(drawn)
    if all(room.fits(((node, drawn.nodes[node]) for node in layer), width) for layer in layers):
        edges = [(parent, node) for node in drawn.nodes for parent in drawn.predecessors(node)]
        text = draw_ascii(list(drawn.nodes), edges, labels)
        if max(map(len, text.splitlines()), default=0) <= width:
            return text
    return "\n".join(_listed(drawn, layers, labels, width))


def _box_width(node: Hashable, attrs: Mapping[str, Any]) -> int:
    return len(label(node, attrs)) + BOX_PADDING


def _attrs(run: TaskRun) -> dict[str, Any]:
    return {"status": run.status, "duration": run.duration}


def _layers(graph: GraphLike) -> list[list[Hashable]]:
    """The nodes of each layer (see ``longest_path_layers``), in the graph's order."""
    layer_of = longest_path_layers(graph)
    layers: dict[int, list[Hashable]] = collections.defaultdict(list)
    for node in graph.nodes:
        layers[layer_of[node]].append(node)
    return [layers[index] for index in sorted(layers)]


def _listed(
    graph: GraphLike, layers: list[list[Hashable]], labels: Mapping[Hashable, str], width: int
) -> list[str]:
    """The boxes layer by layer, each wrapped to ``width`` and followed by its parents on a line
    cut to ``width``: a drawing that fits any width."""
    lines = []
    for index, layer in enumerate(layers, start=1):
        lines.append(f"layer {index}:")
        for node in layer:
            lines += textwrap.wrap(
                labels[node], width, initial_indent="  ", subsequent_indent="    "
            )
            parents = ", ".join(_one_line(parent) for parent in graph.predecessors(node))
            if parents:
                line = f"    <- {parents}"
                lines.append(line if len(line) <= width else f"{line[: width - 3]}...")
    return lines


def _one_line(node: Hashable) -> str:
    return " ".join(str(node).splitlines())
