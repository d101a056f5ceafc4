"""What pipelines, plans, results and failures look like in a Jupyter or VS Code notebook.

The ``_repr_html_`` (and ``_repr_mimebundle_``) methods of those objects call these functions
when a notebook shows them; nothing here imports IPython. Each display is one HTML fragment with
inline styles (no scripts, every text escaped), light enough for runs of thousands of tasks: a
table shows its first ``MAX_ROWS`` rows and says how many more there are, and a pipeline's graph
draws like tasks as one box where it would not fit a notebook's width.
"""

from __future__ import annotations

import collections
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..dag import Dag
from ..pipelinefile import PipelineError
from ..plan import Plan, Reason
from ..status import Status, TaskRun, format_counts
from ..text import format_duration, user_frame, with_cell_names
from .groups import WORST_FIRST, Room, grouped, natural_order
from .layout import H_GAP, STATUS_COLORS, box_width, most_layers
from .svg import draw_svg, escape

if TYPE_CHECKING:
    from ..graph import Pipeline
    from ..results import PipelineResult

MAX_ROWS = 100
"""Rows a table shows; it says how many more there are."""
MAX_DETAILED = 5
"""Failed tasks a red summary details with their error and frame; it names the others."""
MAX_NAMES = 200
"""Names a folded list shows."""

NOTEBOOK = Room(box_width, H_GAP, width=16.0, widest=20.0, layers=most_layers(20.0))
"""The room of a pipeline's graph in a notebook: 1,536 px (96 an inch), which a notebook's width
of about 1,150 px shows shrunk to ``svg.MIN_SCALE`` at most; wider only where like tasks with
different parents would otherwise be one box, and then it scrolls."""

WILL_RUN, CACHED = Status.RUNNING, Status.CACHED
"""The colours of a plan's tasks: those that will run, those whose stored result is used."""
_PLAN_LEGEND = {WILL_RUN: "will run", CACHED: "cached"}

_FRAME = (
    "font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;font-size:13px;"
    "line-height:1.45;max-width:100%"
)
MONO = "font-family:SFMono-Regular,Menlo,Consolas,'DejaVu Sans Mono',monospace;font-size:12px"
"""The style of code and tracebacks in every notebook display."""
RED, _RED_BACK = "#c62828", "#fdecea"
"""The colour of what went wrong in every notebook display (and its light background)."""
_CELL = "padding:2px 10px 2px 0;text-align:left;vertical-align:top;border-bottom:1px solid #8883"


# --------------------------------------------------------------------------- pieces


def chip(status: Status, text: str) -> str:
    """``text`` on a pill of ``status``'s colour (dark text: the colours are light)."""
    return (
        f'<span style="background:{STATUS_COLORS[status]};color:#1a1a1a;border-radius:9px;'
        f'padding:1px 8px;margin-right:4px;white-space:nowrap">{escape(text)}</span>'
    )


def _table(head: Sequence[str], rows: Iterable[Sequence[str]], total: int, what: str) -> str:
    """A table of the first ``MAX_ROWS`` of ``rows`` (cells are HTML), saying how many of
    ``total`` it leaves out."""
    shown = [row for row, _ in zip(rows, range(MAX_ROWS), strict=False)]
    cells = "<tr>" + "".join(f'<th style="{_CELL}">{escape(h)}</th>' for h in head) + "</tr>"
    body = "".join(
        f'<tr><td style="{_CELL};white-space:nowrap">{row[0]}</td>'
        + "".join(f'<td style="{_CELL}">{cell}</td>' for cell in row[1:])
        + "</tr>"
        for row in shown
    )
    more = total - len(shown)
    note = f"<div style='opacity:.75'>… and {more:,} more {what}</div>" if more > 0 else ""
    return (
        '<div style="max-height:26em;overflow:auto;margin:4px 0">'
        f'<table style="border-collapse:collapse;font-size:inherit">{cells}{body}</table></div>'
        f"{note}"
    )


def _folded(summary: str, names: Sequence[str]) -> str:
    """``names`` folded under ``summary``, the first few hundred of them."""
    shown = ", ".join(escape(name) for name in names[:MAX_NAMES])
    if len(names) > MAX_NAMES:
        shown += f", … and {len(names) - MAX_NAMES:,} more"
    return f"<details><summary>{escape(summary)}</summary><div>{shown}</div></details>"


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _short(text: str | None, limit: int = 160) -> str:
    """``text`` escaped, cut to ``limit`` characters (all of it in the tooltip)."""
    if not text:
        return ""
    if len(text) <= limit:
        return escape(text)
    return f'<span title="{escape(text)}">{escape(text[:limit])}…</span>'


def _output(run: TaskRun) -> str:
    """A task's output at a glance, from its preview: type and shape, or its text's start."""
    preview = run.preview or {}
    kind = str(preview.get("type", ""))
    if "shape" in preview:
        shape = "(" + ", ".join(str(n) for n in preview["shape"]) + ")"
        return escape(f"{kind} {shape} {preview.get('dtype', '')}".strip())
    text = str(preview.get("text", ""))
    return _short(text, 40) if text else escape(kind)


def failure_html(name: str | None, run: TaskRun, error: bool = True) -> str:
    """One failed task: its name, error, the frame of the user's code it failed in, and its
    whole traceback folded."""
    frame = user_frame(run.traceback)
    parts = [f"<div style='margin-top:4px'><b>{escape(name)}</b>: " if name else "<div>"]
    if error:
        parts.append(f"<code style='{MONO}'>{escape(run.error or run.status.value)}</code>")
    if frame:
        parts.append(f"<pre style='{MONO};margin:2px 0 0 1.5em;white-space:pre-wrap'>")
        parts.append(f"{escape(frame)}</pre>")
    if run.traceback:
        parts.append(
            f"<details style='margin-left:1.5em'><summary>traceback</summary><pre style='{MONO};"
            f"white-space:pre-wrap'>{escape(with_cell_names(run.traceback.rstrip()))}</pre></details>"
        )
    return "".join(parts) + "</div>"


def _red_box(title: str, body: str) -> str:
    """``body`` (HTML) under ``title`` in the red box of things that went wrong."""
    return (
        f'<div class="pyperunner-failures" style="border:1px solid {RED};border-left:5px solid '
        f"{RED};background:{_RED_BACK};color:#1a1a1a;padding:6px 10px;margin:6px 0;"
        f'border-radius:4px"><div style="color:{RED};font-weight:bold">✗ {escape(title)}</div>'
        f"{body}</div>"
    )


def _failures_box(runs: Mapping[str, TaskRun], title: str = "") -> str:
    """The red summary of a run that went wrong: each failed task with its error and frame,
    then the tasks that could not run or did not finish, folded."""
    failed = [(name, run) for name, run in runs.items() if run.status is Status.FAILURE]
    others = collections.defaultdict(list)
    for name, run in runs.items():
        if not run.status.has_output and run.status is not Status.FAILURE:
            others[run.status].append(name)
    parts = [failure_html(name, run) for name, run in failed[:MAX_DETAILED]]
    if len(failed) > MAX_DETAILED:
        rest = [name for name, _ in failed[MAX_DETAILED:]]
        parts.append(_folded(f"… and {len(rest):,} more failed tasks", rest))
    words = {Status.CANT_RUN: "could not run", Status.INTERRUPTED: "were interrupted"}
    for status, names in others.items():
        summary = f"{_plural(len(names), 'task')} {words.get(status, 'did not run')}"
        parts.append(_folded(summary, names))
    head = f"{_plural(len(failed), 'task')} failed" if failed else "the run did not finish"
    return _red_box(title or head, "".join(parts))


# --------------------------------------------------------------------------- objects


def pipeline_bundle(pipeline: Pipeline) -> dict[str, str]:
    """A pipeline's graph as ``image/svg+xml``, and as ``text/html`` under a header (name,
    number of tasks, the plan's counts after ``runner.plan``)."""
    header = f"<b>{escape(pipeline.name)}</b>"
    try:
        graph = pipeline.graph()
    except PipelineError as exc:
        error = f"<div style='color:{RED}'>{escape(exc)}</div>"
        return {"text/plain": repr(pipeline), "text/html": f'<div style="{_FRAME}">{error}</div>'}
    roots = sum(1 for name in graph if next(graph.predecessors(name), None) is None)
    header += f" · {_plural(len(graph), 'task')} · {_plural(roots, 'root')}"
    plan = pipeline.last_plan
    if plan is not None and set(plan.order) != set(graph.nodes):
        plan = None  # tasks were added or renamed since
    marked = _marked(graph, plan)
    drawn = grouped(marked, NOTEBOOK)
    if drawn is not marked:
        header += " · like tasks drawn as one box (hover a box for its tasks)"
        for head in drawn.nodes:
            _describe_group(drawn.nodes[head], plan is not None)
    if plan is not None:
        header += (
            f"<br>plan: {chip(WILL_RUN, f'{len(plan.reasons):,} will run')}"
            f"{chip(CACHED, f'{len(plan.order) - len(plan.reasons):,} cached')}"
        )
    svg = draw_svg(drawn, legend=_PLAN_LEGEND if plan is not None else None)
    html = (
        f'<div style="{_FRAME}"><div>{header}</div>'
        f'<div style="overflow:auto;max-height:85vh">{svg}</div></div>'
    )
    return {"text/plain": repr(pipeline), "image/svg+xml": svg, "text/html": html}


def _marked(graph: Dag, plan: Plan | None) -> Dag:
    """``graph``'s nodes with what a drawing shows: the plan's mark and a tooltip."""
    attrs: dict[Hashable, dict[str, Any]] = {}
    for name in graph:
        task = graph.nodes[name]["task"]
        params = ", ".join(f"{key}={value!r}" for key, value in task.params.items())
        tip = f"{name}\n{params[:300]}".rstrip()
        if plan is None:
            attrs[name] = {"status": Status.NOT_STARTED, "detail": "", "tip": tip}
        elif name in plan.reasons:
            why = plan.why.get(name, plan.reasons[name].value)
            short = "upstream runs" if plan.reasons[name] is Reason.UPSTREAM else why
            short = short if len(short) <= 32 else short[:31] + "…"
            attrs[name] = {"status": WILL_RUN, "detail": short, "tip": f"{tip}\nwill run: {why}"}
        else:
            attrs[name] = {"status": CACHED, "detail": "cached", "tip": f"{tip}\ncached"}
    return Dag.from_parents(attrs, {name: graph.predecessors(name) for name in graph})


def _describe_group(attrs: dict[str, Any], planned: bool) -> None:
    """A group box says what the plan does with its tasks, and its tooltip names them."""
    tasks = attrs.get("tasks")
    if tasks is None:
        return
    counts = attrs["counts"]
    attrs["detail"] = (
        " · ".join(f"{counts[s]} {_PLAN_LEGEND[s]}" for s in (WILL_RUN, CACHED) if counts[s])
        if planned
        else ""
    )
    listed = "\n".join(str(task) for task in tasks[:12])
    more = f"\n… and {len(tasks) - 12} more" if len(tasks) > 12 else ""
    attrs["tip"] = f"{len(tasks)} tasks:\n{listed}{more}"


def plan_html(plan: Plan) -> str:
    """What a run would do: counts, each task that will run with why, the cached ones folded."""
    to_run, cached = plan.to_run, plan.cached
    reasons = collections.Counter(reason.value for reason in plan.reasons.values())
    header = (
        f"Plan{f' for <b>{escape(plan.name)}</b>' if plan.name else ''}: "
        f"{chip(WILL_RUN, f'{len(to_run):,} will run')}{chip(CACHED, f'{len(cached):,} cached')}"
        f" of {_plural(len(plan.order), 'task')}"
    )
    if reasons:
        header += "<br>why: " + escape(" · ".join(f"{n:,} {why}" for why, n in reasons.items()))
    rows = ([escape(name), _short(plan.why.get(name, plan.reasons[name].value))] for name in to_run)
    table = _table(["task that will run", "why"], rows, len(to_run), "tasks that will run")
    folded = _folded(f"{_plural(len(cached), 'cached task')}", cached) if cached else ""
    return f'<div style="{_FRAME}"><div>{header}</div>{table if to_run else ""}{folded}</div>'


def result_html(result: PipelineResult) -> str:
    """A run at a glance: counts by status, a red summary of what failed, and its tasks (the
    ones that went wrong first) with status, duration, why they ran, output and error."""
    runs = _in_order(result)
    counts = collections.Counter(run.status for run in runs.values())
    header = f"<b>{escape(result.pipeline_name)}</b>"
    if result.run_dir is not None:
        header += f" · run <code style='{MONO}'>{escape(result.run_dir.name)}</code>"
    report = _report(result)
    if report is not None:
        header += (
            f' · <a href="{escape(report.absolute().as_uri())}" target="_blank">report.html</a>'
            f" <span style='opacity:.7;{MONO}'>{escape(report)}</span>"
        )
    chips = "".join(
        chip(status, f"{counts[status]:,} {status.value}")
        for status in WORST_FIRST
        if counts[status]
    )
    rows = (
        [
            escape(name),
            chip(run.status, run.status.value),
            escape(format_duration(run.duration)),
            _short(run.reason),
            _output(run),
            f"<span style='color:{RED}'>{_short(run.error)}</span>",
        ]
        for name, run in runs.items()
    )
    table = _table(
        ["task", "status", "duration", "why it ran", "output", "error"], rows, len(runs), "tasks"
    )
    wrong = _failures_box(runs) if not result.ok else ""
    return f'<div style="{_FRAME}"><div>{header}</div><div>{chips}</div>{wrong}{table}</div>'


def failed_html(result: PipelineResult) -> str:
    """``PipelineFailedError``'s display: the run's red summary, and where its report is."""
    runs = _in_order(result)
    counts = collections.Counter(run.status for run in runs.values())
    title = f"pipeline {result.pipeline_name!r} failed: {format_counts(counts)}"
    report = _report(result)
    where = f"<div>report: {escape(report)}</div>" if report is not None else ""
    return f'<div style="{_FRAME}">{_failures_box(runs, title)}{where}</div>'


def _in_order(result: PipelineResult) -> dict[str, TaskRun]:
    """Every task's record, the worst status first, then by name (``fold-2`` before
    ``fold-10``)."""
    rank = {status: index for index, status in enumerate(WORST_FIRST)}
    runs = {name: result.runs.get(name, TaskRun()) for name in result.task_keys}
    return dict(
        sorted(runs.items(), key=lambda item: (rank[item[1].status], natural_order(item[0])))
    )


def _report(result: PipelineResult) -> Path | None:
    """The run's ``report.html``, if it has one."""
    report = result.run_dir / "report.html" if result.run_dir is not None else None
    return report if report is not None and report.exists() else None


def task_run_html(run: TaskRun) -> str:
    """One task's outcome: status, duration, why it ran, its output at a glance; and its error,
    frame and traceback if it failed."""
    parts = [chip(run.status, run.status.value)]
    if run.duration is not None:
        parts.append(f" in {escape(format_duration(run.duration))}")
    if run.reason:
        parts.append(f" · ran: {_short(run.reason)}")
    if run.preview:
        parts.append(f" · output: {_output(run)}")
    body = "".join(parts)
    if run.error or run.traceback:
        body += _red_box(run.error or run.status.value, failure_html(None, run, error=False))
    return f'<div style="{_FRAME}">{body}</div>'


def unavailable_html(name: str, run: TaskRun) -> str:
    """``TaskOutputUnavailableError``'s display: which task has no output, and why."""
    title = f"{name} has no output: it ended {run.status.value}"
    return f'<div style="{_FRAME}">{_red_box(title, failure_html(None, run))}</div>'
