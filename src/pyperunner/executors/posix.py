"""What the executors need of the operating system: process groups, signals, pidfds, ``/proc``.

Linux gives the most (pidfds, a child subreaper, ``/proc`` listing each process's children);
elsewhere each helper does what the system allows and says so: :func:`pidfd` gives None,
:func:`subreaper` None, :func:`children` nothing.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import select
import signal
import threading
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Protocol

KILL_GRACE = 1.0
"""Seconds a stopped process group gets between SIGTERM and SIGKILL."""

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
"""The signals that stop a run (the runner's handlers for them raise)."""

PR_SET_CHILD_SUBREAPER = 36
PR_GET_CHILD_SUBREAPER = 37
"""Linux ``prctl`` options (``<linux/prctl.h>``): adopt the orphans of one's descendants."""


class Joinable(Protocol):
    """A process this one may wait for: a ``multiprocessing`` process, or one a fork server
    forked (:class:`.forkserver.Served`)."""

    @property
    def pid(self) -> int | None: ...

    def join(self, timeout: float | None = None) -> object: ...


def pidfd(pid: int) -> int | None:
    """A pidfd of process ``pid``: readable once it ended, and unlike a pipe not held open by
    its children. None where the system has none (not Linux, Linux before 5.3, a seccomp filter
    that refuses ``pidfd_open``)."""
    pidfd_open = getattr(os, "pidfd_open", None)
    if pidfd_open is None:
        return None
    try:
        return pidfd_open(pid)  # type: ignore[no-any-return]
    except OSError:
        return None


def readable(fd: int, timeout: float | None = 0) -> bool:
    """Whether ``fd`` has something to read (or is at its end), waiting up to ``timeout``
    seconds (None: for ever); cheaper than ``multiprocessing.connection.wait``, which builds a
    selector each call, and a run looks several times a task."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else math.ceil(timeout * 1000)))


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Defer the stop signals while forking: Python runs fork hooks, and an exception a signal
    handler raises in one is lost ("Exception ignored"); deferred, it is raised right after. An
    ignored signal (``nohup``) stays ignored."""
    if threading.current_thread() is not threading.main_thread():
        yield  # handlers run on the main thread, not in this thread's fork hooks
        return
    caught: list[int] = []
    held = [s for s in STOP_SIGNALS if signal.getsignal(s) not in (None, signal.SIG_IGN)]
    previous = {sig: signal.signal(sig, lambda signum, _: caught.append(signum)) for sig in held}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in caught:
            signal.raise_signal(signum)


def own_group(pid: int) -> None:
    """Make ``pid`` (0: this process) lead a new process group; done on both sides of a fork."""
    with contextlib.suppress(OSError):
        os.setpgid(pid, 0)


def kill_group(pid: int | None, sig: int) -> None:
    """Send ``sig`` to the process group ``pid`` leads, if it is still there (a process object's
    ``pid``: None until it started)."""
    if pid is not None:
        with contextlib.suppress(OSError):
            os.killpg(pid, sig)


def stop_groups(processes: Sequence[Joinable]) -> None:
    """SIGTERM the process groups these processes lead, all at once, then SIGKILL what is left
    of them after ``KILL_GRACE`` seconds, and see them end."""
    for process in processes:
        kill_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + KILL_GRACE
    for process in processes:
        process.join(max(0.0, deadline - time.monotonic()))
    for process in processes:
        kill_group(process.pid, signal.SIGKILL)
        process.join()


def subreaper(on: bool) -> bool | None:
    """Make this process adopt its descendants' orphans, or stop (Linux); return whether it did
    before (None where it cannot)."""
    import ctypes

    prctl, was = _prctl(), ctypes.c_int()
    if prctl is None or prctl(PR_GET_CHILD_SUBREAPER, ctypes.byref(was), 0, 0, 0) != 0:
        return None
    prctl(PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)
    return bool(was.value)


def can_adopt_orphans() -> bool:
    """Whether :func:`subreaper` works here. Asked once in the runner, the answer is inherited:
    forked workers then neither load ctypes nor look at ``/proc``."""
    return _prctl() is not None


@functools.cache
def _prctl() -> Callable[..., int] | None:
    """libc's ``prctl``; None without it, or where ``/proc`` cannot list the orphans adopted."""
    if not os.path.isdir("/proc/self/task"):
        return None
    import ctypes

    try:
        return ctypes.CDLL(None).prctl  # type: ignore[no-any-return]
    except (OSError, AttributeError):
        return None


def children(pid: int | None = None) -> list[int]:
    """The children of process ``pid`` (None: this one) (Linux; none where ``/proc`` does not
    list them).

    ``/proc`` lists a process's children by the thread that forked them. The children of a
    thread that ends go to the main thread, which is read last so that none is missed."""
    pid = os.getpid() if pid is None else pid
    pids: list[int] = []
    with contextlib.suppress(OSError):  # the process ended
        threads = sorted(os.listdir(f"/proc/{pid}/task"), key=lambda tid: tid == str(pid))
        for thread in threads:
            with (
                contextlib.suppress(OSError),  # the thread ended
                open(f"/proc/{pid}/task/{thread}/children") as listed,
            ):
                pids.extend(int(child) for child in listed.read().split())
    return pids


def descendants() -> set[int]:
    """The processes below this one, all generations."""
    found: set[int] = set()
    below = children()
    while below:
        pid = below.pop()
        if pid not in found:
            found.add(pid)
            below.extend(children(pid))
    return found


def children_but(exclude: Collection[int]) -> list[int]:
    """This process's children but ``exclude``."""
    try:  # without children, skip /proc: reading it makes this process's exit slower
        os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return []
    return [pid for pid in children() if pid not in exclude]


def end_children(exclude: Collection[int] = ()) -> None:
    """Kill every child process but ``exclude`` (and, in a subreaper, the orphans that come
    back), and reap them: what tasks started and left running."""
    while left := children_but(exclude):
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        for pid in left:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
