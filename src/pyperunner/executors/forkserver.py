"""A fork server: a copy of the runner, forked once, that forks the runner's workers for it.

Each fork of the runner itself would make every page the runner writes afterwards a
copy-on-write fault (some 600 a task, between tasks, where they hold the run up). Forked from
this idle copy instead, a worker is still a fresh process holding everything the runner held
when the run started, and costs the runner one message.

The runner and the server talk over a ``SOCK_SEQPACKET`` socket, one pickled message a packet,
a file descriptor riding along with two of them: the runner asks with :class:`ForkRequest`
(with the worker's end of its pipe) and ends the server with :class:`StopServing`; the server
answers :class:`Started` (with a pidfd of the new process) and :class:`Exited`. It needs
pidfds: where the system has none, making one raises :class:`NoPidfds`, and the runner forks
its workers itself.
"""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import os
import pickle
import select
import signal
import socket
import sys
import traceback
from collections.abc import Callable
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any, NamedTuple, NoReturn

from .posix import own_group, pidfd, readable

Target = Callable[[Any, Connection, int], None]
"""What a served process runs: the request's payload, its connection to the runner, and a
pidfd of the runner (readable once the runner ended: what the process lives for)."""


class ForkRequest(NamedTuple):
    """Runner to server: fork a process ``name`` that runs ``target(payload, ...)``; the
    process's end of its pipe to the runner rides along."""

    payload: object
    name: str


class StopServing(NamedTuple):
    """Runner to server: end now (the run is over; every process it forked has ended)."""


class Started(NamedTuple):
    """Server to runner: it forked process ``pid`` (for the oldest request); a pidfd of the
    process rides along."""

    pid: int


class Exited(NamedTuple):
    """Server to runner: process ``pid`` ended with ``code`` (minus the signal that killed it)."""

    pid: int
    code: int


_MESSAGE_SIZE = 1 << 16
"""Bytes read for one message: more than any pickled message takes (some 100 bytes)."""
_FDS = 1
"""File descriptors a message carries at most."""
_GRACE = 5.0
"""Seconds the server gets to end when told to, before it is killed."""
_ANSWER = 10.0
"""Seconds the server may take to tell a fork or an exit before it counts as hung (stopped,
say): it is then killed, and the runner forks the workers still needed itself."""
_LOST = -signal.SIGKILL
"""The exit code told for a process whose fork server died before it: unknown."""


class NoPidfds(OSError):
    """The system gives no pidfds (not Linux, Linux before 5.3, a seccomp filter refusing
    ``pidfd_open``), which a fork server needs to watch the runner and the processes it forks."""


class ForkServer:
    """Forks processes on request from a copy of this process made at creation.

    A request returns at once; its process is among :meth:`started` once the server forked it,
    in the order asked. Wait for that on the server itself (it has a ``fileno``)."""

    def __init__(self, ctx: BaseContext, target: Target) -> None:
        runner = pidfd(os.getpid())  # the server and its processes end once it is readable
        if runner is None:
            raise NoPidfds("this system gives no pidfds: there is no fork server")
        self._sock, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._asked: collections.deque[str] = collections.deque()
        self._started: list[Served] = []
        self._exits: dict[int, int] = {}
        self._unwanted: set[int] = set()  # released processes whose exit is still to be told
        self.alive = True
        self._runner = runner
        self.process = ctx.Process(
            target=_serve, args=(theirs, self._sock, runner, target), name="ForkServer"
        )
        self.process.start()
        theirs.close()
        # readable once the server ended, unlike its sentinel, which processes it forked hold
        self._ended = os.pidfd_open(self.process.pid)  # type: ignore[arg-type]

    def fileno(self) -> int:
        """Readable when the server has news: a process started or ended, or it died."""
        return self._sock.fileno()

    def request(self, payload: object, conn: Connection, name: str) -> bool:
        """Ask for a process ``name`` running ``target(payload, conn, pidfd)``; False if the
        server is gone."""
        self._asked.append(name)  # first: a signal may interrupt once the request is sent
        try:
            _send(self._sock, ForkRequest(payload, name), conn.fileno())
        except OSError:
            self._asked.pop()
            self.alive = False
            return False
        return True

    def started(self, until: str | None = None) -> list[Served]:
        """The processes started since the last call; with ``until``, first wait for the one
        of that name (unless the server died)."""
        while self.alive:
            waiting = until in self._asked
            if not readable(self._sock.fileno(), _ANSWER if waiting else 0):
                if waiting:
                    self._hung()
                break
            self._receive()
        started, self._started = self._started, []
        return started

    def exitcode(self, pid: int) -> int:
        """The exit code of the served process ``pid``, which has ended (as its pidfd told)."""
        while pid not in self._exits:
            if not self.alive:
                return _LOST
            if not readable(self._sock.fileno(), _ANSWER):
                self._hung()
            else:
                self._receive()
        return self._exits.pop(pid)

    def release(self, pid: int) -> None:
        """Forget the served process ``pid``: its exit code is not wanted."""
        if self._exits.pop(pid, None) is None:
            self._unwanted.add(pid)

    def _hung(self) -> None:
        """The server did not answer in time: kill it and count it as dead."""
        self.process.kill()  # also when stopped
        self.alive = False
        self._asked.clear()

    def _receive(self) -> None:
        """Read one answer of the server's; none (it died) counts it as dead."""
        try:
            answer, fds = _receive(self._sock)
        except (OSError, EOFError):
            self.alive = False
            self._asked.clear()
            return
        if isinstance(answer, Started):
            self._started.append(Served(answer.pid, fds[0], self._asked.popleft(), self))
        elif answer.pid in self._unwanted:
            self._unwanted.remove(answer.pid)
        else:
            self._exits[answer.pid] = answer.code

    def close(self) -> None:
        """End the server; the processes it forked must have ended already. It is told to,
        as a copy of this end of the socket may live on in a process forked meanwhile (by
        another thread's run), so that closing it would not end the server."""
        with contextlib.suppress(OSError):
            _send(self._sock, StopServing())
        self._sock.close()
        if not readable(self._ended, _GRACE):
            self.process.kill()
        self.process.join()
        os.close(self._ended)
        os.close(self._runner)


class Served:
    """A process the fork server forked: as much of ``multiprocessing.Process`` as the
    executor uses (``pid``, ``name``, ``exitcode``, ``join``, ``sentinel``)."""

    def __init__(self, pid: int, pidfd: int, name: str, server: ForkServer) -> None:
        self.pid, self.name, self._server = pid, name, server
        self.sentinel = pidfd  # readable once it ended; the server opened it before it reaps
        self._exitcode: int | None = None

    @property
    def exitcode(self) -> int | None:
        """Its exit code (minus the signal that killed it); None while it runs."""
        return self.join(0)

    def release(self) -> None:
        """Stop watching it, as it is exiting after its work: the server reaps it and ends what
        it left in its process group; the exit code it then tells is dropped unread."""
        if self.sentinel != -1:  # else joined: the server told its exit already
            self._server.release(self.pid)
            os.close(self.sentinel)
            self.sentinel = -1

    def join(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds for it to end; its exit code, or None."""
        if self._exitcode is None and readable(self.sentinel, timeout):
            self._exitcode = self._server.exitcode(self.pid)
            os.close(self.sentinel)
            self.sentinel = -1
        return self._exitcode


def _send(sock: socket.socket, message: NamedTuple, fd: int | None = None) -> None:
    """Send ``message`` as one packet, with ``fd`` if given."""
    socket.send_fds(sock, [pickle.dumps(message)], [] if fd is None else [fd])


def _receive(sock: socket.socket) -> tuple[Any, list[int]]:
    """The next message on ``sock`` and the descriptors that came with it; ``EOFError`` if the
    other side closed its end."""
    packet, fds, _, _ = socket.recv_fds(sock, _MESSAGE_SIZE, _FDS)
    if not packet:
        raise EOFError
    return pickle.loads(packet), fds


def _serve(sock: socket.socket, runners: socket.socket, runner: int, target: Target) -> None:
    """The server's loop: fork what is asked, tell each process's exit, and end with the runner
    (then killing the process groups it forked, which outlive it otherwise).

    It forks with ``os.fork``: a ``multiprocessing.Process`` would cost each fresh process some
    150 more copy-on-write faults and this server as many again (0.3-0.5 ms of CPU a fork)."""
    runners.close()
    own_group(0)  # the terminal's signals are for the runner, which ends this server
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    running: dict[int, int] = {}  # pids by pidfd
    poller = select.poll()  # one for the server's life: it touches fewer pages than a selector
    for fd in (sock.fileno(), runner):
        poller.register(fd, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if runner in ready:  # the runner died (its end of the socket may live on in forks)
            break
        for ended in ready & running.keys():
            poller.unregister(ended)
            pid = running.pop(ended)
            os.close(ended)
            _, status = os.waitpid(pid, 0)
            with contextlib.suppress(OSError):  # what its task left in its process group
                os.killpg(pid, signal.SIGKILL)
            _tell(sock, Exited(pid, os.waitstatus_to_exitcode(status)))
        if sock.fileno() not in ready:
            continue
        try:
            request, fds = _receive(sock)
        except (ConnectionResetError, EOFError):  # the runner closed its end
            break
        if isinstance(request, StopServing):
            break
        pid = os.fork()  # for a ForkRequest, which brought the process's end of its pipe
        if pid == 0:
            _served(sock, runner, target, request, fds[0])
        own_group(pid)
        os.close(fds[0])
        ended = os.pidfd_open(pid)  # unlike the sentinel, not held open by orphans
        running[ended] = pid
        poller.register(ended, select.POLLIN)
        _tell(sock, Started(pid), ended)
    for pid in running.values():
        with contextlib.suppress(OSError):
            os.killpg(pid, signal.SIGKILL)


def _tell(sock: socket.socket, answer: Started | Exited, fd: int | None = None) -> None:
    """Answer the runner; a runner that is gone is not told."""
    with contextlib.suppress(OSError):
        _send(sock, answer, fd)


def _served(
    sock: socket.socket, runner: int, target: Target, request: ForkRequest, conn: int
) -> NoReturn:
    """A forked process: named as ``multiprocessing`` would (log lines show the name), it runs
    ``target`` and exits, 1 after printing what escaped it, never returning into the server."""
    code = 1
    try:
        sock.close()
        multiprocessing.current_process().name = request.name
        target(request.payload, Connection(conn), runner)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os._exit(code)
