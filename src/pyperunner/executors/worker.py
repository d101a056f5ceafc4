"""A worker process of the process executor: what runs in it, and what it says to the runner.

See :mod:`.process` for where a worker stands among the processes of a run, the messages and
its life. This module holds the messages a worker takes and sends (and the runner's end of
reading them), the shared memory in which it marks the jobs it takes (:class:`Known`), its
loop (:func:`worker_main`) and what a reused worker puts back between jobs (:class:`_CleanState`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import mmap
import multiprocessing
import os
import pickle
import resource
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable, Mapping
from multiprocessing.connection import Connection
from typing import NamedTuple

from ..logs import forward_records, handle_forwarded
from ..output import ProcessOutput, output_busy
from ..storage import Hold
from ..store import Store
from .base import Job, Outcome, execute
from .posix import end_children, own_group, readable, subreaper

# --------------------------------------------------------------------------- messages


class JobByName(NamedTuple):
    """Runner to worker: run attempt ``attempt`` of job ``name``, one the worker holds (of the
    jobs the executor's ``start`` was told of)."""

    name: str
    attempt: int


class NoMoreJobs(NamedTuple):
    """Runner to worker: exit, no job is coming."""


class Report(NamedTuple):
    """Worker to runner: a job's ``outcome``, whether the worker takes ``more`` jobs, and
    whether the hold on the job's result follows (``held``, see :func:`send_hold`)."""

    outcome: Outcome
    more: bool
    held: bool = False


ToWorker = JobByName | NoMoreJobs
"""What the runner sends a worker."""
FromWorker = Report | logging.LogRecord
"""What a worker sends: each record its task logs (its output as lines, too), then a report."""

_HOLD_BYTE = b"h"
"""What carries the hold's file descriptor (``SCM_RIGHTS`` needs a byte of data to ride on)."""


def send_hold(conn: Connection, fd: int) -> None:
    """Pass the open file ``fd`` to the runner over the worker's connection, a Unix socket
    (``SCM_RIGHTS``): the runner's copy then holds the same lock."""
    with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        socket.send_fds(sock, [_HOLD_BYTE], [fd])


def receive_report(conn: Connection) -> Report | None:
    """In the runner: log what a worker sent up to its report, and return that, if it came."""
    while readable(conn.fileno()):
        message: FromWorker = conn.recv()
        if isinstance(message, Report):
            return message
        handle_forwarded(message)
    return None


def forward_last_words(conn: Connection) -> None:
    """In the runner: log what a stopped worker sent before it ended (its last lines, see
    :func:`_last_words`); a hold behind its report goes with the connection."""
    with contextlib.suppress(Exception):  # a message cut off by the kill ends it
        receive_report(conn)


def receive_hold(conn: Connection) -> Hold | None:
    """In the runner: the hold a worker passed behind its report; None if it died first."""
    try:
        with socket.fromfd(conn.fileno(), socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            fds = socket.recv_fds(sock, len(_HOLD_BYTE), 1)[1]
    except OSError:
        return None
    return Hold(fds[0]) if fds else None


# --------------------------------------------------------------------------- the jobs it takes


class Known:
    """The jobs ``start`` was told of, and which attempt of each a worker took last.

    A worker marks a job taken in memory it shares with the runner (forked from it), which
    looks only if the worker dies: a message would wake the runner once more every task."""

    _ATTEMPT = struct.Struct("i")

    def __init__(self, jobs: Mapping[str, Job]) -> None:
        self.jobs = jobs
        self._slots = {name: i * self._ATTEMPT.size for i, name in enumerate(jobs)}
        size = max(1, len(jobs)) * self._ATTEMPT.size  # mmap cannot map 0 bytes
        self._taken = mmap.mmap(-1, size)  # anonymous and shared: forks see each other's marks

    def take(self, name: str, attempt: int) -> Job:
        """In a worker: job ``name``, attempt ``attempt``, which it now runs."""
        job = self.jobs[name]
        self._ATTEMPT.pack_into(self._taken, self._slots[name], attempt)
        return job if job.attempt == attempt else dataclasses.replace(job, attempt=attempt)

    def taken(self, job: Job) -> bool:
        """Whether a worker took this attempt at ``job`` (by name and attempt)."""
        slot = self._slots.get(job.name)
        return slot is not None and self._ATTEMPT.unpack_from(self._taken, slot)[0] == job.attempt


# --------------------------------------------------------------------------- its loop


def worker_main(
    job: Job | None,
    store: Store,
    conn: Connection,
    known: Known,
    max_tasks: int | None,
    max_growth: int,
    runner: int | None = None,
) -> None:
    """A worker's life: run ``job`` (None: wait to be sent one), then each job sent, reporting
    each, until ``max_tasks`` or a reason to retire; ``runner`` is a pidfd of the runner (None:
    the runner is this process's parent)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)  # not the runner's, which came along
    own_group(0)
    # What the worker writes goes to its file descriptors, which it logs: not to a notebook,
    # where a kernel's sys.stdout and sys.stderr would send it in a worker forked from it.
    sys.stdout, sys.stderr = sys.__stdout__ or sys.stdout, sys.__stderr__ or sys.stderr
    lock = threading.Lock()  # the task's own threads may log while this one reports

    def send(message: FromWorker) -> None:
        with lock:
            conn.send_bytes(pickle.dumps(message))  # multiprocessing's own pickler is slower

    def report(outcome: Outcome, more: bool) -> None:
        """Send the job's report and, right behind it, the hold on its result: the runner has
        the result held before this worker lets go of it."""
        fd = None if outcome.hold is None else outcome.hold.fd
        with lock:
            conn.send_bytes(pickle.dumps(Report(outcome, more, held=fd is not None)))
            if fd is not None:
                send_hold(conn, fd)
        outcome.release()

    done = 0
    adopts_orphans = subreaper(True) is not None
    with (
        forward_records(send) as forwarding,
        ProcessOutput(forwarding.emit, _lifeline(runner)) as output,
    ):
        signal.signal(signal.SIGTERM, functools.partial(_last_words, lock, output))
        clean = _CleanState(max_growth, output.thread) if max_tasks != 1 else None
        while job is not None or (job := _next_job(conn, known)) is not None:
            with output.task(job.name):
                outcome = execute(job, store)
            done += 1
            if adopts_orphans:  # also what left the worker's process group (setsid)
                end_children()
            more = clean is not None and adopts_orphans and done != max_tasks and clean.restore()
            report(outcome, more)
            if not more:
                break
            job = None
        # at once: threads a task left running must not keep the worker alive, and undoing
        # the routing of its output and log records would only cost time
        os._exit(0)


def served_worker(
    store: Store,
    known: Known,
    max_tasks: int | None,
    max_growth: int,
    named: JobByName | None,
    conn: Connection,
    runner: int,
) -> None:
    """A worker the fork server forked: ``named`` is the job it runs at once, if any."""
    job = None if named is None else known.take(named.name, named.attempt)
    worker_main(job, store, conn, known, max_tasks, max_growth, runner)


def _next_job(conn: Connection, known: Known) -> Job | None:
    """Wait for the next job from the runner and mark it taken; None when there are none, or
    the runner has closed its end (it gave up on a worker whose fork server died)."""
    try:
        message: ToWorker = pickle.loads(conn.recv_bytes())
    except EOFError:
        return None
    if isinstance(message, NoMoreJobs):
        return None
    return known.take(message.name, message.attempt)


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


def _lifeline(runner: int | None) -> dict[int, Callable[[], None]]:
    """What ends this worker's whole process group once the runner dies (even by SIGKILL):
    ``runner`` is a pidfd of it, else (None) the runner is this process's parent, whose end of
    the pipe ``multiprocessing`` gave it closes when it dies."""
    parent = multiprocessing.parent_process()
    watched = runner if runner is not None else parent.sentinel  # type: ignore[union-attr]
    return {watched: functools.partial(os.killpg, 0, signal.SIGKILL)}


# --------------------------------------------------------------------------- between jobs


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

_RESOURCES = [getattr(resource, name) for name in dir(resource) if name.startswith("RLIMIT_")]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _limits() -> dict[int, tuple[int, int]]:
    """This process's resource limits (``ulimit``)."""
    return {kind: resource.getrlimit(kind) for kind in _RESOURCES}


def _resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
