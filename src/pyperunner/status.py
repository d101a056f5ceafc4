"""The states a task passes through in a run, shared by the scheduler, results and reports."""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """State of one task in one run; the value is what run folders and reports show."""

    NOT_STARTED = "NOT_STARTED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    CACHED = "CACHED"
    FAILURE = "FAILURE"
    CANT_RUN = "CANT_RUN"

    @property
    def has_output(self) -> bool:
        """True where the task's output is in the store after the run."""
        return self in (Status.SUCCESS, Status.CACHED)
