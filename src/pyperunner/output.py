"""What tasks print, captured into the run's log under the task's name.

Two ways in, for the two places a task runs. In the process that runs a task in a thread
(``inline``, ``thread``, a Dask worker), :func:`task_context` marks the thread with the task's
name and ``sys.stdout``/``sys.stderr`` become :class:`_TaskStream` routers: a marked thread's
lines become log records (stdout at INFO, stderr at WARNING), other threads' text passes
through. In a worker process, :class:`ProcessOutput` replaces file descriptors 1 and 2 by pipes,
so output of C code, other threads and child processes is logged too. Where the records then go
is :mod:`.logs`' business.
"""

from __future__ import annotations

import _thread
import contextlib
import fcntl
import io
import logging
import os
import select
import sys
import termios
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import AnyStr, TextIO

ECHOED = "echoed"
"""``extra`` flag of a record whose text a task printed to the terminal itself."""

ROUTING = threading.RLock()
"""Held while runs change the root logger's handlers or stdout/stderr, which they share."""

_current = threading.local()
_process_task: str | None = None
"""The task a worker process runs, for output of threads and processes the task started."""

FLUSH_WAIT = 1.0
"""Seconds a worker waits at the end of a task for output still in its pipes to be logged."""


def current_task() -> str | None:
    """The task the calling thread runs, else the task of this worker process, if any."""
    return getattr(_current, "name", None) or _process_task


class ProcessOutput:
    """In a worker process: log everything the process writes, as the task it runs now.

    Output of the task's other threads, of C code and of processes it starts goes to file
    descriptors 1 and 2, which are pipes while this is entered; one thread turns each line into
    a record of the current task, stdout at INFO and stderr at WARNING, like what the task prints
    itself, and hands it to ``log`` (:class:`ForwardingHandler`'s ``emit``), not to the loggers'
    handlers: one the task added that writes to these pipes (``StreamHandler(sys.__stderr__)``,
    the console of a run it starts) would write each line back into them, to be read again and
    again, until the thread blocked writing to its own full pipe.

    The same thread calls ``watch[fd]()`` once ``fd`` becomes readable (a fresh worker's
    lifeline), as each thread costs a forked worker time to start: it is a bare ``_thread`` one
    (``thread`` is its ident), which ``threading.enumerate()`` lists only once it has logged, as
    a ``threading.Thread`` cost 0.3 ms more. Use as a context manager around the worker's life,
    and :meth:`task` around each task.
    """

    _MARK = b"\0pyperunner-drained\0\n"

    def __init__(
        self,
        log: Callable[[logging.LogRecord], None],
        watch: Mapping[int, Callable[[], None]] | None = None,
    ) -> None:
        self._log = log
        self._watch = dict(watch or {})
        self._busy = False  # True while the thread handles what it took from a pipe

    def __enter__(self) -> ProcessOutput:
        self._captures = [
            _FdCapture(1, logging.INFO, self._log),
            _FdCapture(2, logging.WARNING, self._log),
        ]
        self.thread = _thread.start_new_thread(self._serve, ())
        return self

    def __exit__(self, *exc: object) -> None:
        self._drain()
        for capture in self._captures:
            capture.close()

    @contextlib.contextmanager
    def task(self, name: str) -> Iterator[None]:
        """Attribute the process's output to task ``name``; log all of it before returning."""
        global _process_task
        _process_task = name
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            self._drain()
            _process_task = None

    def flush(self) -> None:
        """Log all the task wrote so far, its unfinished lines too: the process is ending."""
        if _process_task is not None:
            flush_task_output(_process_task)
        self._drain()

    def _drain(self) -> None:
        """Wait (at most ``FLUSH_WAIT``) until everything written so far has been logged."""
        if not self._busy and not any(c.pending() for c in self._captures):
            return  # the thread has logged all it took from the pipes, and they are empty
        for capture in self._captures:
            capture.drained.clear()
            os.write(capture.write_end, self._MARK)
        deadline = time.monotonic() + FLUSH_WAIT
        for capture in self._captures:
            capture.drained.wait(max(0.0, deadline - time.monotonic()))

    def _serve(self) -> None:
        poller = select.poll()
        by_fd = {capture.read_end: capture for capture in self._captures}
        for fd in [*by_fd, *self._watch]:
            poller.register(fd, select.POLLIN)
        while by_fd or self._watch:
            ready = poller.poll()
            self._busy = True  # before the pipes are read: see _drain
            for fd, _ in ready:
                if fd in self._watch:
                    poller.unregister(fd)
                    self._watch.pop(fd)()
                elif not by_fd[fd].forward(self._MARK):
                    poller.unregister(fd)
                    del by_fd[fd]
            self._busy = False


def _complete_lines(partial: list[AnyStr], chunk: AnyStr, newline: AnyStr) -> list[AnyStr]:
    """The lines ``chunk`` completes, the first joined to the unfinished line's parts in
    ``partial``, which then holds what follows the last newline: linear however many parts."""
    if newline not in chunk:
        partial.append(chunk)
        return []
    first, *lines, rest = chunk.split(newline)
    lines.insert(0, chunk[:0].join(partial) + first)
    partial[:] = [rest] if rest else []
    return lines


def _unread(fd: int) -> int:
    """How many bytes the pipe ``fd`` holds (1 where that cannot be told)."""
    try:
        return int.from_bytes(fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder)
    except OSError:
        return 1


class _FdCapture:
    """Replaces file descriptor ``fd`` by a pipe whose lines go to ``log`` for the current task."""

    def __init__(self, fd: int, level: int, log: Callable[[logging.LogRecord], None]) -> None:
        self.fd, self.level, self.log = fd, level, log
        self.saved = os.dup(fd)
        self.read_end, self.write_end = os.pipe()
        os.dup2(self.write_end, fd)
        self.drained = threading.Event()
        self._partial: list[bytes] = []  # the parts of the unfinished line

    def pending(self) -> bool:
        """Whether the pipe holds bytes, or an unfinished line waits for its end."""
        return bool(self._partial) or _unread(self.read_end) > 0

    def forward(self, mark: bytes) -> bool:
        """Log the complete lines the pipe holds now; False once it is closed."""
        chunk = os.read(self.read_end, 65536)
        if not chunk:
            os.close(self.read_end)
            return False
        for line in _complete_lines(self._partial, chunk, b"\n"):
            marked = line.endswith(mark[:-1])
            text = line[: -len(mark) + 1] if marked else line
            if text:
                self._log_line(text.decode(errors="replace"))
            if marked:
                self.drained.set()
        return True

    def _log_line(self, line: str) -> None:
        """Hand ``line`` to ``log`` as a record of the current task, if its level is logged."""
        name = _process_task or "root"
        if logging.getLogger(name).isEnabledFor(self.level):
            self.log(logging.LogRecord(name, self.level, __file__, 0, line, None, None))

    def close(self) -> None:
        """Give ``fd`` back."""
        os.dup2(self.saved, self.fd)
        os.close(self.saved)
        os.close(self.write_end)


@contextlib.contextmanager
def task_context(name: str) -> Iterator[None]:
    """Mark the calling thread as running task ``name`` and send its prints to the log."""
    previous = getattr(_current, "name", None)
    _current.name = name
    _install_routers()
    try:
        yield
    finally:
        flush_task_output(name)
        _current.name = previous


def output_busy() -> bool:
    """Whether a line is being taken in from stdout or stderr right now (in this process)."""
    return any(
        isinstance(stream, _TaskStream) and stream.busy() for stream in (sys.stdout, sys.stderr)
    )


def flush_task_output(name: str) -> None:
    """Log what task ``name`` printed without a newline yet, as a line of its own."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, _TaskStream):
            stream.flush_task(name)


_relaying = threading.local()


@contextlib.contextmanager
def _relay() -> Iterator[None]:
    """While a line a task wrote is logged: what a handler then writes to stdout or stderr
    (a task's own ``StreamHandler``) is a copy of it, and dropped instead of logged again."""
    _relaying.on = True
    try:
        yield
    finally:
        _relaying.on = False


def _log_output(name: str, level: int, line: str, echoed: bool = False) -> None:
    """Log ``line``, which task ``name`` wrote to ``sys.stdout`` or ``sys.stderr``."""
    with _relay():
        logging.getLogger(name).log(level, line, extra={ECHOED: echoed})


class _TaskStream(io.TextIOBase):
    """Stands in for stdout/stderr: a task's lines become log records, others pass through."""

    def __init__(self, original: TextIO, level: int) -> None:
        self.original = original
        self.level = level
        self._partial: dict[str, list[str]] = {}  # parts of each task's unfinished line
        self._lock = threading.Lock()
        self._terminal = self.isatty()
        self._proxied = type(original).__module__.startswith("rich.")  # a live view's redirect

    def write(self, text: str) -> int:
        if getattr(_relaying, "on", False):
            return len(text)
        name = current_task()
        if name is None:
            return self.original.write(text)
        echo = self._echoes()
        if echo:
            self.original.write(text)
            if "\n" in text or not self._proxied:  # the view prints each flush as a line
                self.original.flush()
        with self._lock:
            lines = _complete_lines(self._partial.setdefault(name, []), text, "\n")
        for line in lines:
            _log_output(name, self.level, line, echo)
        return len(text)

    def busy(self) -> bool:
        return self._lock.locked()

    def flush_task(self, name: str) -> None:
        with self._lock:
            rest = "".join(self._partial.pop(name, []))
        if rest:
            _log_output(name, self.level, rest, self._echoes())

    def _echoes(self) -> bool:
        """An inline task on a terminal prints as any program does (pdb's prompt too); the log
        gets its lines all the same, and the console then skips those records."""
        return self._terminal and threading.current_thread() is threading.main_thread()

    def flush(self) -> None:
        if not getattr(self.original, "closed", False):  # closed first at interpreter exit
            self.original.flush()

    def isatty(self) -> bool:
        try:
            return self.original.isatty()
        except (AttributeError, ValueError):  # no such method, or closed
            return False

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self.original, "encoding", "utf-8")


def _install_routers() -> None:
    with ROUTING:
        if not isinstance(sys.stdout, _TaskStream):
            sys.stdout = _TaskStream(sys.stdout, logging.INFO)
        if not isinstance(sys.stderr, _TaskStream):
            sys.stderr = _TaskStream(sys.stderr, logging.WARNING)


def remove_routers() -> None:
    """Give ``sys.stdout`` and ``sys.stderr`` back as they were before the runs' tasks."""
    with ROUTING:
        if isinstance(sys.stdout, _TaskStream):
            sys.stdout = sys.stdout.original
        if isinstance(sys.stderr, _TaskStream):
            sys.stderr = sys.stderr.original


def real_stream(stream: TextIO) -> TextIO:
    """``stream`` without the task router pyperunner may have put around it."""
    return stream.original if isinstance(stream, _TaskStream) else stream  # type: ignore[return-value]
