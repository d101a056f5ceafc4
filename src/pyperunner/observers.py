"""What follows a run as it goes: the observers a ``Runner`` tells of each step of a run.

The runner draws nothing and shows nothing. It tells its observers when the run has begun
(:meth:`RunObserver.begin`), what it planned (:meth:`~RunObserver.planned`), every change of a
task's status (:meth:`~RunObserver.changed`) and how the run ended (:meth:`~RunObserver.end`).
The run's journal (``runwriter.RunWriter``) is the first observer of every run; the others come
from the factories in :data:`FACTORIES`, which the reporting layer fills when the package is
imported (``report/observers.py``: the live view on a terminal or in a notebook, the pictures).
A new view plugs in there without touching the runner.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from .dag import Dag
from .status import TaskRun


@dataclasses.dataclass(frozen=True)
class RunSetting:
    """What the factories of observers know of a run as it begins."""

    pipeline_name: str
    run_dir: Path
    graph: Dag
    console: bool  # the runner's console=: log lines go to a console at all
    progress: bool | None  # the runner's progress=: a live view (None: where the console is one)


class RunObserver:
    """One follower of a run; every step does nothing unless a subclass says otherwise.

    A context manager: the runner enters it as the run begins and exits it when the run is
    recorded (with the exception that ended the run, if one did).
    """

    console: logging.Handler | None = None
    """A handler that takes the console's log lines instead of stderr (a notebook's view)."""
    live: bool = False
    """A live view on the terminal: the console then gets only the run's own headlines,
    warnings and errors (the view shows the tasks)."""

    def handlers(self) -> Sequence[logging.Handler]:
        """Further handlers of the run's log records (the journal's per-task logs)."""
        return ()

    def begin(self, pipeline_doc: Mapping[str, Any]) -> None:
        """The run has begun; ``pipeline_doc`` is its ``pipeline.yaml``."""

    def planned(
        self, to_run: Sequence[str], cached: Sequence[str], console: logging.Handler | None
    ) -> None:
        """The run is planned; ``console`` is the handler of the console's log lines, if any."""

    def changed(self, name: str, run: TaskRun) -> None:
        """Task ``name`` has a new status (a ``scheduler.Listener``)."""

    def end(self, pipeline_doc: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
        """The run is over; ``outcome`` is its ``run.yaml``."""

    def status_picture(self, graph: Dag, runs: Mapping[str, TaskRun], path: Path) -> Path | None:
        """Draw ``graph`` coloured by ``runs`` to ``path`` if this observer draws; else None."""
        return None

    def close(self) -> None:
        """Release what the observer holds; called once the run is recorded, or failed to be."""

    def __enter__(self) -> RunObserver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


ObserverFactory = Callable[[RunSetting], "RunObserver | None"]
"""Makes an observer for a run, or None where it has nothing to follow (no console, ...)."""

FACTORIES: list[ObserverFactory] = []
"""The factories of the observers every run gets beside its journal, in the order they are told."""


def register(factory: ObserverFactory) -> ObserverFactory:
    """Give every run from now on an observer made by ``factory`` (usable as a decorator)."""
    FACTORIES.append(factory)
    return factory


def observers_for(setting: RunSetting) -> list[RunObserver]:
    """The observers the registered factories make for a run."""
    made = (factory(setting) for factory in FACTORIES)
    return [observer for observer in made if observer is not None]
