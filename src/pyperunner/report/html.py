"""Write a run's self-contained HTML report (``report.html``) from its run folder.

The report is a pure function of the run folder: it reads ``pipeline.yaml`` (the pipeline and the
run's environment) and ``run.yaml`` (what happened to each task; missing when a run was killed
early, in which case every task shows as not started) and writes one HTML file with inline CSS and
inline SVG only, so it opens offline and can be mailed or archived as is. It shows a header with
counts by status, the DAG coloured by status (boxes placed by the PNG picture's
:func:`~pyperunner.report.image.layout_boxes`), a table of tasks with why each ran, its error and
traceback, a timeline of the tasks that ran (so parallel tasks are seen side by side) and the run's
environment. Every string from the run is escaped; nothing here imports matplotlib.
"""

from __future__ import annotations

import bisect
import html
import itertools
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import runfolder
from ..graph import Dag
from ..runfolder import PIPELINE_FILE, RUN_FILE, is_going, recovered_runs
from ..status import Status, TaskRun
from ..store import Store
from .groups import grouped
from .layout import STATUS_COLORS, layout_boxes
from .text import format_bytes, format_duration

__all__ = ["REPORT_FILE", "render_report", "write_report"]

#: Name of the report in a run folder.
REPORT_FILE = "report.html"

_PX_PER_INCH = 96.0
_DAG_MARGIN = 12.0
_EDGE_COLOR = "#666666"
_BORDER_COLOR = "#444444"
_TEXT_COLOR = "#1a1a1a"

_TL_ROW = 24.0  # timeline row height in px
_TL_BAR = 16.0
_TL_PLOT_WIDTH = 820.0
_TL_CHAR_PX = 7.0  # estimated width of one label character at 12 px
_TL_AXIS = 30.0
_TL_TOP = 8.0
_TL_RIGHT = 70.0  # room for the duration written after the last bar
_TL_MAX_TICKS = 12

_PARAM_TEXT_LIMIT = 120

#: A box in SVG pixels: ``(x, y, width, height)``, origin top left.
Rect = tuple[float, float, float, float]


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class TaskView:
    """One task as the report shows it: its spec from ``pipeline.yaml`` and its run record."""

    name: str
    slug: str
    spec: Mapping[str, Any]
    run: TaskRun

    @property
    def parents(self) -> list[str]:
        return [str(p) for p in self.spec.get("parents") or []]


@dataclass(frozen=True)
class RunView:
    """Everything the report needs from one run folder."""

    run_dir: Path
    pipeline_name: str
    info: Mapping[str, Any]
    finished: str | None
    duration: float | None
    has_outcome: bool
    going: bool  # no outcome yet because its runner still runs it
    tasks: list[TaskView]


def read_run(
    run_dir: str | os.PathLike[str],
    docs: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
) -> RunView:
    """Read a run folder's ``pipeline.yaml`` and (if present) ``run.yaml``.

    ``docs`` gives both documents as the runner just wrote them, sparing the parse.
    """
    folder = Path(run_dir)
    outcome: Mapping[str, Any] = {}
    if docs is not None:
        doc, outcome = docs
    else:
        doc = runfolder.read_pipeline(folder / PIPELINE_FILE)
        outcome = runfolder.read_outcome(folder) or {}
    pipeline = doc.get("pipeline") or {}
    specs: Mapping[str, Any] = pipeline.get("tasks") or {}
    runs = {name: TaskRun.from_dict(r) for name, r in (outcome.get("tasks") or {}).items()}
    root = (doc.get("run") or {}).get("data_path")
    if not outcome and root:  # its runner was killed: what the store and the log tell
        keys = {n: str(spec["key"]) for n, spec in specs.items() if (spec or {}).get("key")}
        runs = recovered_runs(folder, keys, Store(root))
    slugs = _unique_slugs(specs)
    tasks = [
        TaskView(name=str(name), slug=slugs[name], spec=spec or {}, run=runs.get(name, TaskRun()))
        for name, spec in specs.items()
    ]
    duration = outcome.get("duration")
    return RunView(
        run_dir=folder,
        pipeline_name=str(pipeline.get("name", folder.name)),
        info=doc.get("run") or {},
        finished=outcome.get("finished"),
        duration=None if duration is None else float(duration),
        has_outcome=bool(outcome),
        going=not outcome and is_going(folder),
        tasks=tasks,
    )


def _slugify(name: str) -> str:
    """An id-safe form of a task name: ``Load(csv data)`` -> ``task-load-csv-data``."""
    slug = re.sub(r"[^a-z0-9_]+", "-", name.lower()).strip("-")
    return f"task-{slug or 'unnamed'}"


def _unique_slugs(names: Iterable[str]) -> dict[str, str]:
    """A distinct slug per name, numbered where two names slugify alike."""
    slugs: dict[str, str] = {}
    taken: set[str] = set()
    for name in names:
        base = slug = _slugify(str(name))
        number = 2
        while slug in taken:
            slug, number = f"{base}-{number}", number + 1
        taken.add(slug)
        slugs[name] = slug
    return slugs


# --------------------------------------------------------------------------- formatting


def _e(value: object) -> str:
    """HTML-escape any value (quotes too, so the result is safe in attributes)."""
    return html.escape(str(value), quote=True)


def _detail_line(task: TaskView) -> str:
    """Second line of a DAG box: status and duration (the same text the PNG picture sizes for)."""
    if task.run.status is Status.CACHED:
        return "cached"
    if task.run.duration is None:
        return task.run.status.value
    return f"{task.run.status.value} · {format_duration(task.run.duration)}"


def _params_text(params: Mapping[str, Any]) -> str:
    """``name=value`` pairs of a task's parameters, each value shortened if long."""
    parts = []
    for key, value in params.items():
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        if len(text) > _PARAM_TEXT_LIMIT:
            text = text[: _PARAM_TEXT_LIMIT - 1] + "…"
        parts.append(f"{key}={text}")
    return ", ".join(parts)


def _reason_text(run: TaskRun) -> str:
    """Why the task ran, or what happened instead."""
    if run.reason:
        return run.reason
    if run.status is Status.CACHED:
        return "result reused from the cache"
    return "-"


def _chip(status: Status, text: str) -> str:
    dashed = " cached" if status is Status.CACHED else ""
    return (
        f'<span class="chip{dashed}" style="background:{STATUS_COLORS[status]}">{_e(text)}</span>'
    )


# --------------------------------------------------------------------------- sections


def _header(view: RunView) -> str:
    counts = Counter(task.run.status for task in view.tasks)
    chips = " ".join(_chip(s, f"{s.value} {counts[s]}") for s in Status if counts[s])
    started = str(view.info.get("started", "-")).replace("T", " ")
    duration = format_duration(view.duration) if view.has_outcome else "unfinished"
    finished = str(view.finished or "-").replace("T", " ")
    warning = ""
    if view.going:
        warning = (
            '<p class="warning">This run is still going: each task is shown as the store and the '
            "run's log tell so far. Write the report again when it has ended.</p>"
        )
    elif not view.has_outcome:
        warning = (
            f'<p class="warning">This run recorded no outcome ({RUN_FILE} is missing): its '
            "runner was probably killed before the end, so each task is shown as the store and "
            "the run's log tell: stored results, and the tasks the log shows starting or "
            "failing.</p>"
        )
    return f"""<header>
<h1>{_e(view.pipeline_name)}</h1>
<p class="meta"><span>run <code>{_e(view.run_dir.name)}</code></span>
<span>started {_e(started)}</span>
<span>finished {_e(finished)}</span>
<span>duration {_e(duration)}</span>
<span>{len(view.tasks)} task(s)</span></p>
<p class="chips">{chips}</p>
{warning}</header>"""


def _task_graph(view: RunView) -> Dag:
    """The DAG with each node's status and duration, as ``layout_boxes`` expects it."""
    graph = Dag()
    for task in view.tasks:
        graph.add_node(task.name, status=task.run.status, duration=task.run.duration)
    for task in view.tasks:
        for parent in task.parents:
            if parent in graph:
                graph.add_edge(parent, task.name)
    return graph


def _pixel_boxes(graph: Dag) -> dict[str, Rect]:
    """Boxes from ``layout_boxes`` in SVG pixels (origin top left), tight around the boxes."""
    boxes = layout_boxes(graph)
    if not boxes:
        return {}
    left = min(x for x, _, _, _ in boxes.values())
    top = max(y + h for _, y, _, h in boxes.values())
    scale = _PX_PER_INCH
    return {
        name: (
            (x - left) * scale + _DAG_MARGIN,
            (top - y - h) * scale + _DAG_MARGIN,
            w * scale,
            h * scale,
        )
        for name, (x, y, w, h) in boxes.items()
    }


def _rows(rects: Mapping[str, Rect]) -> list[tuple[float, float, list[Rect]]]:
    """Layers of the DAG, top to bottom: ``(top, bottom, boxes sorted by x)``."""
    by_top: dict[float, list[Rect]] = {}
    for rect in rects.values():
        by_top.setdefault(round(rect[1], 1), []).append(rect)
    return [(top, top + max(r[3] for r in row), sorted(row)) for top, row in sorted(by_top.items())]


def _gap_x(row: list[Rect], target: float) -> float:
    """An x in a free gap of ``row`` (between or beside its boxes), as near ``target`` as fits."""
    pad = 6.0
    edges = [-math.inf] + [v for x, _, w, _ in row for v in (x, x + w)] + [math.inf]
    best, best_cost = target, math.inf
    for lo, hi in zip(edges[::2], edges[1::2], strict=True):
        if hi - lo < 2 * pad:
            continue  # boxes too close together for a line to pass between them
        x = min(max(target, lo + pad), hi - pad)
        if abs(x - target) < best_cost:
            best, best_cost = x, abs(x - target)
    return best


def _edge_points(
    parent: Rect, child: Rect, rows: list[tuple[float, float, list[Rect]]]
) -> list[tuple[float, float]]:
    """Waypoints from the parent's bottom centre to the child's top centre, passing the layers
    in between through free gaps (where the layout reserved room for the edge)."""
    x1, y1 = parent[0] + parent[2] / 2, parent[1] + parent[3]
    x2, y2 = child[0] + child[2] / 2, child[1]
    points = [(x1, y1)]
    first = bisect.bisect_right(rows, y1, key=lambda r: r[0])  # rows are sorted by top
    for top, bottom, row in itertools.takewhile(
        lambda r: r[0] < y2, itertools.islice(rows, first, None)
    ):
        if bottom < y2:
            share = (top - y1) / (y2 - y1)
            x = _gap_x(row, x1 + (x2 - x1) * share)
            points += [(x, top), (x, bottom)]
    points.append((x2, y2 - 1))
    return points


def _edge_path(points: list[tuple[float, float]]) -> str:
    """An SVG path through ``points``: smooth vertical-tangent curves between layers and
    straight runs through them."""
    (x, y), rest = points[0], points[1:]
    parts = [f"M{x:.1f},{y:.1f}"]
    for i, (nx_, ny) in enumerate(rest):
        if i % 2 == 0:  # between two layers: an S-curve
            mid = (y + ny) / 2
            parts.append(f"C{x:.1f},{mid:.1f} {nx_:.1f},{mid:.1f} {nx_:.1f},{ny:.1f}")
        else:  # through a layer: straight down
            parts.append(f"L{nx_:.1f},{ny:.1f}")
        x, y = nx_, ny
    return " ".join(parts)


def _box_tooltip(task: TaskView) -> str:
    lines = [task.name, _detail_line(task), f"why: {_reason_text(task.run)}"]
    if task.spec.get("params"):
        lines.append(f"params: {_params_text(task.spec['params'])}")
    if task.run.error:
        lines.append(f"error: {task.run.error}")
    return "\n".join(lines)


def _dag_box(task: TaskView, rect: Rect) -> str:
    x, y, w, h = rect
    status = task.run.status
    dash = ' stroke-dasharray="5 3"' if status is Status.CACHED else ""
    cx = x + w / 2
    return (
        f'<a href="#{task.slug}" class="node" data-task="{_e(task.name)}" '
        f'data-status="{status.value}">'
        f"<title>{_e(_box_tooltip(task))}</title>"
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}" rx="7" '
        f'fill="{STATUS_COLORS[status]}" stroke="{_BORDER_COLOR}" stroke-width="1.2"{dash}/>'
        f'<text x="{cx:.1f}" y="{y + h * 0.42:.1f}" class="name">{_e(task.name)}</text>'
        f'<text x="{cx:.1f}" y="{y + h * 0.78:.1f}" class="detail">{_e(_detail_line(task))}</text>'
        "</a>"
    )


_MIN_SCALE = 0.75
"""The least the DAG is shrunk to fit the page (labels stay readable); beyond, it scrolls."""


def _group_box(head: str, attrs: Mapping[str, Any], rect: Rect, view: RunView) -> str:
    """A box standing for a group of like tasks (see ``report.groups``), drawn as a stack of
    cards, linking to the first task's row; its tooltip counts the statuses."""
    x, y, w, h = rect
    status = Status(attrs["status"])
    first = next(t for t in view.tasks if t.name == attrs["tasks"][0])
    cards = "".join(
        f'<rect x="{x + d:.1f}" y="{y - d:.1f}" width="{w:.1f}" height="{h:.1f}" rx="7" '
        f'fill="{STATUS_COLORS[status]}" stroke="{_BORDER_COLOR}" stroke-width="1.2"/>'
        for d in (6, 3, 0)
    )
    tip = f"{head}\n{attrs['detail']}\nfirst: {attrs['tasks'][0]}\nlast: {attrs['tasks'][-1]}"
    cx = x + w / 2
    return (
        f'<a href="#{first.slug}" class="node group" data-group="{_e(head)}" '
        f'data-status="{status.value}"><title>{_e(tip)}</title>{cards}'
        f'<text x="{cx:.1f}" y="{y + h * 0.42:.1f}" class="name">{_e(head)}</text>'
        f'<text x="{cx:.1f}" y="{y + h * 0.78:.1f}" class="detail">{_e(attrs["detail"])}</text>'
        "</a>"
    )


def _dag_section(view: RunView) -> str:
    graph = grouped(_task_graph(view))
    rects = _pixel_boxes(graph)
    if not rects:
        return '<section id="dag"><h2>Task graph</h2><p class="empty">(no tasks)</p></section>'
    width = max(x + w for x, _, w, _ in rects.values()) + _DAG_MARGIN
    height = max(y + h for _, y, _, h in rects.values()) + _DAG_MARGIN
    rows = _rows(rects)
    edges = "\n".join(
        f'<path class="edge" data-edge="{_e(u)} -> {_e(v)}" '
        f'd="{_edge_path(_edge_points(rects[u], rects[v], rows))}" marker-end="url(#arrow)"/>'
        for u, v in graph.edges
    )
    boxes = "\n".join(
        [_dag_box(task, rects[task.name]) for task in view.tasks if task.name in rects]
        + [
            _group_box(node, graph.nodes[node], rects[node], view)
            for node in graph.nodes
            if "tasks" in graph.nodes[node]
        ]
    )
    legend = " ".join(_chip(s, s.value) for s in Status)
    return f"""<section id="dag">
<h2>Task graph</h2>
<p class="legend">{legend} <span class="hint">Click a task to see its row below.</span></p>
<div class="scroll">
<svg class="dag" width="{width:.0f}" height="{height:.0f}"
 style="min-width: {_MIN_SCALE * width:.0f}px"
 viewBox="0 0 {width:.1f} {height:.1f}" role="img" aria-label="task graph">
<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"
 orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{_EDGE_COLOR}"/></marker></defs>
<g class="edges">
{edges}
</g>
<g class="nodes">
{boxes}
</g>
</svg>
</div>
</section>"""


def _task_row(task: TaskView) -> str:
    run = task.run
    params = task.spec.get("params") or {}
    params_html = f'<div class="params">{_e(_params_text(params))}</div>' if params else ""
    error = f'<div class="error">{_e(run.error)}</div>' if run.error else ""
    if run.traceback:
        error += (
            f"<details><summary>traceback</summary><pre>{_e(run.traceback.rstrip())}</pre>"
            "</details>"
        )
    key = task.spec.get("key", "")
    return f"""<tr id="{task.slug}" data-task="{_e(task.name)}" data-status="{run.status.value}">
<td class="task"><span class="tname">{_e(task.name)}</span>{params_html}</td>
<td>{_chip(run.status, run.status.value)}</td>
<td class="reason">{_e(_reason_text(run))}</td>
<td class="num">{_e(format_duration(run.duration))}</td>
<td>{"yes" if run.status is Status.CACHED else "no"}</td>
<td><code class="key">{_e(key)}</code></td>
<td class="num">{_e(format_bytes(run.output_bytes))}</td>
<td class="num">{run.attempts}</td>
<td class="errcell">{error or "-"}</td>
</tr>"""


def _tasks_section(view: RunView) -> str:
    rows = "\n".join(_task_row(task) for task in view.tasks)
    return f"""<section id="tasks">
<h2>Tasks</h2>
<div class="scroll">
<table class="tasks">
<thead><tr><th>task</th><th>status</th><th>why it ran</th><th>duration</th><th>cached</th>
<th>key</th><th>output size</th><th>attempts</th><th>error</th></tr></thead>
<tbody>
{rows}
</tbody>
</table>
</div>
</section>"""


def _tick_step(span: float) -> float:
    """A 1-2-5 step in seconds giving at most ``_TL_MAX_TICKS`` ticks over ``span``."""
    raw = max(span, 1e-3) / _TL_MAX_TICKS
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 5, 10):
        if factor * magnitude >= raw:
            return factor * magnitude
    raise AssertionError("unreachable")


def _tick_label(seconds: float, step: float) -> str:
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{seconds:.{decimals}f} s"


def _timeline_svg(started: list[TaskView]) -> str:
    origin = min(t.run.started or 0.0 for t in started)
    ends = [t.run.finished or t.run.started or origin for t in started]
    span = max(max(ends) - origin, 1e-3)
    step = _tick_step(span)
    axis_end = math.ceil(span / step - 1e-9) * step
    label_w = max(len(t.name) for t in started) * _TL_CHAR_PX + 16
    scale = _TL_PLOT_WIDTH / axis_end
    plot_h = len(started) * _TL_ROW
    width = label_w + _TL_PLOT_WIDTH + _TL_RIGHT
    height = _TL_TOP + plot_h + _TL_AXIS

    def x_of(seconds: float) -> float:
        return label_w + seconds * scale

    parts = []
    for i in range(round(axis_end / step) + 1):
        x = x_of(i * step)
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{_TL_TOP:.1f}" x2="{x:.1f}" '
            f'y2="{_TL_TOP + plot_h + 4:.1f}"/>'
            f'<text class="tick" x="{x:.1f}" y="{_TL_TOP + plot_h + 18:.1f}">'
            f"{_tick_label(i * step, step)}</text>"
        )
    for row, task in enumerate(started):
        run = task.run
        start = (run.started or origin) - origin
        end = (run.finished or run.started or origin) - origin
        y = _TL_TOP + row * _TL_ROW
        x0, x1 = x_of(start), max(x_of(end), x_of(start) + 2)
        tooltip = (
            f"{task.name}\n{run.status.value}: {start:.2f} s → {end:.2f} s "
            f"({format_duration(end - start)})"
        )
        parts.append(
            f'<a href="#{task.slug}"><text class="label" x="{label_w - 8:.1f}" '
            f'y="{y + _TL_ROW / 2 + 4:.1f}">{_e(task.name)}</text></a>'
            f'<rect class="bar" data-task="{_e(task.name)}" data-status="{run.status.value}" '
            f'x="{x0:.2f}" y="{y + (_TL_ROW - _TL_BAR) / 2:.1f}" width="{x1 - x0:.2f}" '
            f'height="{_TL_BAR:.1f}" rx="3" fill="{STATUS_COLORS[run.status]}" '
            f'stroke="{_BORDER_COLOR}" stroke-width="0.8"><title>{_e(tooltip)}</title></rect>'
            f'<text class="dur" x="{x1 + 5:.1f}" y="{y + _TL_ROW / 2 + 4:.1f}">'
            f"{_e(format_duration(end - start))}</text>"
        )
    axis_y = _TL_TOP + plot_h
    return f"""<svg class="timeline" width="{width:.0f}"
 height="{height:.0f}" viewBox="0 0 {width:.1f} {height:.1f}" role="img" aria-label="timeline">
<line class="axis" x1="{label_w:.1f}" y1="{axis_y:.1f}" x2="{x_of(axis_end):.1f}"
 y2="{axis_y:.1f}"/>
{"".join(parts)}
</svg>"""


def _timeline_section(view: RunView) -> str:
    started = sorted(
        (t for t in view.tasks if t.run.started is not None),
        key=lambda t: (t.run.started or 0.0, t.name),
    )
    if not started:
        body = '<p class="empty">No task ran in this run.</p>'
    else:
        body = (
            '<p class="hint">Seconds since the first task started; bars that overlap ran in '
            f'parallel.</p>\n<div class="scroll">{_timeline_svg(started)}</div>'
        )
    return f'<section id="timeline">\n<h2>Timeline</h2>\n{body}\n</section>'


def _git_text(git: Any) -> str:
    if not isinstance(git, Mapping) or not git.get("commit"):
        return "-"
    return f"{git['commit']}{' (uncommitted changes)' if git.get('dirty') else ''}"


def _environment_section(info: Mapping[str, Any]) -> str:
    argv = info.get("argv")
    fields = [
        ("host", info.get("host")),
        ("user", info.get("user")),
        ("platform", info.get("platform")),
        ("python", info.get("python")),
        ("pyperunner", info.get("pyperunner")),
        ("executor", info.get("executor")),
        ("process limit", info.get("process_limit")),
        ("data path", info.get("data_path")),
        ("log path", info.get("log_path")),
        ("working directory", info.get("cwd")),
        ("command", " ".join(map(str, argv)) if isinstance(argv, list) else argv),
        ("git commit", _git_text(info.get("git"))),
    ]
    items = "\n".join(
        f"<dt>{_e(label)}</dt><dd>{_e('-' if value is None else value)}</dd>"
        for label, value in fields
    )
    packages = info.get("packages") or {}
    rows = "".join(f"<tr><td>{_e(n)}</td><td>{_e(v)}</td></tr>" for n, v in packages.items())
    return f"""<section id="environment">
<h2>Environment</h2>
<dl class="env">
{items}
</dl>
<details><summary>{len(packages)} installed package(s)</summary>
<table class="packages"><thead><tr><th>package</th><th>version</th></tr></thead>
<tbody>{rows}</tbody></table>
</details>
</section>"""


_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; background: #f4f5f7; color: #1a1a1a;
  font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
main { max-width: 1500px; margin: 0 auto; padding: 20px 28px 40px; }
header { margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 0 0 10px; }
section { background: #fff; border: 1px solid #dde0e4; border-radius: 8px; padding: 16px 18px;
  margin: 16px 0; }
.meta { color: #444; margin: 0 0 8px; }
.meta span { margin-right: 18px; }
.chips, .legend { margin: 6px 0; }
.chip { display: inline-block; padding: 1px 9px; border: 1px solid #444; border-radius: 11px;
  font-size: 12px; font-weight: 600; white-space: nowrap; color: #1a1a1a; }
.chip.cached { border-style: dashed; }
.hint, .empty { color: #666; font-size: 13px; }
.warning { background: #fff4ce; border: 1px solid #e0c36a; padding: 8px 12px; border-radius: 6px; }
.scroll { overflow-x: auto; }
svg { display: block; font-family: system-ui, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; }
svg.dag { max-width: 100%; height: auto; margin: 0 auto; }
svg .edge { fill: none; stroke: #666; stroke-width: 1.3; }
svg .name { font-size: 12px; font-weight: 700; text-anchor: middle; fill: #111; }
svg .detail { font-size: 10.5px; text-anchor: middle; fill: #333; }
svg a.node:hover rect { stroke-width: 2.5; }
svg .grid { stroke: #e3e5e8; stroke-width: 1; }
svg .axis { stroke: #888; stroke-width: 1; }
svg .tick { font-size: 11px; text-anchor: middle; fill: #555; }
svg .label { font-size: 12px; text-anchor: end; fill: #222; }
svg .dur { font-size: 11px; fill: #555; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: 6px 9px;
  border-bottom: 1px solid #e6e8eb; }
th { background: #f0f2f4; font-size: 12px; text-transform: uppercase; letter-spacing: .03em;
  color: #444; white-space: nowrap; }
tbody tr:hover { background: #f8f9fb; }
tr:target { background: #fff3bf !important; }
td.num { text-align: right; white-space: nowrap; }
td.task { min-width: 170px; }
.tname { font-weight: 600; }
.params { color: #555; font-size: 12px; font-family: ui-monospace, "DejaVu Sans Mono", monospace;
  word-break: break-word; }
code { font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px; }
code.key { color: #555; font-size: 11px; }
td.reason { min-width: 160px; }
td.errcell { min-width: 220px; max-width: 520px; }
.error { color: #a11; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12px;
  word-break: break-word; }
details summary { cursor: pointer; color: #245; font-size: 12px; margin-top: 3px; }
pre { background: #f6f6f6; border: 1px solid #e2e2e2; border-radius: 4px; padding: 8px;
  font-size: 11.5px; overflow-x: auto; white-space: pre; max-width: 100%; }
dl.env { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 0 0 10px; }
dl.env dt { font-weight: 600; color: #444; }
dl.env dd { margin: 0; font-family: ui-monospace, "DejaVu Sans Mono", monospace; font-size: 12.5px;
  word-break: break-all; }
table.packages { width: auto; margin-top: 6px; }
table.packages td { padding: 2px 12px; font-size: 12.5px; }
"""


def render_report(
    run_dir: str | os.PathLike[str],
    docs: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
) -> str:
    """The HTML text of the report of the run in ``run_dir`` (``docs``: see :func:`read_run`)."""
    view = read_run(run_dir, docs)
    title = f"{view.pipeline_name} · {view.run_dir.name}"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<main>
{_header(view)}
{_dag_section(view)}
{_tasks_section(view)}
{_timeline_section(view)}
{_environment_section(view.info)}
</main>
</body>
</html>
"""


def write_report(
    run_dir: str | os.PathLike[str],
    docs: tuple[Mapping[str, Any], Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``report.html`` into the run folder ``run_dir`` and return its path.

    ``docs`` are the run's ``pipeline.yaml`` and ``run.yaml`` documents, if already in memory.
    """
    out = Path(run_dir) / REPORT_FILE
    out.write_text(render_report(run_dir, docs), encoding="utf-8", errors="backslashreplace")
    return out
