"""The runs a ``pyperunner ui`` serves: found under its log paths, named by id, and looked up.

A run's id is its folder's name (with ``~2``, ``~3`` ... where two log paths hold folders of one
name). Only folders found directly under the log paths given have ids, so a request can name
nothing else; the data paths whose results may be downloaded are those given, or else those the
runs name. Listing reads each run's small ``summary.json`` (a run made before summaries is read
from its files once); the cache's view reads every run's ``pipeline.yaml`` and keeps what it read
until the file changes.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from .. import runfolder
from ..runfolder import RunFolderError, Summary
from ..status import Status
from ..store import Store
from ..task import TaskDefinitionError, check_name


@dataclasses.dataclass(frozen=True)
class Run:
    """One run the UI knows: its id, folder and summary (None if it has none and its files
    cannot be read)."""

    id: str
    folder: Path
    summary: Summary | None

    def header(self) -> dict[str, Any]:
        """What the runs page shows of it."""
        summary = self.summary
        if summary is None:
            return {
                "id": self.id,
                "pipeline": "?",
                "state": "unreadable",
                "started": None,
                "finished": None,
                "duration": None,
                "counts": {},
                "tasks": 0,
                "error": None,
            }
        return {
            "id": self.id,
            "pipeline": summary.pipeline,
            "state": summary.state,
            "started": summary.started,
            "finished": summary.finished,
            "duration": summary.duration,
            "counts": dict(summary.counts),
            "tasks": summary.tasks,
            "error": summary.error,
        }


class Catalog:
    """The runs under ``log_paths``, and the data paths results may come from."""

    def __init__(self, log_paths: Sequence[Path], data_paths: Sequence[str] = ()) -> None:
        self.log_paths = [Path(p).absolute() for p in log_paths]
        self.data_paths = list(data_paths)
        self._tasks: dict[Path, tuple[int, dict[str, str], str | None]] = {}

    def runs(self) -> list[Run]:
        """Every run, newest first."""
        found: dict[str, Run] = {}
        for log_path in self.log_paths:
            for folder in _run_folders(log_path):
                run_id, number = folder.name, 2
                while run_id in found:
                    run_id, number = f"{folder.name}~{number}", number + 1
                found[run_id] = Run(run_id, folder, _summary(folder))
        return sorted(found.values(), key=_started, reverse=True)

    def run(self, run_id: str) -> Run | None:
        """The run of this id, if there is one."""
        return next((run for run in self.runs() if run.id == run_id), None)

    def listing(
        self,
        query: str = "",
        state: str = "",
        failed: bool = False,
        offset: int = 0,
        limit: int = 50,
    ) -> dict[str, Any]:
        """A page of the runs whose pipeline's name holds ``query``, in ``state``, with
        failures if ``failed``: ``{"total", "runs": [header, ...]}``."""
        wanted = [
            run.header()
            for run in self.runs()
            if _matches(run.header(), query.lower(), state, failed)
        ]
        return {"total": len(wanted), "runs": wanted[offset : offset + max(0, limit)]}

    def tasks_of(self, run: Run) -> tuple[dict[str, str], str | None]:
        """The run's tasks (name -> key) and its data path, from its ``pipeline.yaml``."""
        path = run.folder / runfolder.PIPELINE_FILE
        stamp = path.stat().st_mtime_ns
        known = self._tasks.get(path)
        if known is None or known[0] != stamp:
            doc = runfolder.read_run(run.folder).doc
            keys = {name: str(spec["key"]) for name, spec in doc["pipeline"]["tasks"].items()}
            known = self._tasks[path] = (stamp, keys, doc["run"].get("data_path"))
        return known[1], known[2]

    def result_file(self, run: Run, key: str) -> tuple[str, Path] | None:
        """The task named by ``key`` in ``run`` and its result file, if the run names such a
        task, the file is stored under one of the allowed data paths, and it exists."""
        tasks, data_path = self.tasks_of(run)
        name = next((n for n, k in tasks.items() if k == key), None)
        if name is None or data_path is None or not _safe_name(name) or not key.isalnum():
            return None
        try:
            path = Path(str(Store(data_path).result_path(name, key))).resolve()
        except (ValueError, ImportError, OSError):
            return None
        allowed = [Path(p).resolve() for p in self.allowed_data_paths()]
        if not any(path.is_relative_to(root) for root in allowed) or not path.is_file():
            return None
        return name, path

    def allowed_data_paths(self) -> list[str]:
        """The data paths given, or else every local one the runs name."""
        if self.data_paths:
            return list(self.data_paths)
        named = {self._data_path(run) for run in self.runs()}
        return sorted(p for p in named if p is not None and "://" not in p)

    def cache(self) -> dict[str, Any]:
        """The entries under the data paths, by task, with their sizes, the runs that use
        each, and which ``pyperunner gc --keep`` of the log paths would remove."""
        users: dict[tuple[str, str], list[str]] = {}
        for run in self.runs():
            with contextlib.suppress(RunFolderError, OSError):  # listed as unreadable
                for name, key in self.tasks_of(run)[0].items():
                    users.setdefault((name, key), []).append(run.id)
        tasks: dict[str, dict[str, Any]] = {}
        for data_path in self.allowed_data_paths():
            store = Store(data_path)
            for name, key in store.entries():
                entry = {
                    "key": key,
                    "data_path": data_path,
                    "bytes": _size(store, name, key),
                    "stored": store.stored_time(name, key),
                    "runs": users.get((name, key), []),
                    "garbage": (name, key) not in users,
                }
                task = tasks.setdefault(name, {"name": name, "bytes": 0, "entries": []})
                task["entries"].append(entry)
                task["bytes"] += entry["bytes"]
        entries = [entry for task in tasks.values() for entry in task["entries"]]
        garbage = [entry for entry in entries if entry["garbage"]]
        return {
            "data_paths": self.allowed_data_paths(),
            "tasks": sorted(tasks.values(), key=lambda task: -task["bytes"]),
            "total_bytes": sum(entry["bytes"] for entry in entries),
            "garbage_bytes": sum(entry["bytes"] for entry in garbage),
            "garbage_entries": len(garbage),
        }

    def _data_path(self, run: Run) -> str | None:
        with contextlib.suppress(RunFolderError, OSError):  # listed as unreadable
            return self.tasks_of(run)[1]
        return None


def _run_folders(log_path: Path) -> Iterator[Path]:
    try:
        entries = list(os.scandir(log_path))
    except OSError:
        return
    for entry in entries:
        folder = Path(entry.path)
        if entry.is_dir() and (folder / runfolder.PIPELINE_FILE).is_file():
            yield folder


def _summary(folder: Path) -> Summary | None:
    """The run's summary, or one made from its files for a run made before summaries."""
    summary = runfolder.read_summary(folder)
    if summary is not None:
        return summary
    try:
        files = runfolder.read_run(folder)
        doc, outcome = files.doc, files.outcome
    except RunFolderError:
        return None
    counts: dict[str, int] = {}
    for record in ((outcome or {}).get("tasks") or {}).values():
        status = record.get("status", Status.NOT_STARTED.value)
        counts[status] = counts.get(status, 0) + 1
    return Summary(
        folder=folder,
        pipeline=str(doc["pipeline"]["name"]),
        started=str(doc["run"].get("started")),
        finished=(outcome or {}).get("finished"),
        duration=(outcome or {}).get("duration"),
        counts=counts,
        tasks=len(doc["pipeline"]["tasks"]),
        error=(outcome or {}).get("error"),
    )


def _started(run: Run) -> tuple[str, str]:
    return (run.summary.started or "" if run.summary is not None else "", run.folder.name)


def _matches(header: dict[str, Any], query: str, state: str, failed: bool) -> bool:
    if query and query not in str(header["pipeline"]).lower():
        return False
    if state and header["state"] != state:
        return False
    return not failed or bool(header["counts"].get(Status.FAILURE.value))


def _safe_name(name: str) -> bool:
    """True for a task name that can only name a folder of its own (no ``..``, no ``/``)."""
    try:
        check_name(name, "task name")
    except TaskDefinitionError:
        return False
    return True


def _size(store: Store, name: str, key: str) -> int:
    try:
        return store.size(name, key)
    except OSError:
        return 0
