"""Results of a run: a read-only mapping from task name to output, loaded lazily from the store.

A ``PipelineResult`` holds only names, keys and what happened to each task; an output is read from
the store when it is asked for, so holding a result costs no memory. It is rebuilt from a run's
``pipeline.yaml`` (and the ``run.yaml`` beside it) in any later process.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import runfolder
from .status import Status, TaskRun
from .store import Store


class TaskOutputUnavailableError(LookupError):
    """The output of a task is not available because it did not succeed in that run."""

    def __init__(self, name: str, run: TaskRun) -> None:
        message = f"task {name} has no output: it ended {run.status.value}"
        if run.error:
            message += f" ({run.error})"
        if run.traceback:
            message += f"\n\n{run.traceback.rstrip()}"
        super().__init__(message)
        self.name = name
        self.run = run


class PipelineResult(Mapping[str, Any]):
    """Outputs of one pipeline run by task name; iteration yields names sorted by name."""

    def __init__(
        self,
        pipeline_name: str,
        store: Store,
        keys: Mapping[str, str],
        runs: Mapping[str, TaskRun],
        run_dir: Path | None = None,
    ) -> None:
        self.pipeline_name = pipeline_name
        self.store = store
        self.task_keys = dict(keys)
        self.runs = dict(runs)
        self.run_dir = run_dir

    def __getitem__(self, name: str) -> Any:
        if name not in self.task_keys:
            raise KeyError(f"no task named {name!r} in pipeline {self.pipeline_name!r}")
        run = self.runs.get(name)
        if run is not None and not run.status.has_output:
            raise TaskOutputUnavailableError(name, run)
        return self.store.load(name, self.task_keys[name])

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(name for name in self.task_keys if self._has_output(name)))

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self.task_keys and self._has_output(name)

    def _has_output(self, name: str) -> bool:
        run = self.runs.get(name)
        if run is None:
            return self.store.has(name, self.task_keys[name])
        return run.status.has_output

    @property
    def statuses(self) -> dict[str, Status]:
        """Every task's final status (NOT_STARTED where the run left no record)."""
        return {name: self.runs.get(name, TaskRun()).status for name in sorted(self.task_keys)}

    @property
    def durations(self) -> dict[str, float | None]:
        """Seconds each task ran in this run (None for tasks that did not run)."""
        return {name: self.runs.get(name, TaskRun()).duration for name in sorted(self.task_keys)}

    @property
    def failed(self) -> dict[str, TaskRun]:
        """The tasks that failed, with their errors and tracebacks."""
        return {n: r for n, r in sorted(self.runs.items()) if r.status is Status.FAILURE}

    @property
    def ok(self) -> bool:
        """True if every task of the run succeeded or was cached."""
        return all(self.runs.get(n, TaskRun()).status.has_output for n in self.task_keys)

    def path(self, name: str) -> Path:
        """Where the output of ``name`` is stored (loadable with ``joblib.load``)."""
        return self.store.result_path(name, self.task_keys[name])

    @classmethod
    def from_file(
        cls, fname: str | os.PathLike[str], data_path: str | os.PathLike[str] | None = None
    ) -> PipelineResult:
        """Read the results of a run from its ``pipeline.yaml`` (or its folder).

        ``data_path`` is needed only for a file written by ``Pipeline.to_file``, which does not
        record where the data is. A file that is not what pyperunner writes raises
        :class:`~pyperunner.runfolder.RunFolderError` naming it.
        """
        return cls.from_run(runfolder.read_run(Path(fname), of_run=False), data_path)

    @classmethod
    def from_run(
        cls, run: runfolder.RunFiles, data_path: str | os.PathLike[str] | None = None
    ) -> PipelineResult:
        """The results of a run from its files read already (``runfolder.read_run``)."""
        root = data_path or (run.doc.get("run") or {}).get("data_path")
        if not isinstance(root, str | os.PathLike):
            raise runfolder.RunFolderError(
                run.path, "it does not say where the data is", "pass data_path=... to from_file"
            )
        keys = {name: spec["key"] for name, spec in run.tasks.items()}
        store = Store(root)
        if run.outcome is not None:
            tasks = run.outcome.get("tasks") or {}
            runs = {name: TaskRun.from_dict(record) for name, record in tasks.items()}
        else:
            runs = runfolder.recovered_runs(run.folder, keys, store, run.journal)
        return cls(run.doc["pipeline"]["name"], store, keys, runs, run.folder)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for status in self.statuses.values():
            counts[status.value] = counts.get(status.value, 0) + 1
        return f"<PipelineResult {self.pipeline_name!r} {counts}>"
