"""The states a task passes through in a run and the record of one task's run.

Shared by the scheduler that produces them, the results that read them back from a run folder and
the reports that draw them.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from typing import Any

from . import display
from .text import format_duration


class Status(str, enum.Enum):
    """State of one task in one run; the value is what run folders and reports show."""

    NOT_STARTED = "NOT_STARTED"
    RUNNING = "RUNNING"
    SUCCESS = "SUCCESS"
    CACHED = "CACHED"
    FAILURE = "FAILURE"
    CANT_RUN = "CANT_RUN"
    INTERRUPTED = "INTERRUPTED"

    @property
    def has_output(self) -> bool:
        """True where the task's output is in the store after the run."""
        return self in (Status.SUCCESS, Status.CACHED)


@dataclasses.dataclass(repr=False)
class TaskRun:
    """What happened to one task in one run, as the run folder stores it."""

    status: Status = Status.NOT_STARTED
    reason: str | None = None
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    traceback: str | None = None
    output_bytes: int | None = None
    attempts: int = 0
    preview: dict[str, Any] | None = None  # the output at a glance (pyperunner.preview)

    @property
    def duration(self) -> float | None:
        """Seconds the task ran, if it ran to an end."""
        if self.started is None or self.finished is None:
            return None
        return self.finished - self.started

    def __repr__(self) -> str:
        text = f"<TaskRun {self.status.value}"
        if self.duration is not None:
            text += f" in {format_duration(self.duration)}"
        if self.reason:
            text += f" ({self.reason})"
        return text + (f": {self.error}>" if self.error else ">")

    def _repr_html_(self) -> str | None:
        """Status, duration, why it ran, output; error and the user's frame, for notebooks."""
        return display.html(self)

    def to_dict(self) -> dict[str, Any]:
        """A YAML-safe form, with the duration spelled out for readers of the file."""
        doc = dict(self.__dict__)
        doc["status"] = self.status.value
        doc["duration"] = self.duration
        return doc

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> TaskRun:
        """Read back :meth:`to_dict` output; ``ValueError`` naming the field that is not of
        its type (a run file edited by hand)."""
        values = dict(doc)
        values.pop("duration", None)  # worked out from started and finished
        if not _FIELDS.issuperset(values):
            values = {k: v for k, v in values.items() if k in _FIELDS}
        status = values.get("status", Status.NOT_STARTED)
        try:
            values["status"] = _STATUSES[status]
        except (KeyError, TypeError):  # not a status: Status says so
            values["status"] = Status(status)
        for name, kinds in _KINDS.items():
            value = values.get(name)
            if value is not None and (type(value) is bool or not isinstance(value, kinds)):
                raise ValueError(f"its {name} {value!r} is not {_KIND_NAMES[kinds]}")
        return cls(**values)


_FIELDS = frozenset(field.name for field in dataclasses.fields(TaskRun))
_STATUSES = {status.value: status for status in Status}
_KINDS: dict[str, tuple[type, ...]] = {
    "reason": (str,),
    "error": (str,),
    "traceback": (str,),
    "started": (int, float),
    "finished": (int, float),
    "output_bytes": (int,),
    "attempts": (int,),
    "preview": (dict,),
}
_KIND_NAMES = {
    (str,): "a text",
    (int, float): "a number",
    (int,): "a whole number",
    (dict,): "a mapping",
}

STATUS_ORDER = (
    Status.SUCCESS,
    Status.CACHED,
    Status.FAILURE,
    Status.CANT_RUN,
    Status.INTERRUPTED,
    Status.RUNNING,
    Status.NOT_STARTED,
)
"""The order statuses are listed in, in counts and legends: how tasks ended first."""


def format_counts(counts: Mapping[Status, int]) -> str:
    """``6 SUCCESS, 1 FAILURE``: how many tasks ended in each status."""
    parts = [f"{counts[s]} {s.value}" for s in STATUS_ORDER if counts.get(s)]
    return ", ".join(parts) or "no tasks"
