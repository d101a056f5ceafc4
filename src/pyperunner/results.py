"""Results of a run: a read-only mapping from task name to output, loaded lazily from the store.

A ``PipelineResult`` holds only names, keys and what happened to each task; an output is read from
the store when it is asked for, so holding a result costs no memory. It is rebuilt from a run's
``pipeline.yaml`` (and the ``run.yaml`` beside it) in any later process.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import yamlio
from .status import Status, TaskRun
from .store import Store

PIPELINE_FILE = "pipeline.yaml"
RUN_FILE = "run.yaml"
LOG_FILE = "pipeline.log"
RUNNING_FILE = ".running"
"""In a run folder while its runner runs, locked by it (a POSIX lock: never held by a child)."""


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
        record where the data is.
        """
        path = Path(fname)
        if path.is_dir():
            path = path / PIPELINE_FILE
        doc = yamlio.load(path.read_text())
        run_info = doc.get("run") or {}
        root = data_path or run_info.get("data_path")
        if root is None:
            raise ValueError(
                f"{path} does not say where the data is; pass data_path=... to from_file"
            )
        tasks = doc["pipeline"]["tasks"]
        keys = {name: spec["key"] for name, spec in tasks.items()}
        store = Store(root)
        run_file = path.parent / RUN_FILE
        if run_file.is_file():
            run_doc = yamlio.load(run_file.read_text()) or {}
            runs = {name: TaskRun.from_dict(r) for name, r in (run_doc.get("tasks") or {}).items()}
        else:
            runs = recovered_runs(path.parent, keys, store)
        return cls(doc["pipeline"]["name"], store, keys, runs, path.parent)

    def __repr__(self) -> str:
        counts: dict[str, int] = {}
        for status in self.statuses.values():
            counts[status.value] = counts.get(status.value, 0) + 1
        return f"<PipelineResult {self.pipeline_name!r} {counts}>"


@contextlib.contextmanager
def running(folder: Path) -> Iterator[None]:
    """Tell other processes that the run in ``folder`` goes on, while inside (see
    :func:`is_going`); a runner that dies, even by SIGKILL, stops telling it."""
    import fcntl

    path = folder / RUNNING_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX)
        _running_here.add(path.resolve())
        yield
    finally:
        _running_here.discard(path.resolve())
        path.unlink(missing_ok=True)
        os.close(fd)


_running_here: set[Path] = set()
"""The runs this process runs: it must not open their lock files, as closing one would drop the
lock (POSIX locks belong to the process, not to a file descriptor)."""


def is_going(folder: Path) -> bool:
    """True while the runner of the run in ``folder`` is alive and running it."""
    import fcntl

    if (folder / RUNNING_FILE).resolve() in _running_here:
        return True
    try:
        fd = os.open(folder / RUNNING_FILE, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False


def recovered_runs(folder: Path, keys: Mapping[str, str], store: Store) -> dict[str, TaskRun]:
    """What a run without ``run.yaml`` (still going, or its runner was killed) did so far, as
    the store and its log tell: a task whose result is stored is SUCCESS if the result is newer
    than the run's ``pipeline.yaml`` (and, once the run ended, not newer than its log: a later
    run stored it), else CACHED; otherwise the last of the runner's status lines about it in the
    log tells (started and not ended: RUNNING while the run goes on, else INTERRUPTED); a task
    never named is NOT_STARTED."""
    try:
        began = (folder / PIPELINE_FILE).stat().st_mtime
        log_file = folder / LOG_FILE
        ended = log_file.stat().st_mtime
        lines = log_file.read_text(errors="replace").splitlines()
    except OSError:
        return {}
    said = _status_lines(lines, keys)
    going = is_going(folder)
    runs: dict[str, TaskRun] = {}
    for name, key in keys.items():
        stored = store.stored_time(name, key) if store.has(name, key) else None
        if stored is not None and not going and stored > ended:
            stored = None  # by a later run: what this run's log says of the task counts
        if stored is not None:
            runs[name] = TaskRun(Status.SUCCESS if stored >= began else Status.CACHED)
        elif name not in said:
            runs[name] = TaskRun()
        else:
            status, error = said[name]
            if status is Status.RUNNING and not going:
                status, error = Status.INTERRUPTED, "its runner ended first"
            runs[name] = TaskRun(status, error=error)
    return runs


_SAID = (  # the runner's status lines (runner._log_change): the words around a task's name
    ("Starting ", " (", Status.RUNNING),
    ("Finished ", " in ", Status.SUCCESS),
    ("Using the stored result of ", ",", Status.CACHED),
    ("Task ", " failed: ", Status.FAILURE),
    ("Task ", " can't run: ", Status.CANT_RUN),
)
_WITH_ERROR = (Status.FAILURE, Status.CANT_RUN)  # what follows the words is the error


def _status_lines(
    lines: list[str], names: Mapping[str, str]
) -> dict[str, tuple[Status, str | None]]:
    """The status and error of the last status line about each task, in one pass over the log
    (columns: date, time, level, process, task, message; the runner's lines are ``root``'s)."""
    said: dict[str, tuple[Status, str | None]] = {}
    for line in lines:
        columns = line.split(None, 5)
        if len(columns) < 6 or columns[4] != "root":
            continue
        message = columns[5]
        for before, after, status in _SAID:
            if not message.startswith(before):
                continue
            rest = message[len(before) :]
            end = rest.find(after)
            while end >= 0 and rest[:end] not in names:  # a tag may hold the words after too
                end = rest.find(after, end + 1)
            if end >= 0:
                error = rest[end + len(after) :] if status in _WITH_ERROR else None
                said[rest[:end]] = (status, error)
                break
    return said
