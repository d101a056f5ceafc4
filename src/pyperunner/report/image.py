"""Render a pipeline's task graph as a PNG picture coloured by task status.

The picture is drawn with matplotlib alone (no Graphviz): tasks are placed in layers by
their longest path from a root, so every parent sits above its children, the order within
a layer is improved by a few barycenter sweeps to reduce edge crossings, and long edges are
routed through invisible waypoints so they do not run behind other boxes. All positions are
computed in inches from an estimate of the label widths, so boxes keep a readable size and
never overlap however many tasks there are; the figure grows instead (up to a cap, beyond
which everything, text included, is scaled down together). Drawing uses a bare
``matplotlib.figure.Figure`` with the Agg canvas and never touches pyplot's global state,
so it is safe in worker processes and on machines without a display.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import networkx as nx

from ..status import Status
from .text import format_duration

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["STATUS_COLORS", "layout_boxes", "write_status_png"]

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

_LEGEND_LABELS: dict[Status, str] = {
    Status.NOT_STARTED: "not started",
    Status.RUNNING: "running",
    Status.SUCCESS: "success",
    Status.CACHED: "cached",
    Status.FAILURE: "failure",
    Status.CANT_RUN: "can't run",
    Status.INTERRUPTED: "interrupted",
}

# Sizes below are in inches (or points where named so) before any down-scaling.
_NAME_FONT_PT = 9.0
_DETAIL_FONT_PT = 8.0
_TITLE_FONT_PT = 12.0
_LEGEND_FONT_PT = 8.0
_CHAR_WIDTH_PER_PT = 0.09 / 9.0  # inches per character per point of font size
_BOX_PAD_X = 0.15
_BOX_MIN_WIDTH = 0.9
_BOX_HEIGHT = 0.55
_H_GAP = 0.3  # between neighbouring boxes of a layer
_V_GAP = 0.5  # least gap between layers, room for the arrows
_V_GAP_PER_SPREAD = 0.06  # extra gap per inch an edge runs sideways, so fans stay legible
_MAX_V_GAP = 1.5
_DUMMY_WIDTH = 0.1  # width reserved for a long edge passing through a layer
_MARGIN = 0.3
_TITLE_BAND = 0.45
_LEGEND_BAND = 0.55  # two rows of three entries
_LEGEND_COLUMNS = 3
_EDGE_COLOR = "#555555"
_BORDER_COLOR = "#444444"

_MAX_FIGURE_INCHES = 200.0
_MAX_PIXELS = 20_000_000
_DEFAULT_DPI = 100
_MIN_DPI = 20
_BARYCENTER_SWEEPS = 4


@dataclass
class _Layout:
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


def _node_status(graph: nx.DiGraph, node: Hashable) -> Status:
    """The node's ``status`` attribute as a ``Status`` (NOT_STARTED if missing)."""
    value = graph.nodes[node].get("status")
    return Status.NOT_STARTED if value is None else Status(value)


def _detail_line(graph: nx.DiGraph, node: Hashable) -> str:
    """Second line of a box: the status, plus the duration when known (``cached`` if cached)."""
    status = _node_status(graph, node)
    if status is Status.CACHED:
        return "cached"
    duration = graph.nodes[node].get("duration")
    if duration is None:
        return status.value
    return f"{status.value} · {format_duration(float(duration))}"


def _text_width(text: str, font_pt: float) -> float:
    """Estimated width in inches of ``text`` set at ``font_pt``."""
    return len(text) * _CHAR_WIDTH_PER_PT * font_pt


def _box_width(graph: nx.DiGraph, node: Hashable) -> float:
    """Unscaled box width in inches that fits both label lines."""
    text = max(
        _text_width(str(node), _NAME_FONT_PT),
        _text_width(_detail_line(graph, node), _DETAIL_FONT_PT),
    )
    return max(_BOX_MIN_WIDTH, text + 2 * _BOX_PAD_X)


def _legend_width() -> float:
    """Estimated width in inches of the legend (three columns of colour patches)."""
    labels = [_LEGEND_LABELS[s] for s in Status]
    columns = [labels[i::_LEGEND_COLUMNS] for i in range(_LEGEND_COLUMNS)]
    text = sum(_text_width(max(col, key=len), _LEGEND_FONT_PT) for col in columns)
    em = _LEGEND_FONT_PT / 72.0
    return text + _LEGEND_COLUMNS * 5.0 * em  # handle, padding and column spacing


# --------------------------------------------------------------------------- layering


def _check_acyclic(graph: nx.DiGraph) -> None:
    if not nx.is_directed_acyclic_graph(graph):
        cycle = nx.find_cycle(graph)
        raise ValueError(f"task graph has a cycle: {cycle}")


def _longest_path_layers(graph: nx.DiGraph) -> dict[Hashable, int]:
    """Layer of each node: length of the longest path reaching it from a root."""
    layer: dict[Hashable, int] = {}
    for node in nx.topological_sort(graph):
        layer[node] = max((layer[p] + 1 for p in graph.predecessors(node)), default=0)
    return layer


def _expand_long_edges(
    graph: nx.DiGraph, layer: dict[Hashable, int]
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


def _compute_layout(graph: nx.DiGraph, title: str | None) -> _Layout:
    """Positions of every box and edge route, in final figure inches."""
    _check_acyclic(graph)
    layers, up, down = _expand_long_edges(graph, _longest_path_layers(graph))
    layers = _barycenter_order(layers, up, down)

    widths = {n: _box_width(graph, n) for n in graph.nodes}

    def width_of(node: Hashable) -> float:
        return _DUMMY_WIDTH if isinstance(node, _Dummy) else widths[node]

    row_widths = [sum(width_of(n) for n in row) + _H_GAP * (len(row) - 1) for row in layers]
    content_w = max(row_widths, default=0.0)
    title_w = _text_width(title, _TITLE_FONT_PT) * 1.15 if title else 0.0
    inner_w = max(content_w, _legend_width(), title_w)

    xs = _row_x_positions(layers, row_widths, inner_w, width_of)
    gaps = _layer_gaps(layers, down, {n: xs[n] + width_of(n) / 2 for n in xs})
    content_h = len(layers) * _BOX_HEIGHT + sum(gaps)
    top_band = _LEGEND_BAND + (_TITLE_BAND if title else 0.0)
    width = inner_w + 2 * _MARGIN
    height = content_h + top_band + 2 * _MARGIN + (_V_GAP / 2 if layers else 0.0)
    scale = min(1.0, _MAX_FIGURE_INCHES / width, _MAX_FIGURE_INCHES / height)

    ys = _row_y_positions(layers, gaps)
    place = {n: (xs[n], ys[n], width_of(n), _BOX_HEIGHT) for n in xs}

    def scaled(rect: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
        return (rect[0] * scale, rect[1] * scale, rect[2] * scale, rect[3] * scale)

    layout = _Layout(width=width * scale, height=height * scale, scale=scale)
    layout.boxes = {n: scaled(place[n]) for n in graph.nodes}
    layout.routes = _edge_routes(graph, layers, {n: scaled(r) for n, r in place.items()})
    layout.title_y = (height - _MARGIN) * scale
    layout.legend_top = (height - _MARGIN - (_TITLE_BAND if title else 0.0)) * scale
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
        x = _MARGIN + (inner_w - row_w) / 2
        for node in row:
            xs[node] = x
            x += width_of(node) + _H_GAP
    return xs


def _row_y_positions(layers: list[list[Hashable]], gaps: list[float]) -> dict[Hashable, float]:
    """Bottom edge of every box (unscaled): layer 0 at the top, rows separated by ``gaps``."""
    ys: dict[Hashable, float] = {}
    y = _MARGIN + len(layers) * _BOX_HEIGHT + sum(gaps)
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
    graph: nx.DiGraph,
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


def layout_boxes(
    graph: nx.DiGraph, title: str | None = None
) -> dict[str, tuple[float, float, float, float]]:
    """Box of every task as ``(x, y, width, height)`` in figure inches, origin bottom left.

    These are exactly the rectangles :func:`write_status_png` draws. Raises ``ValueError``
    if the graph has a cycle.
    """
    return dict(_compute_layout(graph, title).boxes)


# --------------------------------------------------------------------------- drawing


def _dpi_for(width: float, height: float) -> int:
    """Default dpi, lowered so the PNG stays under the pixel budget."""
    fit = math.floor(math.sqrt(_MAX_PIXELS / max(width * height, 1e-9)))
    return max(_MIN_DPI, min(_DEFAULT_DPI, fit))


def _draw_box(ax: Axes, graph: nx.DiGraph, node: Hashable, rect: tuple, scale: float) -> None:
    from matplotlib.patches import FancyBboxPatch

    x, y, w, h = rect
    status = _node_status(graph, node)
    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle=f"round,pad=0,rounding_size={0.08 * scale}",
            facecolor=STATUS_COLORS[status],
            edgecolor=_BORDER_COLOR,
            linewidth=1.0 * scale,
            linestyle="--" if status is Status.CACHED else "-",
            zorder=2,
        )
    )
    cx, cy = x + w / 2, y + h / 2
    ax.text(
        cx,
        cy + h * 0.17,
        str(node),
        ha="center",
        va="center",
        fontsize=_NAME_FONT_PT * scale,
        fontweight="bold",
        color="#111111",
        zorder=3,
    )
    ax.text(
        cx,
        cy - h * 0.2,
        _detail_line(graph, node),
        ha="center",
        va="center",
        fontsize=_DETAIL_FONT_PT * scale,
        color="#222222",
        zorder=3,
    )


def _draw_edge(ax: Axes, points: list[tuple[float, float]], scale: float) -> None:
    from matplotlib.patches import FancyArrowPatch
    from matplotlib.path import Path as MplPath

    codes = [MplPath.MOVETO] + [MplPath.LINETO] * (len(points) - 1)
    ax.add_patch(
        FancyArrowPatch(
            path=MplPath(points, codes),
            arrowstyle="-|>",
            mutation_scale=10 * scale,
            color=_EDGE_COLOR,
            linewidth=1.0 * scale,
            zorder=1,
        )
    )


def _draw_legend(ax: Axes, layout: _Layout) -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(
            facecolor=STATUS_COLORS[status],
            edgecolor=_BORDER_COLOR,
            linestyle="--" if status is Status.CACHED else "-",
            label=_LEGEND_LABELS[status],
        )
        for status in Status
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(layout.width / 2, layout.legend_top),
        bbox_transform=ax.transData,
        ncol=_LEGEND_COLUMNS,
        fontsize=_LEGEND_FONT_PT * layout.scale,
        frameon=False,
        borderaxespad=0,
        borderpad=0,
        handlelength=2.0,
        handleheight=1.0,
    )


def _render(graph: nx.DiGraph, layout: _Layout, title: str | None) -> Figure:
    """Build the figure (not yet saved)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(layout.width, layout.height), facecolor="white")
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, layout.width)
    ax.set_ylim(0, layout.height)
    ax.set_axis_off()
    ax.set_facecolor("white")
    for points in layout.routes.values():
        _draw_edge(ax, points, layout.scale)
    for node, rect in layout.boxes.items():
        _draw_box(ax, graph, node, rect, layout.scale)
    if title:
        ax.text(
            layout.width / 2,
            layout.title_y,
            title,
            ha="center",
            va="top",
            fontsize=_TITLE_FONT_PT * layout.scale,
            fontweight="bold",
        )
    if not layout.boxes:
        ax.text(layout.width / 2, _MARGIN * layout.scale, "(no tasks)", ha="center")
    _draw_legend(ax, layout)
    return fig


def write_status_png(
    graph: nx.DiGraph, path: str | os.PathLike[str], title: str | None = None
) -> Path:
    """Draw the DAG coloured by task status to a PNG file and return its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    layout = _compute_layout(graph, title)
    fig = _render(graph, layout, title)
    FigureCanvasAgg(fig)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, format="png", dpi=_dpi_for(layout.width, layout.height), facecolor="white")
    return out
