"""Tests for the SVG drawing of a task graph (pyperunner.report.svg): the PNG's layout, as XML."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest
from conftest import EVIL

from pyperunner.dag import Dag
from pyperunner.report.layout import STATUS_COLORS, layout_boxes
from pyperunner.report.svg import PX_PER_INCH, draw_svg, escape
from pyperunner.status import Status

SVG = "{http://www.w3.org/2000/svg}"


def diamond() -> Dag:
    """Load -> two fits -> Best, one task of each of four statuses."""
    graph = Dag("diamond")
    for name, status in [
        ("Load(all)", Status.CACHED),
        ("Fit(a)", Status.SUCCESS),
        ("Fit(b)", Status.FAILURE),
        ("Best(one)", Status.CANT_RUN),
    ]:
        graph.add_node(name, status=status)
    for parent, child in [
        ("Load(all)", "Fit(a)"),
        ("Load(all)", "Fit(b)"),
        ("Fit(a)", "Best(one)"),
        ("Fit(b)", "Best(one)"),
    ]:
        graph.add_edge(parent, child)
    return graph


def boxes(svg: str) -> dict[str, ET.Element]:
    """Each task's box (its ``<g>``: tooltip, rectangle and labels) by the name it shows."""
    root = ET.fromstring(svg)
    found = {}
    for group in root.iter(f"{SVG}g"):
        texts = group.findall(f"{SVG}text")
        if group.find(f"{SVG}rect") is not None and texts:
            found[texts[0].text] = group
    return found


def test_boxes_are_the_layout_of_the_run_pictures_in_css_pixels() -> None:
    graph = diamond()
    drawn = boxes(draw_svg(graph))
    height = float(ET.fromstring(draw_svg(graph)).get("height"))
    assert set(drawn) == set(graph.nodes)
    for name, (x, y, w, h) in layout_boxes(graph).items():
        rect = drawn[name].find(f"{SVG}rect")
        assert float(rect.get("x")) == pytest.approx(x * PX_PER_INCH, abs=0.06)
        assert float(rect.get("width")) == pytest.approx(w * PX_PER_INCH, abs=0.06)
        assert float(rect.get("y")) == pytest.approx(height - (y + h) * PX_PER_INCH, abs=0.6)


def test_each_box_has_its_status_colour_and_only_cached_ones_are_dashed() -> None:
    graph = diamond()
    for name, group in boxes(draw_svg(graph)).items():
        rect = group.find(f"{SVG}rect")
        status = graph.nodes[name]["status"]
        assert rect.get("fill") == STATUS_COLORS[status]
        assert (rect.get("stroke-dasharray") is not None) == (status is Status.CACHED)


def test_every_edge_ends_in_an_arrowhead_and_the_legend_names_the_statuses() -> None:
    root = ET.fromstring(draw_svg(diamond(), legend={Status.SUCCESS: "done"}))
    assert len(root.findall(f".//{SVG}path")) == 4
    assert len(root.findall(f".//{SVG}polygon")) == 4
    labels = [text.text for text in root.iter(f"{SVG}text")]
    assert "done" in labels
    assert "failure" not in labels  # the legend has only the statuses it is given


def test_an_edge_leaves_its_parent_and_reaches_its_child_at_the_middle_going_straight_down() -> (
    None
):
    """Split -> Evaluate passes beside the Fit box (a waypoint): a curve that leaves Split's
    bottom and enters Evaluate's top vertically, its arrowhead's tip on Evaluate's top."""
    graph = Dag.from_parents(
        {name: {"status": Status.SUCCESS} for name in ("Split", "Fit", "Evaluate")},
        {"Fit": ["Split"], "Evaluate": ["Split", "Fit"]},
    )
    root = ET.fromstring(draw_svg(graph))
    drawn = {name: group.find(f"{SVG}rect") for name, group in boxes(draw_svg(graph)).items()}

    def middle(name: str, side: str) -> tuple[float, float]:
        rect = drawn[name]
        x, y = float(rect.get("x")) + float(rect.get("width")) / 2, float(rect.get("y"))
        return x, y + (float(rect.get("height")) if side == "bottom" else 0.0)

    curves = [
        [tuple(map(float, p.split(","))) for p in re.findall(r"-?[\d.]+,-?[\d.]+", path.get("d"))]
        for path in root.iter(f"{SVG}path")
    ]
    tips = [
        tuple(map(float, p.get("points").split()[0].split(","))) for p in root.iter(f"{SVG}polygon")
    ]
    long_way = max(curves, key=len)  # Split -> Evaluate, through its waypoint
    assert len(long_way) > 4
    assert long_way[0] == pytest.approx(middle("Split", "bottom"), abs=0.1)
    assert long_way[1][0] == pytest.approx(long_way[0][0])  # leaves going straight down
    assert long_way[-2][0] == pytest.approx(long_way[-1][0])  # arrives going straight down
    assert max(x for x, _ in long_way) > float(drawn["Fit"].get("x")) + float(
        drawn["Fit"].get("width")
    )
    assert middle("Evaluate", "top") in [pytest.approx(tip, abs=0.1) for tip in tips]


def test_text_and_tooltips_are_escaped_and_the_drawing_stays_xml() -> None:
    graph = Dag()
    graph.add_node(f"Evil({EVIL})", status=Status.SUCCESS, tip=f"tip {EVIL}\x07")
    svg = draw_svg(graph, title=f"title {EVIL}")
    assert EVIL not in svg
    assert svg.count(escape(EVIL)) == 4  # the title's element and text, the box's name and tip
    root = ET.fromstring(svg)  # a control character would make it unreadable XML
    box = boxes(svg)[f"Evil({EVIL})"]
    assert box.find(f"{SVG}title").text == f"tip {EVIL}\ufffd"
    assert root.find(f"{SVG}title").text == f"title {EVIL}"


def test_an_empty_graph_says_so() -> None:
    root = ET.fromstring(draw_svg(Dag(), legend=None))
    assert [text.text for text in root.iter(f"{SVG}text")] == ["(no tasks)"]
