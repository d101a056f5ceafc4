"""Executors on this machine: one process per task (default), a thread pool, or inline.

``process`` forks a fresh process for every task, so tasks run truly in parallel, a crashing task
cannot take the runner down, and tasks defined anywhere (``__main__``, notebooks, inside
functions) work without pickling. ``thread`` suits I/O-bound tasks. ``inline`` runs each task in
the calling thread at submission, one at a time, so debuggers and breakpoints work.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing
import multiprocessing.connection
import queue
import signal
import time
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from ..store import Store
from .base import Executor, Job, Outcome, execute


class InlineExecutor(Executor):
    """Runs each job in the calling thread as it is submitted."""

    def __init__(self) -> None:
        super().__init__()
        self._done: list[Outcome] = []

    def submit(self, job: Job) -> None:
        assert self.store is not None
        self._done.append(execute(job, self.store))

    def wait(self) -> list[Outcome]:
        done, self._done = self._done, []
        return done


class ThreadExecutor(Executor):
    """Runs jobs on a pool of threads in this process."""

    def __init__(self) -> None:
        super().__init__()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()

    def start(self, store: Store, workers: int) -> None:
        super().start(store, workers)
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, "pyperunner")

    def submit(self, job: Job) -> None:
        assert self._pool is not None and self.store is not None
        store = self.store
        self._pool.submit(lambda: self._done.put(execute(job, store)))

    def wait(self) -> list[Outcome]:
        done = [self._done.get()]
        while not self._done.empty():
            done.append(self._done.get())
        return done

    def shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)


class ProcessExecutor(Executor):
    """Runs every job in a process of its own, forked from the runner."""

    def __init__(self) -> None:
        super().__init__()
        self._ctx = multiprocessing.get_context("fork")
        self._running: dict[Connection, tuple[Job, BaseProcess, float]] = {}

    def start(self, store: Store, workers: int) -> None:
        super().start(store, workers)
        import joblib  # noqa: F401  (imported once here, so no forked worker pays for it)

    def submit(self, job: Job) -> None:
        assert self.store is not None
        receiver, sender = self._ctx.Pipe(duplex=False)
        process = self._ctx.Process(
            target=_worker_main, args=(job, self.store, sender), daemon=True
        )
        started = time.time()
        process.start()
        sender.close()
        self._running[receiver] = (job, process, started)

    def wait(self) -> list[Outcome]:
        by_sentinel = {proc.sentinel: conn for conn, (_, proc, _) in self._running.items()}
        ready = multiprocessing.connection.wait([*self._running, *by_sentinel])
        conns = {by_sentinel.get(obj, obj) for obj in ready}
        return [self._collect(conn) for conn in conns]  # type: ignore[arg-type]

    def _collect(self, conn: Connection) -> Outcome:
        job, process, started = self._running.pop(conn)
        outcome: Outcome | None = None
        try:
            if conn.poll():
                outcome = conn.recv()
        except (EOFError, OSError):
            outcome = None
        finally:
            conn.close()
        process.join()
        if outcome is None:
            outcome = Outcome(job.name, started, time.time(), _death_message(process.exitcode))
        return outcome

    def shutdown(self) -> None:
        for conn, (_, process, _) in list(self._running.items()):
            process.kill()
            process.join()
            conn.close()
        self._running.clear()


def _worker_main(job: Job, store: Store, sender: Connection) -> None:
    sender.send(execute(job, store))
    sender.close()


def _death_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process was killed by {name}"
    return f"worker process exited with code {exitcode} before reporting a result"
