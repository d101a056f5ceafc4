"""How a task runs: executors share one interface (``submit`` / ``wait`` / ``shutdown``)."""

from __future__ import annotations

import functools
from collections.abc import Callable

from .base import Executor, Job, Outcome, TaskTimeoutError, execute
from .dask import DaskExecutor
from .inprocess import InlineExecutor, ThreadExecutor
from .process import ProcessExecutor

EXECUTORS: dict[str, Callable[[], Executor]] = {
    "process": ProcessExecutor,
    "pool": functools.partial(ProcessExecutor, max_tasks_per_child=None),
    "thread": ThreadExecutor,
    "inline": InlineExecutor,
}


def make_executor(executor: str | Executor) -> Executor:
    """Return ``executor`` itself, or a new executor of the kind it names."""
    if isinstance(executor, Executor):
        return executor
    try:
        return EXECUTORS[executor]()
    except (KeyError, TypeError):
        raise ValueError(
            f"unknown executor {executor!r}: use one of {sorted(EXECUTORS)} or an Executor"
        ) from None


__all__ = [
    "EXECUTORS",
    "DaskExecutor",
    "Executor",
    "InlineExecutor",
    "Job",
    "Outcome",
    "ProcessExecutor",
    "TaskTimeoutError",
    "ThreadExecutor",
    "execute",
    "make_executor",
]
