"""The executors that run tasks in the runner's own process: ``thread`` and ``inline``.

``thread`` suits I/O-bound tasks; a thread cannot be killed, so a timed-out one is reported and
left to finish in the background. ``inline`` runs each task in the calling thread at
submission, one at a time, so debuggers and breakpoints work; its timeouts use ``SIGALRM`` and
so hold only on the main thread. Either way the processes a task starts and leaves running end
when the run does (see :class:`_InProcess`).
"""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import queue
import signal
import sys
import threading
import time
import weakref
from collections.abc import Collection, Iterator, Mapping
from typing import TYPE_CHECKING

from ..logs import belonging_to, current_run
from ..store import Store
from .base import (
    Executor,
    Job,
    Outcome,
    Running,
    TaskTimeoutError,
    execute,
    failed,
    timed_out,
    wait_time,
)
from .posix import KILL_GRACE, children_but, descendants, end_children, subreaper

if TYPE_CHECKING:
    from multiprocessing.pool import Pool


class _InProcess(Executor):
    """Runs jobs in the runner's process; processes its tasks start end when it shuts down.

    While it runs, the process adopts the orphans of its descendants (Linux), so that a daemon
    a task detached (forked twice, ``setsid``) is found and ended too; the processes it had
    before, and theirs, are left alone, and so are the ``multiprocessing`` pools it had.
    """

    def __init__(self) -> None:
        super().__init__()
        self._before: set[int] | None = None  # while started: the processes below this one
        self._pools_before: weakref.WeakSet[Pool] = weakref.WeakSet()
        self._was_subreaper: bool | None = None

    def start(self, store: Store, workers: int, jobs: Mapping[str, Job] | None = None) -> None:
        super().start(store, workers, jobs)
        self._before = descendants()
        self._pools_before = weakref.WeakSet(_process_pools(among=self._before))
        self._was_subreaper = subreaper(True)

    def shutdown(self) -> list[str]:
        if self._before is not None:
            if left := children_but(self._before):
                _end_pools(self._pools_before, left)
                end_children(exclude=self._before)
            if self._was_subreaper is False:  # after the ending: what it orphans comes here
                subreaper(False)
            self._before = None
            self._pools_before.clear()
        return []


def _process_pools(among: Collection[int]) -> list[Pool]:
    """The ``multiprocessing`` pools of processes in this process, looked for only if one of the
    processes ``among`` (pids) is a ``multiprocessing`` child of it, as a pool's workers are:
    the search walks every object the garbage collector tracks (some 0.6 s for a million)."""
    pools = sys.modules.get("multiprocessing.pool")
    if pools is None or not {p.pid for p in multiprocessing.active_children()} & set(among):
        return []
    return [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, pools.Pool) and not isinstance(obj, pools.ThreadPool)
    ]


def _end_pools(before: weakref.WeakSet[Pool], left: list[int]) -> None:
    """Terminate the ``multiprocessing`` pools made since ``before`` while their workers, among
    the processes ``left``, live.

    Killed first, a worker that held the pool's queue lock (an idle one waits for a task with
    it) never gives it back, and the pool's exit handler, which takes that lock, waits for ever
    at the interpreter's exit. ``Pool.terminate`` runs that handler now, and once only; it gets
    ``KILL_GRACE`` seconds, as it waits for workers that may ignore its SIGTERM: what is left
    then is killed with the other processes."""
    ending = [
        threading.Thread(target=pool.terminate, name="pyperunner:end-pool", daemon=True)
        for pool in _process_pools(among=left)
        if pool not in before
    ]
    for thread in ending:
        thread.start()
    deadline = time.monotonic() + KILL_GRACE
    for thread in ending:
        thread.join(max(0.0, deadline - time.monotonic()))


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
    """Raise ``TaskTimeoutError`` in the main thread after ``seconds`` (``SIGALRM``)."""
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


class ThreadExecutor(_InProcess):
    """Runs every job on a daemon thread of this process."""

    def __init__(self) -> None:
        super().__init__()
        self._done: queue.SimpleQueue[tuple[Running, Outcome]] = queue.SimpleQueue()
        self._running: dict[str, Running] = {}

    def submit(self, job: Job) -> None:
        assert self.store is not None
        store, running = self.store, Running.now(job)
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
