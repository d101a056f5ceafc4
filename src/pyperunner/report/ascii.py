"""Layered ASCII drawing of a directed acyclic graph.

The drawing follows a simplified Sugiyama pipeline: every node is put on the layer given by the
longest path from a root (so parents are always above their children), edges spanning several
layers are split by invisible dummy nodes, nodes inside a layer are ordered with barycenter sweeps
to reduce edge crossings, and horizontal positions are chosen by isotonic regression towards the
barycenter of the neighbours so edges stay short. Each node is rendered as a box
(``+---+`` / ``| label |``) and each edge as a Bresenham line of ``*`` characters running from the
bottom centre of the parent box to the top centre of the child box. The module is pure: it only
turns node names, edges and optional labels into a string.
"""

from __future__ import annotations

import collections
import heapq
import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

__all__ = ["draw_ascii"]

BOX_HEIGHT = 3
BOX_PADDING = 4  # "| " + label + " |"
BOX_GAP = 3  # spaces between two boxes of the same layer
DUMMY_GAP = 2  # spaces between a dummy edge column and anything else
MIN_EDGE_ROWS = 3
MAX_EDGE_ROWS = 8
COLUMNS_PER_EDGE_ROW = 8
ORDER_SWEEPS = 12
PLACEMENT_SWEEPS = 6
EDGE_CHAR = "*"


@dataclass
class _Layout:
    """Mutable working graph: real nodes first, then dummy nodes; edges join adjacent layers."""

    labels: list[str]
    widths: list[int]
    layer: list[int]
    parents: list[list[int]] = field(default_factory=list)
    children: list[list[int]] = field(default_factory=list)
    real_count: int = 0

    def is_dummy(self, node: int) -> bool:
        return node >= self.real_count

    def add_node(self, label: str, width: int, layer: int) -> int:
        self.labels.append(label)
        self.widths.append(width)
        self.layer.append(layer)
        self.parents.append([])
        self.children.append([])
        return len(self.labels) - 1

    def add_edge(self, parent: int, child: int) -> None:
        self.children[parent].append(child)
        self.parents[child].append(parent)


def draw_ascii(
    nodes: Sequence[str],
    edges: Sequence[tuple[str, str]],
    labels: Mapping[str, str] | None = None,
) -> str:
    """Return the layered ASCII drawing of a DAG; edges go parent -> child, labels default to the
    node names."""
    names, edge_ids = _index_graph(nodes, edges)
    if not names:
        return ""
    order = _topological_order(len(names), edge_ids)
    layers_of = _longest_path_layers(len(names), edge_ids, order)
    layout = _build_layout(names, edge_ids, layers_of, labels or {})
    layers = _order_layers(layout, order)
    centers = _place_nodes(layout, layers)
    return _render(layout, layers, centers)


# --------------------------------------------------------------------------- graph preparation


def _index_graph(
    nodes: Sequence[str], edges: Sequence[tuple[str, str]]
) -> tuple[list[str], list[tuple[int, int]]]:
    """Map names to indices (first occurrence wins) and drop duplicate edges."""
    index: dict[str, int] = {}
    for name in nodes:
        index.setdefault(name, len(index))
    seen: set[tuple[int, int]] = set()
    edge_ids: list[tuple[int, int]] = []
    for parent, child in edges:
        for end in (parent, child):
            if end not in index:
                raise ValueError(f"edge ({parent!r}, {child!r}) refers to unknown node {end!r}")
        pair = (index[parent], index[child])
        if pair not in seen:
            seen.add(pair)
            edge_ids.append(pair)
    return list(index), edge_ids


def _topological_order(count: int, edges: Sequence[tuple[int, int]]) -> list[int]:
    """Kahn's algorithm, always releasing the lowest index first; raise ValueError on a cycle."""
    indegree = [0] * count
    children: list[list[int]] = [[] for _ in range(count)]
    for parent, child in edges:
        indegree[child] += 1
        children[parent].append(child)
    ready = [node for node in range(count) if indegree[node] == 0]  # ascending: a heap
    order: list[int] = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for child in children[node]:
            indegree[child] -= 1
            if indegree[child] == 0:
                heapq.heappush(ready, child)
    if len(order) != count:
        raise ValueError("the edges contain a cycle")
    return order


def _longest_path_layers(
    count: int, edges: Sequence[tuple[int, int]], order: Sequence[int]
) -> list[int]:
    """Layer of each node = length of the longest path from any root to it."""
    parents: list[list[int]] = [[] for _ in range(count)]
    for parent, child in edges:
        parents[child].append(parent)
    layer = [0] * count
    for node in order:
        if parents[node]:
            layer[node] = 1 + max(layer[parent] for parent in parents[node])
    return layer


def _build_layout(
    names: Sequence[str],
    edges: Sequence[tuple[int, int]],
    layers_of: Sequence[int],
    labels: Mapping[str, str],
) -> _Layout:
    """Create the working graph, splitting edges that span several layers with dummy nodes."""
    layout = _Layout(labels=[], widths=[], layer=[], real_count=len(names))
    for name, layer in zip(names, layers_of, strict=True):
        label = " ".join(str(labels.get(name, name)).splitlines())
        layout.add_node(label, len(label) + BOX_PADDING, layer)
    for parent, child in edges:
        previous = parent
        for layer in range(layers_of[parent] + 1, layers_of[child]):
            dummy = layout.add_node("", 1, layer)
            layout.add_edge(previous, dummy)
            previous = dummy
        layout.add_edge(previous, child)
    return layout


# --------------------------------------------------------------------------- crossing reduction


def _order_layers(layout: _Layout, order: Sequence[int]) -> list[list[int]]:
    """Order the nodes of each layer with alternating barycenter sweeps; keep the best ordering."""
    layers = _initial_layers(layout, order)
    best = [list(members) for members in layers]
    best_crossings = _total_crossings(layout, layers)
    for sweep in range(ORDER_SWEEPS):
        if best_crossings == 0:
            break
        downward = sweep % 2 == 0
        indices = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
        for index in indices:
            reference = layers[index - 1] if downward else layers[index + 1]
            neighbours = layout.parents if downward else layout.children
            layers[index] = _barycenter_sort(layers[index], reference, neighbours)
        crossings = _total_crossings(layout, layers)
        if crossings < best_crossings:
            best_crossings = crossings
            best = [list(members) for members in layers]
    return best


def _initial_layers(layout: _Layout, order: Sequence[int]) -> list[list[int]]:
    """Roots in input order, then each layer sorted by the barycenter of its parents."""
    layer_count = max(layout.layer) + 1
    layers: list[list[int]] = [[] for _ in range(layer_count)]
    for node in order:
        layers[layout.layer[node]].append(node)
    for dummy in range(layout.real_count, len(layout.labels)):
        layers[layout.layer[dummy]].append(dummy)
    layers[0] = sorted(layers[0])
    for index in range(1, layer_count):
        layers[index] = _barycenter_sort(layers[index], layers[index - 1], layout.parents)
    return layers


def _barycenter_sort(
    members: list[int], reference: Sequence[int], neighbours: Sequence[Sequence[int]]
) -> list[int]:
    """Sort nodes by the mean position of their neighbours; nodes without any keep their slot."""
    position = {node: index for index, node in enumerate(reference)}
    keys: dict[int, float] = {}
    for node in members:
        linked = [position[other] for other in neighbours[node] if other in position]
        if linked:
            keys[node] = sum(linked) / len(linked)
    movable = sorted((node for node in members if node in keys), key=lambda n: keys[n])
    result: list[int] = []
    moving = iter(movable)
    for node in members:
        result.append(next(moving) if node in keys else node)
    return result


def _total_crossings(layout: _Layout, layers: Sequence[Sequence[int]]) -> int:
    return sum(
        _crossings_between(layout, layers[index], layers[index + 1])
        for index in range(len(layers) - 1)
    )


def _crossings_between(layout: _Layout, upper: Sequence[int], lower: Sequence[int]) -> int:
    """Count edge crossings between two adjacent layers with a Fenwick tree (O(E log V))."""
    lower_position = {node: index for index, node in enumerate(lower)}
    targets = [
        lower_position[child]
        for node in upper
        for child in sorted(layout.children[node], key=lower_position.__getitem__)
    ]
    tree = [0] * (len(lower) + 1)
    crossings = 0
    for seen, target in enumerate(targets):
        crossings += seen - _fenwick_prefix(tree, target + 1)
        _fenwick_add(tree, target + 1)
    return crossings


def _fenwick_prefix(tree: list[int], index: int) -> int:
    total = 0
    while index > 0:
        total += tree[index]
        index -= index & -index
    return total


def _fenwick_add(tree: list[int], index: int) -> None:
    while index < len(tree):
        tree[index] += 1
        index += index & -index


# --------------------------------------------------------------------------- horizontal placement


def _place_nodes(layout: _Layout, layers: Sequence[Sequence[int]]) -> list[int]:
    """Choose integer centre columns: pull nodes towards their neighbours, never overlapping."""
    centers = [0.0] * len(layout.labels)
    for node, x in zip(layers[0], _separation_offsets(layout, layers[0]), strict=True):
        centers[node] = float(x)
    _sweep_placement(layout, layers, centers, downward=True)
    for _ in range(PLACEMENT_SWEEPS):
        _sweep_placement(layout, layers, centers, downward=False)
        _sweep_placement(layout, layers, centers, downward=True)
    return _round_centers(layout, layers, centers)


def _sweep_placement(
    layout: _Layout, layers: Sequence[Sequence[int]], centers: list[float], *, downward: bool
) -> None:
    neighbours = layout.parents if downward else layout.children
    indices = range(1, len(layers)) if downward else range(len(layers) - 2, -1, -1)
    for index in indices:
        members = layers[index]
        desired = [
            sum(centers[other] for other in neighbours[node]) / len(neighbours[node])
            if neighbours[node]
            else centers[node]
            for node in members
        ]
        for node, x in zip(members, _fit_in_order(layout, members, desired), strict=True):
            centers[node] = x


def _min_separation(layout: _Layout, left: int, right: int) -> int:
    """Smallest distance between the centres of two neighbouring nodes of one layer."""
    both_real = not layout.is_dummy(left) and not layout.is_dummy(right)
    gap = BOX_GAP if both_real else DUMMY_GAP
    left_width, right_width = layout.widths[left], layout.widths[right]
    return (left_width - left_width // 2) + right_width // 2 + gap


def _separation_offsets(layout: _Layout, members: Sequence[int]) -> list[int]:
    """Centres of the members when packed as tightly as allowed, the first one at 0."""
    offsets = [0]
    for left, right in pairwise(members):
        offsets.append(offsets[-1] + _min_separation(layout, left, right))
    return offsets


def _fit_in_order(layout: _Layout, members: Sequence[int], desired: Sequence[float]) -> list[float]:
    """Least-squares positions closest to ``desired`` that keep order and spacing (PAV)."""
    offsets = _separation_offsets(layout, members)
    shifted = [want - offset for want, offset in zip(desired, offsets, strict=True)]
    fitted = _isotonic_regression(shifted)
    return [value + offset for value, offset in zip(fitted, offsets, strict=True)]


def _isotonic_regression(values: Sequence[float]) -> list[float]:
    """Non-decreasing sequence minimising the squared distance to ``values`` (pool adjacent)."""
    blocks: list[list[float]] = []  # [sum, count]
    for value in values:
        blocks.append([value, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            total, count = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
    result: list[float] = []
    for total, count in blocks:
        result.extend([total / count] * int(count))
    return result


def _round_centers(
    layout: _Layout, layers: Sequence[Sequence[int]], centers: Sequence[float]
) -> list[int]:
    """Round to columns, restore the spacing rounding may break, and shift to start at column 0."""
    result = [0] * len(centers)
    for members in layers:
        previous: int | None = None
        for node in members:
            column = math.floor(centers[node] + 0.5)
            if previous is not None:
                column = max(column, result[previous] + _min_separation(layout, previous, node))
            result[node] = column
            previous = node
    leftmost = min(result[node] - layout.widths[node] // 2 for node in range(len(result)))
    return [column - leftmost for column in result]


# --------------------------------------------------------------------------- rendering


def _render(layout: _Layout, layers: Sequence[Sequence[int]], centers: Sequence[int]) -> str:
    tops = _layer_tops(layout, layers, centers)
    width = max(centers[n] - layout.widths[n] // 2 + layout.widths[n] for n in range(len(centers)))
    height = tops[-1] + BOX_HEIGHT
    canvas = [[" "] * width for _ in range(height)]
    for index, members in enumerate(layers):
        for node in members:
            if layout.is_dummy(node):
                _draw_dummy(canvas, tops[index], centers[node])
            else:
                left = centers[node] - layout.widths[node] // 2
                _draw_box(canvas, tops[index], left, layout.labels[node])
    runs: dict[int, list[tuple[int, int]]] = collections.defaultdict(list)
    for index, members in enumerate(layers[:-1]):
        start_row, end_row = tops[index] + BOX_HEIGHT, tops[index + 1] - 1
        for node in members:
            for child in layout.children[node]:
                segment = (start_row, centers[node]), (end_row, centers[child])
                for row, first, last in _line_runs(*segment):
                    runs[row].append((first, last))
    for row, spans in runs.items():  # rows between layers: they hold nothing but edges
        _fill(canvas[row], spans)
    return "\n".join("".join(row).rstrip() for row in canvas)


def _layer_tops(
    layout: _Layout, layers: Sequence[Sequence[int]], centers: Sequence[int]
) -> list[int]:
    """First canvas row of each layer; edge gaps grow with the horizontal distance they cover."""
    tops = [0]
    for members in layers[:-1]:
        spans = [
            abs(centers[node] - centers[child])
            for node in members
            for child in layout.children[node]
        ]
        rows = math.ceil(max(spans, default=0) / COLUMNS_PER_EDGE_ROW)
        rows = min(MAX_EDGE_ROWS, max(MIN_EDGE_ROWS, rows))
        tops.append(tops[-1] + BOX_HEIGHT + rows)
    return tops


def _draw_box(canvas: list[list[str]], top: int, left: int, label: str) -> None:
    border = "+" + "-" * (len(label) + 2) + "+"
    for offset, text in enumerate((border, f"| {label} |", border)):
        canvas[top + offset][left : left + len(text)] = list(text)


def _draw_dummy(canvas: list[list[str]], top: int, column: int) -> None:
    for row in range(top, top + BOX_HEIGHT):
        canvas[row][column] = EDGE_CHAR


def _fill(line: list[str], spans: list[tuple[int, int]]) -> None:
    """Draw edge cells over the columns ``first..last`` of every span, each column once."""
    reach = -1
    for first, last in sorted(spans):
        first = max(first, reach + 1)
        if first <= last:
            line[first : last + 1] = [EDGE_CHAR] * (last + 1 - first)
            reach = last


def _line_runs(start: tuple[int, int], end: tuple[int, int]) -> Iterator[tuple[int, int, int]]:
    """The cells of the Bresenham segment between two (row, column) cells, both included, as
    (row, first column, last column) runs: in time of the rows it spans, not of its columns (a
    wide fan-out's edges span thousands of columns over a few rows)."""
    row, column = start
    end_row, end_column = end
    d_col, d_row = abs(end_column - column), -abs(end_row - row)
    step_col = 1 if column < end_column else -1
    step_row = 1 if row < end_row else -1
    error = d_col + d_row
    first = column
    while True:
        if 2 * error > d_col:  # steps along the row only, while that holds: taken at once
            along = abs(end_column - column)
            if d_row:
                along = min(along, (2 * error - d_col - 1) // (-2 * d_row) + 1)
            column += step_col * along
            error += d_row * along
        if row == end_row and column == end_column:
            yield row, min(first, column), max(first, column)
            return
        doubled = 2 * error
        last = column
        if doubled >= d_row:
            error += d_row
            column += step_col
        if doubled <= d_col:
            error += d_col
            yield row, min(first, last), max(first, last)
            row += step_row
            first = column
