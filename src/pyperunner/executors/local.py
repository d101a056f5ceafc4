"""Executors on this machine: one process per task (default), threads, or inline.

``process`` forks a fresh process for every task, in a process group of its own, so tasks run
truly in parallel, a crashing task cannot take the runner down, any process a task starts ends
with the task (also when it times out or is interrupted), and tasks defined anywhere
(``__main__``, notebooks, inside functions) work without pickling. ``thread`` suits I/O-bound
tasks; a thread cannot be killed, so a timed-out one is reported and left to finish in the
background.
``inline`` runs each task in the calling thread at submission, one at a time, so debuggers and
breakpoints work; its timeouts use ``SIGALRM`` and so hold only on the main thread.
"""

from __future__ import annotations

import _signal
import contextlib
import dataclasses
import functools
import logging
import mmap
import multiprocessing
import multiprocessing.connection
import multiprocessing.util
import os
import pickle
import queue
import resource
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from ..logs import belonging_to, current_run, forward_records, handle_forwarded
from ..output import ProcessOutput, output_busy
from ..storage import Hold
from ..store import Store
from .base import (
    Executor,
    Job,
    Outcome,
    TaskTimeoutError,
    detached,
    execute,
    failed,
    timed_out,
    wait_time,
)
from .forkserver import ForkServer, Served, readable

KILL_GRACE = 1.0
"""Seconds a stopped worker gets between SIGTERM and SIGKILL."""


class _InProcess(Executor):
    """Runs jobs in the runner's process; processes its tasks start end when it shuts down.

    While it runs, the process adopts the orphans of its descendants (Linux), so that a daemon
    a task detached (forked twice, ``setsid``) is found and ended too; the processes it had
    before, and theirs, are left alone.
    """

    _before: set[int] | None = None
    _finalizers_before: frozenset[object] = frozenset()
    _was_subreaper: bool | None = None

    def start(self, store: Store, workers: int, jobs: Mapping[str, Job] | None = None) -> None:
        super().start(store, workers, jobs)
        self._before = _descendants()
        self._finalizers_before = frozenset(_finalizers())
        self._was_subreaper = _subreaper(True)

    def shutdown(self) -> list[str]:
        if self._before is not None:
            _abandon_pools(self._finalizers_before)
            _end_children(exclude=self._before)
            if self._was_subreaper is False:  # after the ending: what it orphans comes here
                _subreaper(False)
            self._before = None
        return []


class InlineExecutor(_InProcess):
    """Runs each job in the calling thread as it is submitted, one at a time."""

    def capacity(self, workers: int) -> int:
        return 1

    def __init__(self) -> None:
        super().__init__()
        self._done: list[Outcome] = []

    def submit(self, job: Job) -> None:
        assert self.store is not None
        with _alarm(job.timeout):
            self._done.append(execute(job, self.store, interruptible=True))

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        if not self._done and timeout is not None:
            time.sleep(timeout)  # nothing runs: the scheduler waits for a retry's delay
        done, self._done = self._done, []
        return done


@contextlib.contextmanager
def _alarm(seconds: float | None) -> Iterator[None]:
    if seconds is None or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: object) -> None:
        raise TaskTimeoutError(f"timed out after {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@dataclasses.dataclass
class _Running:
    job: Job
    started: float
    deadline: float | None
    process: BaseProcess | Served | None = None


def _deadline(job: Job) -> float | None:
    return None if job.timeout is None else time.monotonic() + job.timeout


class ThreadExecutor(_InProcess):
    """Runs every job on a daemon thread of this process."""

    def __init__(self) -> None:
        super().__init__()
        self._done: queue.SimpleQueue[tuple[_Running, Outcome]] = queue.SimpleQueue()
        self._running: dict[str, _Running] = {}

    def submit(self, job: Job) -> None:
        assert self.store is not None
        store, running = self.store, _Running(job, time.time(), _deadline(job))
        self._running[job.name] = running
        run = current_run()  # the run submitting it, whose log the task's lines go to

        def attempt() -> None:
            with belonging_to(run):
                try:
                    outcome = execute(job, store)
                except BaseException as exc:  # what execute could not report: still an outcome
                    outcome = failed(job.name, running.started, exc)
            self._done.put((running, outcome))

        threading.Thread(target=attempt, name=f"pyperunner:{job.name}", daemon=True).start()

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        finished = []
        try:
            finished.append(self._done.get(timeout=wait_time(timeout, self._running.values())))
            while not self._done.empty():
                finished.append(self._done.get())
        except queue.Empty:
            pass
        outcomes = []
        for running, outcome in finished:
            if self._running.get(outcome.name) is running:  # not given up on after a timeout
                del self._running[outcome.name]
                outcomes.append(outcome)
            else:
                outcome.release()
        now = time.monotonic()
        for name, running in list(self._running.items()):
            if running.deadline is not None and running.deadline <= now:
                del self._running[name]
                how = "the thread cannot be killed and finishes in the background"
                outcomes.append(timed_out(running.job, running.started, how, stopped=False))
        return outcomes

    def shutdown(self) -> list[str]:
        names = list(self._running)
        self._running.clear()  # daemon threads: they cannot be stopped, and do not block exit
        while not self._done.empty():  # ended after the run stopped: no one reads them
            self._done.get()[1].release()
        super().shutdown()
        return names


@dataclasses.dataclass
class _Worker:
    """A forked worker process, the connection to it, and the job it runs (None: idle)."""

    process: BaseProcess | Served
    conn: Connection
    running: _Running | None = None
    ended: int | None = None  # readable once the process has exited
    accepted: bool = True  # False from sending it a pickled job until it says it took it

    def __post_init__(self) -> None:
        try:  # unlike the sentinel, not held open by processes the task forked
            if isinstance(self.process, Served):  # a pidfd already, opened before any reaping
                self.ended = os.dup(self.process.sentinel)
            else:
                self.ended = os.pidfd_open(self.process.pid)
        except (AttributeError, OSError):
            self.ended = self.process.sentinel

    def close(self) -> None:
        """Close the connection and the exit watch."""
        self.conn.close()
        self.close_watch()

    def close_watch(self) -> None:
        """Close the exit watch (a pidfd; the sentinel is the process object's own)."""
        if self.ended is not None and self.ended != self.process.sentinel:
            os.close(self.ended)
            self.ended = None


_ACCEPTED = "accepted"
"""What a worker sends once it has taken a job the runner pickled for it: if it dies before
that, the job was not started, and goes to another worker instead of failing."""


class _Known:
    """The jobs ``start`` was told of, and which attempt of each a worker took last.

    A worker marks a job taken in memory it shares with the runner (forked from it), which
    looks only if the worker dies: a message would wake the runner once more every task."""

    _ATTEMPT = struct.Struct("i")

    def __init__(self, jobs: Mapping[str, Job]) -> None:
        self.jobs = jobs
        self._slots = {name: i * self._ATTEMPT.size for i, name in enumerate(jobs)}
        self._taken = mmap.mmap(-1, max(1, len(jobs)) * self._ATTEMPT.size)  # shared

    def take(self, name: str, attempt: int) -> Job:
        """In a worker: job ``name``, attempt ``attempt``, which it now runs."""
        job = self.jobs[name]
        self._ATTEMPT.pack_into(self._taken, self._slots[name], attempt)
        return job if job.attempt == attempt else dataclasses.replace(job, attempt=attempt)

    def taken(self, job: Job) -> bool:
        """Whether a worker took this attempt at ``job`` (by name and attempt)."""
        slot = self._slots.get(job.name)
        return slot is not None and self._ATTEMPT.unpack_from(self._taken, slot)[0] == job.attempt


@dataclasses.dataclass(frozen=True)
class _Report:
    """A worker's last word on a job: its outcome, whether it takes another job, and whether
    the hold on the job's result follows it over the connection (see :func:`_send_hold`)."""

    outcome: Outcome
    more: bool
    held: bool = False


class ProcessExecutor(Executor):
    """Runs jobs in forked worker processes, each leading a process group of its own.

    By default every job gets a fresh process (``max_tasks_per_child=1``), which ends with it.
    ``max_tasks_per_child=None`` (the ``"pool"`` executor) keeps up to ``workers`` processes and
    gives each many jobs in turn, saving a fork and a cold start per task (several ms each):
    between jobs a worker ends every process the task started, restores its working folder and
    environment, and retires if the task left threads running or grew its memory by more than
    ``max_memory_growth`` bytes.

    Workers are forked ahead, while other jobs run, for the jobs ``start`` was told of: such a
    job then travels to an idle worker as its name, and its process is started and warm when
    the job comes, so neither the fork nor a worker's start nor its exit holds up the run. A
    fork server (:mod:`.forkserver`), a copy of the runner made at ``start``, forks them, so
    the runner pays no copy-on-write faults; the runner forks a job it was not told of itself,
    and all of them if the server is gone.
    """

    runs_elsewhere = True

    def __init__(
        self, max_tasks_per_child: int | None = 1, max_memory_growth: int = 256 * 2**20
    ) -> None:
        super().__init__()
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise ValueError(f"max_tasks_per_child must be at least 1, got {max_tasks_per_child}")
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_growth = max_memory_growth
        self._ctx = multiprocessing.get_context("fork")
        self._workers: dict[Connection, _Worker] = {}
        self._exiting: dict[int, _Worker] = {}  # by exit watch: workers done with their jobs
        self._known = _Known({})
        self._unsent: set[str] = set()  # known jobs not submitted yet
        self._room = 0
        self._forked = 0
        self._server: ForkServer | None = None
        self._asked: dict[str, Connection] = {}  # by name: workers the server is making

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_tasks_per_child={self.max_tasks_per_child})"

    def start(self, store: Store, workers: int, jobs: Mapping[str, Job] | None = None) -> None:
        super().start(store, workers, jobs)
        store.preload()  # once here, so no forked worker pays for the imports
        _subreaper_call()
        if self.max_tasks_per_child != 1:
            import cloudpickle  # noqa: F401  (unknown jobs travel to running workers)
        self._known, self._room = _Known(dict(jobs or {})), workers
        self._unsent = set(self._known.jobs)
        if hasattr(os, "pidfd_open"):
            target = functools.partial(_served_worker, store, self._known, *self._limits())
            with _signals_held():
                self._server = ForkServer(self._ctx, target)
        self._fork_ahead()

    def submit(self, job: Job) -> None:
        assert self.store is not None
        self._unsent.discard(job.name)
        worker = self._hand_to_idle(job) or self._fork(job)  # by fork: nothing is pickled
        worker.running = _Running(job, time.time(), _deadline(job), worker.process)
        self._fork_ahead()

    def _hand_to_idle(self, job: Job) -> _Worker | None:
        """Send ``job`` to an idle worker; None if there is none that can take it."""
        idle = self._idle()
        payload = self._message(job) if idle else None
        if idle and payload is None:  # only a fork can take this job along
            self._end_idle(idle[:1])
            return None
        for worker in idle:
            try:
                worker.conn.send_bytes(payload)  # type: ignore[arg-type]
                worker.accepted = False
                return worker
            except OSError:  # it died while idle, so nothing is lost
                self._retire(worker.conn)
        return None

    def _idle(self) -> list[_Worker]:
        """The idle workers; if none is, but the fork server is making one, that one."""
        self._take_started()
        idle = [w for w in self._workers.values() if w.running is None]
        if not idle and self._asked:
            self._take_started(next(iter(self._asked)))
            idle = [w for w in self._workers.values() if w.running is None]
        return idle

    def _message(self, job: Job) -> bytes | None:
        """What tells an idle worker to run ``job``: its name and attempt if the worker knows
        the job (it was forked after ``start``), else the pickled job; None if unpicklable."""
        named = self._named(job)
        return _pickled(job) if named is None else pickle.dumps(named)

    def _named(self, job: Job) -> tuple[str, int] | None:
        """``job`` as its name and attempt, if it is a job ``start`` was told of."""
        known = self._known.jobs.get(job.name)
        if known is not None and job == dataclasses.replace(known, attempt=job.attempt):
            return job.name, job.attempt
        return None

    def _limits(self) -> tuple[int | None, int]:
        return self.max_tasks_per_child, self.max_memory_growth

    def _fork_ahead(self) -> None:
        """Have idle workers made for the known jobs still to come, up to the run's
        ``workers``: by the fork server, in the background, or else forked here."""
        idle = sum(w.running is None for w in self._workers.values()) + len(self._asked)
        busy = len(self._workers) + len(self._asked) - idle
        room = self._room - (busy if self.max_tasks_per_child != 1 else 0)
        for _ in range(min(room, len(self._unsent)) - idle):
            if not self._ask(None):
                self._fork(None)

    def _ask(self, named: tuple[str, int] | None) -> str | None:
        """Ask the fork server for a worker that runs the ``named`` job, or (None) waits for
        one; the worker's name, or None if there is no server."""
        if self._server is None:
            return None
        ours, theirs = self._ctx.Pipe()
        self._forked += 1
        name = f"Worker-{self._forked}"
        with _signals_held():  # until the worker is known, so that shutdown ends it
            asked = self._server.request(named, theirs, name)
            theirs.close()
            if not asked:
                ours.close()
                return None
            self._asked[name] = ours
        return name

    def _take_started(self, until: str | None = None) -> None:
        """Make the workers the fork server started known (first waiting for ``until``);
        forget the ones asked for if it died."""
        if self._server is None:
            return
        with _signals_held():  # until the worker is known, so that shutdown ends it
            for process in self._server.started(until):
                conn = self._asked.pop(process.name)
                self._workers[conn] = _Worker(process, conn)
        if not self._server.alive:
            for conn in self._asked.values():
                conn.close()
            self._asked.clear()

    def _fork(self, job: Job | None) -> _Worker:
        """A new worker: it runs ``job`` at once, or (None) waits to be sent one. The fork
        server makes it if it knows ``job``; else the runner forks, taking ``job`` along."""
        named = None if job is None else self._named(job)
        if (job is None or named is not None) and (name := self._ask(named)):
            conn = self._asked[name]
            self._take_started(name)
            if conn in self._workers:
                return self._workers[conn]
        ours, theirs = self._ctx.Pipe()
        self._forked += 1
        process = self._ctx.Process(  # not daemonic, so tasks may use multiprocessing
            target=_worker_main,
            args=(job, self.store, theirs, self._known, *self._limits()),
            name=f"Worker-{self._forked}",
        )
        with _signals_held():  # until the worker is known, so that shutdown ends it
            process.start()
            _own_group(process.pid)
            theirs.close()
            worker = self._workers[ours] = _Worker(process, ours)
        return worker

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        outcomes: list[Outcome] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        while not outcomes:
            by_exit = {w.ended: c for c, w in self._workers.items()}
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = multiprocessing.connection.wait(  # the workers the server started are
                [*self._workers, *by_exit, *self._exiting],  # taken when one is needed
                wait_time(remaining, self._busy()),
            )
            for exited in [obj for obj in ready if obj in self._exiting]:
                _reap(self._exiting.pop(exited))  # type: ignore[index]
            for conn in {by_exit.get(obj, obj) for obj in ready if obj not in self._exiting}:
                if conn in self._workers:
                    outcome = self._receive(conn)  # type: ignore[arg-type]
                    if outcome is not None:
                        outcomes.append(outcome)
            outcomes.extend(self._expire())
            if deadline is not None and time.monotonic() >= deadline:
                break
        return outcomes

    def _busy(self) -> list[_Running]:
        return [w.running for w in self._workers.values() if w.running is not None]

    def _receive(self, conn: Connection) -> Outcome | None:
        """Handle what a worker sent: log records, then its report; None while the job runs.
        Without a report, whether the worker ended is looked at, and then all it sent read."""
        worker = self._workers[conn]
        try:
            report = _read(conn, worker)
            if report is None:
                if worker.process.exitcode is None:
                    return None
                report = _read(conn, worker)  # it ended: all it sent is in the pipe now
        except (EOFError, OSError):
            report = None
        if report is not None:
            outcome = report.outcome
            if report.held:  # right behind the report, before the connection may be closed
                outcome = dataclasses.replace(outcome, hold=_receive_hold(conn))
            worker.running = None
            if not report.more:
                del self._workers[conn]
                self._let_exit(worker)
            return outcome
        running = self._retire(conn)  # the worker died
        if running is None:
            return None  # while idle: nothing is lost, a new worker takes the next job
        if not (worker.accepted or self._known.taken(running.job)):  # it never took the job,
            self.submit(running.job)  # which goes to another worker
            return None
        message = _death_message(worker.process.exitcode)
        return Outcome(running.job.name, running.started, time.time(), message)

    def _let_exit(self, worker: _Worker) -> None:
        """A worker done with its jobs exits now. The fork server reaps one it forked (while
        it lives); any other is reaped once it has exited, not waited for here."""
        if isinstance(worker.process, Served) and self._server is not None and self._server.alive:
            worker.close()
            worker.process.release()
        else:
            worker.conn.close()
            self._exiting[worker.ended] = worker  # type: ignore[index]

    def _retire(self, conn: Connection) -> _Running | None:
        """Forget a worker that ended, or is ending; its task's processes end with it."""
        worker = self._workers.pop(conn)
        worker.conn.close()
        _reap(worker)
        return worker.running

    def _expire(self) -> list[Outcome]:
        now = time.monotonic()
        expired = [
            (conn, worker, running)
            for conn, worker in self._workers.items()
            if (running := worker.running) is not None
            and running.deadline
            and running.deadline <= now
        ]
        _stop([running for _, _, running in expired])  # all at once: one grace period
        outcomes = []
        for conn, worker, running in expired:
            del self._workers[conn]
            _forward_last_words(conn)
            worker.close()
            outcomes.append(timed_out(running.job, running.started, "worker killed"))
        return outcomes

    def shutdown(self) -> list[str]:
        if self._asked:
            self._take_started(list(self._asked)[-1])
        stopped = self._busy()
        _stop(stopped)
        self._end_idle([w for w in self._workers.values() if w.running is None])
        for worker in self._workers.values():
            _forward_last_words(worker.conn)
            worker.close()
        self._workers.clear()
        for worker in self._exiting.values():
            _reap(worker)
        self._exiting.clear()
        self._unsent.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
        return [r.job.name for r in stopped]

    def _end_idle(self, idle: list[_Worker]) -> None:
        """Tell idle workers there are no more jobs, and see them end."""
        for worker in idle:
            with contextlib.suppress(OSError):
                worker.conn.send_bytes(b"")
        for worker in idle:
            self._retire(worker.conn)


def _read(conn: Connection, worker: _Worker) -> _Report | None:
    """Handle what ``worker`` sent up to its report, if that came."""
    while readable(conn.fileno()):
        message = conn.recv()
        if isinstance(message, logging.LogRecord):
            handle_forwarded(message)
        elif message == _ACCEPTED:
            worker.accepted = True
        else:
            return message  # type: ignore[no-any-return]
    return None


def _reap(worker: _Worker) -> None:
    """See a worker that is ending exit, then end what its task left in its process group."""
    worker.process.join(KILL_GRACE)
    _kill_group(worker.process.pid, signal.SIGKILL)
    worker.process.join()
    worker.close_watch()


def _worker_main(
    job: Job | None,
    store: Store,
    conn: Connection,
    known: _Known,
    max_tasks: int | None,
    max_growth: int,
    runner: int | None = None,
) -> None:
    _signal.signal(signal.SIGINT, signal.default_int_handler)  # see _signals_held
    _own_group(0)
    # What the worker writes goes to its file descriptors, which it logs: not to a notebook,
    # where a kernel's sys.stdout and sys.stderr would send it in a worker forked from it.
    sys.stdout, sys.stderr = sys.__stdout__ or sys.stdout, sys.__stderr__ or sys.stderr
    lock = threading.Lock()  # the task's own threads may log while this one reports

    def send(message: object) -> None:
        with lock:
            conn.send_bytes(pickle.dumps(message))  # multiprocessing's own pickler is slower

    def report(outcome: Outcome, more: bool) -> None:
        """Send the job's report and, right behind it, the hold on its result: the runner has
        the result held before this worker lets go of it."""
        fd = None if outcome.hold is None else outcome.hold.fd
        with lock:
            conn.send_bytes(pickle.dumps(_Report(outcome, more, held=fd is not None)))
            if fd is not None:
                _send_hold(conn, fd)
        outcome.release()

    done = 0
    adopts_orphans = _become_subreaper()
    with (
        forward_records(send) as forwarding,
        ProcessOutput(forwarding.emit, _lifeline(runner)) as output,
    ):
        _signal.signal(signal.SIGTERM, functools.partial(_last_words, lock, output))
        clean = _CleanState(max_growth, output.thread) if max_tasks != 1 else None
        while job is not None or (job := _next_job(conn, known, send)) is not None:
            with output.task(job.name):
                outcome = execute(job, store)
            done += 1
            if adopts_orphans:  # also what left the worker's process group (setsid)
                _end_children()
            more = clean is not None and adopts_orphans and done != max_tasks and clean.restore()
            report(outcome, more)
            if not more:
                break
            job = None
        # at once: threads a task left running must not keep the worker alive, and undoing
        # the routing of its output and log records would only cost time
        os._exit(0)


def _served_worker(
    store: Store,
    known: _Known,
    max_tasks: int | None,
    max_growth: int,
    named: tuple[str, int] | None,
    conn: Connection,
    runner: int,
) -> None:
    """A worker the fork server forked: ``named`` is the job it runs at once, if any."""
    job = None if named is None else known.take(*named)
    _worker_main(job, store, conn, known, max_tasks, max_growth, runner)


def _last_words(lock: threading.Lock, output: ProcessOutput, signum: int, frame: object) -> None:
    """SIGTERM in a worker (its task timed out, or the run stops): send the line the task was
    writing, then end by the signal as before. Where that could block (this thread was sending,
    or writing a line), it ends at once: the runner kills it after a grace period anyway."""
    if not (lock.locked() or output_busy()):
        with contextlib.suppress(Exception):
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            output.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _forward_last_words(conn: Connection) -> None:
    """Log what a stopped worker sent before it ended (its last lines, see ``_last_words``)."""
    with contextlib.suppress(Exception):  # a message cut off by the kill ends it
        while conn.poll():
            message = conn.recv()
            if isinstance(message, logging.LogRecord):
                handle_forwarded(message)
            elif isinstance(message, _Report):
                break  # its last message; the hold that may follow goes with the connection


def _send_hold(conn: Connection, fd: int) -> None:
    """Pass the open file ``fd`` to the runner over the worker's connection, a Unix socket
    (``SCM_RIGHTS``): the runner's copy then holds the same lock."""
    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        socket.send_fds(sock, [b"h"], [fd])


def _receive_hold(conn: Connection) -> Hold | None:
    """The hold a worker passed behind its report; None if it died before it could."""
    try:
        with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            fds = socket.recv_fds(sock, 1, 1)[1]
    except OSError:
        return None
    return Hold(fds[0]) if fds else None


def _next_job(conn: Connection, known: _Known, send: Callable[[object], None]) -> Job | None:
    """Wait for the next job from the runner and say it is taken; None when there are none,
    or the runner has closed its end (it gave up on a worker whose fork server died)."""
    try:
        payload = conn.recv_bytes()
    except EOFError:
        return None
    if not payload:
        return None
    message = pickle.loads(payload)
    if isinstance(message, tuple):  # (name, attempt) of a job this worker knows
        return known.take(*message)
    send(_ACCEPTED)
    return message  # type: ignore[no-any-return]


def _pickled(job: Job) -> bytes | None:
    """``job`` for a running worker, or None if it cannot be pickled (e.g. a closure holding a
    lock): then only a fork can take it there."""
    import cloudpickle

    try:
        return cloudpickle.dumps(detached(job))
    except Exception:
        return None


class _CleanState:
    """What a reused worker puts back between jobs, and when it must retire instead."""

    def __init__(self, max_growth: int, output_thread: int) -> None:
        self.output_thread = output_thread
        self.cwd = os.getcwd()
        self.environ = dict(os.environ)
        self.umask = _umask()
        self.handlers = {sig: signal.getsignal(sig) for sig in _HANDLED}
        self.blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
        self.limits = _limits()
        self.threads = self._threads()
        self.memory_limit = _resident_bytes() + max_growth

    def restore(self) -> bool:
        """Put back the working folder, environment, umask, signal handlers and mask, and stop
        timers; False if this worker should retire (its limits changed, a thread is left, or it
        grew too much)."""
        if os.getcwd() != self.cwd:
            os.chdir(self.cwd)
        if os.environ != self.environ:
            os.environ.clear()
            os.environ.update(self.environ)
        os.umask(self.umask)
        for timer in (signal.ITIMER_REAL, signal.ITIMER_VIRTUAL, signal.ITIMER_PROF):
            signal.setitimer(timer, 0)  # also what signal.alarm() set
        for sig, handler in self.handlers.items():
            if signal.getsignal(sig) is not handler:
                signal.signal(sig, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, self.blocked)
        return (
            _limits() == self.limits  # a lowered hard limit cannot be raised back
            and self._threads() <= self.threads
            and _resident_bytes() < self.memory_limit
        )

    def _threads(self) -> int:
        """The threads running, but the worker's output thread (listed once it has logged)."""
        return sum(t.ident != self.output_thread for t in threading.enumerate())


_HANDLED = [
    sig
    for sig in signal.valid_signals()
    if sig not in (signal.SIGKILL, signal.SIGSTOP) and signal.getsignal(sig) is not None
]
"""The signals whose Python-level handler a task may change."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_RESOURCES = [getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")]


def _limits() -> dict[int, tuple[int, int]]:
    """This process's resource limits (``ulimit``)."""
    return {kind: resource.getrlimit(kind) for kind in _RESOURCES}


PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
"""Linux ``prctl`` options (``<linux/prctl.h>``): adopt the orphans of one's descendants."""


def _become_subreaper() -> bool:
    """Adopt the orphans of this process's descendants (Linux), so none escapes its task."""
    prctl = _subreaper_call()
    return prctl is not None and prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _subreaper(on: bool) -> bool | None:
    """Make this process adopt its descendants' orphans, or stop (Linux); return whether it did
    before (None where it cannot)."""
    import ctypes

    prctl, was = _subreaper_call(), ctypes.c_int()
    if prctl is None or prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0) != 0:
        return None
    prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
    return bool(was.value)


@functools.cache
def _subreaper_call() -> Callable[..., int] | None:
    """libc's ``prctl``; None without it, or where ``/proc`` cannot list the orphans adopted.
    Found in the runner, so forked workers need not load ctypes nor look at ``/proc``."""
    if not os.path.isdir("/proc/self/task"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None).prctl
    except (OSError, AttributeError):
        return None


def _children(pid: int | str = "self") -> list[int]:
    """The children of process ``pid`` (this one) (Linux; none where ``/proc`` does not list
    them)."""
    pids: list[int] = []
    with contextlib.suppress(OSError):
        for thread in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{thread}/children") as listed:
                pids.extend(int(child) for child in listed.read().split())
    return pids


def _descendants() -> set[int]:
    """The processes below this one, all generations."""
    found: set[int] = set()
    below = _children()
    while below:
        pid = below.pop()
        if pid not in found:
            found.add(pid)
            below.extend(_children(pid))
    return found


def _end_children(exclude: set[int] | None = None) -> None:
    """Kill every child process but ``exclude`` (and, in a subreaper, the orphans that come
    back): what tasks started and left running."""
    try:  # without children, skip /proc: reading it makes this process's exit slower
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return
    while children := [pid for pid in _children() if pid not in (exclude or ())]:
        for pid in children:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def _finalizers() -> dict[object, Any]:
    """``multiprocessing``'s exit handlers of this process (a pool's among them), by key."""
    return getattr(multiprocessing.util, "_finalizer_registry", {})


def _abandon_pools(before: frozenset[object]) -> None:
    """For every ``multiprocessing`` pool made since ``before`` and still open, before its
    workers are killed: stop it replacing them, and drop its exit handler, which would wait
    forever for a worker killed while it held the pool's queue lock."""
    import multiprocessing.pool

    for key, finalizer in list(_finalizers().items()):
        callback, args = getattr(finalizer, "_callback", None), getattr(finalizer, "_args", ())
        if key in before or getattr(callback, "__name__", "") != "_terminate_pool":
            continue
        with contextlib.suppress(IndexError, AttributeError):  # Pool._terminate_pool's arguments
            args[5]._state = multiprocessing.pool.TERMINATE  # its worker handler
        finalizer.cancel()


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _lifeline(runner: int | None) -> dict[int, Callable[[], None]]:
    """What ends this worker's whole process group once the runner dies (even by SIGKILL):
    ``runner`` is a pidfd of it, else (None) the runner is this process's parent."""
    parent = multiprocessing.parent_process()
    watched = runner if runner is not None else parent and parent.sentinel
    if watched is None:
        return {}
    return {watched: functools.partial(os.killpg, 0, signal.SIGKILL)}


_STOP = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def _signals_held() -> Iterator[None]:
    """Defer SIGINT, SIGTERM and SIGHUP while forking: Python runs fork hooks, and an exception
    a signal handler raises in one is lost ("Exception ignored"); deferred, it is raised right
    after. An ignored signal (``nohup``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers run on the main thread, not in this thread's fork hooks
        return
    caught: list[int] = []
    # _signal's own calls: signal's wrappers make enums of handlers, 2-3 µs a call, and a run
    # holds signals several times a task
    held = [sig for sig in _STOP if _signal.getsignal(sig) not in (None, signal.SIG_IGN)]
    previous = {sig: _signal.signal(sig, lambda signum, _: caught.append(signum)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            _signal.signal(sig, handler)
        for signum in caught:
            signal.raise_signal(signum)


def _own_group(pid: int) -> None:
    """Make ``pid`` (0: this process) lead a new process group; done on both sides of a fork."""
    with contextlib.suppress(OSError):
        os.setpgid(pid, 0)


def _kill_group(pid: int | None, sig: int) -> None:
    if pid is not None:
        with contextlib.suppress(OSError):
            os.killpg(pid, sig)


def _stop(stopped: list[_Running]) -> None:
    """SIGTERM the workers' process groups, then SIGKILL what is left after a grace period."""
    processes = [r.process for r in stopped if r.process is not None]
    for process in processes:
        _kill_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        _kill_group(process.pid, signal.SIGKILL)
        process.join()


def _death_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process was killed by {name}"
    return f"worker process exited with code {exitcode} before reporting a result"
