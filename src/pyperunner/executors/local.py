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

import contextlib
import dataclasses
import logging
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from ..logs import forward_records, handle_forwarded, process_output_of
from ..store import Store
from .base import Executor, Job, Outcome, TaskTimeoutError, execute, timed_out

KILL_GRACE = 1.0
"""Seconds a stopped worker gets between SIGTERM and SIGKILL."""


class InlineExecutor(Executor):
    """Runs each job in the calling thread as it is submitted."""

    def __init__(self) -> None:
        super().__init__()
        self._done: list[Outcome] = []

    def submit(self, job: Job) -> None:
        assert self.store is not None
        with _alarm(job.timeout):
            self._done.append(execute(job, self.store))

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
    process: BaseProcess | None = None


def _deadline(job: Job) -> float | None:
    return None if job.timeout is None else time.monotonic() + job.timeout


def _wait_time(timeout: float | None, running: Iterator[_Running]) -> float | None:
    deadlines = [r.deadline for r in running if r.deadline is not None]
    if not deadlines:
        return timeout
    until_deadline = max(0.0, min(deadlines) - time.monotonic())
    return until_deadline if timeout is None else min(timeout, until_deadline)


class ThreadExecutor(Executor):
    """Runs every job on a daemon thread of this process."""

    def __init__(self) -> None:
        super().__init__()
        self._done: queue.SimpleQueue[tuple[_Running, Outcome]] = queue.SimpleQueue()
        self._running: dict[str, _Running] = {}

    def submit(self, job: Job) -> None:
        assert self.store is not None
        store, running = self.store, _Running(job, time.time(), _deadline(job))
        self._running[job.name] = running
        threading.Thread(
            target=lambda: self._done.put((running, execute(job, store))),
            name=f"pyperunner:{job.name}",
            daemon=True,
        ).start()

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        finished = []
        try:
            finished.append(self._done.get(timeout=_wait_time(timeout, self._running.values())))
            while not self._done.empty():
                finished.append(self._done.get())
        except queue.Empty:
            pass
        outcomes = []
        for running, outcome in finished:
            if self._running.get(outcome.name) is running:  # not given up on after a timeout
                del self._running[outcome.name]
                outcomes.append(outcome)
        now = time.monotonic()
        for name, running in list(self._running.items()):
            if running.deadline is not None and running.deadline <= now:
                del self._running[name]
                how = "the thread cannot be killed and finishes in the background"
                outcomes.append(timed_out(running.job, running.started, how))
        return outcomes

    def shutdown(self) -> list[str]:
        names = list(self._running)
        self._running.clear()  # daemon threads: they cannot be stopped, and do not block exit
        return names


class ProcessExecutor(Executor):
    """Runs every job in a forked process of its own, leading its own process group."""

    def __init__(self) -> None:
        super().__init__()
        self._ctx = multiprocessing.get_context("fork")
        self._running: dict[Connection, _Running] = {}
        self._started = 0

    def start(self, store: Store, workers: int) -> None:
        super().start(store, workers)
        store.preload()  # once here, so no forked worker pays for the imports

    def submit(self, job: Job) -> None:
        assert self.store is not None
        receiver, sender = self._ctx.Pipe(duplex=False)
        self._started += 1
        process = self._ctx.Process(
            target=_worker_main, args=(job, self.store, sender), name=f"Worker-{self._started}"
        )
        process.daemon = True
        started = time.time()
        process.start()
        _own_group(process.pid)
        sender.close()
        self._running[receiver] = _Running(job, started, _deadline(job), process)

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        outcomes = []
        deadline = None if timeout is None else time.monotonic() + timeout
        while not outcomes:
            by_sentinel = {r.process.sentinel: c for c, r in self._running.items() if r.process}
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = multiprocessing.connection.wait(
                [*self._running, *by_sentinel], _wait_time(remaining, self._running.values())
            )
            for conn in {by_sentinel.get(obj, obj) for obj in ready}:
                outcome = self._receive(conn)  # type: ignore[arg-type]
                if outcome is not None:
                    outcomes.append(outcome)
            outcomes.extend(self._expire())
            if deadline is not None and time.monotonic() >= deadline:
                break
        return outcomes

    def _receive(self, conn: Connection) -> Outcome | None:
        """Handle what a worker sent: log records, then its outcome; None while it still runs."""
        try:
            while conn.poll():
                message = conn.recv()
                if isinstance(message, logging.LogRecord):
                    handle_forwarded(message)
                else:
                    return self._finish(conn, message)
        except (EOFError, OSError):
            return self._finish(conn, None)
        process = self._running[conn].process
        if process is not None and process.exitcode is not None:
            return self._finish(conn, None)
        return None

    def _expire(self) -> list[Outcome]:
        now = time.monotonic()
        expired = [c for c, r in self._running.items() if r.deadline and r.deadline <= now]
        outcomes = []
        for conn in expired:
            running = self._running.pop(conn)
            _stop([running])
            conn.close()
            outcomes.append(timed_out(running.job, running.started, "worker killed"))
        return outcomes

    def _finish(self, conn: Connection, outcome: Outcome | None) -> Outcome:
        running = self._running.pop(conn)
        assert running.process is not None
        conn.close()
        running.process.join()
        _kill_group(running.process.pid, signal.SIGKILL)  # a task's processes end with it
        if outcome is None:
            message = _death_message(running.process.exitcode)
            outcome = Outcome(running.job.name, running.started, time.time(), message)
        return outcome

    def shutdown(self) -> list[str]:
        stopped = list(self._running.values())
        _stop(stopped)
        for conn in self._running:
            conn.close()
        self._running.clear()
        return [r.job.name for r in stopped]


def _worker_main(job: Job, store: Store, sender: Connection) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    _own_group(0)
    threading.Thread(target=_die_with_runner, name="pyperunner-lifeline", daemon=True).start()
    lock = threading.Lock()  # the task's own threads may log while this one reports

    def send(message: object) -> None:
        with lock:
            sender.send(message)

    with forward_records(send), process_output_of(job.name):
        outcome = execute(job, store)
    send(outcome)
    sender.close()


def _die_with_runner() -> None:
    """End this worker's whole process group if the runner dies (even by SIGKILL)."""
    parent = multiprocessing.parent_process()
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os.killpg(0, signal.SIGKILL)


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
