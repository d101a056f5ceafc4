"""Results of a run: a read-only mapping from task name to output, loaded lazily from the store.

A ``PipelineResult`` holds only names, keys and what happened to each task; an output is read from
the store when it is asked for, so holding a result costs no memory. It is rebuilt from a run's
``pipeline.yaml`` (and the ``run.yaml`` beside it) in any later process.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import display, runfolder
from .status import Status, TaskRun, format_counts
from .store import Store
from .text import user_frame

MAX_DETAILED = 50
"""Failed tasks a ``PipelineFailedError`` details with their error and frame; it names the rest."""


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

    def _repr_html_(self) -> str | None:
        """Which task has no output and why (its error and frame), for notebooks."""
        return display.html(self)


class PipelineFailedError(RuntimeError):
    """A run left tasks without an output; ``PipelineResult.raise_on_failure`` raises it, naming
    each failed task with its error and the frame of the user's code it failed in."""

    def __init__(self, result: PipelineResult) -> None:
        self.result = result
        self.failed = result.failed
        super().__init__("\n".join(self._lines()))

    def _lines(self) -> list[str]:
        result = self.result
        runs = {name: result.runs.get(name, TaskRun()) for name in result.task_keys}
        counts = collections.Counter(run.status for run in runs.values())
        run = f" (run {result.run_dir.name})" if result.run_dir is not None else ""
        lines = [f"pipeline {result.pipeline_name!r}{run} failed: {format_counts(counts)}"]
        for name, failed in list(self.failed.items())[:MAX_DETAILED]:
            lines.append(f"  {name}: {failed.error}")
            lines += [f"      {line}" for line in user_frame(failed.traceback).splitlines()]
        rest = list(self.failed)[MAX_DETAILED:]
        if rest:
            lines.append(f"  and {len(rest)} more failed: {', '.join(rest)}")
        others = [n for n, r in runs.items() if not r.status.has_output and n not in self.failed]
        if others:
            lines.append(f"  without an output because of them: {', '.join(others)}")
        if result.run_dir is not None and (result.run_dir / "report.html").exists():
            lines.append(f"  report: {result.run_dir / 'report.html'}")
        return lines

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._lines()[0]!r})"

    def _render_traceback_(self) -> list[str]:
        """What IPython shows when this goes uncaught: the failures, not pyperunner's frames."""
        head, *rest = self._lines()
        return [f"\x1b[1;31m{type(self).__name__}\x1b[0m: {head}", *rest]

    def _repr_html_(self) -> str | None:
        """The run's red summary, for notebooks."""
        return display.html(self)


class PipelineResult(Mapping[str, Any]):
    """Outputs of one pipeline run by task name; iteration yields names sorted by name."""

    def __init__(
        self,
        pipeline_name: str,
        store: Store,
        keys: Mapping[str, str],
        runs: Mapping[str, TaskRun] | Callable[[], Mapping[str, TaskRun]],
        run_dir: Path | None = None,
    ) -> None:
        self.pipeline_name = pipeline_name
        self.store = store
        self.task_keys = dict(keys)
        self._runs = None if callable(runs) else dict(runs)
        self._read_runs = runs if callable(runs) else None
        self.run_dir = run_dir

    @property
    def runs(self) -> dict[str, TaskRun]:
        """What happened to each task in the run; given as a function (``from_file``: the
        run's journal), called the first time they are asked for."""
        if self._runs is None:
            assert self._read_runs is not None
            self._runs = dict(self._read_runs())
        return self._runs

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

    def raise_on_failure(self) -> PipelineResult:
        """This result if every task has its output, else raise ``PipelineFailedError`` naming
        each failed task; so ``runner.run(pipeline).raise_on_failure()`` fails a script."""
        if not self.ok:
            raise PipelineFailedError(self)
        return self

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
        return cls.from_run(runfolder.read_run(Path(fname), of_run=False, outcome=False), data_path)

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
        runs: Mapping[str, TaskRun] | Callable[[], Mapping[str, TaskRun]]
        journal = run.journal
        if journal is not None and journal.pipeline is not None and journal.ended:
            runs = journal.runs  # the run was read from its journal: read when first asked for
        elif run.outcome is not None:
            tasks = run.outcome.get("tasks") or {}
            runs = {name: TaskRun.from_dict(record) for name, record in tasks.items()}
        else:
            runs = runfolder.recovered_runs(run.folder, keys, store, run.journal)
        return cls(run.doc["pipeline"]["name"], store, keys, runs, run.folder)

    def __repr__(self) -> str:
        counts = collections.Counter(self.statuses.values())
        run = f" run {self.run_dir.name}" if self.run_dir is not None else ""
        return f"<PipelineResult {self.pipeline_name!r}{run}: {format_counts(counts)}>"

    def _repr_html_(self) -> str | None:
        """Counts by status, what failed, and a table of tasks, for notebooks."""
        return display.html(self)
