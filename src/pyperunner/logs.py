"""Run logging: one line format, a task column, and what tasks print routed into the log.

Every log line carries time, level, process, task (or the logger's name outside a task) and the
message, like the manual's ``2021-01-23 17:23:18 INFO MainProcess root Stored pipeline ...``.
While a task runs, the thread running it is marked with the task's name, so log records and
``print`` output from that thread land in the log under that name, in any executor.
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
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, AnyStr, TextIO

LOG_FORMAT = "%(asctime)s %(levelname)-8s %(processName)-12s %(task)-9s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

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


def current_run() -> object | None:
    """The run the calling thread logs for (see :func:`belonging_to`), or None."""
    return getattr(_current, "run", None)


@contextlib.contextmanager
def belonging_to(run: object | None) -> Iterator[None]:
    """What the calling thread logs goes to the log of ``run`` (a :func:`current_run` value)
    only: runs going on at once in one process keep their logs apart, and what a thread task
    logs after its run ended (it timed out) is not written into a later run's log."""
    previous = current_run()
    _current.run = run
    try:
        yield
    finally:
        _current.run = previous


class _OfThisRun(logging.Filter):
    """Keeps the records logged by this run's tasks, and those logged outside any task."""

    def __init__(self, token: object) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        owner = getattr(_current, "run", None)
        return owner is None or owner is self.token


class _NotOfThisRun(_OfThisRun):
    """Keeps the records :class:`_OfThisRun` would not."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not super().filter(record)


class _TaskFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "task", None):
            record.task = current_task() or record.name
        return True


_STANDARD = frozenset(logging.makeLogRecord({}).__dict__)
"""The attributes every log record has; others came from ``extra=``."""


def _plain(value: Any) -> Any:
    """An ``extra=`` value as it can travel: as it is if plain, else its ``repr``."""
    return value if value is None or type(value) in (str, int, float, bool) else repr(value)


class ForwardingHandler(logging.Handler):
    """Sends every record of a worker process to the runner, which writes it to the log.

    ``send`` gets a plain, picklable record (message formatted, traceback as text), so one
    process writes the log file and the console and lines never interleave. ``emit`` takes no
    lock of the handler's (``send`` has its own), so :class:`ProcessOutput`'s thread calls it
    directly: it must not wait for a lock a task's thread may hold while writing to its pipes.
    """

    def __init__(
        self, send: Callable[[logging.LogRecord], None], process: str | None = None
    ) -> None:
        super().__init__(logging.DEBUG)
        self.send = send
        self.process = process  # the process column's word (with the pid), if not its name

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
            plain = logging.makeLogRecord(
                {
                    **{k: _plain(v) for k, v in record.__dict__.items() if k not in _STANDARD},
                    **{k: v for k, v in record.__dict__.items() if k in _STANDARD},
                    "msg": message,
                    "args": None,
                    "exc_info": None,
                    "exc_text": None,
                    "task": current_task() or record.name,
                    "processName": (
                        f"{self.process}-{os.getpid()}" if self.process else record.processName
                    ),
                }
            )
            self.send(plain)
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def forward_records(send: Callable[[logging.LogRecord], None]) -> Iterator[ForwardingHandler]:
    """In a worker process: route all logging to ``send`` instead of the inherited handlers;
    yields the handler that does."""
    root = logging.getLogger()
    inherited = root.handlers[:]
    root.handlers = []  # the runner's own handlers too, which its run keeps on its root logger
    forwarding = ForwardingHandler(send)
    try:
        with _kept_on_root([forwarding]):
            yield forwarding
    finally:
        for handler in inherited:
            root.addHandler(handler)


class _Kept(list):  # type: ignore[type-arg]
    """The root logger's handler list while ``kept`` must stay on it: ``removeHandler`` of one
    of those does nothing, so a task's ``logging.basicConfig(force=True)`` (or a library that
    clears the root logger) neither silences the run's log nor adds a handler of its own."""

    def __init__(self, handlers: list[logging.Handler], kept: list[logging.Handler]) -> None:
        super().__init__(handlers)
        self.kept = kept

    def remove(self, handler: logging.Handler) -> None:
        if handler not in self.kept:
            super().remove(handler)

    def clear(self) -> None:  # logging.getLogger().handlers.clear()
        super().clear()
        self._keep()

    def __setitem__(self, index: Any, value: Any) -> None:  # handlers[:] = [...]
        super().__setitem__(index, value)
        self._keep()

    def __delitem__(self, index: Any) -> None:  # del handlers[:]
        super().__delitem__(index)
        self._keep()

    def _keep(self) -> None:
        super().extend(h for h in self.kept if h not in self)


@contextlib.contextmanager
def _kept_on_root(handlers: list[logging.Handler]) -> Iterator[None]:
    """Add ``handlers`` to the root logger for the block, where nothing else removes them."""
    root = logging.getLogger()
    with _routing:
        kept = [*getattr(root.handlers, "kept", []), *handlers]  # runs within runs, at once
        root.handlers = _Kept([*root.handlers, *handlers], kept)
    try:
        yield
    finally:
        with _routing:
            rest = [h for h in root.handlers if h not in handlers]
            still = [h for h in getattr(root.handlers, "kept", []) if h not in handlers]
            root.handlers = _Kept(rest, still) if still else rest


_routing = threading.RLock()
"""Held while runs change the root logger's handlers or stdout/stderr, which they share."""
_routed_runs = 0
"""How many runs are going on in this process (their tasks' stdout and stderr are logged)."""
_level_before = logging.NOTSET
"""The root logger's level before the first of them began."""


def handle_forwarded(record: logging.LogRecord) -> None:
    """In the runner: write a record a worker forwarded, as if it had been logged here."""
    logger = logging.getLogger(record.name)
    if getattr(record, FULL_TRACEBACK, False):
        _to_the_run_log(record)
    elif logger.isEnabledFor(record.levelno):
        logger.handle(record)


def log_full_traceback(name: str, text: str) -> None:
    """Write ``text``, the whole traceback of task ``name``'s failure, to the run's log file at
    DEBUG: past the loggers' levels, and past every other handler (the console's too)."""
    record = logging.getLogger(name).makeRecord(
        name, logging.DEBUG, __file__, 0, "full traceback:\n%s", (text,), None
    )
    setattr(record, FULL_TRACEBACK, True)
    _to_the_run_log(record)


def _to_the_run_log(record: logging.LogRecord) -> None:
    """Hand ``record`` to the run's log files only, or to the runner from a worker process."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler, (_RunLog, ForwardingHandler)):
            handler.handle(record)


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
    with _routing:
        if not isinstance(sys.stdout, _TaskStream):
            sys.stdout = _TaskStream(sys.stdout, logging.INFO)
        if not isinstance(sys.stderr, _TaskStream):
            sys.stderr = _TaskStream(sys.stderr, logging.WARNING)


def _remove_routers() -> None:
    """Give ``sys.stdout`` and ``sys.stderr`` back as they were before the runs' tasks."""
    with _routing:
        if isinstance(sys.stdout, _TaskStream):
            sys.stdout = sys.stdout.original
        if isinstance(sys.stderr, _TaskStream):
            sys.stderr = sys.stderr.original


def formatter() -> logging.Formatter:
    """The formatter of every pyperunner log line."""
    return logging.Formatter(LOG_FORMAT, DATE_FORMAT)


TASK_STATUS = "task_status"
"""``extra`` flag of the runner's per-task status lines (started, finished, failed, ...)."""
ECHOED = "echoed"
"""``extra`` flag of a record whose text a task printed to the terminal itself."""
FULL_TRACEBACK = "full_traceback"
"""``extra`` flag of the DEBUG record of a failure's whole traceback, for the log file only."""
HEADLINE = "headline"
"""``extra`` flag of run-level info lines the console shows even beside a live view (where the
run's files are)."""


@contextlib.contextmanager
def run_logging(
    log_file: Path,
    console: bool | logging.Handler = True,
    live: bool = False,
    also: Sequence[logging.Handler] = (),
) -> Iterator[logging.Handler | None]:
    """Log to ``log_file`` (and the console, and the handlers ``also``) for the duration of a
    run, then restore logging; yields the console's handler (None without a console), whose
    stream a live view takes over. ``console`` may be the handler to use for it (a notebook's
    view); True is a handler writing to stderr.

    With a ``live`` view on the console, the console gets only the run's own warnings, errors
    and headlines: what tasks log and how each task fares, the view shows; the file has all.
    """
    file_handler = _RunLog(log_file, encoding="utf-8", errors="backslashreplace")
    handlers: list[logging.Handler] = [file_handler, *also]
    for handler in handlers:
        handler.setLevel(logging.INFO)
    if console:
        console_handler = (
            console
            if isinstance(console, logging.Handler)
            else logging.StreamHandler(real_stream(sys.stderr))
        )
        console_handler.setLevel(logging.INFO)
        console_handler.addFilter(lambda record: not getattr(record, ECHOED, False))
        handlers.append(console_handler)
    token = object()  # what this thread and the tasks it starts log belongs to this run
    for handler in handlers:
        handler.setFormatter(formatter())
        handler.addFilter(_OfThisRun(token))
        handler.addFilter(_TaskFilter())
    if console and live:
        console_handler.addFilter(_run_level_only)
    theirs = _terminal_handlers() if console else []  # before the run's own are added
    _run_began()
    try:
        with _kept_on_root(handlers), _left_to_the_run(theirs, token), belonging_to(token):
            yield console_handler if console else None
    finally:
        for handler in handlers:
            handler.close()
        _run_ended()


def _terminal_handlers() -> list[logging.Handler]:
    """The root logger's handlers that write to the terminal (``logging.basicConfig()``'s)."""
    terminal = {id(real_stream(sys.stderr)), id(real_stream(sys.stdout))}
    terminal |= {id(stream) for stream in (sys.__stderr__, sys.__stdout__) if stream is not None}
    return [
        handler
        for handler in logging.getLogger().handlers
        if type(handler) is logging.StreamHandler and id(handler.stream) in terminal
    ]


@contextlib.contextmanager
def _left_to_the_run(handlers: list[logging.Handler], token: object) -> Iterator[None]:
    """Keep the run's records from ``handlers`` for the block: the run's console handler shows
    them, and each line would be on the terminal twice."""
    others = _NotOfThisRun(token)
    for handler in handlers:
        handler.addFilter(others)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(others)


def _run_began() -> None:
    """The first run going on in this process lets INFO records through the root logger."""
    global _routed_runs, _level_before
    with _routing:
        _routed_runs += 1
        root = logging.getLogger()
        if _routed_runs == 1:
            _level_before = root.level
        if root.getEffectiveLevel() > logging.INFO:
            root.setLevel(logging.INFO)


def _run_ended() -> None:
    """The last run going on in this process puts the root logger's level back and gives stdout
    and stderr back (a run inside a task's run, or beside another, leaves them to that one)."""
    global _routed_runs
    with _routing:
        _routed_runs -= 1
        if _routed_runs == 0:
            logging.getLogger().setLevel(_level_before)
            _remove_routers()


class _RunLog(logging.FileHandler):
    """The run's log file. If it cannot be written (a full disk), that is said once on stderr
    and later lines are lost: the run itself goes on, and its results are stored."""

    failed = False

    def handleError(self, record: logging.LogRecord) -> None:
        self._failed(sys.exc_info()[1])

    def close(self) -> None:
        try:
            super().close()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, problem: BaseException | None) -> None:
        if not self.failed:
            self.failed = True
            print(
                f"pyperunner: cannot write the run's log {self.baseFilename} ({problem}); "
                "its later lines are lost",
                file=real_stream(sys.stderr),
            )


def _run_level_only(record: logging.LogRecord) -> bool:
    """Beside a live view: the run's own warnings and errors, and its headlines."""
    if getattr(record, TASK_STATUS, False) or record.task != "root":  # type: ignore[attr-defined]
        return False
    return record.levelno >= logging.WARNING or getattr(record, HEADLINE, False)


def real_stream(stream: TextIO) -> TextIO:
    """``stream`` without the task router pyperunner may have put around it."""
    return stream.original if isinstance(stream, _TaskStream) else stream  # type: ignore[return-value]
