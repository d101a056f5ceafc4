"""The scheduler loop: run planned tasks as soon as their parents are done, within a limit.

It keeps a ready set of tasks whose parents have all succeeded, hands them to an executor up to
``workers`` at a time, and blocks on the executor for outcomes (no polling). A failed attempt is
retried after the task's ``retry_delay`` while ``retries`` last; a task that finally fails marks
everything downstream CANT_RUN, and independent branches carry on to the end, unless
``fail_fast`` stops launching new tasks. SIGINT, SIGTERM and SIGHUP stop the run: running
workers are stopped and recorded INTERRUPTED, and :class:`RunInterrupted` carries the records out.

A task that finds a parent's stored result gone (deleted by hand, or by gc where the run could
not hold it) does not run: the parent runs again first (also a cached one), then the task (the
launch that found the result gone counts as one of its attempts); so does a task whose own result
is gone before the run could hold it. A task runs again for its result at most
``VANISHED_LIMIT`` times a run, so that a store that keeps losing results cannot keep a run going.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import heapq
import itertools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from .dag import GraphLike, descendants
from .executors import Executor, Job, Outcome
from .holds import Holds
from .plan import Plan
from .status import Status, TaskRun
from .store import Checked

Listener = Callable[[str, TaskRun], None]
VANISHED = "its stored result vanished during the run"
"""Why a task runs again: its result was deleted (by hand, or by gc where the run could not hold
it: beyond its room for holds, on a store without locks) before all its children read it."""
VANISHED_LIMIT = 5
"""How many times one task runs again in a run because its stored result vanished; after that,
the task that needed it fails, as something keeps deleting the results the run reads."""
_NO_OUTPUT = (Status.FAILURE, Status.CANT_RUN)

log = logging.getLogger()


def _vanished_too_often(name: str) -> str:
    return (
        f"the stored result of {name} vanished during the run {VANISHED_LIMIT + 1} times; "
        "something keeps deleting the results this run reads"
    )


class RunInterrupted(BaseException):
    """The run was stopped by a signal; ``runs`` holds every task's record at that moment.

    Further SIGINT and SIGTERM are ignored, so that the run can be recorded, until
    :meth:`restore_signals` is called.
    """

    def __init__(
        self, signum: int, runs: Mapping[str, TaskRun], restore_signals: Callable[[], None]
    ) -> None:
        super().__init__(f"run interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.runs = dict(runs)
        self.restore_signals = restore_signals


class _Signalled(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C's ``KeyboardInterrupt``: an inline task does not take it for
    its own failure."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


_replaced: list[dict[int, Any]] = []
"""The SIGTERM (and SIGHUP) handlers that ``_sigterm_interrupts`` replaced, while in force."""


def _stop_signals() -> list[int]:
    """SIGTERM, and SIGHUP (the terminal closed) unless it is ignored (``nohup``)."""
    hangup = getattr(signal, "SIGHUP", None)
    if hangup is None or signal.getsignal(hangup) is signal.SIG_IGN:
        return [signal.SIGTERM]
    return [signal.SIGTERM, hangup]


@contextlib.contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into an exception while the loop runs (SIGINT already raises
    one)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise _Signalled(signum)

    _replaced.append({sig: signal.signal(sig, handler) for sig in _stop_signals()})
    try:
        yield
    finally:
        for sig, previous in _replaced.pop().items():
            signal.signal(sig, previous)


_held = threading.local()
"""``mask``: the signal mask a thread forking while a run is on had before the fork."""


def _hold_stop_signals() -> None:
    """Before a fork while a run is on: block SIGTERM and SIGHUP in the forking thread, so
    that the child starts with them blocked, until :func:`_sigterm_as_before` has put their
    handlers back. A child starts with the runner's handlers, which only note a signal for
    Python code to act on later; one that came before that (``Pool.terminate``'s SIGTERM to a
    worker still starting) was lost: its handler raised inside the child's fork hooks, which
    swallow exceptions, or was no longer there when Python looked. Blocked, it waits, and
    then does what it did before the run."""
    if _replaced:
        _held.mask = signal.pthread_sigmask(signal.SIG_BLOCK, list(_replaced[-1]))


def _release_stop_signals() -> None:
    """After a fork (both sides): the forking thread's signal mask as it was before it."""
    mask = getattr(_held, "mask", None)
    if mask is not None:
        _held.mask = None
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)


def _sigterm_as_before() -> None:
    """In a process forked while a run is on (a task's ``multiprocessing`` pool, say), SIGTERM
    does what it did before the run, usually end it: the runner's handler would raise in code
    that does not expect it, and ``Pool.terminate`` would then wait forever for its workers.
    A SIGTERM or SIGHUP that came since the fork was held (see :func:`_hold_stop_signals`)
    and arrives now, to the handler it would have had without pyperunner."""
    try:
        for sig, previous in (_replaced[-1] if _replaced else {}).items():
            with contextlib.suppress(ValueError, TypeError):  # not the main thread; not Python's
                signal.signal(sig, previous)
    finally:  # never left blocked: the child would then ignore them for good
        _release_stop_signals()


os.register_at_fork(
    before=_hold_stop_signals,
    after_in_parent=_release_stop_signals,
    after_in_child=_sigterm_as_before,
)


def run_plan(
    graph: GraphLike,
    plan: Plan,
    jobs: Mapping[str, Job],
    executor: Executor,
    workers: int,
    holds: Holds,
    on_change: Listener = lambda name, run: None,
    fail_fast: bool = False,
) -> dict[str, TaskRun]:
    """Execute ``plan`` over ``graph`` with ``executor``; return every task's record.

    ``jobs`` has one for every task of the graph: a cached task whose stored result vanishes
    during the run runs too. ``holds`` keeps the results the run reads from gc.
    """
    loop = _Loop(graph, plan, dict(jobs), executor, workers, holds, on_change, fail_fast)
    try:
        with _sigterm_interrupts():
            loop.run()
    except (KeyboardInterrupt, _Signalled) as exc:
        signum = exc.signum if isinstance(exc, _Signalled) else signal.SIGINT
        restore = _ignore_signals()
        try:
            loop.interrupt()
        except BaseException:
            restore()  # else the signals stay ignored in this process and every child
            raise
        raise RunInterrupted(signum, loop.runs, restore) from None
    except BaseException:
        executor.shutdown()
        raise
    return loop.runs


@contextlib.contextmanager
def preparing(runs: Callable[[], Mapping[str, TaskRun]]) -> Iterator[None]:
    """While a run gets ready (plans, forks workers), SIGINT and SIGTERM raise
    :class:`RunInterrupted` with ``runs()`` as the record, as they do once tasks run."""
    try:
        with _sigterm_interrupts():
            yield
    except KeyboardInterrupt as exc:  # _Signalled too
        signum = exc.signum if isinstance(exc, _Signalled) else signal.SIGINT
        raise RunInterrupted(signum, runs(), _ignore_signals()) from None


def _ignore_signals() -> Callable[[], None]:
    """Ignore SIGINT and SIGTERM (main thread only); return what puts their handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    stopping = (signal.SIGINT, *_stop_signals())
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in stopping}

    def restore() -> None:
        for sig, handler in previous.items():
            signal.signal(sig, handler)

    return restore


@dataclasses.dataclass
class _Loop:
    graph: GraphLike
    plan: Plan
    jobs: dict[str, Job]
    executor: Executor
    workers: int
    holds: Holds
    on_change: Listener
    fail_fast: bool

    def __post_init__(self) -> None:
        self.runs = {name: _cached(self.plan.found.get(name)) for name in self.plan.cached}
        for name, reason in self.plan.reasons.items():
            self.runs[name] = TaskRun(Status.NOT_STARTED, self.plan.why.get(name, reason.value))
        self.waiting = {  # the parents each task that runs waits for
            name: {p for p in self.graph.predecessors(name) if p in self.plan.reasons}
            for name in self.plan.reasons
        }
        self.ready = collections.deque(n for n in self.plan.to_run if not self.waiting[n])
        self.retry_at: list[tuple[float, str]] = []
        self.running = 0
        self.stopping = False
        self.again: collections.Counter[str] = collections.Counter()  # see _compute_again
        self.clock = itertools.count()  # orders launches and stores, see _inputs_vanished
        self.launched: dict[str, int] = {}
        self.stored: dict[str, int] = {}

    def run(self) -> None:
        while self.ready or self.running or self.retry_at:
            self._launch()
            if not self.running and not self.retry_at:
                break
            for outcome in self.executor.wait(self._next_retry_in()):
                self.running -= 1
                self._finished(outcome)
            self._release_due_retries()

    def _tell(self, name: str, run: TaskRun) -> None:
        """A task's status changed: the holds follow what it reads, the listener is told."""
        self.holds.track(name, run.status)
        self.on_change(name, run)

    def _launch(self) -> None:
        while self.ready and self.running < self.workers and not self.stopping:
            name = self.ready.popleft()
            run = self.runs[name]
            if run.status is not Status.NOT_STARTED:  # CANT_RUN since it was queued
                continue
            run.status, run.attempts = Status.RUNNING, run.attempts + 1
            run.started, run.finished = time.time(), None
            self.launched[name] = next(self.clock)
            self._tell(name, run)
            self.executor.submit(dataclasses.replace(self.jobs[name], attempt=run.attempts))
            self.running += 1

    def _finished(self, outcome: Outcome) -> None:
        name, run = outcome.name, self.runs[outcome.name]
        run.started, run.finished = outcome.started, outcome.finished
        run.error, run.traceback = outcome.error, outcome.traceback
        run.output_bytes, run.preview = outcome.output_bytes, outcome.preview
        if outcome.vanished:
            self._inputs_vanished(name, outcome.vanished)
        elif not outcome.ok:
            self._failed(name, outcome.retryable)
        elif self.holds.keep(name, outcome.hold) or self.stopping:
            self._stored(name, outcome.reused)
        elif not self._compute_again(name):  # gone before the run could hold it
            run.error = _vanished_too_often(name)
            self._failed(name, retryable=True)

    def _stored(self, name: str, reused: bool) -> None:
        """``name`` stored its result: the tasks that waited only for it are ready."""
        run = self.runs[name]
        run.status = Status.CACHED if reused else Status.SUCCESS
        if reused and run.reason:  # planned to run, then found stored for its key
            run.reason += "; found stored for this key when it was about to run, so reused"
        self.stored[name] = next(self.clock)
        self._tell(name, run)
        for child in self.graph.successors(name):
            waiting = self.waiting.get(child)
            if waiting is not None and name in waiting:
                waiting.remove(name)
                if not waiting:
                    self.ready.append(child)

    def _failed(self, name: str, retryable: bool) -> None:
        run = self.runs[name]
        task = self.jobs[name].task
        if run.attempts <= task.retries and not retryable:
            log.warning("%s is not retried: its attempt still runs in a thread", name)
        if run.attempts <= task.retries and not self.stopping and retryable:
            log.warning(
                "%s failed on attempt %d of %d (%s); retrying in %g s",
                name,
                run.attempts,
                task.retries + 1,
                run.error,
                task.retry_delay,
            )
            run.status = Status.NOT_STARTED
            self._tell(name, run)
            heapq.heappush(self.retry_at, (time.monotonic() + task.retry_delay, name))
            return
        run.status = Status.FAILURE
        self._tell(name, run)
        self._cant_run_below(name)
        if self.fail_fast:
            self._stop_launching()

    def _inputs_vanished(self, name: str, parents: tuple[str, ...]) -> None:
        """``name`` did not run, as the stored results of ``parents`` were gone: it runs once
        each is stored again, computed again unless that happened since ``name`` started."""
        run = self.runs[name]
        for parent in parents:
            if self.stopping:
                break
            if self.runs[parent].status.has_output:
                if self.stored.get(parent, -1) > self.launched[name]:
                    continue  # stored again meanwhile: it reads that one
                if not self._compute_again(parent):
                    run.error = _vanished_too_often(parent)
                    self._failed(name, retryable=True)
                    return
            self.waiting[name].add(parent)
        self._requeue(name)

    def _compute_again(self, name: str) -> bool:
        """Run ``name`` again, its stored result having vanished; False (and nothing done) once
        that happened ``VANISHED_LIMIT`` times: something keeps deleting results."""
        if self.again[name] >= VANISHED_LIMIT:
            return False
        self.again[name] += 1
        log.warning("The stored result of %s vanished during the run; computing it again", name)
        self.runs[name].reason = VANISHED
        self.waiting[name] = set()
        for parent in self.graph.predecessors(name):
            if not self.runs[parent].status.has_output:  # computed again itself, or failed
                self.waiting[name].add(parent)
            else:
                self.holds.take(parent)  # if it is gone too, name finds out when it runs
        self._requeue(name)
        return True

    def _requeue(self, name: str) -> None:
        """Put ``name`` back to run once the parents it waits for are stored; if one of its
        parents failed (while it was computed again), it can't run."""
        run = self.runs[name]
        run.status, run.error, run.traceback = Status.NOT_STARTED, None, None
        failed = [p for p in self.graph.predecessors(name) if self.runs[p].status in _NO_OUTPUT]
        if failed:
            self._cant_run_below(failed[0])
            return
        self._tell(name, run)
        if not self.waiting[name] and not self.stopping:
            self.ready.append(name)

    def _cant_run_below(self, name: str) -> None:
        for below in descendants(self.graph, name):
            run = self.runs[below]
            if run.status is Status.NOT_STARTED:
                run.status = Status.CANT_RUN
                run.error = f"upstream task {name} failed"
                self._tell(below, run)

    def _stop_launching(self) -> None:
        self.stopping = True
        self.ready.clear()
        for _, name in self.retry_at:
            self.runs[name].status = Status.FAILURE
            self._tell(name, self.runs[name])
            self._cant_run_below(name)
        self.retry_at.clear()

    def _next_retry_in(self) -> float | None:
        if not self.retry_at:
            return None
        return max(0.0, self.retry_at[0][0] - time.monotonic())

    def _release_due_retries(self) -> None:
        now = time.monotonic()
        while self.retry_at and self.retry_at[0][0] <= now:
            _, name = heapq.heappop(self.retry_at)
            self.ready.append(name)

    def interrupt(self) -> None:
        """Stop every running worker and record the tasks they ran as INTERRUPTED."""
        self.executor.shutdown()
        for name, run in self.runs.items():
            if run.status is Status.RUNNING:
                run.status, run.finished = Status.INTERRUPTED, time.time()
                run.error = "interrupted"
                self._tell(name, run)


def _cached(found: Checked | None) -> TaskRun:
    """The record of a task whose stored result the plan found: its size and preview too."""
    if found is None:
        return TaskRun(Status.CACHED)
    return TaskRun(Status.CACHED, output_bytes=found.size, preview=found.preview)
