"""A run's folder: its files, and reading them back checked (:mod:`.runwriter` writes them).

Every run gets ``<log_path>/<pipeline>_<yymmddTHHMMSS>/`` holding:

- ``pipeline.yaml``: the pipeline and the run's environment, written when the run starts;
- ``summary.json``: a few lines for listings (pipeline, start, end, counts by status), written
  when the run starts and again when it ends, so listing runs never parses a whole pipeline;
- ``events.jsonl``: the journal, one JSON line per change of a task's status (its whole record),
  appended as it happens, so a running or killed run is followed and recovered from it;
- ``pipeline.log``, and ``tasks/<key>.log``: each task's own log lines and printed output;
- ``run.yaml``: each task's outcome, once the run ended; ``status.png`` and ``report.html``;
- ``.running`` while its runner runs, locked by it.

This module is the one place that knows those names and reads them back (for results, reports,
the command line and the UI), and it treats them as hostile: a file that is not what pyperunner
writes gives a :class:`RunFolderError` naming the file, what is wrong and what to do, never an
error deep inside a reader.
"""

from __future__ import annotations

import contextlib
import dataclasses
import graphlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import yamlio
from .journal import JOURNAL_FILE, Journal, read_journal
from .pipelinefile import cut_short
from .status import Status, TaskRun
from .store import Store

PIPELINE_FILE = "pipeline.yaml"
RUN_FILE = "run.yaml"
LOG_FILE = "pipeline.log"
SUMMARY_FILE = "summary.json"
TASK_LOGS = "tasks"
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


@dataclasses.dataclass(frozen=True)
class RunFiles:
    """A run's files, read and checked: where its ``pipeline.yaml`` is, that document, its outcome
    as ``run.yaml`` holds it (None while it has none: the run goes on, or its runner was killed)
    and its journal (None for a run made before journals were kept)."""

    path: Path
    doc: dict[str, Any]
    outcome: dict[str, Any] | None
    journal: Journal | None = None

    @property
    def folder(self) -> Path:
        """The run folder."""
        return self.path.parent

    @property
    def tasks(self) -> dict[str, Any]:
        """The task entries of the pipeline, by task name."""
        return self.doc["pipeline"]["tasks"]  # type: ignore[no-any-return]


def read_run(path: Path, of_run: bool = True, outcome: bool = True) -> RunFiles:
    """The run given as its folder or its ``pipeline.yaml``, checked (not ``of_run``: any file
    ``Pipeline.to_file`` wrote will do). Its documents come from its journal, which is JSON (a
    20,000-task run reads in well under a second, where PyYAML takes seconds a file), else from
    ``pipeline.yaml`` and ``run.yaml``. Without ``outcome`` the outcome of a run read from its
    journal is left to ``journal.runs()``, which decodes the tasks' lines when called."""
    found = pipeline_file(path)
    journal = read_journal(found.parent)
    if journal is None or journal.pipeline is None:
        return RunFiles(found, read_pipeline(found, of_run), read_outcome(found.parent), journal)
    problem = _pipeline_problem(journal.pipeline, of_run=True)
    duration = (journal.end or {}).get("duration")
    if problem is None and not _number_or_none(duration):
        problem = f"its duration {duration!r} is not a number"
    if problem is not None:
        raise RunFolderError(found.parent / JOURNAL_FILE, problem)
    ended = journal.outcome() if journal.ended and outcome else None
    return RunFiles(found, journal.pipeline, ended, journal)


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
    if not _number_or_none(duration):
        return f"its duration {duration!r} is not a number"
    for name, record in tasks.items():
        if not isinstance(record, dict):
            return f"the record of task {name!r} is not a mapping"
        status = record.get("status", Status.NOT_STARTED.value)
        if not isinstance(status, str) or status not in _STATUS_VALUES:
            return f"task {name!r} has the unknown status {status!r}"
        try:
            TaskRun.from_dict(record)
        except ValueError as exc:
            return f"the record of task {name!r}: {exc}"
    return None


def _number_or_none(value: Any) -> bool:
    return value is None or (type(value) is not bool and isinstance(value, int | float))


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


def recovered_runs(
    folder: Path, keys: Mapping[str, str], store: Store, journal: Journal | None = None
) -> dict[str, TaskRun]:
    """What a run without an outcome (still going, or its runner was killed) did so far: the
    last record its journal (read already, or now) holds of each task (one still RUNNING is
    INTERRUPTED once its runner is gone), CACHED for what it planned to take from the store,
    else NOT_STARTED. A run made before journals were kept is told by the store alone: a result
    stored after the run began is SUCCESS, one stored before CACHED."""
    journal = journal if journal is not None else read_journal(folder)
    if journal is None:
        return _stored_runs(folder, keys, store)
    going = is_going(folder)
    runs = {name: TaskRun(Status.CACHED) for name in journal.cached if name in keys}
    for name, run in journal.tasks.items():
        if name in keys:
            runs[name] = run
            if run.status is Status.RUNNING and not going:
                run.status, run.error = Status.INTERRUPTED, "its runner ended first"
    return {name: runs.get(name, TaskRun()) for name in keys}


def _stored_runs(folder: Path, keys: Mapping[str, str], store: Store) -> dict[str, TaskRun]:
    try:
        began = (folder / PIPELINE_FILE).stat().st_mtime
    except OSError:
        return {}
    runs: dict[str, TaskRun] = {}
    for name, key in keys.items():
        stored = store.stored_time(name, key) if store.has(name, key) else None
        if stored is None:
            runs[name] = TaskRun()
        else:
            runs[name] = TaskRun(Status.SUCCESS if stored >= began else Status.CACHED)
    return runs


# -- the summary and each task's log ---------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Summary:
    """What a listing of runs shows of one, read from its small ``summary.json``."""

    folder: Path
    pipeline: str
    started: str | None
    finished: str | None
    duration: float | None
    counts: Mapping[str, int]
    tasks: int
    error: str | None = None  # why the run could not start
    problem: str | None = None  # why its files cannot be read (``file: what is wrong``)

    @property
    def state(self) -> str:
        """``running``, ``finished``, ``interrupted`` (stopped by a signal), ``killed`` (its
        runner died without recording the run) or ``unreadable``."""
        if self.problem is not None:
            return "unreadable"
        if self.finished is not None:
            return "interrupted" if self.counts.get(Status.INTERRUPTED.value) else "finished"
        return "running" if is_going(self.folder) else "killed"


def summarize(folder: Path) -> Summary:
    """What a listing shows of the run in ``folder``: its ``summary.json``, else (a run made
    before summaries were kept) what its files say, else what keeps them from being read."""
    summary = read_summary(folder)
    if summary is not None:
        return summary
    try:
        return summary_of(read_run(folder))
    except RunFolderError as exc:
        broken = Summary(
            folder, "?", None, None, None, {}, 0, problem=f"{exc.path.name}: {exc.problem}"
        )
    try:  # what pipeline.yaml says, should only run.yaml be broken
        pipeline = summary_of(
            RunFiles(folder / PIPELINE_FILE, read_pipeline(folder / PIPELINE_FILE), None)
        )
    except RunFolderError:
        return broken
    return dataclasses.replace(pipeline, problem=broken.problem)


def summary_of(run: RunFiles) -> Summary:
    """The summary of a run whose files are read already."""
    outcome = run.outcome or {}
    counts: dict[str, int] = {}
    for record in (outcome.get("tasks") or {}).values():
        status = record.get("status", Status.NOT_STARTED.value)
        counts[status] = counts.get(status, 0) + 1
    started = run.doc["run"].get("started") if isinstance(run.doc.get("run"), dict) else None
    return Summary(
        folder=run.folder,
        pipeline=str(run.doc["pipeline"].get("name", "?")),
        started=_text_or_none(started),
        finished=_text_or_none(outcome.get("finished")) if run.outcome is not None else None,
        duration=outcome.get("duration"),
        counts=counts,
        tasks=len(run.tasks),
        error=_text_or_none(outcome.get("error")),
    )


def runs_in(log_path: Path) -> list[Summary]:
    """The runs directly under ``log_path``, the one started first first (runs started in one
    second in the order their ``pipeline.yaml`` was written)."""
    summaries = map(summarize, run_folders(log_path))
    return sorted(summaries, key=lambda s: (s.started or "", _written(s.folder)))


def run_folders(log_path: Path) -> list[Path]:
    """The run folders directly under ``log_path`` (those holding a pipeline.yaml), by name."""
    return sorted(path.parent for path in log_path.glob(f"*/{PIPELINE_FILE}"))


def _written(folder: Path) -> int:
    """When a run's ``pipeline.yaml`` was written (ns), 0 if it is gone."""
    try:
        return (folder / PIPELINE_FILE).stat().st_mtime_ns
    except OSError:
        return 0


def kept_pipelines(keep: Path) -> list[tuple[Path, bool]]:
    """The pipeline files a path to keep stands for (a pipeline file, a run folder, or a log
    folder and every run in it), each with whether it is known to be a run's."""
    if keep.is_file():
        return [(keep, False)]
    if (keep / PIPELINE_FILE).is_file():
        return [(keep / PIPELINE_FILE, True)]
    return [(summary.folder / PIPELINE_FILE, True) for summary in runs_in(keep)]


def entries_used(keep_paths: Iterable[Path]) -> tuple[set[tuple[str, str]], int]:
    """Every (task name, key) the pipelines ``keep_paths`` stand for use, and how many pipeline
    files that was. One that cannot be read is a :class:`RunFolderError`: without it, what it
    keeps is unknown (and a run's ``run.yaml`` must not list tasks its pipeline lacks)."""
    files = [kept for keep in keep_paths for kept in kept_pipelines(keep)]
    used: set[tuple[str, str]] = set()
    for path, of_run in files:
        run = read_run(path, of_run)
        missing = sorted(
            set(((run.outcome or {}) if of_run else {}).get("tasks") or {}) - set(run.tasks)
        )
        if missing:
            raise RunFolderError(path, f"it lacks task(s) {missing} that {RUN_FILE} lists")
        used.update((name, spec["key"]) for name, spec in run.tasks.items())
    return used, len(files)


def read_summary(folder: Path) -> Summary | None:
    """The run's summary; None for a run made before summaries were kept (or whose summary is
    not pyperunner's), whose ``pipeline.yaml`` must then be read."""
    try:
        doc = json.loads((folder / SUMMARY_FILE).read_bytes())
        counts = {str(k): int(v) for k, v in doc["counts"].items() if k in _STATUS_VALUES}
        duration = doc.get("duration")
        return Summary(
            folder=folder,
            pipeline=str(doc["pipeline"]),
            started=_text_or_none(doc.get("started")),
            finished=_text_or_none(doc.get("finished")),
            duration=None if duration is None else float(duration),
            counts=counts,
            tasks=int(doc["tasks"]),
            error=_text_or_none(doc.get("error")),
        )
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def read_task_log(folder: Path, key: str) -> str:
    """The lines task ``key`` logged and printed in the run (empty if none)."""
    if not key.isalnum():  # keys are hex digits: nothing else names a file here
        return ""
    try:
        return (folder / TASK_LOGS / f"{key}.log").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def task_logs_kept(folder: Path) -> set[str]:
    """The keys of the tasks that logged or printed something in the run (those with a log)."""
    try:
        return {name[:-4] for name in os.listdir(folder / TASK_LOGS) if name.endswith(".log")}
    except OSError:
        return set()
