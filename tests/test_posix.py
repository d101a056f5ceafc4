"""Tests for the executors' operating-system helpers (``executors/posix.py``): pidfds, polling
one descriptor, holding the stop signals, process groups, the child subreaper and ``/proc``'s
lists of children. Real processes throughout; every wait is on an event, and bounded.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import threading
from multiprocessing.synchronize import Event

import pytest
from conftest import double_fork_sleeper
from test_faults import is_gone, wait_gone

from pyperunner.executors import posix
from pyperunner.executors.posix import (
    children,
    children_but,
    descendants,
    end_children,
    kill_group,
    own_group,
    pidfd,
    readable,
    signals_held,
    stop_groups,
    subreaper,
)

CTX = multiprocessing.get_context("fork")
WAIT = 10.0
"""Seconds any wait here may take at most before the test fails."""


# --------------------------------------------------------------------------- pidfds, polling


def test_a_pidfd_becomes_readable_when_its_process_ends():
    child = subprocess.Popen(["cat"], stdin=subprocess.PIPE)
    fd = pidfd(child.pid)
    assert fd is not None
    try:
        assert not readable(fd)
        child.stdin.close()  # type: ignore[union-attr]
        assert readable(fd, WAIT)
        assert child.wait() == 0
    finally:
        os.close(fd)


def test_without_pidfds_there_is_none(without_pidfds):
    assert pidfd(os.getpid()) is None


def test_readable_tells_of_data_and_of_the_end_of_a_pipe():
    read_end, write_end = os.pipe()
    try:
        assert not readable(read_end)
        os.write(write_end, b"x")
        assert readable(read_end)
        os.read(read_end, 1)
        assert not readable(read_end, 0.0)
        os.close(write_end)
        assert readable(read_end, WAIT)  # at its end
    finally:
        os.close(read_end)


# --------------------------------------------------------------------------- signals


@pytest.fixture
def caught() -> list[int]:
    """Stop signals this process got, recorded by handlers put in place for the test."""
    got: list[int] = []
    previous = {sig: signal.signal(sig, lambda s, _: got.append(s)) for sig in posix.STOP_SIGNALS}
    yield got
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def test_ctrl_c_while_a_worker_is_forked_is_handled_once_the_fork_is_done():
    reached = False
    with pytest.raises(KeyboardInterrupt), signals_held():  # around every fork
        os.kill(os.getpid(), signal.SIGINT)  # in a fork hook, its KeyboardInterrupt is lost
        reached = True
    assert reached


def test_held_signals_reach_their_handlers_once_released_which_are_put_back(caught):
    handlers = {sig: signal.getsignal(sig) for sig in posix.STOP_SIGNALS}
    with signals_held():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGHUP)
        assert caught == []
    assert sorted(caught) == sorted([signal.SIGTERM, signal.SIGHUP])
    assert {sig: signal.getsignal(sig) for sig in posix.STOP_SIGNALS} == handlers


def test_an_ignored_signal_stays_ignored_while_held():
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as under nohup
    try:
        with signals_held():
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_signals_are_not_held_off_the_main_thread(caught):
    """Handlers run on the main thread, never in another thread's fork hooks."""
    seen = []

    def hold() -> None:
        with signals_held():
            seen.append(signal.getsignal(signal.SIGTERM))

    before = signal.getsignal(signal.SIGTERM)
    thread = threading.Thread(target=hold)
    thread.start()
    thread.join(WAIT)
    assert seen == [before]


# --------------------------------------------------------------------------- process groups


def test_kill_group_ends_a_leader_and_what_it_started():
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            own_group(0)
            os.dup2(write_end, 1)
            os.execvp("sh", ["sh", "-c", "sleep 60 & echo $!; wait"])
        finally:
            os._exit(127)
    own_group(pid)  # on both sides of the fork: whichever comes first
    os.close(write_end)
    with os.fdopen(read_end) as started:
        grandchild = int(started.readline())
    assert os.getpgid(pid) == os.getpgid(grandchild) == pid
    kill_group(pid, signal.SIGKILL)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == -signal.SIGKILL
    assert wait_gone(grandchild, WAIT)
    kill_group(pid, signal.SIGKILL)  # a group that is gone: nothing to do
    kill_group(None, signal.SIGKILL)  # a process object not started yet


def stubborn(ready: Event, polite: bool) -> None:
    """Lead a group of its own, ignore SIGTERM unless ``polite``, say so, then wait."""
    own_group(0)
    if not polite:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    ready.set()
    threading.Event().wait(60)


class Watched:
    """A process whose waits are recorded (the seconds each ``join`` was given)."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process, self.pid = process, process.pid
        self.waits: list[float | None] = []

    def join(self, timeout: float | None = None) -> None:
        self.waits.append(timeout)
        self.process.join(timeout)


def test_stopped_groups_share_one_grace_period_then_what_is_left_is_killed(monkeypatch):
    monkeypatch.setattr(posix, "KILL_GRACE", 0.3)
    processes, readies = [], []
    for polite in (False, True, False):
        ready = CTX.Event()
        process = CTX.Process(target=stubborn, args=(ready, polite))
        process.start()
        own_group(process.pid)  # type: ignore[arg-type]
        processes.append(process)
        readies.append(ready)
    assert all(ready.wait(WAIT) for ready in readies)
    watched = [Watched(process) for process in processes]
    stop_groups(watched)
    assert [p.exitcode for p in processes] == [-signal.SIGKILL, -signal.SIGTERM, -signal.SIGKILL]
    graces = [w.waits[0] for w in watched]
    assert sum(graces) <= 0.3, graces  # (a grace each would be 0.9 s)
    assert [w.waits[1:] for w in watched] == [[None]] * 3  # after SIGKILL, until each ended


# --------------------------------------------------------------------------- children, orphans


def test_end_children_kills_and_reaps_the_children_but_those_excluded():
    kept = subprocess.Popen(["sleep", "60"])
    try:
        before = set(children())
        assert kept.pid in before and kept.pid in descendants()
        left = [subprocess.Popen(["sleep", "60"]).pid for _ in range(2)]
        assert sorted(children_but(before)) == sorted(left)
        end_children(exclude=before)
        for pid in left:  # reaped: not even a zombie is left
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
        assert kept.poll() is None and children_but(before) == []
    finally:
        kept.kill()
        kept.wait()


def test_a_subreaper_adopts_the_orphans_of_its_descendants():
    assert posix.can_adopt_orphans()
    before = set(children())
    was = subreaper(True)
    assert was is False
    try:
        orphan = double_fork_sleeper()  # its parent exited: it comes to this process
        assert orphan in children() and orphan in descendants()
        end_children(exclude=before)
        assert is_gone(orphan)
    finally:
        assert subreaper(False) is True
