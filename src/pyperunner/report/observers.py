"""The observers the reporting layer gives every run: its live view and its pictures.

:func:`live_view` follows a run in the notebook cell that runs it (``notebook_progress``), or on
a terminal (``progress``): by default where the console is one, as ``Runner(progress=...)``
says. :func:`pictures` draws ``status.png`` and writes ``report.html`` once the run is over.
``report/wiring.py`` registers both with ``observers.FACTORIES``; the views are imported only
when a run uses them.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..dag import Dag
from ..observers import RunObserver, RunSetting
from ..runfolder import LOG_FILE
from ..status import TaskRun

if TYPE_CHECKING:
    from .notebook_progress import NotebookProgress
    from .progress import LiveProgress

STATUS_IMAGE = "status.png"
"""The status picture every run draws in its folder."""

log = logging.getLogger()


def live_view(setting: RunSetting) -> RunObserver | None:
    """The run's live view: in a notebook (its log lines go there too, also without
    progress), on a terminal, or none."""
    if not setting.console:
        return None
    if in_notebook():
        from .notebook_progress import NotebookProgress

        live = setting.progress is not False
        return _InNotebook(
            NotebookProgress(setting.pipeline_name, setting.run_dir / LOG_FILE, live=live)
        )
    if setting.progress is False or not (setting.progress or sys.stderr.isatty()):
        return None
    from .progress import LiveProgress

    return _OnTerminal(LiveProgress(setting.pipeline_name))


def in_notebook() -> bool:
    """Whether this is an IPython kernel (a notebook's), not IPython in a terminal, nor a worker
    process forked from a kernel, which cannot send to the notebook; looked up only where
    IPython is imported already, as a kernel has it."""
    ipython = sys.modules.get("IPython")
    kernel = getattr(ipython.get_ipython() if ipython is not None else None, "kernel", None)
    session = getattr(kernel, "session", None)
    return kernel is not None and getattr(session, "pid", os.getpid()) == os.getpid()


class _InNotebook(RunObserver):
    """A run in its notebook cell: shown from the start (its handler takes the console's lines),
    the plan's counts once planned."""

    def __init__(self, view: NotebookProgress) -> None:
        self.view = view
        self.console = view.handler

    def __enter__(self) -> _InNotebook:
        self.view.__enter__()
        return self

    def planned(
        self, to_run: Sequence[str], cached: Sequence[str], console: logging.Handler | None
    ) -> None:
        self.view.plan(to_run, cached)

    def changed(self, name: str, run: TaskRun) -> None:
        self.view.update(name, run)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.view.__exit__(exc_type, exc, tb)


class _OnTerminal(RunObserver):
    """A run on a terminal: the live view appears once the run is planned, and the console's
    log lines go above it."""

    live = True

    def __init__(self, view: LiveProgress) -> None:
        self.view = view
        self._shown = False

    def planned(
        self, to_run: Sequence[str], cached: Sequence[str], console: logging.Handler | None
    ) -> None:
        self.view.__enter__()
        self._shown = True
        self.view.plan(to_run, cached)
        if isinstance(console, logging.StreamHandler):
            console.setStream(self.view.stream)

    def changed(self, name: str, run: TaskRun) -> None:
        self.view.update(name, run)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._shown:
            self._shown = False
            self.view.__exit__(exc_type, exc, tb)


def pictures(setting: RunSetting) -> RunObserver:
    """Draws the run's ``status.png`` and writes its ``report.html`` when it ends."""
    return _Pictures(setting)


class _Pictures(RunObserver):
    def __init__(self, setting: RunSetting) -> None:
        self.setting = setting

    def end(self, pipeline_doc: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
        from .html import write_report

        try:  # pictures must never fail a run that computed everything
            runs = {name: TaskRun.from_dict(doc) for name, doc in outcome["tasks"].items()}
            folder = self.setting.run_dir
            self.status_picture(self.setting.graph, runs, folder / STATUS_IMAGE)
            write_report(folder, (pipeline_doc, outcome))
        except Exception as exc:
            log.warning("could not draw the run's pictures: %s", exc)

    def status_picture(self, graph: Dag, runs: Mapping[str, TaskRun], path: Path) -> Path:
        from .image import write_status_png

        graph = graph.copy()
        for name, run in runs.items():
            graph.nodes[name]["status"] = run.status
            graph.nodes[name]["duration"] = run.duration
        return write_status_png(graph, path, title=self.setting.pipeline_name)
