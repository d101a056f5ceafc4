"""What every executor shares: the job it is given, the outcome it reports, and running a job.

A job names a task, its key and where its inputs are in the store; the worker that runs it loads
the inputs, calls the task and writes the output back to the store. Only a small outcome message
travels back to the scheduler, never a value, whatever the executor. The worker holds the entry's
lock while it computes, so two runs on one store never compute the same entry at once: the second
waits and then reuses the first one's result. Before it lets go of that lock it takes a hold on
the stored result (which ``pyperunner gc`` respects, as it does the lock) and hands it over with
the outcome, so that the result is never unprotected before the runner holds it for the children.
"""

from __future__ import annotations

import abc
import contextlib
import copy
import dataclasses
import logging
import os
import time
import traceback
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any

from .. import preview, yamlio
from ..logs import log_full_traceback
from ..output import flush_task_output, task_context
from ..storage import Hold
from ..store import EntryState, MissingResult, Store
from ..task import Inputs, Task

_WAITING = (
    "waiting for the entry's lock: another run (or an earlier attempt that timed out and is "
    "still finishing) is computing this task"
)


class TaskTimeoutError(BaseException):
    """A task ran longer than its ``timeout``; a ``BaseException``, so that a task's own
    ``except Exception`` cannot swallow it."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One attempt at one task: the task, its key, its parents' (name, key), its params record.

    ``reuse`` allows taking a result another run stored meanwhile instead of computing it.
    """

    task: Task
    key: str
    inputs: tuple[tuple[str, str], ...]
    record: Mapping[str, Any]
    reuse: bool = True
    attempt: int = 1

    @property
    def name(self) -> str:
        """The task's name."""
        return self.task.name

    @property
    def timeout(self) -> float | None:
        """Seconds one attempt may take, if limited."""
        return self.task.timeout


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a job ended: ``error`` is None on success; ``reused`` if another run computed it;
    ``vanished`` names the parents whose stored results were gone (the task did not run).

    ``hold`` keeps a stored result from gc until the runner takes it over (None: nothing held).
    It is an open file of the process that made the outcome, so pickling drops it; the process
    executor passes it to the runner beside the outcome instead.
    """

    name: str
    started: float
    finished: float
    error: str | None = None
    traceback: str | None = None
    output_bytes: int | None = None
    reused: bool = False
    retryable: bool = True  # False while the attempt goes on in a thread nothing can stop
    vanished: tuple[str, ...] = ()
    preview: dict[str, Any] | None = None  # what the output is, at a glance (preview.describe)
    hold: Hold | None = dataclasses.field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        """True if the task's output is now stored."""
        return self.error is None

    def release(self) -> None:
        """Let go of the hold on the result, for an outcome no one takes (idempotent)."""
        if self.hold is not None:
            self.hold.close()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "hold": None}


def execute(job: Job, store: Store, interruptible: bool = False) -> Outcome:
    """Run ``job`` in the calling thread: load inputs, call the task, store its output.

    Whatever the task raises is its failure, except a ``KeyboardInterrupt`` where
    ``interruptible`` (the runner's own thread: that is Ctrl-C, which stops the run).
    """
    started = time.time()
    log = logging.getLogger(job.name)
    with task_context(job.name):
        try:
            with store.lock(job.name, job.key, on_wait=lambda: log.info(_WAITING)):
                found = store.check(job.name, job.key)
                state, problem = found.state, found.problem
                if job.reuse and state is EntryState.OK:  # its bytes too, before a child reads
                    problem = store.verify(job.name, job.key) or ""
                    state = EntryState.DAMAGED if problem else state
                if state is EntryState.DAMAGED:  # planned to run anyway, so not checked before
                    log.warning("its stored result is damaged (%s); computing it again", problem)
                if job.reuse and state is EntryState.OK:
                    log.info(
                        "a result for this key is stored already (by another run, or kept while "
                        "an upstream task was recomputed); using it"
                    )
                    return Outcome(
                        job.name,
                        started,
                        time.time(),
                        output_bytes=found.size,
                        reused=True,
                        preview=found.preview,
                        hold=store.hold(job.name, job.key),
                    )
                store.clean(job.name, job.key)
                data, vanished = _load_inputs(job, store)
                if vanished:
                    return _inputs_vanished(job, started, vanished)
                output = job.task.execute(data)
                shown = preview.describe(output)
                record = {**job.record, "preview": yamlio.Flow(shown)}
                size = store.save(job.name, job.key, output, record)
                hold = store.hold(job.name, job.key)  # still under the lock, which gc waits for
        except BaseException as exc:
            if interruptible and isinstance(exc, KeyboardInterrupt):
                raise
            flush_task_output(job.name)  # its unfinished line goes before the failure, not after
            return failed(job.name, started, exc)
    return Outcome(job.name, started, time.time(), output_bytes=size, preview=shown, hold=hold)


def _load_inputs(job: Job, store: Store) -> tuple[Inputs, list[str]]:
    """The job's inputs (none for a task that takes no ``data``: its parents only order it),
    and the parents whose stored result is gone."""
    values, vanished = [], []
    for name, key in job.inputs if job.task.receives_input() else ():
        try:
            values.append((name, store.load(name, key)))
        except MissingResult:
            vanished.append(name)
    return Inputs(values), vanished


def _inputs_vanished(job: Job, started: float, vanished: list[str]) -> Outcome:
    """The outcome of a job whose inputs ``vanished`` from the store (deleted by hand, or by gc
    where the run could not hold them): the scheduler has them computed again, then the job."""
    error = f"the stored result of {', '.join(vanished)} vanished during the run"
    logging.getLogger(job.name).warning("%s; it is computed again first", error)
    return Outcome(job.name, started, time.time(), error, vanished=tuple(vanished))


def failed(name: str, started: float, exc: BaseException) -> Outcome:
    """The outcome of a task that raised ``exc``, logged with its traceback from the user's own
    code on (and the whole traceback, at DEBUG, in the run's log file): whatever the exception's
    ``str`` does, and should logging itself fail (a full disk)."""
    text = "".join(traceback.format_exception(type(exc), exc, _from_user_code(exc)))
    error = f"{type(exc).__name__}: {describe(exc)}"
    with contextlib.suppress(Exception):
        logging.getLogger(name).error("failed: %s\n%s", error, text.rstrip())
        whole = traceback.format_exception(type(exc), exc, exc.__traceback__)
        log_full_traceback(name, "".join(whole).rstrip())
    return Outcome(name, started, time.time(), error, text)


_OWN_CODE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
"""Where pyperunner's own modules are: their frames are left off the front of a traceback."""


def _from_user_code(exc: BaseException) -> TracebackType | None:
    """``exc``'s traceback from its first frame outside pyperunner (the task's own code), or
    its last frame if every one is pyperunner's (an error pyperunner raised itself)."""
    frames = exc.__traceback__
    while (
        frames is not None
        and frames.tb_next is not None
        and frames.tb_frame.f_code.co_filename.startswith(_OWN_CODE)
    ):
        frames = frames.tb_next
    return frames


def describe(exc: BaseException) -> str:
    """``str(exc)``, or a note saying it failed (an exception's ``__str__`` may raise)."""
    try:
        return str(exc)
    except Exception as problem:
        return f"<str() of the exception failed: {type(problem).__name__}: {problem}>"


class Executor(abc.ABC):
    """Runs the scheduler's jobs: ``submit`` them, ``wait`` for outcomes, then ``shutdown``.

    An executor enforces each job's ``timeout`` as well as it can and reports a job that ran out
    of time as an outcome with an error saying so.
    """

    def __init__(self) -> None:
        self.store: Store | None = None

    def start(self, store: Store, workers: int, jobs: Mapping[str, Job] | None = None) -> None:
        """Prepare to run up to ``workers`` jobs at once against ``store``; ``jobs``, by task
        name, are those the run may submit (each attempt a copy with its ``attempt`` set)."""
        self.check_store(store)
        self.store = store

    def capacity(self, workers: int) -> int:
        """How many jobs to give at once when the run allows ``workers``."""
        return workers

    def check_store(self, store: Store) -> None:
        """Raise ``ValueError`` if this executor's workers cannot share ``store``."""
        if store.process_local and self.runs_elsewhere:
            raise ValueError(
                f"data_path {store.root} keeps its data inside one process, but "
                f"{type(self).__name__} runs tasks in other processes, which would not see it; "
                "use executor='thread' or 'inline', or a data_path every worker can reach"
            )

    runs_elsewhere = False
    """True if jobs run outside the runner's process (they then share only the store)."""

    @abc.abstractmethod
    def submit(self, job: Job) -> None:
        """Start ``job``; the scheduler never submits more jobs than ``workers`` at once."""

    @abc.abstractmethod
    def wait(self, timeout: float | None = None) -> list[Outcome]:
        """Block until a submitted job has ended or ``timeout`` passed; return what ended."""

    def shutdown(self) -> list[str]:
        """Stop whatever still runs (after an interrupt); return the names of jobs stopped."""
        return []


def detached(job: Job) -> Job:
    """``job`` with a copy of its task cut from the graph, so pickling it takes only that task."""
    task = copy.copy(job.task)
    task.parents, task.children = [], []
    return dataclasses.replace(job, task=task)


@dataclasses.dataclass
class Running:
    """A job an executor runs: when it started (``time.time()``) and by when it must end
    (``time.monotonic()``; None: no limit)."""

    job: Job
    started: float
    deadline: float | None

    @classmethod
    def now(cls, job: Job) -> Running:
        """``job``, starting now."""
        deadline = None if job.timeout is None else time.monotonic() + job.timeout
        return cls(job, time.time(), deadline)


MAX_WAIT = 3600.0
"""Seconds an executor blocks at most before it looks again: a wait for a deadline weeks away
must not overflow the operating system's timeouts (``poll`` takes milliseconds as an int)."""


def wait_time(timeout: float | None, running: Iterable[Any]) -> float | None:
    """Seconds to block: up to ``timeout``, and no later than the nearest ``deadline`` (a
    ``time.monotonic()`` value, or None) among the ``running`` jobs' records; at most
    ``MAX_WAIT`` unless there is nothing to wait for."""
    deadlines = [r.deadline for r in running if r.deadline is not None]
    if timeout is not None:
        deadlines.append(time.monotonic() + timeout)
    if not deadlines:
        return None
    return min(MAX_WAIT, max(0.0, min(deadlines) - time.monotonic()))


def timed_out(job: Job, started: float, how: str = "", stopped: bool = True) -> Outcome:
    """The outcome of a job that ran past its timeout; not ``stopped``: it goes on (a thread),
    so it is not retried, as a retry would only wait for the entry lock the attempt holds."""
    message = f"timed out after {job.timeout:g} s" + (f" ({how})" if how else "")
    logging.getLogger(job.name).error(message)
    return Outcome(
        job.name, started, time.time(), f"TaskTimeoutError: {message}", retryable=stopped
    )
