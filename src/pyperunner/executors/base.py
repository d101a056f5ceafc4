"""What every executor shares: the job it is given, the outcome it reports, and running a job.

A job names a task, its key and where its inputs are in the store; the worker that runs it loads
the inputs, calls the task and writes the output back to the store. Only a small outcome message
travels back to the scheduler, never a value, whatever the executor.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import time
import traceback
from collections.abc import Mapping
from typing import Any

from ..logs import task_context
from ..store import Store
from ..task import Inputs, Task


@dataclasses.dataclass(frozen=True)
class Job:
    """One task to run: the task, its key, its parents' (name, key) in order, its params record."""

    task: Task
    key: str
    inputs: tuple[tuple[str, str], ...]
    record: Mapping[str, Any]

    @property
    def name(self) -> str:
        """The task's name."""
        return self.task.name


@dataclasses.dataclass(frozen=True)
class Outcome:
    """How a job ended: ``error`` is None on success."""

    name: str
    started: float
    finished: float
    error: str | None = None
    traceback: str | None = None
    output_bytes: int | None = None

    @property
    def ok(self) -> bool:
        """True if the task succeeded and its output is stored."""
        return self.error is None


def execute(job: Job, store: Store) -> Outcome:
    """Run ``job`` in the calling thread: load inputs, call the task, store its output."""
    started = time.time()
    with task_context(job.name):
        log = logging.getLogger(job.name)
        try:
            data = Inputs((name, store.load(name, key)) for name, key in job.inputs)
            output = job.task.execute(data)
            size = store.save(job.name, job.key, output, job.record)
        except BaseException as exc:
            text = traceback.format_exc()
            log.error("failed: %s: %s\n%s", type(exc).__name__, exc, text.rstrip())
            return Outcome(job.name, started, time.time(), f"{type(exc).__name__}: {exc}", text)
    return Outcome(job.name, started, time.time(), output_bytes=size)


class Executor(abc.ABC):
    """Runs the scheduler's jobs: ``submit`` them, ``wait`` for outcomes, then ``shutdown``."""

    def __init__(self) -> None:
        self.store: Store | None = None

    def start(self, store: Store, workers: int) -> None:
        """Prepare to run up to ``workers`` jobs at once against ``store``."""
        self.store = store

    @abc.abstractmethod
    def submit(self, job: Job) -> None:
        """Start ``job``; the scheduler never submits more jobs than ``workers`` at once."""

    @abc.abstractmethod
    def wait(self) -> list[Outcome]:
        """Block until at least one submitted job has ended; return all that have."""

    def shutdown(self) -> None:  # noqa: B027  (most executors hold nothing to release)
        """Release workers; called once at the end of a run, also after errors."""
