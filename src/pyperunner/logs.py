"""Run logging: one line format, a task column, and where a run's records go.

Every log line carries time, level, process, task (or the logger's name outside a task) and the
message, like the manual's ``2021-01-23 17:23:18 INFO MainProcess root Stored pipeline ...``.
:func:`run_logging` sends a run's records to its log file, the console and the run's other
handlers, keeping apart runs going on at once in one process; a worker process forwards its
records to the runner (:class:`ForwardingHandler`), which writes them. What tasks print becomes
records in :mod:`.output`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .output import ECHOED, ROUTING, current_task, real_stream, remove_routers

LOG_FORMAT = "%(asctime)s %(levelname)-8s %(processName)-12s %(task)-9s %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"

_belongs = threading.local()


def current_run() -> object | None:
    """The run the calling thread logs for (see :func:`belonging_to`), or None."""
    return getattr(_belongs, "run", None)


@contextlib.contextmanager
def belonging_to(run: object | None) -> Iterator[None]:
    """What the calling thread logs goes to the log of ``run`` (a :func:`current_run` value)
    only: runs going on at once in one process keep their logs apart, and what a thread task
    logs after its run ended (it timed out) is not written into a later run's log."""
    previous = current_run()
    _belongs.run = run
    try:
        yield
    finally:
        _belongs.run = previous


class _OfThisRun(logging.Filter):
    """Keeps the records logged by this run's tasks, and those logged outside any task."""

    def __init__(self, token: object) -> None:
        super().__init__()
        self.token = token

    def filter(self, record: logging.LogRecord) -> bool:
        owner = current_run()
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
    with ROUTING:
        kept = [*getattr(root.handlers, "kept", []), *handlers]  # runs within runs, at once
        root.handlers = _Kept([*root.handlers, *handlers], kept)
    try:
        yield
    finally:
        with ROUTING:
            rest = [h for h in root.handlers if h not in handlers]
            still = [h for h in getattr(root.handlers, "kept", []) if h not in handlers]
            root.handlers = _Kept(rest, still) if still else rest


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


def formatter() -> logging.Formatter:
    """The formatter of every pyperunner log line."""
    return logging.Formatter(LOG_FORMAT, DATE_FORMAT)


TASK_STATUS = "task_status"
"""``extra`` flag of the runner's per-task status lines (started, finished, failed, ...)."""
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
    with ROUTING:
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
    with ROUTING:
        _routed_runs -= 1
        if _routed_runs == 0:
            logging.getLogger().setLevel(_level_before)
            remove_routers()


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
