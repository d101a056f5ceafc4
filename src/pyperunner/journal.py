"""A run's journal, ``events.jsonl``, read back: what a running or killed run has done so far.

The runner appends one JSON line per event (:mod:`pyperunner.runwriter` writes them): the run
started (with its pipeline document), what it planned to take from the store, each change of a
task's status (its whole record), and how it ended. A reader that follows a run reads on from
where it stopped; a line cut short is left for the next read.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from pathlib import Path
from typing import Any

from .status import Status, TaskRun

JOURNAL_FILE = "events.jsonl"


@dataclasses.dataclass
class Journal:
    """What a run's ``events.jsonl`` says: its pipeline document (as in ``pipeline.yaml``), the
    tasks it planned to take from the store, each task's latest record, and how the run ended
    (``end``: when, how long, why it could not start, the sizes and previews of the cached
    results).

    The tasks' lines, most of a big run's journal, are decoded when :attr:`tasks` is first
    asked for, so that what needs only the pipeline and the end (a run's result, before any of
    its statuses is looked at) does not wait for them."""

    pipeline: dict[str, Any] | None = None
    cached: list[str] = dataclasses.field(default_factory=list)
    end: dict[str, Any] | None = None
    size: int = 0  # bytes read: a reader that follows the run goes on from there
    _tasks: dict[str, TaskRun] = dataclasses.field(default_factory=dict, repr=False)
    _unread: list[bytes] = dataclasses.field(default_factory=list, repr=False)  # task lines

    @property
    def tasks(self) -> dict[str, TaskRun]:
        """Each task's latest record (rebuilt from its latest line that holds a valid one)."""
        if self._unread:
            records: dict[str, list[Any]] = {}  # each task's records, in the journal's order
            for event in _events(self._unread):
                with contextlib.suppress(ValueError, TypeError, AttributeError):
                    records.setdefault(str(event["task"]), []).append(event["run"])
            self._unread = []
            for name, found in records.items():
                for record in reversed(found):
                    with contextlib.suppress(ValueError, TypeError, AttributeError):
                        self._tasks[name] = TaskRun.from_dict(record)
                        break
        return self._tasks

    @property
    def ended(self) -> bool:
        """Whether the run was recorded (its runner wrote the last line)."""
        return self.end is not None

    def outcome(self) -> dict[str, Any]:
        """The run's outcome, as ``run.yaml`` holds it, once the run ended."""
        assert self.end is not None
        tasks = {name: run.to_dict() for name, run in self.runs().items()}
        found = {k: self.end.get(k) for k in ("finished", "duration")}
        if self.end.get("error") is not None:
            found["error"] = self.end["error"]
        return {**found, "tasks": tasks}

    def runs(self) -> dict[str, TaskRun]:
        """What happened to each task of the pipeline, once the run ended: its latest record,
        CACHED for what the run took from the store, else NOT_STARTED."""
        assert self.end is not None and self.pipeline is not None
        sizes = self.end.get("sizes") or {}
        previews = self.end.get("previews") or {}
        cached = set(self.cached)
        runs = {}
        for name in self.pipeline["pipeline"]["tasks"]:
            run = self.tasks.get(name)
            if run is None and name in cached:
                run = TaskRun(Status.CACHED)
                with contextlib.suppress(ValueError, TypeError):  # a journal edited by hand
                    found = {"output_bytes": sizes.get(name), "preview": previews.get(name)}
                    run = TaskRun.from_dict({"status": Status.CACHED.value, **found})
            runs[name] = run or TaskRun()
        return runs


def read_journal(folder: Path, journal: Journal | None = None) -> Journal | None:
    """Read a run's journal (None if it has none), or what was added to it since ``journal``
    was read, into that one. A line cut short (the run is writing it, or was killed meanwhile)
    is left for the next read; a line that is not the journal's is skipped.

    A task's lines are kept to be decoded when ``tasks`` is asked for, then at once and
    rebuilding each task's record from its latest valid line only, not from every line of it
    (a task has about three: running, then how it ended): reading a 50,000-task journal was
    mostly this per-line work."""
    try:
        with open(folder / JOURNAL_FILE, "rb") as handle:
            handle.seek(journal.size if journal is not None else 0)
            added = handle.read()
    except OSError:
        return journal
    journal = journal if journal is not None else Journal()
    complete = added[: added.rfind(b"\n") + 1]
    journal.size += len(complete)
    for line in complete.splitlines():
        if line.startswith(_TASK_LINE):  # as the runner writes a task's line
            journal._unread.append(line)
            continue
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            event = json.loads(line)
            if "task" in event:  # a task's line written otherwise
                journal._unread.append(line)
            else:
                _replay(journal, event)
    return journal


_TASK_LINE = b'{"task":'


def _events(lines: list[bytes]) -> list[Any]:
    """The journal lines decoded: at once if every line is JSON, else line by line, the lines
    that are not left out."""
    with contextlib.suppress(ValueError):
        events: list[Any] = json.loads(b"[" + b",".join(lines) + b"]")
        if len(events) == len(lines):  # else a line held two values: "1, 2"
            return events
    events = []
    for line in lines:
        with contextlib.suppress(ValueError):
            events.append(json.loads(line))
    return events


def _replay(journal: Journal, event: Any) -> None:
    """Take one journal line other than a task's into ``journal``; raises ``ValueError`` (or
    ``TypeError``, ``AttributeError``) for a line that is not one."""
    if event.get("run") == "started":
        journal.pipeline = dict(event["pipeline"])
    elif event.get("run") == "planned":
        journal.cached = [str(name) for name in event["cached"]]
    elif event.get("run") == "ended":
        journal.end = dict(event)
