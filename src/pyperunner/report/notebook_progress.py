"""Live progress of a run in a Jupyter notebook: one HTML display, updated in place.

Inside an IPython kernel the runner shows this instead of the terminal's ``rich`` view: counts by
status, a bar, the running tasks with their elapsed time, failures as they happen, and the run's
log lines folded under one line; it ends with the run's outcome, in red with each failed task's
error and traceback if it failed. It needs only IPython's display handles, so it works wherever a
notebook renders HTML (JupyterLab, classic Notebook, VS Code, nbclient), with or without
ipywidgets. Updates are throttled: a run of thousands of tasks does not flood the front end.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable
from pathlib import Path
from types import TracebackType

from ..executors.base import describe
from ..status import STATUS_ORDER, Status, TaskRun, format_counts
from ..text import format_duration, with_cell_names
from .layout import STATUS_COLORS
from .notebook import MONO, RED, chip, failure_html
from .progress import SHOWN_FAILURES, RunProgress
from .svg import escape

INTERVAL = 0.25
"""Seconds at least between two updates of the display (the final one always comes)."""
LOG_LINES = 50
"""How many of the run's latest log records the display keeps (the log file has them all)."""
TAIL = 4
"""How many of those show, first line only, while the run goes on."""
NAMED_FAILURES = 50
"""How many more failed tasks the final summary names, after the first ``SHOWN_FAILURES``."""
SHOWN_RUNNING = 10
"""How many running tasks the display lists (the longest running); it counts the others."""

_ORANGE, _GREEN = "#e07b00", "#2ca02c"
_MARKS = {RED: "\u2717", _ORANGE: "\u26a0", _GREEN: "\u2713"}
_LEVEL_COLORS = {logging.WARNING: _ORANGE, logging.ERROR: RED, logging.CRITICAL: RED}
_PRE = f"margin:2px 0;padding:0;background:none;white-space:pre-wrap;{MONO}"


class NotebookProgress(RunProgress):
    """A context manager showing a run in the notebook cell that runs it.

    Records from :attr:`handler` go to the display's log, status changes from :meth:`update` to
    its counts; the display appears at :meth:`plan` (so it comes below a plan printed before)
    and shows its final state when the block ends. Without ``live`` it shows only the log and
    the outcome. ``publish`` takes each new state, HTML and plain text by MIME type (by default:
    shown, then updated, through an IPython display handle); ``clock`` is ``time.monotonic``.
    """

    def __init__(
        self,
        title: str,
        log_file: Path,
        live: bool = True,
        publish: Callable[[dict[str, str]], None] | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        super().__init__(title, clock or time.monotonic)
        self.log_file = log_file
        self.live = live
        self._lock = threading.RLock()  # the state, and the order of what is published
        self.handler: logging.Handler = _Lines(self)
        self._publish = publish or _DisplayHandle().show
        self._began = self.clock()
        self._lines: deque[tuple[int, str]] = deque(maxlen=LOG_LINES)
        self._levels: Counter[int] = Counter()
        self._shown_at: float | None = None  # None: not displayed yet
        self._dirty = False
        self._ended = False
        self._stopped_by: str | None = None  # what stopped the run: "" for an interrupt
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def __enter__(self) -> NotebookProgress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        with self._lock:
            self._ended = True
            if exc is not None:
                interrupt = isinstance(exc, (KeyboardInterrupt, SystemExit))
                self._stopped_by = "" if interrupt else f"{type(exc).__name__}: {describe(exc)}"
            if self._shown_at is not None or self._lines:
                self._refresh(force=True)

    def plan(self, to_run: Iterable[str], cached: Iterable[str]) -> None:
        """Record what the run will do, and show the display."""
        with self._lock:
            super().plan(to_run, cached)
            self._refresh(force=True)
        self._ticker = threading.Thread(target=self._tick, name="pyperunner-notebook", daemon=True)
        self._ticker.start()

    def update(self, name: str, run: TaskRun) -> None:
        """Take one status change of one task."""
        with self._lock:
            super().update(name, run)
            self._changed()

    def logged(self, record: logging.LogRecord, text: str) -> None:
        """Take one record of the run's log, formatted as ``text``."""
        with self._lock:
            self._lines.append((record.levelno, text))
            self._levels[min(record.levelno, logging.ERROR)] += 1
            self._changed()

    def _changed(self) -> None:
        self._dirty = True
        if self._shown_at is not None:
            self._refresh()

    def _tick(self) -> None:
        """Keep the running tasks' elapsed times current, and show what changed last."""
        while not self._stop.wait(INTERVAL):
            with self._lock:
                self._refresh()

    def _refresh(self, force: bool = False) -> None:
        """Publish the display if ``force``, or if it changed (or tasks run, whose times go on)
        and was last published ``INTERVAL`` ago; called with the lock held."""
        now = self.clock()
        if not force and (
            self._shown_at is None
            or now - self._shown_at < INTERVAL
            or not (self._dirty or (self.live and self.started))
        ):
            return
        self._shown_at, self._dirty = now, False
        self._publish({"text/html": self.render(), "text/plain": self.render_text()})

    def render(self) -> str:
        """The display's HTML as it is now."""
        with self._lock:
            parts = [self._progress()] if self.live else []
            parts += [self._log(), self._summary()]
        body = "".join(part for part in parts if part)
        return f'<div class="pyperunner-progress" style="line-height:1.45">{body}</div>'

    def _progress(self) -> str:
        counts = Counter(self.statuses.values())
        chips = "".join(
            chip(status, f"{counts[status]} {status.value}")
            for status in STATUS_ORDER
            if counts[status]
        )
        total, done = len(self.to_run), self.done()
        bar = "".join(
            f'<div style="width:{100 * share:.3f}%;background:{STATUS_COLORS[status]}"></div>'
            for status, share in _shares(self.statuses, self.to_run)
        )
        now = self.clock()
        lines = [
            f"<div><b>{escape(self.title)}</b> {chips}</div>",
            '<div style="display:flex;align-items:center;gap:8px">'
            '<div style="display:flex;width:320px;height:10px;border-radius:3px;overflow:hidden;'
            f'background:rgba(128,128,128,0.25)">{bar}</div>'
            f"<span>{done}/{total} tasks to run &middot; {format_duration(now - self._began)}"
            "</span></div>",
        ]
        running = sorted(self.started.items(), key=lambda item: item[1])
        for name, since in running[:SHOWN_RUNNING]:
            lines.append(
                f'<div style="color:{STATUS_COLORS[Status.RUNNING]};{MONO}">&#9654; '
                f"{escape(name)} &nbsp;{format_duration(now - since)}</div>"
            )
        if len(running) > SHOWN_RUNNING:
            lines.append(f"<div>&hellip; and {len(running) - SHOWN_RUNNING} more running</div>")
        if not self._ended:
            hidden = len(self.failures) - SHOWN_FAILURES
            if hidden > 0:
                lines.append(
                    f'<div style="color:{RED}">&#10007; &hellip; {hidden} more failure(s) '
                    "before these: see the log</div>"
                )
            for name, run in self.failures[-SHOWN_FAILURES:]:
                lines.append(
                    f'<div style="color:{RED};font-weight:bold">&#10007; {escape(name)}: '
                    f"{escape(run.error or '')}</div>"
                )
        return "".join(lines)

    def _log(self) -> str:
        """The run's log, folded: what it counts, then its latest lines (while the run goes on,
        the first line of the last few)."""
        if not self._levels:
            return ""
        total = sum(self._levels.values())
        counted = [f"{total} line{'s' * (total != 1)}"]
        for level, word in ((logging.WARNING, "warning"), (logging.ERROR, "error")):
            if self._levels[level]:
                n = self._levels[level]
                counted.append(
                    f'<span style="color:{_LEVEL_COLORS[level]}">{n} {word}{"s" * (n != 1)}</span>'
                )
        ended = self._ended
        shown = (
            list(self._lines)
            if ended
            else [(level, text.partition("\n")[0]) for level, text in list(self._lines)[-TAIL:]]
        )
        latest = "the latest below; " if total > len(shown) else ""
        lines = "".join(
            f'<div style="color:{_LEVEL_COLORS.get(level, "inherit")}">'
            f"{escape(with_cell_names(text))}</div>"
            for level, text in shown
        )
        return (
            f'<details{"" if ended else " open"} style="margin-top:4px">'
            f"<summary>Log: {', '.join(counted)} ({latest}all in {escape(str(self.log_file))})"
            f'</summary><div style="{_PRE}">{lines}</div></details>'
        )

    def _failed(self) -> dict[str, TaskRun]:
        """The tasks that failed, as the run left them."""
        return {name: run for name, run in self.failures if self.statuses[name] is Status.FAILURE}

    def _outcome(self) -> tuple[str, str]:
        """How the run ended: its colour, and a headline saying so."""
        counts = Counter(self.statuses.values())
        if self._stopped_by:
            return RED, f"Run stopped by {self._stopped_by}"
        if self._stopped_by == "" or counts[Status.INTERRUPTED]:
            return RED, "Run interrupted"
        if self._failed() or counts[Status.CANT_RUN]:
            return RED, "Run failed"
        if any(self.statuses[name] is Status.NOT_STARTED for name in self.to_run):
            return _ORANGE, "Run stopped before the end"
        return _GREEN, "Run finished"

    def _headline(self) -> str:
        color, title = self._outcome()
        counts = Counter(self.statuses.values())
        took = format_duration(self.clock() - self._began)
        return f"{_MARKS[color]} {title}: {format_counts(counts)} in {took}"

    def _summary(self) -> str:
        """How the run ended, once it has: red, with each failed task, if it failed."""
        if not self._ended:
            return ""
        color, _ = self._outcome()
        failed = list(self._failed().items())
        tasks = "".join(failure_html(name, run) for name, run in failed[:SHOWN_FAILURES])
        if len(failed) > SHOWN_FAILURES:
            tasks += f'<div style="margin-top:6px">{escape(_more(failed))}</div>'
        return (
            f'<div style="margin-top:6px;padding:4px 10px;border-left:4px solid {color};'
            f'background:{color}1a"><div style="color:{color};font-weight:bold">'
            f"{escape(self._headline())}</div>{tasks}</div>"
        )

    def render_text(self) -> str:
        """The display as plain text, for front ends that show no HTML."""
        with self._lock:
            if not self._ended:
                counts = format_counts(Counter(self.statuses.values()))
                return f"{self.title}: {self.done()}/{len(self.to_run)} tasks to run ({counts})"
            failed = list(self._failed().items())
            lines = [f"  {name}: {run.error}" for name, run in failed[:SHOWN_FAILURES]]
            if len(failed) > SHOWN_FAILURES:
                lines.append(f"  {_more(failed)}")
            return "\n".join([self._headline(), *lines])


class _Lines(logging.Handler):
    """The run's log handler for the notebook: its records go to the display, not stderr."""

    def __init__(self, view: NotebookProgress) -> None:
        super().__init__()
        self.view = view
        self.lock = view._lock  # one lock: a record and an update never wait for each other

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.view.logged(record, self.format(record))
        except Exception:
            self.handleError(record)


class _DisplayHandle:
    """Shows a MIME bundle in the cell that runs, then replaces it there (a display handle)."""

    def __init__(self) -> None:
        self._handle: object | None = None

    def show(self, bundle: dict[str, str]) -> None:
        from IPython.display import display

        if self._handle is None:
            self._handle = display(bundle, raw=True, display_id=True)
        else:
            self._handle.update(bundle, raw=True)  # type: ignore[attr-defined]


def _shares(statuses: dict[str, Status], names: set[str]) -> list[tuple[Status, float]]:
    """The share of ``names`` in each status that has ended, in the order of the reports."""
    counts = Counter(statuses[name] for name in names)
    ended = [s for s in STATUS_ORDER if s not in (Status.RUNNING, Status.NOT_STARTED)]
    return [(s, counts[s] / len(names)) for s in ended if counts[s]]


def _more(failed: list[tuple[str, TaskRun]]) -> str:
    """Names the failed tasks after the first ``SHOWN_FAILURES`` (up to ``NAMED_FAILURES``)."""
    rest = [name for name, _ in failed[SHOWN_FAILURES:]]
    named = ", ".join(rest[:NAMED_FAILURES]) + (", ..." if len(rest) > NAMED_FAILURES else "")
    return f"and {len(rest)} more failed task(s), their errors in the log: {named}"
