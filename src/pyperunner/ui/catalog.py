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
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import runfolder
from ..runfolder import RunFolderError, Summary
from ..status import Status
from ..store import Store
from ..task import TaskDefinitionError, check_name


@dataclasses.dataclass(frozen=True)
class Run:
    """One run the UI knows: its id, folder and summary."""

    id: str
    folder: Path
    summary: Summary

    def header(self) -> dict[str, Any]:
        """What the runs page shows of it."""
        summary = self.summary
        return {
            "id": self.id,
            "pipeline": summary.pipeline,
            "state": summary.state,
            "started": summary.started,
            "finished": summary.finished,
            "duration": summary.duration,
            "counts": dict(summary.counts),
            "tasks": summary.tasks,
            "error": summary.error or summary.problem,
        }


class Catalog:
    """The runs under ``log_paths``, and the data paths results may come from."""

    def __init__(self, log_paths: Sequence[Path], data_paths: Sequence[str] = ()) -> None:
        self.log_paths = [Path(p).absolute() for p in log_paths]
        self.data_paths = list(data_paths)
        self._tasks: dict[Path, tuple[int, dict[str, str], str | None]] = {}

    def runs(self) -> list[Run]:
        """Every run, newest first."""
        runs = (Run(run_id, f, runfolder.summarize(f)) for run_id, f in self._folders().items())
        return sorted(runs, key=_started, reverse=True)

    def run(self, run_id: str) -> Run | None:
        """The run of this id, if there is one (only its own summary is read)."""
        folder = self._folders().get(run_id)
        return None if folder is None else Run(run_id, folder, runfolder.summarize(folder))

    def _folders(self) -> dict[str, Path]:
        """Every run folder under the log paths, by id."""
        found: dict[str, Path] = {}
        for log_path in self.log_paths:
            for folder in runfolder.run_folders(log_path):
                run_id, number = folder.name, 2
                while run_id in found:
                    run_id, number = f"{folder.name}~{number}", number + 1
                found[run_id] = folder
        return found

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
                    "bytes": store.size(name, key),
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


def _started(run: Run) -> tuple[str, str]:
    return (run.summary.started or "", run.folder.name)


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
