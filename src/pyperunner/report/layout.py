"""Where everything goes in a picture of a pipeline's task graph, and what each box says.

Tasks are placed in layers by their longest path from a root, so every parent sits above its
children; the order within a layer is improved by a few barycenter sweeps to reduce edge
crossings, and long edges are routed through invisible waypoints so they do not run behind
other boxes. All positions are in inches, from an estimate of the label widths, so boxes keep a
readable size and never overlap however many tasks there are; the picture grows instead (up to
a cap, beyond which everything, text included, is scaled down together). The PNG
(:mod:`.image`) draws this layout, of a graph first fitted to a readable size by
:mod:`.groups`; the browser pages and ``report.html`` lay theirs out with dagre, in the same
status colours.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..dag import GraphLike, topological_order
from ..status import Status
from ..text import format_duration

__all__ = [
    "DPI",
    "LEGEND_LABELS",
    "PICTURE_PIXELS",
    "READABLE_DPI",
    "STATUS_COLORS",
    "Layout",
    "box_width",
    "compute_layout",
    "dpi_for",
    "edge_drawing",
    "layout_boxes",
    "most_layers",
]

#: Face colour of a task box (and its legend entry) for each status.
STATUS_COLORS: dict[Status, str] = {
    Status.NOT_STARTED: "#d9d9d9",
    Status.RUNNING: "#6baed6",
    Status.SUCCESS: "#74c476",
    Status.CACHED: "#c7e9c0",
    Status.FAILURE: "#fb6a4a",
    Status.CANT_RUN: "#fdae6b",
    Status.INTERRUPTED: "#bcbddc",
}

LEGEND_LABELS: dict[Status, str] = {
    Status.NOT_STARTED: "not started",
    Status.RUNNING: "running",
    Status.SUCCESS: "success",
    Status.CACHED: "cached",
    Status.FAILURE: "failure",
    Status.CANT_RUN: "can't run",
    Status.INTERRUPTED: "interrupted",
}

DPI = 100
"""Pixels per inch of ``status.png``."""
PICTURE_PIXELS = 2500
"""The longest side a picture should have, in pixels: it then reads on a screen without zooming."""
READABLE_DPI = 80
"""The least pixels per inch a picture is lowered to to fit ``PICTURE_PIXELS``: labels stay
readable."""
_MAX_PIXELS = 20_000_000
_MIN_DPI = 20

# Sizes below are in inches (or points where named so) before any down-scaling.
NAME_FONT_PT = 9.0
DETAIL_FONT_PT = 8.0
TITLE_FONT_PT = 12.0
LEGEND_FONT_PT = 8.0
_CHAR_WIDTH_PER_PT = 0.09 / 9.0  # inches per character per point of font size
_BOX_PAD_X = 0.15
_BOX_MIN_WIDTH = 0.9
_BOX_HEIGHT = 0.55
H_GAP = 0.3  # between neighbouring boxes of a layer
_V_GAP = 0.5  # least gap between layers, room for the arrows
_V_GAP_PER_SPREAD = 0.06  # extra gap per inch an edge runs sideways, so fans stay legible
_MAX_V_GAP = 1.5
_DUMMY_WIDTH = 0.1  # width reserved for a long edge passing through a layer
MARGIN = 0.3
_TITLE_BAND = 0.45
_LEGEND_BAND = 0.55  # three rows of up to three entries
LEGEND_COLUMNS = 3

_MAX_FIGURE_INCHES = 200.0
_BARYCENTER_SWEEPS = 4


@dataclass
class Layout:
    """Everything the drawing needs, in final figure inches (origin at the bottom left)."""

    width: float
    height: float
    scale: float
    boxes: dict[Hashable, tuple[float, float, float, float]] = field(default_factory=dict)
    routes: dict[tuple[Hashable, Hashable], list[tuple[float, float]]] = field(default_factory=dict)
    title_y: float = 0.0
    legend_top: float = 0.0


@dataclass(frozen=True)
class _Dummy:
    """Invisible waypoint of a long edge in one intermediate layer."""

    edge: tuple[Hashable, Hashable]
    layer: int


# --------------------------------------------------------------------------- labels


def status_of(attrs: Mapping[str, Any]) -> Status:
    """A node's ``status`` attribute as a ``Status`` (NOT_STARTED if missing)."""
    value = attrs.get("status")
    if isinstance(value, Status):
        return value
    return Status.NOT_STARTED if value is None else Status(value)


def detail_line(attrs: Mapping[str, Any]) -> str:
    """Second line of the box of a node with attributes ``attrs``: the status, plus the duration
    when known (``cached`` if cached); a box standing for a group of tasks says so in its
    ``detail``."""
    if "detail" in attrs:
        return str(attrs["detail"])
    status = status_of(attrs)
    if status is Status.CACHED:
        return "cached"
    duration = attrs.get("duration")
    if duration is None:
        return status.value
    return f"{status.value} · {format_duration(float(duration))}"


def _text_width(text: str, font_pt: float) -> float:
    """Estimated width in inches of ``text`` set at ``font_pt``."""
    return len(text) * _CHAR_WIDTH_PER_PT * font_pt


def box_width(node: Hashable, attrs: Mapping[str, Any]) -> float:
    """Unscaled width in inches of the box of ``node`` (attributes ``attrs``), fitting both label
    lines."""
    text = max(
        _text_width(str(node), NAME_FONT_PT),
        _text_width(detail_line(attrs), DETAIL_FONT_PT),
    )
    return max(_BOX_MIN_WIDTH, text + 2 * _BOX_PAD_X)


def _legend_width() -> float:
    """Estimated width in inches of the legend (three columns of colour patches)."""
    labels = [LEGEND_LABELS[s] for s in Status]
    columns = [labels[i::LEGEND_COLUMNS] for i in range(LEGEND_COLUMNS)]
    text = sum(_text_width(max(col, key=len), LEGEND_FONT_PT) for col in columns)
    em = LEGEND_FONT_PT / 72.0
    return text + LEGEND_COLUMNS * 5.0 * em  # handle, padding and column spacing


# --------------------------------------------------------------------------- layering


def most_layers(height: float) -> int:
    """How many layers, one below the other, fit a picture ``height`` inches high."""
    content = height - _TITLE_BAND - _LEGEND_BAND - 2 * MARGIN
    return max(1, math.floor((content + _V_GAP) / (_BOX_HEIGHT + _V_GAP)))


def longest_path_layers(graph: GraphLike) -> dict[Hashable, int]:
    """Layer of each node: length of the longest path reaching it from a root.

    Raises ``ValueError`` naming a cycle if there is one.
    """
    parents = {node: list(graph.predecessors(node)) for node in graph.nodes}
    unplaced = {node: len(above) for node, above in parents.items()}
    ready = [node for node, count in unplaced.items() if count == 0]
    layer: dict[Hashable, int] = {}
    for node in ready:  # grows as the last parent of a node is placed
        layer[node] = max((layer[p] + 1 for p in parents[node]), default=0)
        for child in graph.successors(node):
            unplaced[child] -= 1
            if unplaced[child] == 0:
                ready.append(child)
    if len(layer) < len(parents):
        topological_order(graph)  # raises, naming a cycle
        raise AssertionError("unreachable")
    return layer


def _expand_long_edges(
    graph: GraphLike, layer: dict[Hashable, int]
) -> tuple[list[list[Hashable]], dict[Hashable, list[Hashable]], dict[Hashable, list[Hashable]]]:
    """Layers (in graph order) plus up/down neighbours, with dummies splitting long edges."""
    depth = max(layer.values(), default=-1) + 1
    layers: list[list[Hashable]] = [[] for _ in range(depth)]
    for node in graph.nodes:
        layers[layer[node]].append(node)
    up: dict[Hashable, list[Hashable]] = {n: [] for n in graph.nodes}
    down: dict[Hashable, list[Hashable]] = {n: [] for n in graph.nodes}
    for u, v in graph.edges:
        chain: list[Hashable] = [u]
        for k in range(layer[u] + 1, layer[v]):
            dummy = _Dummy((u, v), k)
            layers[k].append(dummy)
            up[dummy], down[dummy] = [], []
            chain.append(dummy)
        chain.append(v)
        for a, b in itertools.pairwise(chain):
            down[a].append(b)
            up[b].append(a)
    return layers, up, down


def _reorder(
    layer_nodes: list[Hashable], neighbour_layer: list[Hashable], neighbours: dict
) -> list[Hashable]:
    """Sort one layer by the mean relative position of each node's neighbours."""
    if len(layer_nodes) < 2:
        return layer_nodes
    where = {n: (i + 0.5) / len(neighbour_layer) for i, n in enumerate(neighbour_layer)}
    own = {n: (i + 0.5) / len(layer_nodes) for i, n in enumerate(layer_nodes)}

    def key(node: Hashable) -> float:
        xs = [where[m] for m in neighbours[node] if m in where]
        return sum(xs) / len(xs) if xs else own[node]

    return sorted(layer_nodes, key=key)


def _barycenter_order(
    layers: list[list[Hashable]], up: dict, down: dict, sweeps: int = _BARYCENTER_SWEEPS
) -> list[list[Hashable]]:
    """Alternate downward and upward barycenter sweeps to reduce edge crossings."""
    layers = [list(nodes) for nodes in layers]
    for _ in range(sweeps):
        for i in range(1, len(layers)):
            layers[i] = _reorder(layers[i], layers[i - 1], up)
        for i in range(len(layers) - 2, -1, -1):
            layers[i] = _reorder(layers[i], layers[i + 1], down)
    return layers


# --------------------------------------------------------------------------- geometry


def compute_layout(graph: GraphLike, title: str | None) -> Layout:
    """Positions of every box and edge route, in final figure inches."""
    layers, up, down = _expand_long_edges(graph, longest_path_layers(graph))
    layers = _barycenter_order(layers, up, down)

    widths = {n: box_width(n, graph.nodes[n]) for n in graph.nodes}

    def width_of(node: Hashable) -> float:
        return _DUMMY_WIDTH if isinstance(node, _Dummy) else widths[node]

    row_widths = [sum(width_of(n) for n in row) + H_GAP * (len(row) - 1) for row in layers]
    content_w = max(row_widths, default=0.0)
    title_w = _text_width(title, TITLE_FONT_PT) * 1.15 if title else 0.0
    inner_w = max(content_w, _legend_width(), title_w)

    xs = _row_x_positions(layers, row_widths, inner_w, width_of)
    gaps = _layer_gaps(layers, down, {n: xs[n] + width_of(n) / 2 for n in xs})
    content_h = len(layers) * _BOX_HEIGHT + sum(gaps)
    top_band = _LEGEND_BAND + (_TITLE_BAND if title else 0.0)
    width = inner_w + 2 * MARGIN
    height = content_h + top_band + 2 * MARGIN + (_V_GAP / 2 if layers else 0.0)
    scale = min(1.0, _MAX_FIGURE_INCHES / width, _MAX_FIGURE_INCHES / height)

    ys = _row_y_positions(layers, gaps)
    place = {n: (xs[n], ys[n], width_of(n), _BOX_HEIGHT) for n in xs}

    def scaled(rect: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        return (rect[0] * scale, rect[1] * scale, rect[2] * scale, rect[3] * scale)

    layout = Layout(width=width * scale, height=height * scale, scale=scale)
    layout.boxes = {n: scaled(place[n]) for n in graph.nodes}
    layout.routes = _edge_routes(graph, layers, {n: scaled(r) for n, r in place.items()})
    layout.title_y = (height - MARGIN) * scale
    layout.legend_top = (height - MARGIN - (_TITLE_BAND if title else 0.0)) * scale
    return layout


def _row_x_positions(
    layers: list[list[Hashable]],
    row_widths: list[float],
    inner_w: float,
    width_of: Callable[[Hashable], float],
) -> dict[Hashable, float]:
    """Left edge of every box (unscaled): each row packed evenly and centred."""
    xs: dict[Hashable, float] = {}
    for row, row_w in zip(layers, row_widths, strict=True):
        x = MARGIN + (inner_w - row_w) / 2
        for node in row:
            xs[node] = x
            x += width_of(node) + H_GAP
    return xs


def _row_y_positions(layers: list[list[Hashable]], gaps: list[float]) -> dict[Hashable, float]:
    """Bottom edge of every box (unscaled): layer 0 at the top, rows separated by ``gaps``."""
    ys: dict[Hashable, float] = {}
    y = MARGIN + len(layers) * _BOX_HEIGHT + sum(gaps)
    for index, row in enumerate(layers):
        y -= _BOX_HEIGHT + (gaps[index - 1] if index else 0.0)
        for node in row:
            ys[node] = y
    return ys


def _layer_gaps(
    layers: list[list[Hashable]], down: dict, centre_x: dict[Hashable, float]
) -> list[float]:
    """Vertical gap below each layer but the last, taller where its edges run far sideways."""
    gaps = []
    for row in layers[:-1]:
        spread = max((abs(centre_x[m] - centre_x[n]) for n in row for m in down[n]), default=0)
        gaps.append(min(_MAX_V_GAP, max(_V_GAP, _V_GAP_PER_SPREAD * spread)))
    return gaps


def _edge_routes(
    graph: GraphLike,
    layers: list[list[Hashable]],
    rects: dict[Hashable, tuple[float, float, float, float]],
) -> dict[tuple[Hashable, Hashable], list[tuple[float, float]]]:
    """Polyline for each edge: parent's bottom centre, waypoints, child's top centre."""
    waypoints: dict[tuple[Hashable, Hashable], list[_Dummy]] = {}
    for row in layers:
        for node in row:
            if isinstance(node, _Dummy):
                waypoints.setdefault(node.edge, []).append(node)
    routes: dict[tuple[Hashable, Hashable], list[tuple[float, float]]] = {}
    for u, v in graph.edges:
        ux, uy, uw, _ = rects[u]
        vx, vy, vw, vh = rects[v]
        points = [(ux + uw / 2, uy)]
        for dummy in sorted(waypoints.get((u, v), []), key=lambda d: d.layer):
            dx, dy, dw, dh = rects[dummy]
            points += [(dx + dw / 2, dy + dh), (dx + dw / 2, dy)]
        points.append((vx + vw / 2, vy + vh))
        routes[(u, v)] = points
    return routes


Point = tuple[float, float]
Piece = tuple[Point, Point, Point, Point]
"""A cubic Bézier curve: its start, its two control points and its end."""


def edge_drawing(route: list[Point], head: float, half: float) -> tuple[list[Piece], list[Point]]:
    """How an edge is drawn from its route in a picture's pixels (y down, the child below): a
    curve of one piece between each two points, leaving and entering each vertically (straight
    where one is above the other), as the run page draws edges; it ends inside an arrowhead (up
    to ``head`` long, ``half`` wide each side) whose tip, pointing down, is the route's end."""
    tip_x, tip_y = route[-1]
    size = min(head, (tip_y - route[-2][1]) * 0.6)
    line = [*route[:-1], (tip_x, tip_y - size * 0.8)]
    pieces = []
    for (ax, ay), (bx, by) in itertools.pairwise(line):
        middle = (ay + by) / 2
        pieces.append(((ax, ay), (ax, middle), (bx, middle), (bx, by)))
    return pieces, [(tip_x, tip_y), (tip_x - half, tip_y - size), (tip_x + half, tip_y - size)]


def dpi_for(width: float, height: float) -> int:
    """Pixels per inch of a picture ``width`` by ``height`` inches: ``DPI``, lowered to fit
    ``PICTURE_PIXELS`` while labels stay readable, and further to stay under 20 megapixels."""
    fit = min(DPI, max(READABLE_DPI, PICTURE_PIXELS / max(width, height, 1e-9)))
    budget = math.sqrt(_MAX_PIXELS / max(width * height, 1e-9))
    return max(_MIN_DPI, math.floor(min(fit, budget)))


def layout_boxes(
    graph: GraphLike, title: str | None = None
) -> dict[str, tuple[float, float, float, float]]:
    """Box of every task as ``(x, y, width, height)`` in figure inches, origin bottom left.

    These are exactly the rectangles :func:`write_status_png` draws. Raises ``ValueError``
    if the graph has a cycle.
    """
    return dict(compute_layout(graph, title).boxes)
