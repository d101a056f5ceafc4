"""Live progress of a run on a terminal, drawn with ``rich``.

While a run goes on, the view shows the counts by status, a bar over the tasks to run, every
running task with its elapsed time, and failures as they happen. It is fed the same status
changes the log gets; the runner uses it only when the console is a terminal (or when asked to),
and otherwise keeps to plain log lines. :class:`RunProgress` is what it knows of the run, which
the notebook's view (``notebook_progress``) shares.
"""

from __future__ import annotations

import copy
import io
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, TextIO

from ..output import real_stream
from ..status import Status, TaskRun
from .layout import STATUS_COLORS

DONE = (Status.SUCCESS, Status.CACHED, Status.FAILURE, Status.CANT_RUN, Status.INTERRUPTED)
"""The statuses a task of the run ends in."""
SHOWN_FAILURES = 5
"""How many failures a view lists (the latest); it counts the others."""


class RunProgress:
    """What a live view knows of a run: each task's status, when the running ones started, and
    the failures in the order they happened; call :meth:`plan` then :meth:`update`."""

    def __init__(self, title: str, clock: Callable[[], float] = time.monotonic) -> None:
        self.title = title
        self.clock = clock
        self.statuses: dict[str, Status] = {}
        self.started: dict[str, float] = {}
        self.failures: list[tuple[str, TaskRun]] = []  # each a copy, as the run goes on
        self.to_run: set[str] = set()

    def plan(self, to_run: Iterable[str], cached: Iterable[str]) -> None:
        """Record what the run will do before it starts."""
        self.to_run = set(to_run)
        self.statuses.update({name: Status.NOT_STARTED for name in self.to_run})
        self.statuses.update({name: Status.CACHED for name in cached})

    def update(self, name: str, run: TaskRun) -> None:
        """Take one status change of one task."""
        self.statuses[name] = run.status
        if run.status is Status.RUNNING:
            self.started[name] = self.clock()
        else:
            self.started.pop(name, None)
        if run.status is Status.FAILURE:
            self.failures.append((name, copy.copy(run)))

    def done(self) -> int:
        """How many of the tasks to run have ended."""
        return sum(1 for name in self.to_run if self.statuses.get(name) in DONE)


class LiveProgress(RunProgress):
    """A context manager showing a run's progress on a terminal."""

    def __init__(self, title: str, console: Any = None) -> None:
        from rich.console import Console

        super().__init__(title)
        # The stream itself, not "sys.stderr when printing": while the view is up, sys.stderr is
        # the view's own redirect, and a task's router around it, which print through this.
        self.console = console or Console(file=real_stream(sys.stderr))
        self._live: Any = None

    def __enter__(self) -> LiveProgress:
        from rich.live import Live

        self._live = Live(
            get_renderable=self.render,
            console=self.console,
            refresh_per_second=4,
            redirect_stdout=True,
            redirect_stderr=True,
        )
        self._live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._live.refresh()
        self._live.__exit__(exc_type, exc, tb)

    @property
    def stream(self) -> TextIO:
        """A text stream whose lines are printed above the view (for the run's log lines)."""
        return _Above(self.console)

    def render(self) -> Any:
        """The view as it is now (rich calls this on every refresh)."""
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        counts = Counter(self.statuses.values())
        header = Text(f"{self.title}  ", style="bold")
        for status in Status:
            if counts[status]:
                header.append(f" {counts[status]} {status.value} ", style=_chip(status))
                header.append(" ")
        done = self.done()
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(len(self.to_run), 1), completed=done, width=40),
            Text(f"{done}/{len(self.to_run)} tasks to run"),
        )
        parts: list[Any] = [header, bar]
        now = self.clock()
        for name, since in sorted(self.started.items(), key=lambda item: item[1]):
            parts.append(Text(f"  ▶ {name}  {now - since:6.1f} s", style="cyan"))
        hidden = len(self.failures) - SHOWN_FAILURES
        if hidden > 0:
            parts.append(Text(f"  ✗ ... {hidden} more failure(s) before these: see the log", "red"))
        for name, run in self.failures[-SHOWN_FAILURES:]:
            parts.append(Text(f"  ✗ {name}: {run.error or ''}", style="bold red"))
        return Group(*parts)


class _Above(io.TextIOBase):
    """Writes through the view's console, which prints above a live view and redraws it."""

    def __init__(self, console: Any) -> None:
        self.console = console

    def write(self, text: str) -> int:
        self.console.print(text, end="", markup=False, highlight=False, emoji=False, soft_wrap=True)
        return len(text)


def _chip(status: Status) -> str:
    return f"black on {STATUS_COLORS[status]}"
