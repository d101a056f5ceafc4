"""What the run pages show, as plain JSON-ready data: one run, its live changes, two runs compared.

The browser UI (``pyperunner ui``) serves these documents, and ``report.html`` carries one inlined,
so both draw the same page from the same data. Everything is read from run folders through
:mod:`pyperunner.runfolder`; nothing here loads a stored result (an output is shown by the
preview its worker made when it stored it). Strings are returned as they are: the page escapes
them when it draws them.

A run document::

    {"id", "pipeline", "state", "started", "finished", "duration", "error", "counts",
     "environment": {...},            # pipeline.yaml's run section: paths, host, packages, git
     "tasks": [{"name", "task", "module", "class", "tag", "key", "params", "parents",
                "status", "reason", "started", "finished", "duration", "attempts", "error",
                "traceback", "output_bytes", "preview", "result_path", "log"?}, ...],
     "groups": [{"id", "tasks": [names], "kind": "side" | "chain"}, ...],
     "journal": int}                  # where live changes go on from (see live_changes)

Tasks come parents first; ``log`` (the task's own lines) only where asked for, as a report
carries it; the UI fetches each task's log when its panel opens.
"""

from __future__ import annotations

import collections
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .. import runfolder
from ..dag import Dag
from ..journal import JOURNAL_FILE, Journal, read_journal
from ..plan import compare_records
from ..status import Status, TaskRun
from ..store import Store
from .groups import Room, like_groups

EVERY_GROUP = Room(lambda node, attrs: 1.0, gap=0.0, width=0.0, widest=math.inf, layers=0)
"""Room for nothing: every group of like tasks is formed (the page folds and unfolds them)."""
LOG_LIMIT = 50_000
"""Characters of a task's own log a document carries (its end, where errors are)."""


def run_document(
    folder: Path,
    docs: tuple[Mapping[str, Any], Mapping[str, Any] | None] | None = None,
    logs: bool = False,
) -> dict[str, Any]:
    """Everything the run page shows of the run in ``folder``; ``docs`` are its
    ``pipeline.yaml`` and ``run.yaml`` documents if in memory (the runner's, as it writes the
    report), ``logs`` adds each task's own log lines."""
    if docs is None:
        return _document(runfolder.read_run(folder), logs)
    doc, outcome = docs
    path = folder / runfolder.PIPELINE_FILE
    return _document(runfolder.RunFiles(path, dict(doc), outcome and dict(outcome)), logs)


def _document(run: runfolder.RunFiles, logs: bool) -> dict[str, Any]:
    folder, specs, outcome = run.folder, run.tasks, run.outcome
    info = run.doc.get("run") or {}
    keys = {name: str(spec["key"]) for name, spec in specs.items()}
    store = _store(info)
    if outcome is not None:
        runs = {n: TaskRun.from_dict(r) for n, r in (outcome.get("tasks") or {}).items()}
    else:
        runs = runfolder.recovered_runs(folder, keys, store, run.journal) if store else {}
    logged = runfolder.task_logs_kept(folder) if logs else set()
    tasks = [
        _task(name, spec, runs.get(name, TaskRun()), store, folder if logs else None, logged)
        for name, spec in specs.items()
    ]
    counts = collections.Counter(task["status"] for task in tasks)
    return {
        "id": folder.name,
        "pipeline": str(run.doc["pipeline"]["name"]),
        "state": _state(folder, outcome),
        "started": info.get("started"),
        "finished": (outcome or {}).get("finished"),
        "duration": (outcome or {}).get("duration"),
        "error": (outcome or {}).get("error"),
        "counts": dict(counts),
        "environment": dict(info),
        "tasks": tasks,
        "groups": _groups(specs),
        "journal": run.journal.size if run.journal is not None else _size(folder),
    }


def live_changes(folder: Path, since: int) -> dict[str, Any]:
    """What the run in ``folder`` changed after byte ``since`` of its journal: each changed
    task's record, whether the run ended, and where to go on from."""
    journal = read_journal(folder, Journal(size=since))
    assert journal is not None  # given one, it returns it
    changed = {name: _run_fields(run) for name, run in journal.tasks.items()}
    state = _state(folder, {} if journal.ended else None)
    return {"journal": journal.size, "tasks": changed, "state": state}


def compare_documents(first: Path, second: Path) -> dict[str, Any]:
    """Two runs side by side: the tasks the second added and removed and, for each task both
    have, whether its key changed and why (parameters, which; code; class; upstream), with its
    status, duration and reason in each."""
    a_run, b_run = runfolder.read_run(first), runfolder.read_run(second)
    a, b = _document(a_run, logs=False), _document(b_run, logs=False)
    a_specs, b_specs = a_run.tasks, b_run.tasks
    a_tasks = {task["name"]: task for task in a["tasks"]}
    b_tasks = {task["name"]: task for task in b["tasks"]}
    common = []
    for name, task in b_tasks.items():
        if name not in a_tasks:
            continue
        change = compare_records(_record(name, b_specs), _record(name, a_specs))
        changes = list(change.own)
        if change.upstream:
            changes.append(f"upstream changed: {', '.join(change.upstream)}")
        same = a_tasks[name]["key"] == task["key"]
        common.append(
            {
                "name": name,
                "same_key": same,
                "changes": [] if same else changes or ["key changed"],
                "a": _brief(a_tasks[name]),
                "b": _brief(task),
            }
        )
    return {
        "a": _header(a),
        "b": _header(b),
        "added": [name for name in b_tasks if name not in a_tasks],
        "removed": [name for name in a_tasks if name not in b_tasks],
        "tasks": common,
    }


# -- parts --------------------------------------------------------------------------------


def _task(
    name: str,
    spec: Mapping[str, Any],
    run: TaskRun,
    store: Store | None,
    folder: Path | None,
    logged: set[str],
) -> dict[str, Any]:
    key = str(spec["key"])
    task = {
        "name": name,
        "task": spec.get("task_name"),
        "module": spec.get("module"),
        "class": spec.get("class"),
        "tag": spec.get("tag"),
        "key": key,
        "params": spec.get("params") or {},
        "parents": list(spec.get("parents") or []),
        **_run_fields(run),
    }
    if task["preview"] is None and run.status is Status.CACHED and store is not None:
        task["preview"] = store.check(name, key).preview  # kept by the run that computed it
    task["result_path"] = _result_path(store, name, key) if run.status.has_output else None
    if folder is not None:  # the report: each task's log, read where there is one
        task["log"] = runfolder.read_task_log(folder, key)[-LOG_LIMIT:] if key in logged else ""
    return task


def _run_fields(run: TaskRun) -> dict[str, Any]:
    fields = run.to_dict()
    return {k: fields[k] for k in _RUN_FIELDS}


_RUN_FIELDS = (
    "status",
    "reason",
    "started",
    "finished",
    "duration",
    "attempts",
    "error",
    "traceback",
    "output_bytes",
    "preview",
)


def _size(folder: Path) -> int:
    """How long the run's journal is (where a page that follows the run goes on from)."""
    try:
        return (folder / JOURNAL_FILE).stat().st_size
    except OSError:
        return 0


def _store(info: Mapping[str, Any]) -> Store | None:
    """The run's store, if it can be opened here (an fsspec URL may need packages or access)."""
    root = info.get("data_path")
    if not isinstance(root, str):
        return None
    try:
        return Store(root)
    except (ValueError, ImportError, OSError):
        return None


def _result_path(store: Store | None, name: str, key: str) -> str | None:
    return None if store is None else str(store.result_path(name, key))


def _state(folder: Path, outcome: Mapping[str, Any] | None) -> str:
    """``finished``, ``interrupted``, ``running`` or ``killed`` (see runfolder.Summary)."""
    summary = runfolder.read_summary(folder)
    if summary is not None:
        return summary.state
    if outcome is not None:
        return "finished"
    return "running" if runfolder.is_going(folder) else "killed"


def _groups(specs: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The groups of like tasks the page may draw as one box (see report.groups)."""
    graph = Dag.from_parents(
        {name: {} for name in specs},
        {name: spec.get("parents") or [] for name, spec in specs.items()},
    )
    groups = []
    for head, members in like_groups(graph, EVERY_GROUP).items():
        chain = members[0] in graph.predecessors(members[1])  # a chain's second follows its first
        kind = "chain" if chain else "side"
        groups.append({"id": str(head), "tasks": [str(m) for m in members], "kind": kind})
    return groups


def _record(name: str, specs: Mapping[str, Any]) -> dict[str, Any]:
    """A task's entry of pipeline.yaml in the form ``plan.compare_records`` compares."""
    spec = specs[name]
    return {
        "task": {k: spec.get(k) for k in ("params", "code", "module", "class")},
        "parents": {p: specs[p]["key"] for p in spec.get("parents") or [] if p in specs},
    }


def _brief(task: Mapping[str, Any]) -> dict[str, Any]:
    return {k: task[k] for k in ("status", "duration", "key", "reason", "error")}


def _header(doc: Mapping[str, Any]) -> dict[str, Any]:
    return {k: doc[k] for k in ("id", "pipeline", "state", "started", "duration", "counts")}
