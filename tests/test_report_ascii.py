"""Structural tests for the layered ASCII DAG drawing in ``pyperunner.report.ascii``."""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pyperunner.report.ascii import _line_runs, draw_ascii

MULTI_PATH_NODES = [
    "LoadData(csv)",
    "LoadData(database)",
    "ProcessData(normalize-l1)",
    "ProcessData(normalize-l2)",
    "AugmentData(augment)",
    "Evaluate(both)",
]
MULTI_PATH_EDGES = [
    ("LoadData(csv)", "ProcessData(normalize-l1)"),
    ("ProcessData(normalize-l1)", "AugmentData(augment)"),
    ("AugmentData(augment)", "Evaluate(both)"),
    ("LoadData(database)", "ProcessData(normalize-l2)"),
    ("ProcessData(normalize-l2)", "Evaluate(both)"),
]

GRAPHS: dict[str, tuple[list[str], list[tuple[str, str]]]] = {
    "chain": (["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "d")]),
    "multi_path": (MULTI_PATH_NODES, MULTI_PATH_EDGES),
    "diamond": (["a", "b", "c", "d"], [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]),
    "fan_out": (
        ["root", *[f"child{i}" for i in range(10)]],
        [("root", f"child{i}") for i in range(10)],
    ),
    "fan_in": (
        [*[f"parent{i}" for i in range(10)], "sink"],
        [(f"parent{i}", "sink") for i in range(10)],
    ),
    "skip_layer": (["a", "b", "c"], [("a", "b"), ("b", "c"), ("a", "c")]),
    "disconnected": (
        ["a", "b", "c", "x", "y", "z"],
        [("a", "b"), ("b", "c"), ("x", "y"), ("x", "z")],
    ),
}

BORDER = re.compile(r"\+-+\+")


@dataclass(frozen=True)
class Box:
    label: str
    top: int  # row of the upper border; the box spans rows top..top + 2
    left: int
    right: int  # column of the right "+", inclusive

    @property
    def bottom(self) -> int:
        return self.top + 2

    @property
    def center(self) -> int:
        return self.left + (self.right - self.left + 1) // 2

    def contains(self, row: int, column: int) -> bool:
        return self.top <= row <= self.bottom and self.left <= column <= self.right


def parse_boxes(drawing: str) -> list[Box]:
    """Find every ``+---+`` / ``| label |`` / ``+---+`` box in a drawing."""
    lines = drawing.split("\n")
    boxes = []
    for row in range(len(lines) - 2):
        for match in BORDER.finditer(lines[row]):
            left, right = match.start(), match.end() - 1
            middle, lower = lines[row + 1], lines[row + 2]
            if lower[left : right + 1] != match.group() or len(middle) <= right:
                continue
            if middle[left] != "|" or middle[right] != "|":
                continue
            boxes.append(Box(middle[left + 2 : right - 1], row, left, right))
    return boxes


def boxes_by_label(drawing: str) -> dict[str, Box]:
    boxes = parse_boxes(drawing)
    result = {box.label: box for box in boxes}
    assert len(result) == len(boxes), "a label is drawn in more than one box"
    return result


def star_cells(drawing: str) -> set[tuple[int, int]]:
    return {
        (row, column)
        for row, line in enumerate(drawing.split("\n"))
        for column, char in enumerate(line)
        if char == "*"
    }


def stars_connected(
    stars: set[tuple[int, int]], start: tuple[int, int], goal: tuple[int, int]
) -> bool:
    """Whether ``goal`` is reachable from ``start`` through 8-connected ``*`` cells."""
    if start not in stars:
        return False
    seen, frontier = {start}, [start]
    while frontier:
        row, column = frontier.pop()
        if (row, column) == goal:
            return True
        for d_row in (-1, 0, 1):
            for d_col in (-1, 0, 1):
                neighbour = (row + d_row, column + d_col)
                if neighbour in stars and neighbour not in seen:
                    seen.add(neighbour)
                    frontier.append(neighbour)
    return False


@pytest.fixture(params=sorted(GRAPHS))
def graph(request: pytest.FixtureRequest) -> tuple[list[str], list[tuple[str, str]], str]:
    nodes, edges = GRAPHS[request.param]
    return nodes, edges, draw_ascii(nodes, edges)


def test_every_label_is_boxed_exactly_once(graph) -> None:
    nodes, _, drawing = graph
    labels = [box.label for box in parse_boxes(drawing)]
    assert sorted(labels) == sorted(nodes)
    for node in nodes:
        assert drawing.count(f"| {node} |") == 1


def test_parents_are_above_children(graph) -> None:
    _, edges, drawing = graph
    boxes = boxes_by_label(drawing)
    for parent, child in edges:
        assert boxes[parent].bottom < boxes[child].top, (parent, child)


def test_boxes_do_not_overlap(graph) -> None:
    _, _, drawing = graph
    boxes = parse_boxes(drawing)
    for index, first in enumerate(boxes):
        for second in boxes[index + 1 :]:
            rows_overlap = first.top <= second.bottom and second.top <= first.bottom
            columns_overlap = first.left <= second.right and second.left <= first.right
            assert not (rows_overlap and columns_overlap), (first, second)


def test_boxes_in_a_row_keep_two_spaces_apart(graph) -> None:
    _, _, drawing = graph
    boxes = parse_boxes(drawing)
    for first in boxes:
        for second in boxes:
            if first.top == second.top and first.left < second.left:
                assert second.left - first.right - 1 >= 2


def test_no_star_inside_a_box(graph) -> None:
    _, _, drawing = graph
    boxes = parse_boxes(drawing)
    for row, column in star_cells(drawing):
        assert not any(box.contains(row, column) for box in boxes), (row, column)


def test_every_edge_is_a_connected_star_path(graph) -> None:
    _, edges, drawing = graph
    boxes = boxes_by_label(drawing)
    stars = star_cells(drawing)
    for parent, child in edges:
        start = (boxes[parent].bottom + 1, boxes[parent].center)
        goal = (boxes[child].top - 1, boxes[child].center)
        assert start in stars, f"no edge leaves the bottom centre of {parent}"
        assert goal in stars, f"no edge enters the top centre of {child}"
        assert stars_connected(stars, start, goal), (parent, child)


def test_edge_gap_has_at_least_three_rows(graph) -> None:
    _, edges, drawing = graph
    boxes = boxes_by_label(drawing)
    for parent, child in edges:
        assert boxes[child].top - boxes[parent].bottom - 1 >= 3


def test_no_trailing_whitespace_or_newline(graph) -> None:
    _, _, drawing = graph
    assert not drawing.endswith("\n")
    for line in drawing.split("\n"):
        assert line == line.rstrip()


def test_drawing_is_deterministic(graph) -> None:
    nodes, edges, drawing = graph
    assert draw_ascii(list(nodes), list(edges)) == drawing
    assert draw_ascii(tuple(nodes), tuple(edges)) == drawing


def test_layer_skipping_edge_is_drawn() -> None:
    nodes, edges = GRAPHS["skip_layer"]
    drawing = draw_ascii(nodes, edges)
    boxes = boxes_by_label(drawing)
    b = boxes["b"]
    stars_beside_b = [
        (row, column)
        for row, column in star_cells(drawing)
        if b.top <= row <= b.bottom and not b.contains(row, column)
    ]
    assert stars_beside_b, drawing
    # Without the a -> c edge, the graph is a chain whose drawing has no stars beside b.
    chain = draw_ascii(nodes, [("a", "b"), ("b", "c")])
    chain_b = boxes_by_label(chain)["b"]
    assert not [cell for cell in star_cells(chain) if chain_b.top <= cell[0] <= chain_b.bottom]


def test_multi_path_example_layers() -> None:
    drawing = draw_ascii(MULTI_PATH_NODES, MULTI_PATH_EDGES)
    print()
    print(drawing)
    boxes = boxes_by_label(drawing)
    order = ["LoadData(csv)", "ProcessData(normalize-l1)", "AugmentData(augment)", "Evaluate(both)"]
    tops = [boxes[label].top for label in order]
    assert tops == sorted(tops) and len(set(tops)) == len(tops)
    assert boxes["LoadData(database)"].top == boxes["LoadData(csv)"].top
    assert boxes["ProcessData(normalize-l2)"].top == boxes["ProcessData(normalize-l1)"].top


def test_longest_path_layering_gives_distinct_rows_per_layer() -> None:
    nodes, edges = GRAPHS["chain"]
    boxes = boxes_by_label(draw_ascii(nodes, edges))
    assert boxes["a"].top < boxes["b"].top < boxes["c"].top < boxes["d"].top


def test_labels_replace_names_and_set_box_width() -> None:
    labels = {"a": "LoadData(csv) [CACHED 0.4s]"}
    drawing = draw_ascii(["a", "b"], [("a", "b")], labels)
    boxes = boxes_by_label(drawing)
    assert set(boxes) == {"LoadData(csv) [CACHED 0.4s]", "b"}
    box = boxes["LoadData(csv) [CACHED 0.4s]"]
    assert box.right - box.left + 1 == len(labels["a"]) + 4


def test_empty_graph_is_empty_string() -> None:
    assert draw_ascii([], []) == ""


def test_single_node_is_just_its_box() -> None:
    assert draw_ascii(["solo"], []) == "+------+\n| solo |\n+------+"


def test_cycle_raises() -> None:
    with pytest.raises(ValueError, match="cycle"):
        draw_ascii(["a", "b", "c"], [("a", "b"), ("b", "c"), ("c", "a")])
    with pytest.raises(ValueError, match="cycle"):
        draw_ascii(["a"], [("a", "a")])


@pytest.mark.parametrize("edge", [("a", "missing"), ("missing", "a")])
def test_unknown_node_raises(edge: tuple[str, str]) -> None:
    with pytest.raises(ValueError, match="missing"):
        draw_ascii(["a", "b"], [edge])


def test_diamond_is_printed() -> None:
    nodes, edges = GRAPHS["diamond"]
    drawing = draw_ascii(nodes, edges)
    print()
    print(drawing)
    boxes = boxes_by_label(drawing)
    assert boxes["b"].top == boxes["c"].top
    assert boxes["a"].bottom < boxes["b"].top and boxes["c"].bottom < boxes["d"].top


def test_two_hundred_nodes_draw_every_box() -> None:
    """How fast: ``benchmarks/drawings.py``."""
    rng = random.Random(7)
    nodes = [f"task_{index}" for index in range(200)]
    edges = [
        (nodes[i], nodes[j]) for i in range(200) for j in range(i + 1, 200) if rng.random() < 0.02
    ]
    drawing = draw_ascii(nodes, edges)
    assert sorted(box.label for box in parse_boxes(drawing)) == sorted(nodes)


def bresenham_cells(start: tuple[int, int], end: tuple[int, int]) -> list[tuple[int, int]]:
    """The plain cell-by-cell rasterisation the drawing's edge runs must equal."""
    (row, column), (end_row, end_column) = start, end
    d_col, d_row = abs(end_column - column), -abs(end_row - row)
    step_col, step_row = (1 if column < end_column else -1), (1 if row < end_row else -1)
    error, cells = d_col + d_row, [(row, column)]
    while (row, column) != (end_row, end_column):
        doubled = 2 * error
        if doubled >= d_row:
            error, column = error + d_row, column + step_col
        if doubled <= d_col:
            error, row = error + d_col, row + step_row
        cells.append((row, column))
    return cells


@given(
    st.tuples(st.integers(0, 30), st.integers(0, 5000)),
    st.tuples(st.integers(0, 30), st.integers(0, 5000)),
)
def test_edge_runs_are_the_cells_of_a_bresenham_line(start, end) -> None:
    expected: dict[int, list[int]] = {}
    for row, column in bresenham_cells(start, end):
        expected.setdefault(row, []).append(column)
    runs = list(_line_runs(start, end))
    assert [row for row, _, _ in runs] == list(expected)
    for row, first, last in runs:
        assert sorted(expected[row]) == list(range(first, last + 1))


def test_a_wide_fan_out_is_drawn_whole() -> None:
    children = [f"child_{index}" for index in range(1500)]
    drawing = draw_ascii(["root", *children], [("root", child) for child in children])
    boxes = boxes_by_label(drawing)
    assert sorted(boxes) == sorted(["root", *children])
    assert all(boxes["root"].bottom < boxes[child].top for child in children)
