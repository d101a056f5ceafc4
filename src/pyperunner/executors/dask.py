"""Run tasks on a Dask ``distributed`` cluster: ``Runner(..., executor=DaskExecutor(address))``.

Each attempt at a task becomes one Dask task calling :func:`~pyperunner.executors.base.execute`
on a worker, which reads the parents' outputs from the store and writes its output there; so the
store must be one every worker reaches: a local path for a ``LocalCluster``, a shared folder or
an fsspec URL such as ``s3://bucket/cache`` otherwise (see ``docs/storage.md``). Only a small
outcome and the task's log records come back, and the runner writes the records into the run's
log. Task objects travel with ``cloudpickle``, so tasks defined
in ``__main__`` work. Dask never sees the DAG: pyperunner's scheduler submits a task only once its
parents succeeded, so FAILURE / CANT_RUN, retries and timeouts keep their meaning. A timed-out task
is cancelled, but Dask cannot stop a function that runs: it may finish on its worker, so it is not
retried. A worker that dies mid-task is Dask's to handle: it reruns the task on another worker,
and only after ``distributed.scheduler.allowed-failures`` deaths does the task fail with
``KilledWorker``. A cluster left with no worker at all fails the waiting tasks after
``no_worker_timeout`` seconds instead of waiting for ever.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import threading
import time
import traceback
import types
import uuid
from collections.abc import Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..logs import ForwardingHandler, handle_forwarded
from ..store import Store
from .base import Executor, Job, Outcome, describe, detached, execute, timed_out, wait_time

if TYPE_CHECKING:
    from distributed import Client, Future

CANCELLED = "the Dask task is cancelled; a running task may finish on its worker"
NO_WORKER_TIMEOUT = 120.0
"""Seconds a cluster may have no worker while tasks wait, before those tasks fail."""
WATCH_EVERY = 2.0
"""Seconds between looks at the cluster's workers while nothing ends."""
INSTALL_HINT = 'the Dask executor needs dask.distributed: pip install "pyperunner[dask]"'


def _distributed() -> Any:
    """Import ``distributed`` on first use, so that ``import pyperunner`` never imports Dask."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(INSTALL_HINT) from exc
    return distributed


def _check_address(address: str) -> None:
    """Refuse a scheduler address Dask cannot parse, now: Dask's own error for it comes with a
    client that holds the interpreter's exit up for a minute."""
    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        protocol, location = parse_address(address)
        if protocol in ("tcp", "tls", "ws", "wss", "ucx"):
            parse_host_port(location)
    except ValueError as exc:
        raise ValueError(
            f"DaskExecutor({address!r}): {exc}; give the scheduler's address as "
            "'tcp://host:port' (the one `dask scheduler` prints), a Client, or a cluster"
        ) from None


@dataclasses.dataclass
class _Submitted:
    job: Job
    future: Future
    started: float
    deadline: float | None


class DaskExecutor(Executor):
    """Runs every job as one task on a Dask cluster, given its scheduler's address or a Client.

    Given an address (or a cluster object, or None for a new local cluster), the executor
    connects a client of its own at ``start`` and closes it at ``shutdown`` / ``close``; a given
    ``Client`` stays the caller's: it is used and never closed.

    ``no_worker_timeout`` is how long tasks wait on a cluster that has no worker before they
    fail (None: for ever, e.g. for an adaptive cluster that may take longer to scale up from
    zero).
    """

    runs_elsewhere = True

    def __init__(
        self,
        address_or_client: str | Client | None = None,
        no_worker_timeout: float | None = NO_WORKER_TIMEOUT,
    ) -> None:
        super().__init__()
        distributed = _distributed()
        if isinstance(address_or_client, str):
            _check_address(address_or_client)
        self._owns_client = not isinstance(address_or_client, distributed.Client)
        self._address = address_or_client if self._owns_client else None
        self._client: Client | None = None if self._owns_client else address_or_client
        self._check_open()
        self.no_worker_timeout = no_worker_timeout
        self._running: dict[str, _Submitted] = {}
        self._unsent: list[Outcome] = []  # jobs Dask refused to take (could not serialize)
        self._workerless_since: float | None = None
        self._main_classes: set[type] = set()  # the run's task classes defined in __main__

    def __repr__(self) -> str:
        target = self._address if self._owns_client else self._client
        return f"DaskExecutor({target!r})"

    @property
    def client(self) -> Client | None:
        """The client jobs go through: the given one, or the executor's own once started."""
        return self._client

    def start(self, store: Store, workers: int, jobs: Mapping[str, Job] | None = None) -> None:
        super().start(store, workers, jobs)
        self._running.clear()
        self._unsent.clear()
        self._workerless_since = None
        self._main_classes = {
            type(job.task) for job in (jobs or {}).values() if _in_main(type(job.task))
        }
        self._check_open()
        if self._client is None:
            try:
                self._client = _distributed().Client(self._address, set_as_default=False)
            except OSError as exc:  # Dask's own message says where and how long it tried
                raise ConnectionError(
                    f"DaskExecutor could not reach a Dask scheduler: {exc}; start one (dask "
                    "scheduler), or give the address it prints; the Dask setting "
                    "distributed.comm.timeouts.connect is how long to try"
                ) from exc

    def _check_open(self) -> None:
        """Refuse a given client that is closed: no job could be sent through it."""
        if self._client is not None and self._client.status in ("closing", "closed"):
            raise ValueError(
                f"the Dask Client given to DaskExecutor is {self._client.status}; give an open "
                "one, or the scheduler's address"
            )

    def submit(self, job: Job) -> None:
        assert self.store is not None and self._client is not None, "call start() first"
        started = time.time()
        try:
            # what a child loads may hold classes of __main__ only its parents' code names
            parents = {type(p) for p in job.task.parents if _in_main(type(p))}
            with _unlogged(_PICKLE_LOG):
                future = self._client.submit(
                    run_on_worker,
                    detached(job),
                    self.store,
                    logging.getLogger().getEffectiveLevel(),
                    tuple(self._main_classes | parents),
                    key=_task_key(job),
                    pure=False,
                )
        except Exception as exc:  # cloudpickle could not take the task (a lock, an open file)
            cause = exc
            while cause.__cause__ is not None or cause.__context__ is not None:
                cause = cause.__cause__ or cause.__context__  # type: ignore[assignment]
            why = "the task could not be sent to Dask: "
            unsent = _failed(job.name, started, cause, exc.__traceback__, why)
            self._unsent.append(dataclasses.replace(unsent, retryable=False))
            return
        deadline = None if job.timeout is None else time.monotonic() + job.timeout
        self._running[future.key] = _Submitted(job, future, started, deadline)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if self._unsent:
            unsent, self._unsent = self._unsent, []
            return unsent
        if not self._running:
            if timeout is not None:  # nothing runs: the scheduler waits for a retry's delay
                threading.Event().wait(timeout)
            return []
        block = wait_time(timeout, self._running.values())
        if self.no_worker_timeout is not None:
            block = WATCH_EVERY if block is None else min(block, WATCH_EVERY)
        self._block(block)
        outcomes = [self._finish(key) for key in list(self._running) if self._is_done(key)]
        return (outcomes + self._expire()) or self._abandoned()

    def shutdown(self) -> list[str]:
        names = [submitted.job.name for submitted in self._running.values()]
        if self._running and self._client is not None:
            with contextlib.suppress(Exception):  # a client already closed cancels nothing
                self._client.cancel([s.future for s in self._running.values()])
        self._running.clear()
        self.close()
        return names

    def close(self) -> None:
        """Close the executor's own client, if it has one open; a given client stays open."""
        if self._owns_client and self._client is not None:
            client, self._client = self._client, None
            client.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    # -- internals ----------------------------------------------------------------------------

    def _block(self, timeout: float | None) -> None:
        """Block in ``distributed.wait`` until a future is done or ``timeout`` passed."""
        distributed = _distributed()
        assert self._client is not None
        futures = [submitted.future for submitted in self._running.values()]
        if any(future.done() for future in futures):
            return
        with (
            contextlib.suppress(distributed.TimeoutError, distributed.CancelledError),
            self._client.as_current(),
        ):
            distributed.wait(futures, timeout=timeout, return_when="FIRST_COMPLETED")

    def _is_done(self, key: str) -> bool:
        return bool(self._running[key].future.done())

    def _finish(self, key: str) -> Outcome:
        """The outcome of a done future; for a stored result, with a hold the runner takes
        before it releases the future, which lets the worker drop its own (see
        :func:`run_on_worker`)."""
        submitted = self._running.pop(key)
        status = "closed" if self._client is None else self._client.status
        try:
            outcome = _outcome_of(submitted, status)
            if outcome.ok:
                assert self.store is not None
                hold = self.store.hold(submitted.job.name, submitted.job.key)
                outcome = dataclasses.replace(outcome, hold=hold)
            return outcome
        finally:
            submitted.future.release()  # the worker forgets the outcome

    def _expire(self) -> list[Outcome]:
        now = time.monotonic()
        outcomes = []
        for key, submitted in list(self._running.items()):
            if submitted.deadline is not None and submitted.deadline <= now:
                del self._running[key]
                submitted.future.cancel()
                outcomes.append(
                    timed_out(submitted.job, submitted.started, CANCELLED, stopped=False)
                )
        return outcomes

    def _abandoned(self) -> list[Outcome]:
        """Fail the waiting jobs once the cluster has had no worker for ``no_worker_timeout``."""
        assert self._client is not None
        if self.no_worker_timeout is None or not self._running:
            return []
        try:
            workers = self._client.scheduler_info(n_workers=1).get("workers")
        except Exception:  # the scheduler itself is gone: its futures end as cancelled
            return []
        if workers:
            self._workerless_since = None
            return []
        now = time.monotonic()
        if self._workerless_since is None:
            self._workerless_since = now
        if now - self._workerless_since < self.no_worker_timeout:
            return []
        error = (
            f"NoWorkerError: the Dask cluster has had no worker for {self.no_worker_timeout:g} s "
            "(DaskExecutor(no_worker_timeout=...) sets how long to wait)"
        )
        outcomes = []
        for submitted in self._running.values():
            submitted.future.cancel()
            logging.getLogger(submitted.job.name).error("%s", error)
            outcomes.append(
                Outcome(submitted.job.name, submitted.started, time.time(), error, retryable=False)
            )
        self._running.clear()
        return outcomes


_PICKLE_LOG = "distributed.protocol.pickle"
"""Where Dask logs a traceback for what it cannot pickle, before it raises the error."""


@contextlib.contextmanager
def _unlogged(name: str) -> Iterator[None]:
    """Drop the errors logger ``name`` logs in the block: the run reports the failure itself,
    once, with the task's name."""
    logger = logging.getLogger(name)

    def below_error(record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR

    logger.addFilter(below_error)
    try:
        yield
    finally:
        logger.removeFilter(below_error)


def _task_key(job: Job) -> str:
    """A Dask key unique to this attempt, readable on the dashboard."""
    return f"{job.name}-{job.key[:12]}-attempt{job.attempt}-{uuid.uuid4().hex[:8]}"


def _outcome_of(submitted: _Submitted, client_status: str) -> Outcome:
    """The outcome a done future stands for; the task's log records are replayed here.
    ``client_status`` is the client's now: other than "running", it lost its scheduler."""
    future = submitted.future
    if future.status == "finished":
        try:
            outcome, records = future.result()
        except Exception as exc:  # the result did not arrive (e.g. it could not be unpickled)
            return _failed(submitted.job.name, submitted.started, exc, exc.__traceback__)
        for record in records:
            handle_forwarded(record)
        return outcome
    if future.cancelled():
        message = "CancelledError: the Dask task was cancelled before it ended"
        if client_status != "running":
            message += (
                f", as the client lost the Dask scheduler (client {client_status}); is the "
                "scheduler still running?"
            )
        logging.getLogger(submitted.job.name).error(message)
        return Outcome(submitted.job.name, submitted.started, time.time(), message)
    return _failed(submitted.job.name, submitted.started, future.exception(), future.traceback())


def _failed(
    name: str, started: float, exc: BaseException, tb: TracebackType | None, why: str = ""
) -> Outcome:
    """The outcome of a Dask task that raised, or never left: the worker died
    (``KilledWorker``), the task could not be sent, or worse."""
    error = f"{type(exc).__name__}: {why}{describe(exc)}"
    text = "".join(traceback.format_exception(type(exc), exc, tb))
    logging.getLogger(name).error("failed on Dask: %s", error)
    return Outcome(name, started, time.time(), error, text)


# -- on the worker ----------------------------------------------------------------------------


def run_on_worker(
    job: Job, store: Store, level: int, main_classes: tuple[type, ...] = ()
) -> tuple[Outcome, list[logging.LogRecord]]:
    """On a Dask worker: run ``job`` against ``store``; return its outcome and its log records.

    ``level`` is the runner's logging level, so the worker keeps the records the run logs;
    ``main_classes`` are the run's task classes from ``__main__`` (by value), whose code names
    the classes of ``__main__`` that results hold. The outcome keeps its hold on the stored
    result (an open file of this process, not sent to the client) while Dask keeps the outcome
    in the worker's memory: until the runner, holding the result itself, releases the future.
    Should Dask drop it sooner (spilled to disk), gc may delete the result in between, and the
    run computes it again.
    """
    _name_main_definitions([type(job.task), *main_classes])
    with _TASK_LOGS.capture(job.name, level) as records:
        outcome = execute(job, store)
    return outcome, records


def _in_main(obj: type | types.FunctionType) -> bool:
    """Whether ``obj`` was defined in the runner's ``__main__`` (so it travels by value)."""
    return obj.__module__ == "__main__"


def _name_main_definitions(roots: list[type]) -> None:
    """Make the classes and functions of the runner's ``__main__`` that the code of ``roots``
    uses (rebuilt here by cloudpickle) what ``__main__.<name>`` is on this worker: a result
    holding them then pickles by name, as in the runner's own processes, and loads there (or
    in a child's worker) as the runner's own classes."""
    main = sys.modules["__main__"]
    seen: set[int] = set()
    todo: list[Any] = list(roots)
    while todo:
        obj = todo.pop()
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        if not isinstance(obj, (type, types.FunctionType)) or id(obj) in seen:
            continue
        if not _in_main(obj):
            continue
        seen.add(id(obj))
        if isinstance(obj, type):
            todo.extend(vars(obj).values())
        else:
            todo.extend(obj.__globals__.values())  # by value: only the names the code uses
            todo.extend(cell.cell_contents for cell in obj.__closure__ or () if _filled(cell))
        if "." not in obj.__qualname__:
            setattr(main, obj.__qualname__, obj)


def _filled(cell: types.CellType) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:  # a free variable not bound yet
        return False
    return True


class _TaskLogs:
    """Collects the log records of each task running in this worker process, per task.

    A worker may run several tasks at once on its threads, so one handler on the root logger
    sorts records by the task the logging thread runs; a record from a thread that runs no task
    (one a task started, say) goes to every task running. The worker's own handlers stay.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, list[logging.LogRecord]] = {}
        self._handler = ForwardingHandler(self._route, process="DaskWorker")
        self._saved_level = logging.NOTSET

    @contextlib.contextmanager
    def capture(self, name: str, level: int) -> Iterator[list[logging.LogRecord]]:
        """Collect the records of task ``name`` at ``level`` and above while the block runs."""
        records: list[logging.LogRecord] = []
        root = logging.getLogger()
        with self._lock:
            if not self._records:
                self._saved_level = root.level
                root.addHandler(self._handler)
            self._records[name] = records
            if root.getEffectiveLevel() > level:
                root.setLevel(level)
        try:
            yield records
        finally:
            with self._lock:
                del self._records[name]
                if not self._records:
                    root.removeHandler(self._handler)
                    root.setLevel(self._saved_level)

    def _route(self, record: logging.LogRecord) -> None:
        with self._lock:
            own = self._records.get(getattr(record, "task", ""))
            for records in [own] if own is not None else self._records.values():
                records.append(record)


_TASK_LOGS = _TaskLogs()
