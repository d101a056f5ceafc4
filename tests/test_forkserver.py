"""Tests for the fork server (``executors/forkserver.py``): a copy of the runner that forks
processes on request, tells the runner each one's pid (with a pidfd) and exit code in named
messages, and ends when told. How the process executor uses it (and goes on without it) is
tested with real runs in ``test_pool.py``; that it ends with a killed runner, in
``test_faults.py``.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
from collections.abc import Iterator
from multiprocessing.connection import Connection

import pytest
from conftest import parent_of
from test_faults import wait_gone

from pyperunner.executors import forkserver
from pyperunner.executors.forkserver import (
    Exited,
    ForkRequest,
    ForkServer,
    NoPidfds,
    Started,
    StopServing,
)
from pyperunner.executors.posix import readable

CTX = multiprocessing.get_context("fork")


def tell_then_exit(payload: object, conn: Connection, runner: int) -> None:
    """A served process: send what it was given and whether the runner's pidfd says the runner
    ended, then exit with the code the test sends back."""
    conn.send((payload, multiprocessing.current_process().name, readable(runner)))
    os._exit(conn.recv())


def fail(payload: object, conn: Connection, runner: int) -> None:
    raise ValueError(f"served {payload} failed")


@pytest.fixture
def server() -> Iterator[ForkServer]:
    served = ForkServer(CTX, tell_then_exit)
    yield served
    served.close()


def ask(server: ForkServer, payload: object, name: str) -> Connection:
    """Request process ``name``; return the runner's end of its pipe."""
    ours, theirs = CTX.Pipe()
    assert server.request(payload, theirs, name)
    theirs.close()
    return ours


# --------------------------------------------------------------------------- the wire


def test_every_message_is_a_named_type_in_a_packet_of_its_own_with_its_descriptor():
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    read_end, write_end = os.pipe()
    with ours, theirs:
        forkserver._send(ours, ForkRequest({"job": 1}, "Worker-3"), read_end)
        forkserver._send(ours, Started(41), write_end)
        forkserver._send(ours, Exited(41, -9))
        forkserver._send(ours, StopServing())
        request, fds = forkserver._receive(theirs)
        assert type(request) is ForkRequest and request == ForkRequest({"job": 1}, "Worker-3")
        assert len(fds) == 1 and os.path.sameopenfile(fds[0], read_end)
        started, (pipe_end,) = forkserver._receive(theirs)
        assert type(started) is Started and started.pid == 41
        assert forkserver._receive(theirs) == (Exited(41, -9), [])
        assert type(forkserver._receive(theirs)[0]) is StopServing
        ours.shutdown(socket.SHUT_WR)
        with pytest.raises(EOFError):
            forkserver._receive(theirs)
    for fd in (read_end, write_end, fds[0], pipe_end):
        os.close(fd)


# --------------------------------------------------------------------------- forks and exits


def test_requests_are_forked_in_the_order_asked_each_leading_a_group_of_its_own(server):
    first, second = ask(server, {"job": 1}, "Worker-1"), ask(server, None, "Worker-2")
    started = server.started(until="Worker-2")
    assert [process.name for process in started] == ["Worker-1", "Worker-2"]
    assert first.recv() == ({"job": 1}, "Worker-1", False)  # the runner lives
    assert second.recv() == (None, "Worker-2", False)
    for process in started:
        assert parent_of(process.pid) == server.process.pid
        assert os.getpgid(process.pid) == process.pid
        assert process.exitcode is None
    first.send(0)
    second.send(3)
    assert [process.join(10.0) for process in started] == [0, 3]
    assert [process.exitcode for process in started] == [0, 3]  # told once, kept


def test_a_released_process_is_reaped_by_the_server_its_exit_code_dropped(server):
    conn = ask(server, None, "Worker-1")
    (released,) = server.started(until="Worker-1")
    conn.recv()
    released.release()  # the runner stops watching it: it exits after its work
    conn.send(0)
    assert wait_gone(released.pid, 10.0)  # and the server reaped it: no zombie is left
    conn = ask(server, None, "Worker-2")  # the server goes on, the dropped exit read past
    (watched,) = server.started(until="Worker-2")
    conn.recv()
    conn.send(5)
    assert watched.join(10.0) == 5


def test_a_served_process_that_raises_exits_1_with_its_traceback(capfd):
    server = ForkServer(CTX, fail)
    try:
        _ours, theirs = CTX.Pipe()
        assert server.request("job-7", theirs, "Worker-9")
        (served,) = server.started(until="Worker-9")
        served.join(10.0)
        assert served.exitcode == 1
    finally:
        server.close()
    err = capfd.readouterr().err
    assert "Traceback" in err and "ValueError: served job-7 failed" in err


# --------------------------------------------------------------------------- its end


def test_a_fork_server_ends_when_told_even_while_a_later_fork_holds_its_socket():
    first = ForkServer(CTX, tell_then_exit)
    second = ForkServer(CTX, tell_then_exit)  # inherits first's socket
    closing = threading.Thread(target=first.close, daemon=True)
    closing.start()
    closing.join(10.0)
    second.close()
    assert not closing.is_alive(), "the first fork server did not end"
    assert first.process.exitcode == 0


def leave_a_process(payload: object, conn: Connection, runner: int) -> None:
    """A served process that leaves a process in a session of its own, holding all it
    inherited (the server's ``multiprocessing`` sentinel among it), and exits."""
    ready, said = os.pipe()
    if os.fork() == 0:
        os.setsid()
        conn.send(os.getpid())
        os.write(said, b"!")
        signal.pause()  # until the test kills it
    os.read(ready, 1)  # it left this process group, which the server kills once this exits
    os._exit(0)


def test_a_server_ends_when_told_while_what_its_processes_left_lives_on(monkeypatch):
    """The server's sentinel stays open in the process left: ``close`` waits on a pidfd."""
    monkeypatch.setattr(forkserver, "_GRACE", 3600.0)  # a wait for the sentinel would not end
    server = ForkServer(CTX, leave_a_process)
    conn = ask(server, None, "Worker-1")
    (served,) = server.started(until="Worker-1")
    left = conn.recv()
    try:
        assert served.join(10.0) == 0
        closing = threading.Thread(target=server.close, daemon=True)
        closing.start()
        closing.join(10.0)
        assert not closing.is_alive(), "closing the server waited for what its processes left"
        assert server.process.exitcode == 0
    finally:
        os.kill(left, signal.SIGKILL)


def test_a_dead_server_refuses_requests_and_the_exit_codes_it_owed_are_lost():
    server = ForkServer(CTX, tell_then_exit)
    try:
        conn = ask(server, None, "Worker-1")
        (orphan,) = server.started(until="Worker-1")
        conn.recv()
        server.process.kill()
        server.process.join()
        conn.send(0)  # it ends, but no one is left to tell its exit code
        assert orphan.join(10.0) == forkserver._LOST
        assert not server.alive
        _ours, theirs = CTX.Pipe()
        assert not server.request(None, theirs, "Worker-2")
    finally:
        server.close()


def test_a_server_that_stops_answering_is_killed_and_counts_as_dead(monkeypatch):
    monkeypatch.setattr(forkserver, "_ANSWER", 0.2)  # seconds; 10 in use
    server = ForkServer(CTX, tell_then_exit)
    try:
        os.kill(server.process.pid, signal.SIGSTOP)
        ask(server, None, "Worker-1")  # the socket takes the request
        assert server.started(until="Worker-1") == []
        assert not server.alive
        server.process.join(10.0)
        assert server.process.exitcode == -signal.SIGKILL
    finally:
        server.close()


def test_without_pidfds_there_is_no_fork_server(without_pidfds):
    before = multiprocessing.active_children()
    with pytest.raises(NoPidfds, match="no pidfds"):
        ForkServer(CTX, tell_then_exit)
    assert multiprocessing.active_children() == before  # nothing was forked
