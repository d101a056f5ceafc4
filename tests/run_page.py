"""Checks of the run page, shared by the UI's tests and report.html's: each takes a Playwright page
showing the run page of the feature pipeline's first run (``conftest.feature_pipeline``) and
checks what a user sees and does there, from the DOM."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from pyperunner.report.groups import natural_order
from pyperunner.report.layout import STATUS_COLORS
from pyperunner.status import Status

FEATURES = 'g.group[data-group^="Feature("]'


def task_box(name: str) -> str:
    return f'g.task[data-name="{name}"]'


def boxes(page: Any, selector: str = "g.task") -> list[dict[str, float]]:
    """The screen rectangles of the boxes (a group's stack of cards included)."""
    return page.eval_on_selector_all(
        selector,
        """nodes => nodes.map(node => {
            const r = node.getBoundingClientRect();
            return {name: node.dataset.name || node.dataset.group,
                    left: r.left, top: r.top, right: r.right, bottom: r.bottom};
        })""",
    )


def overlapping(rects: list[dict[str, float]]) -> list[tuple[str, str]]:
    """The pairs of rectangles that share some area."""
    pairs = []
    for i, a in enumerate(rects):
        for b in rects[i + 1 :]:
            if min(a["right"], b["right"]) > max(a["left"], b["left"]) and min(
                a["bottom"], b["bottom"]
            ) > max(a["top"], b["top"]):
                pairs.append((a["name"], b["name"]))
    return pairs


def transform(page: Any) -> str:
    return page.get_attribute("svg.graph g.viewport", "transform")


def scale(page: Any) -> float:
    return float(page.get_attribute("svg.graph", "data-scale"))


def check_header(page: Any) -> None:
    expect(page.locator(".pipeline-name")).to_have_text("features")
    expect(page.locator(".run-head .state")).to_have_text("finished")
    chips = page.locator(".run-head .counts .chip")
    expect(chips).to_have_text(["2 failure", "2 can't run", "54 success"])
    colour = chips.first.evaluate("chip => getComputedStyle(chip).getPropertyValue('--chip')")
    assert colour.strip() == STATUS_COLORS[Status.FAILURE]
    page.locator(".run-head .counts .chip", has_text="2 failure").click()  # those tasks listed
    expect(page.locator(".task-table tbody tr")).to_have_count(2)
    page.locator(".run-head .counts .chip", has_text="2 failure").click()  # all again
    expect(page.locator(".task-table tbody tr")).to_have_count(58)
    page.locator("details.environment > summary").click()
    expect(page.locator("details.environment")).to_contain_text("executor")


def check_fits_on_open(page: Any) -> None:
    """Large, so each group of like tasks is one box, and all of them are in the frame."""
    groups = page.locator("g.group")
    expect(groups).to_have_count(3)
    expect(page.locator(FEATURES)).to_contain_text("42 tasks")
    expect(page.locator(FEATURES)).to_contain_text("2 failure · 40 success")
    assert page.locator(FEATURES).get_attribute("data-status") == "FAILURE"
    border = page.locator(f"{FEATURES} rect.box").evaluate(
        "rect => [getComputedStyle(rect).stroke, parseFloat(getComputedStyle(rect).strokeWidth)]"
    )
    assert border[0] == "rgb(178, 24, 43)" and border[1] >= 3  # failures: a thick red border
    assert sorted(b["name"] for b in boxes(page)) == ["Report(final)", "Train(model)"]
    frame = page.locator("svg.graph").bounding_box()
    for box in boxes(page, "g.task, g.group"):
        assert frame["x"] <= box["left"] and box["right"] <= frame["x"] + frame["width"], box
        assert frame["y"] <= box["top"] and box["bottom"] <= frame["y"] + frame["height"], box
    fill = page.locator(f"{task_box('Train(model)')} rect.box").get_attribute("fill")
    assert fill == STATUS_COLORS[Status.CANT_RUN]


def check_pan_and_zoom(page: Any) -> None:
    fitted, k = transform(page), scale(page)
    page.locator("button.zoom-in").click()
    assert scale(page) > k and transform(page) != fitted
    frame = page.locator("svg.graph").bounding_box()
    page.mouse.move(frame["x"] + 40, frame["y"] + frame["height"] - 40)
    page.mouse.wheel(0, 600)
    assert scale(page) < k
    zoomed = transform(page)
    page.mouse.down()
    page.mouse.move(frame["x"] + 140, frame["y"] + frame["height"] - 90, steps=4)
    page.mouse.up()
    assert transform(page) != zoomed and scale(page) < k  # moved, same scale
    page.locator("button.fit").click()
    assert transform(page) == fitted


def check_group_expands_and_folds(page: Any) -> None:
    page.locator(FEATURES).click()
    expect(page.locator('g.task[data-name^="Feature("]')).to_have_count(42)
    expect(page.locator(f"{FEATURES}.expanded")).to_have_count(1)
    assert page.locator(task_box("Feature(s2-max)")).get_attribute("data-status") == "FAILURE"
    page.locator('.group-tab[data-group^="Feature("]').click()
    expect(page.locator('g.task[data-name^="Feature("]')).to_have_count(0)
    expect(page.locator(f"{FEATURES}:not(.expanded)")).to_have_count(1)


def check_alike_group_unfolds_in_rows_in_name_order(page: Any) -> None:
    """The Feature group's 42 tasks have the same parents and children as drawn (the Clean
    group's box, and Train): unfolded, they lie in rows, in the order of their names (numbers by
    value), every one in the frame at a scale that reads."""
    page.locator(FEATURES).click()
    expect(page.locator('g.task[data-name^="Feature("]')).to_have_count(42)
    found = boxes(page, 'g.task[data-name^="Feature("]')
    reading = [b["name"] for b in sorted(found, key=lambda b: (round(b["top"]), b["left"]))]
    assert reading == sorted(reading, key=natural_order)
    assert len({round(b["top"]) for b in found}) > 1  # rows, not one row of 42
    assert scale(page) >= 0.8
    frame = page.locator("svg.graph").bounding_box()
    for box in found:
        assert frame["x"] <= box["left"] and box["right"] <= frame["x"] + frame["width"], box
        assert frame["y"] <= box["top"] and box["bottom"] <= frame["y"] + frame["height"], box


def check_no_boxes_overlap(page: Any) -> None:
    page.locator("button.expand-all").click()
    expect(page.locator("g.task")).to_have_count(58)
    assert not overlapping(boxes(page))
    page.locator("button.collapse-all").click()
    expect(page.locator("g.task")).to_have_count(2)
    labelled = boxes(page, "g.task, g.group:not(.expanded)") + [
        {**b, "name": f"label {i}"} for i, b in enumerate(boxes(page, "g.edge-label"))
    ]
    assert len(labelled) > 5 and not overlapping(labelled)


def check_failed_task_panel(page: Any) -> None:
    """Its traceback, and the line it printed before raising (its own log)."""
    page.locator(FEATURES).click()
    page.locator(task_box("Feature(s2-max)")).click()
    panel = page.locator(".task-panel")
    expect(panel.locator(".task-name")).to_have_text("Feature(s2-max)")
    box = page.locator(task_box("Feature(s2-max)")).bounding_box()
    assert box["x"] + box["width"] <= panel.bounding_box()["x"]  # not hidden by the panel
    expect(panel.locator(".task-error")).to_have_text("ValueError: no max for s2-max")
    trace = panel.locator("pre.traceback")
    expect(trace).to_contain_text("Traceback (most recent call last)")
    expect(trace).to_contain_text("ValueError: no max for s2-max")
    assert trace.evaluate("pre => getComputedStyle(pre).fontFamily").find("mono") >= 0
    expect(panel.locator("pre.log")).to_contain_text("computing s2-max went wrong")
    expect(panel.locator('dd[data-fact="why it ran"]')).to_have_text("upstream task Clean(s2) runs")
    expect(panel.locator(".params")).to_contain_text("kind")
    expect(panel.locator(".params")).to_contain_text("max")
    page.locator(".task-panel button.close").click()
    expect(panel).to_be_hidden()


def check_table(page: Any) -> None:
    """Failures first; sorted by name or duration on a click; filtered by status and name."""
    rows = page.locator(".task-table tbody tr")
    expect(rows).to_have_count(58)
    statuses = rows.evaluate_all("rows => rows.map(r => r.dataset.status)")
    assert statuses[:4] == ["FAILURE", "FAILURE", "CANT_RUN", "CANT_RUN"]
    page.locator('button.sort[data-sort="name"]').click()
    assert rows.first.get_attribute("data-name") == "Clean(s0)"
    page.locator('button.sort[data-sort="name"]').click()
    assert rows.first.get_attribute("data-name") == "Train(model)"
    page.locator('button.sort[data-sort="duration"]').click()
    page.locator('button.sort[data-sort="duration"]').click()  # the longest first
    durations = rows.evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert durations[-2:] == ["Report(final)", "Train(model)"]  # never ran
    page.locator('.status-filter[data-status="FAILURE"]').click()
    expect(rows).to_have_count(2)
    page.locator('.status-filter[data-status="FAILURE"]').click()
    page.locator("input.name-filter").fill("s3-")
    expect(rows).to_have_count(6)
    names = rows.evaluate_all("rows => rows.map(r => r.dataset.name)")
    assert all(re.fullmatch(r"Feature\(s3-\w+\)", name) for name in names)


def check_timeline(page: Any) -> None:
    """A bar for each task that ran (not those that could not), in the order they started;
    a click on a bar opens the task."""
    page.locator("details.timeline > summary").click()
    bars = page.locator("svg.timeline-chart g.bar")
    expect(bars).to_have_count(56)
    names = bars.evaluate_all("bars => bars.map(b => b.dataset.name)")
    assert names.index("Source(s0)") < names.index("Clean(s0)") < names.index("Feature(s0-mean)")
    assert "Train(model)" not in names
    page.locator('svg.timeline-chart g.bar[data-name="Feature(s5-std)"] rect').click()
    expect(page.locator(".task-panel .task-name")).to_have_text("Feature(s5-std)")


def check_output_preview(page: Any) -> str:
    """Source(s0)'s output: its type, shape, dtype and text; returns the download link."""
    page.locator("input.name-filter").fill("Source(s0)")
    page.locator('.task-table tr[data-name="Source(s0)"]').click()
    output = page.locator('.task-panel [data-section="output"]')
    expect(output).to_contain_text("numpy.ndarray")
    expect(output).to_contain_text("(100, 3)")
    expect(output).to_contain_text("float64")
    expect(output.locator("pre.preview-text")).to_contain_text("297., 298., 299.")
    return output.locator("a.download").get_attribute("href")


def check_markup_is_text(page: Any, evil: str) -> None:
    """Markup from a run shows as the text it is, nowhere as an element."""
    name = f"Marked({evil})"
    expect(page.locator(".pipeline-name")).to_have_text(f"marked {evil}")
    expect(page.locator(task_box(name)).locator("text.name")).to_have_text(name)
    page.locator(f'.task-table tr[data-name="{name}"]').click()
    panel = page.locator(".task-panel")
    expect(panel.locator(".task-name")).to_have_text(name)
    expect(panel.locator(".task-error")).to_have_text(f"ValueError: broken {evil}")
    expect(panel.locator(".params")).to_contain_text(evil)
    expect(panel.locator("pre.log")).to_contain_text(f"printed {evil}")
    expect(panel.locator(".task-error")).to_be_visible()
    expect(page.locator(f'.task-table tr[data-name="{name}"] td.name')).to_be_visible()
    assert page.locator("img").count() == 0
