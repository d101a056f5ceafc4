"""A run's folder: the names of its files, and reading them back checked.

Every run gets ``<log_path>/<pipeline>_<yymmddTHHMMSS>/`` holding ``pipeline.yaml`` (the pipeline
and its environment), ``pipeline.log``, ``run.yaml`` (each task's outcome, once the run ended),
``status.png``, ``report.html``, and ``.running`` while its runner runs. This module is the one
place that reads those YAML files back (for results, reports and the command line), and it
treats them as hostile: a file that is not what pyperunner writes gives a :class:`RunFolderError`
naming the file, what is wrong and what to do, never an error deep inside a reader. A run whose
runner was killed has no ``run.yaml``: :func:`recovered_runs` tells what its store and log say.
"""

from __future__ import annotations

import contextlib
import graphlib
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from . import yamlio
from .graph import cut_short
from .status import Status, TaskRun
from .store import Store

PIPELINE_FILE = "pipeline.yaml"
RUN_FILE = "run.yaml"
LOG_FILE = "pipeline.log"
RUNNING_FILE = ".running"
"""In a run folder while its runner runs, locked by it (a POSIX lock: never held by a child)."""

RUN_HINT = "give a run folder made by pyperunner run, or the pipeline.yaml in it"
OUTCOME_HINT = "fix it, or delete it to see the run as incomplete"
_STATUS_VALUES = frozenset(status.value for status in Status)


class RunFolderError(ValueError):
    """A file of a run folder is missing, unreadable, or not what pyperunner writes."""

    def __init__(self, path: Path, problem: str, hint: str = RUN_HINT) -> None:
        self.path, self.problem = path, " ".join(problem.split())
        super().__init__(f"{path}: {self.problem}; {hint}")


def pipeline_file(path: Path) -> Path:
    """The ``pipeline.yaml`` of a run given as its folder or as that file itself."""
    found = path / PIPELINE_FILE if path.is_dir() else path
    if not found.is_file():
        raise RunFolderError(path, f"not a run folder: it holds no {PIPELINE_FILE}")
    return found


def read_pipeline(path: Path, of_run: bool = True) -> dict[str, Any]:
    """The checked document of a ``pipeline.yaml`` (of a run, which says where its data is, if
    ``of_run``; else any file ``Pipeline.to_file`` wrote)."""
    doc = _read(path, RUN_HINT)
    problem = _pipeline_problem(doc, of_run)
    if problem is not None:
        raise RunFolderError(path, problem)
    return doc  # type: ignore[no-any-return]


def read_outcome(folder: Path) -> dict[str, Any] | None:
    """The checked ``run.yaml`` of a run folder; None while it is missing or empty (the run
    goes on, or its runner was killed)."""
    path = folder / RUN_FILE
    if not path.exists():
        return None
    doc = _read(path, OUTCOME_HINT)
    problem = _outcome_problem(doc)
    if problem is not None:
        raise RunFolderError(path, problem, OUTCOME_HINT)
    return doc or None


def _read(path: Path, hint: str) -> Any:
    try:
        return yamlio.read(path)
    except yamlio.ReaderError as exc:
        raise RunFolderError(path, f"is not a text (YAML) file ({exc})", hint) from exc
    except (OSError, yamlio.YAMLError) as exc:
        raise RunFolderError(path, f"cannot be read ({exc})", hint) from exc


def _pipeline_problem(doc: Any, of_run: bool) -> str | None:
    """What keeps a pipeline.yaml (of a run, if ``of_run``) from being read, or None."""
    pipeline = doc.get("pipeline") if isinstance(doc, dict) else None
    if not isinstance(pipeline, dict):
        return "not a pyperunner pipeline file (no 'pipeline' section)"
    if not isinstance(pipeline.get("name"), str):
        return "its pipeline has no name"
    info = doc.get("run")
    if of_run and not (isinstance(info, dict) and isinstance(info.get("data_path"), str)):
        return "no 'run' section saying where its data is (a saved pipeline, or a file cut short)"
    if of_run and not isinstance(info.get("packages") or {}, dict):
        return "its run's 'packages' is not a mapping of package to version"
    tasks = pipeline.get("tasks")
    if not isinstance(tasks, dict):
        return "its 'tasks' is not a mapping of task name to entry"
    cut = cut_short(tasks)
    if cut is not None:
        return cut
    for name, spec in tasks.items():
        if not isinstance(name, str):
            return f"its task name {name!r} is not a string"
        if not (isinstance(spec, dict) and isinstance(spec.get("key"), str)):
            return f"task entry {name!r} is not a mapping with a 'key'"
        if not isinstance(spec.get("params") or {}, dict):
            return f"task entry {name!r} has 'params' that are not a mapping of name to value"
        parents = spec.get("parents") or []
        known = isinstance(parents, list) and all(
            isinstance(p, str) and p in tasks for p in parents
        )
        if not known:
            return f"task entry {name!r} has 'parents' that are not a list of its tasks"
    try:
        graphlib.TopologicalSorter({n: s.get("parents") or [] for n, s in tasks.items()}).prepare()
    except graphlib.CycleError as exc:
        return f"its tasks form a cycle: {' -> '.join(exc.args[1])}"
    return None


def _outcome_problem(doc: Any) -> str | None:
    """What keeps a run.yaml from being read, or None (an empty one means an unfinished run)."""
    if doc is None:
        return None
    if not isinstance(doc, dict):
        return "not a mapping of the run's outcome"
    tasks = doc.get("tasks") or {}
    if not isinstance(tasks, dict):
        return "its 'tasks' is not a mapping of task name to record"
    duration = doc.get("duration")
    if duration is not None and (type(duration) is bool or not isinstance(duration, (int, float))):
        return f"its duration {duration!r} is not a number"
    for name, record in tasks.items():
        if not isinstance(record, dict):
            return f"the record of task {name!r} is not a mapping"
        status = record.get("status", Status.NOT_STARTED.value)
        if status not in _STATUS_VALUES:
            return f"task {name!r} has the unknown status {status!r}"
        try:
            TaskRun.from_dict(record)
        except ValueError as exc:
            return f"the record of task {name!r}: {exc}"
    return None


# -- a run that goes on, or whose runner was killed ------------------------------------------


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
