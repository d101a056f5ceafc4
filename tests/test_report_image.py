"""Tests for the PNG status picture of a task graph (pyperunner.report.image)."""

from __future__ import annotations

import itertools
import subprocess
import sys
import textwrap
from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from conftest import feature_pipeline
from PIL import Image

from pyperunner import Runner
from pyperunner.dag import Dag
from pyperunner.report.image import STATUS_COLORS, layout_boxes, write_status_png
from pyperunner.report.layout import compute_layout
from pyperunner.status import Status

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------- graphs


def manual_pipeline(statuses: dict[str, Status] | None = None) -> nx.DiGraph:
    """The manual's multi-path pipeline, one task of each status by default."""
    graph = nx.DiGraph()
    default = {
        "LoadData(csv)": (Status.CACHED, None),
        "LoadData(database)": (Status.SUCCESS, 3.4),
        "ProcessData(normalize-l1)": (Status.SUCCESS, 1.2),
        "ProcessData(normalize-l2)": (Status.FAILURE, 0.4),
        "AugmentData(augment)": (Status.RUNNING, None),
        "Evaluate(both)": (Status.CANT_RUN, None),
    }
    for name, (status, duration) in default.items():
        graph.add_node(name, status=(statuses or {}).get(name, status), duration=duration)
    graph.add_edges_from(
        [
            ("LoadData(csv)", "ProcessData(normalize-l1)"),
            ("ProcessData(normalize-l1)", "AugmentData(augment)"),
            ("AugmentData(augment)", "Evaluate(both)"),
            ("LoadData(database)", "ProcessData(normalize-l2)"),
            ("ProcessData(normalize-l2)", "Evaluate(both)"),
        ]
    )
    return graph


def one_of_each_status() -> nx.DiGraph:
    """Six tasks in a chain, each with a different status (NOT_STARTED via a missing attr)."""
    graph = nx.DiGraph()
    names = [f"Task({status.value.lower()})" for status in Status]
    nx.add_path(graph, names)
    for name, status in zip(names, Status, strict=True):
        if status is not Status.NOT_STARTED:
            graph.nodes[name]["status"] = status
            graph.nodes[name]["duration"] = 0.5
    return graph


def all_success(graph: nx.DiGraph) -> nx.DiGraph:
    """Copy of ``graph`` with every task marked SUCCESS."""
    copy = graph.copy()
    for node in copy.nodes:
        copy.nodes[node]["status"] = Status.SUCCESS
    return copy


def layered_graph(layers: int = 6, width: int = 10) -> nx.DiGraph:
    """``layers`` x ``width`` tasks, each task depending on two tasks of the layer above."""
    graph = nx.DiGraph()
    for layer, i in itertools.product(range(layers), range(width)):
        graph.add_node(f"Task{layer}(param-{i})", status=list(Status)[(layer + i) % 6])
    for layer, i in itertools.product(range(1, layers), range(width)):
        for j in (i, (i * 3 + 1) % width):
            graph.add_edge(f"Task{layer - 1}(param-{j})", f"Task{layer}(param-{i})")
    return graph


def chain_graph(n: int = 60) -> nx.DiGraph:
    graph = nx.DiGraph()
    nx.add_path(graph, [f"Step(number-{i})" for i in range(n)])
    return graph


def fan_out_graph(leaves: int = 59) -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_edges_from(("LoadData(csv)", f"Train(model-{i})") for i in range(leaves))
    return graph


def four_tasks() -> nx.DiGraph:
    graph = nx.DiGraph()
    graph.add_edges_from([("A(x)", "B(x)"), ("A(x)", "C(x)"), ("B(x)", "D(x)"), ("C(x)", "D(x)")])
    return graph


# --------------------------------------------------------------------------- helpers


def read_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).astype(int)


def colour_counts(path: Path, tolerance: int = 4) -> dict[Status, int]:
    """Number of pixels within ``tolerance`` (per channel) of each status colour."""
    pixels = read_rgb(path)
    counts = {}
    for status, hex_colour in STATUS_COLORS.items():
        rgb = np.array([int(hex_colour[i : i + 2], 16) for i in (1, 3, 5)])
        counts[status] = int((np.abs(pixels - rgb).max(axis=2) <= tolerance).sum())
    return counts


def rectangles_intersect(a: tuple, b: tuple) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


def assert_no_overlaps(boxes: dict[str, tuple[float, float, float, float]]) -> None:
    for (name_a, a), (name_b, b) in itertools.combinations(boxes.items(), 2):
        assert not rectangles_intersect(a, b), f"{name_a} {a} overlaps {name_b} {b}"


def assert_parents_above_children(graph: nx.DiGraph, boxes: dict) -> None:
    for parent, child in graph.edges:
        _, parent_y, _, _ = boxes[parent]
        _, child_y, _, child_h = boxes[child]
        assert parent_y > child_y + child_h, f"{parent} is not above {child}"


# --------------------------------------------------------------------------- tests


def test_status_colors_cover_every_status_and_are_distinct() -> None:
    assert set(STATUS_COLORS) == set(Status)
    assert len({c.lower() for c in STATUS_COLORS.values()}) == len(Status)
    assert STATUS_COLORS[Status.SUCCESS] != STATUS_COLORS[Status.CACHED]
    for colour in STATUS_COLORS.values():
        assert colour.startswith("#") and len(colour) == 7


def test_writes_png_and_returns_path(tmp_path: Path) -> None:
    target = tmp_path / "status.png"
    result = write_status_png(manual_pipeline(), target, title="multi-path")
    assert result == target
    assert target.read_bytes().startswith(PNG_SIGNATURE)


def test_png_bytes_whatever_the_suffix_and_parent_created(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "er" / "status.img"
    result = write_status_png(manual_pipeline(), str(target))
    assert result == target
    assert target.read_bytes().startswith(PNG_SIGNATURE)
    with Image.open(target) as image:
        assert image.format == "PNG"


def test_every_used_status_colour_shows_in_a_box(tmp_path: Path) -> None:
    mixed = colour_counts(write_status_png(one_of_each_status(), tmp_path / "mixed.png"))
    legend_only = colour_counts(
        write_status_png(all_success(one_of_each_status()), tmp_path / "success.png")
    )
    for status in Status:
        assert mixed[status] > 0, status
        if status is not Status.SUCCESS:
            # One box adds far more than the legend swatch (and anti-aliasing) alone.
            assert mixed[status] > legend_only[status] + 1000, status


def test_manual_pipeline_shows_every_status_colour(tmp_path: Path) -> None:
    graph = manual_pipeline()
    graph.add_node("Report(summary)", status=Status.NOT_STARTED, duration=None)
    graph.add_edge("Evaluate(both)", "Report(summary)")
    graph.add_node("Notify(mail)", status=Status.INTERRUPTED, duration=None)
    graph.add_edge("Evaluate(both)", "Notify(mail)")
    counts = colour_counts(write_status_png(graph, tmp_path / "manual.png", title="manual"))
    baseline = colour_counts(write_status_png(all_success(graph), tmp_path / "base.png"))
    for status in Status:
        if status is not Status.SUCCESS:
            assert counts[status] > baseline[status] + 1000, status


def test_legend_shows_unused_colours_in_far_fewer_pixels(tmp_path: Path) -> None:
    counts = colour_counts(write_status_png(all_success(four_tasks()), tmp_path / "ok.png"))
    success = counts[Status.SUCCESS]
    for status in Status:
        assert counts[status] > 0, f"{status} missing from the legend"
        if status is not Status.SUCCESS:
            assert counts[status] * 10 < success, status


def test_image_grows_with_graph_size(tmp_path: Path) -> None:
    small = read_rgb(write_status_png(four_tasks(), tmp_path / "small.png"))
    large = read_rgb(write_status_png(layered_graph(), tmp_path / "large.png"))
    assert large.shape[0] > small.shape[0]
    assert large.shape[1] > small.shape[1]
    assert large.shape[0] * large.shape[1] > 4 * small.shape[0] * small.shape[1]


def test_large_graph_stays_under_pixel_budget(tmp_path: Path) -> None:
    graph = nx.DiGraph()
    graph.add_edges_from((f"Root({i % 5})", f"SomeRatherLongTaskName({i})") for i in range(300))
    with Image.open(write_status_png(graph, tmp_path / "huge.png")) as image:
        width, height = image.size
    assert width * height <= 20_000_000
    assert width < 2**16 and height < 2**16


@pytest.mark.parametrize(
    "graph",
    [layered_graph(6, 10), chain_graph(60), fan_out_graph(59), manual_pipeline()],
    ids=["6x10-layers", "60-chain", "1-to-59-fan-out", "manual"],
)
def test_layout_boxes_do_not_overlap_and_parents_are_above(graph: nx.DiGraph) -> None:
    boxes = layout_boxes(graph)
    assert set(boxes) == set(graph.nodes)
    for x, y, w, h in boxes.values():
        assert x >= 0 and y >= 0 and w > 0 and h > 0
    assert_no_overlaps(boxes)
    assert_parents_above_children(graph, boxes)


def test_boxes_are_wide_enough_for_their_names() -> None:
    boxes = layout_boxes(manual_pipeline())
    short = boxes["Evaluate(both)"][2]
    long = boxes["ProcessData(normalize-l2)"][2]
    assert long > short
    assert long >= len("ProcessData(normalize-l2)") * 0.07  # about 9 pt text, in inches


def test_layers_follow_longest_path() -> None:
    boxes = layout_boxes(manual_pipeline())
    # Evaluate(both) is below AugmentData(augment), which is below both ProcessData tasks.
    y = {name: rect[1] for name, rect in boxes.items()}
    assert y["LoadData(csv)"] == y["LoadData(database)"]
    assert y["ProcessData(normalize-l1)"] == y["ProcessData(normalize-l2)"]
    assert y["Evaluate(both)"] < y["AugmentData(augment)"] < y["ProcessData(normalize-l2)"]


def test_barycenter_ordering_removes_avoidable_crossings() -> None:
    graph = nx.DiGraph()
    # Children listed in the reverse order of their parents: two crossings unless reordered.
    graph.add_nodes_from(["A(1)", "B(1)", "C(1)", "c(2)", "b(2)", "a(2)"])
    graph.add_edges_from([("A(1)", "a(2)"), ("B(1)", "b(2)"), ("C(1)", "c(2)")])
    boxes = layout_boxes(graph)
    parents = sorted(["A(1)", "B(1)", "C(1)"], key=lambda n: boxes[n][0])
    children = sorted(["a(2)", "b(2)", "c(2)"], key=lambda n: boxes[n][0])
    assert [p[0].lower() for p in parents] == [c[0] for c in children]


def test_cyclic_graph_raises(tmp_path: Path) -> None:
    graph = nx.DiGraph([("A(x)", "B(x)"), ("B(x)", "C(x)"), ("C(x)", "A(x)")])
    with pytest.raises(ValueError, match="cycle"):
        write_status_png(graph, tmp_path / "cycle.png")
    with pytest.raises(ValueError):
        layout_boxes(graph)
    assert not (tmp_path / "cycle.png").exists()


def test_empty_graph_and_missing_attributes(tmp_path: Path) -> None:
    assert (
        write_status_png(nx.DiGraph(), tmp_path / "empty.png")
        .read_bytes()
        .startswith(PNG_SIGNATURE)
    )
    graph = nx.DiGraph([("A(x)", "B(x)")])  # no status / duration attributes at all
    counts = colour_counts(write_status_png(graph, tmp_path / "bare.png"))
    assert counts[Status.NOT_STARTED] > 10 * counts[Status.SUCCESS]


def test_sixty_tasks_render(tmp_path: Path) -> None:
    """How fast: ``benchmarks/drawings.py``."""
    out = write_status_png(layered_graph(), tmp_path / "sixty.png", title="sixty tasks")
    assert out.read_bytes().startswith(PNG_SIGNATURE)


def test_two_hundred_task_chain_renders_one_row_per_task(tmp_path: Path) -> None:
    """How fast: ``benchmarks/drawings.py``."""
    graph = nx.DiGraph()  # of two classes in turn, so that no part of it is drawn as a group
    nx.add_path(graph, [f"Step{i % 2}(number-{i})" for i in range(200)])
    out = write_status_png(graph, tmp_path / "chain.png", title="200 tasks")
    with Image.open(out) as image:
        assert image.format == "PNG"
        assert image.height > 20 * image.width  # a tall picture, one row per task


def test_dashed_border_only_on_cached_boxes(tmp_path: Path) -> None:
    graph = nx.DiGraph()
    graph.add_node("Cached(x)", status=Status.CACHED)
    graph.add_node("Done(x)", status=Status.SUCCESS)
    out = write_status_png(graph, tmp_path / "dash.png")
    boxes = layout_boxes(graph)
    pixels = read_rgb(out)
    height_px = pixels.shape[0]

    def top_border_row(name: str) -> np.ndarray:
        x, y, w, h = (v * 100 for v in boxes[name])  # 100 pixels per inch
        row = round(height_px - (y + h))
        return pixels[row, round(x + 0.25 * w) : round(x + 0.75 * w)]

    def dark(row: np.ndarray) -> np.ndarray:
        return row.max(axis=1) < 120

    assert dark(top_border_row("Done(x)")).all()  # a solid border
    cached = dark(top_border_row("Cached(x)"))
    assert 0.3 < cached.mean() < 0.9  # dashes and gaps
    assert np.count_nonzero(np.diff(cached.astype(int)) == 1) >= 3


def test_edges_leave_and_enter_boxes_in_the_middle_going_straight_down(tmp_path: Path) -> None:
    """A -> B and A -> C, B and C side by side below A. Near A the edge to C is far steeper
    than a straight line from A's middle to C's would be (a curve leaving A vertically), and
    just above C its arrowhead points straight down at the middle of C's top."""
    graph = nx.DiGraph([("A(x)", "B(x)"), ("A(x)", "C(x)")])
    out = write_status_png(graph, tmp_path / "edges.png")
    pixels = read_rgb(out)
    height_px = pixels.shape[0]
    middle, bottom, top = {}, {}, {}
    for name, (x, y, w, h) in layout_boxes(graph).items():  # 100 pixels per inch
        middle[name], bottom[name], top[name] = (
            (x + w / 2) * 100,
            height_px - y * 100,
            height_px - (y + h) * 100,
        )

    def ink_centre(row: float, left: float, right: float) -> float:
        """Mean column of the inked pixels of a row between two columns."""
        columns = np.arange(round(left), round(right))
        inked = pixels[round(row), columns].max(axis=1) < 200
        assert inked.any(), (row, left, right)
        return float(columns[inked].mean())

    straight_slope = (middle["C(x)"] - middle["A(x)"]) / (top["C(x)"] - bottom["A(x)"])
    drift = ink_centre(bottom["A(x)"] + 6, middle["A(x)"] + 0.5, middle["C(x)"]) - middle["A(x)"]
    assert drift < 6 * straight_slope / 3
    tip = ink_centre(top["C(x)"] - 4, middle["C(x)"] - 12, middle["C(x)"] + 12)
    assert abs(tip - middle["C(x)"]) <= 1


def test_rendering_never_imports_matplotlib(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys

        import networkx as nx

        import pyperunner.report.image as image
        from pyperunner.status import Status

        graph = nx.DiGraph([("A(x)", "B(x)"), ("A(x)", "C(x)"), ("B(x)", "D(x)")])
        graph.nodes["A(x)"]["status"] = Status.CACHED
        graph.nodes["B(x)"].update(status=Status.SUCCESS, duration=1.5)
        image.write_status_png(graph, {str(tmp_path / "out.png")!r}, title="no matplotlib")
        image.layout_boxes(graph)
        assert "matplotlib" not in sys.modules, sorted(m for m in sys.modules if "matplotlib" in m)
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    assert (tmp_path / "out.png").read_bytes().startswith(PNG_SIGNATURE)


def test_a_run_never_imports_networkx_even_to_group_its_picture(tmp_path: Path) -> None:
    """networkx's import alone is most of a cached run's budget (see ``dag.Dag``)."""
    script = textwrap.dedent(
        f"""
        import sys

        from pyperunner import Pipeline, Runner, task

        @task("Source", receives_input=False)
        def source():
            return 0

        @task("Leaf")
        def leaf(data, i):
            return data[0] + i

        root = source()
        for i in range(200):  # too wide a layer: drawn as one group
            leaf(f"leaf-{{i}}", i=i)(root)
        runner = Runner({str(tmp_path / "data")!r}, {str(tmp_path / "log")!r},
                        executor="inline", console=False, progress=False)
        assert runner.run(Pipeline("wide", [root])).ok
        assert "networkx" not in sys.modules, "a run imported networkx"
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    [status_png] = (tmp_path / "log").glob("*/status.png")
    with Image.open(status_png) as image:
        assert image.width < 2000  # grouped, not 200 boxes side by side


# --------------------------------------------------------------------------- wide pipelines


def cross_validation(folds: int) -> nx.DiGraph:
    """Load -> Fit(fold-i) -> Score(fold-i) -> Report, fold 7 failing."""
    graph = nx.DiGraph()
    for i in range(folds):
        graph.add_edge("Load(all)", f"Fit(fold-{i})")
        graph.add_edge(f"Fit(fold-{i})", f"Score(fold-{i})")
        graph.add_edge(f"Score(fold-{i})", "Report(final)")
    for node in graph.nodes:
        graph.nodes[node]["status"] = Status.SUCCESS
    graph.nodes["Fit(fold-7)"]["status"] = Status.FAILURE
    for node in ["Score(fold-7)", "Report(final)"]:
        graph.nodes[node]["status"] = Status.CANT_RUN
    return graph


def test_a_pipeline_that_fits_is_drawn_task_by_task_at_full_size(tmp_path: Path) -> None:
    from pyperunner.report.groups import grouped

    for graph in (manual_pipeline(), cross_validation(8)):
        assert grouped(graph) is graph
        layout = compute_layout(graph, "title")
        with Image.open(write_status_png(graph, tmp_path / "small.png", "title")) as image:
            assert image.size == (round(layout.width * 100), round(layout.height * 100))


def test_too_wide_a_layer_is_drawn_as_one_box_per_group_of_like_tasks(tmp_path: Path) -> None:
    from pyperunner.report.groups import grouped

    drawn = grouped(cross_validation(3000))
    fits = "Fit(fold-0 ... fold-2999), 3000 tasks"
    scores = "Score(fold-0 ... fold-2999), 3000 tasks"
    assert set(drawn.edges) == {
        ("Load(all)", fits),
        (fits, scores),
        (scores, "Report(final)"),
    }
    assert drawn.nodes[fits]["status"] is Status.FAILURE  # the worst of the group
    assert drawn.nodes[fits]["detail"] == "1 FAILURE · 2999 SUCCESS"
    assert drawn.nodes[scores]["detail"] == "1 CANT_RUN · 2999 SUCCESS"
    path = write_status_png(cross_validation(3000), tmp_path / "wide.png")
    with Image.open(path) as image:
        assert image.width < 1000 and image.height < 1000  # boxes at their normal size
    counts = colour_counts(path)
    assert counts[Status.FAILURE] > 1000 and counts[Status.CANT_RUN] > 1000


def test_unlike_tasks_of_a_wide_layer_stay_apart() -> None:
    from pyperunner.report.groups import grouped

    graph = cross_validation(3000)
    graph.add_edge("Load(all)", "Other(one)")
    graph.add_edge("Load(all)", "Other(two)")  # two of a class: too few to group
    graph.nodes["Other(one)"]["status"] = graph.nodes["Other(two)"]["status"] = Status.SUCCESS
    drawn = grouped(graph)
    assert {"Other(one)", "Other(two)", "Load(all)", "Report(final)"} <= set(drawn.nodes)
    assert len(drawn) == 6


def test_too_long_a_chain_of_like_tasks_is_drawn_as_one_box() -> None:
    from pyperunner.report.groups import grouped

    graph = chain_graph(200)
    graph.add_edge("Load(all)", "Step(number-0)")
    graph.add_edge("Step(number-199)", "Report(final)")
    for node in graph.nodes:
        graph.nodes[node]["status"] = Status.SUCCESS
    graph.nodes["Step(number-150)"]["status"] = Status.FAILURE
    drawn = grouped(graph)
    steps = "Step(number-0 ... number-199), 200 tasks"
    assert set(drawn.edges) == {("Load(all)", steps), (steps, "Report(final)")}
    assert drawn.nodes[steps]["detail"] == "1 FAILURE · 199 SUCCESS"
    short = chain_graph(10)
    assert grouped(short) is short  # it fits the picture: drawn task by task
    assert len(grouped(chain_graph(30))) == 1  # 30 layers do not fit a screen's height


def test_a_wide_pipeline_fits_a_screen_with_one_box_per_group_of_like_tasks(
    tmp_path: Path,
) -> None:
    from pyperunner.report.groups import grouped

    pipeline = feature_pipeline()
    runner = Runner(tmp_path / "data", tmp_path / "log", executor="inline", console=False)
    result = runner.run(pipeline)
    with Image.open(result.run_dir / "status.png") as image:
        size = image.size
    assert max(size) <= 2500  # 8409 x 860 px when drawn task by task

    graph = pipeline.graph()
    for name, run in result.runs.items():
        graph.nodes[name].update(status=run.status, duration=run.duration)
    drawn = grouped(graph)
    features = {f"Feature(s{s}-len ... s{s}-sum), 6 tasks" for s in range(7)}
    sources, cleaned = {f"Source(s{s})" for s in range(7)}, {f"Clean(s{s})" for s in range(7)}
    assert set(drawn.nodes) == sources | cleaned | features | {"Train(model)", "Report(final)"}
    assert ("Clean(s2)", "Feature(s2-len ... s2-sum), 6 tasks") in set(drawn.edges)
    for s in range(7):
        attrs = drawn.nodes[f"Feature(s{s}-len ... s{s}-sum), 6 tasks"]
        failing = s in (2, 5)
        assert attrs["status"] is (Status.FAILURE if failing else Status.SUCCESS)
        assert attrs["detail"] == ("1 FAILURE · 5 SUCCESS" if failing else "6 SUCCESS")
    layout = compute_layout(drawn, "features")
    assert size[0] / layout.width >= 80  # pixels per inch: the labels stay readable
    counts = colour_counts(result.run_dir / "status.png")
    assert counts[Status.FAILURE] > 2 * counts[Status.CANT_RUN] > 0  # two groups, two tasks


def grid_search(datasets: int = 10, settings: int = 50) -> Dag:
    """Each dataset fitted with each parameter setting, evaluated per dataset; the best kept."""
    graph = Dag()
    for d in range(datasets):
        graph.add_node(f"Dataset(d{d})", status=Status.SUCCESS, duration=0.5)
        graph.add_node(f"Evaluate(d{d})", status=Status.SUCCESS, duration=1.5)
        graph.add_edge(f"Evaluate(d{d})", "Best(all)")
        for p in range(settings):
            graph.add_node(f"Fit(d{d}-p{p})", status=Status.SUCCESS, duration=30.0)
            graph.add_edge(f"Dataset(d{d})", f"Fit(d{d}-p{p})")
            graph.add_edge(f"Fit(d{d}-p{p})", f"Evaluate(d{d})")
    graph.nodes["Best(all)"].update(status=Status.SUCCESS, duration=0.1)
    return graph


def test_big_pipelines_fit_a_screen_and_only_their_too_wide_layers_are_grouped(
    tmp_path: Path,
) -> None:
    from pyperunner.report.groups import grouped

    grid, fan_out = grid_search(), cross_validation(5000)
    for graph in (grid, fan_out):
        with Image.open(write_status_png(graph, tmp_path / "big.png", "big")) as image:
            assert max(image.size) <= 2500
    fits = "Fit(d0-p0 ... d9-p49), 500 tasks"  # 50 a dataset would still be too wide
    datasets = {f"Dataset(d{d})" for d in range(10)}
    evaluations = {f"Evaluate(d{d})" for d in range(10)}
    assert set(grouped(grid).nodes) == datasets | evaluations | {fits, "Best(all)"}
    assert len(grouped(fan_out)) == 4


def test_too_many_layers_of_unlike_tasks_are_drawn_smaller_but_readable(tmp_path: Path) -> None:
    graph = nx.DiGraph()  # two classes in turn: no chain of like tasks to group
    nx.add_path(graph, [f"Step{i % 2}(number-{i})" for i in range(26)])
    layout = compute_layout(graph, "deep")
    with Image.open(write_status_png(graph, tmp_path / "deep.png", "deep")) as image:
        assert image.height <= 2500 < layout.height * 100
        assert image.height / layout.height >= 80
