"""Writing a run's folder as the run goes: its files (see :mod:`.runfolder` for what each holds).

The runner makes the folder (:func:`make_folder`) and a :class:`RunWriter` for it, which writes
``pipeline.yaml`` and the summary when the run starts, appends every change of a task's status
to the journal (flushed line by line, so a page that follows the run sees it at once), sends each
task's log records to its own file, and at the end writes ``run.yaml`` and the final summary.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from . import yamlio
from .files import write_atomic
from .journal import JOURNAL_FILE
from .observers import RunObserver
from .runfolder import PIPELINE_FILE, RUN_FILE, SUMMARY_FILE, TASK_LOGS
from .status import Status, TaskRun

_JSON = json.JSONEncoder(separators=(",", ":")).encode
"""A journal line: compact, and one encoder for all (``json.dumps`` makes one a call)."""
RUN_STAMP = "%y%m%dT%H%M%S"
"""How a run folder's name gives its start, after the pipeline's name (``graph`` checks that
the name fits, see ``RUN_FOLDER_SUFFIX``)."""


def make_folder(log_path: Path, pipeline_name: str) -> Path:
    """A new folder ``<pipeline>_<yymmddTHHMMSS>`` under ``log_path``; a later run in the same
    second adds ``_<microseconds>``, so that sorting run folders by name sorts them by time."""
    base = f"{pipeline_name}_{dt.datetime.now():{RUN_STAMP}}"
    try:
        log_path.mkdir(parents=True, exist_ok=True)
        for attempt in range(10_000):
            path = log_path / (f"{base}_{dt.datetime.now():%f}" if attempt else base)
            try:
                path.mkdir()
            except FileExistsError:
                continue
            return path
    except OSError as exc:
        raise type(exc)(
            exc.errno,
            f"cannot create a run folder in {log_path} ({exc.strerror}); give a log_path this "
            "process can write to",
        ) from exc
    raise RuntimeError(f"cannot create a run folder in {log_path}")


class RunWriter(RunObserver):
    """Writes one run's folder while the run goes on, as the run's first observer: call
    :meth:`begin` once the pipeline is described, :meth:`planned` once the plan is made,
    :meth:`changed` on every change of a task's status (a listener), and :meth:`end` with the
    outcome. Log records of the run's tasks go to its :meth:`handlers`."""

    def __init__(self, folder: Path, keys: Mapping[str, str]) -> None:
        self.folder = folder
        self.keys = keys
        self._journal: IO[str] | None = None
        self._changed: set[str] = set()  # the tasks the journal has a record of
        self._task_logs = _TaskLogs(folder / TASK_LOGS, keys)

    def begin(self, pipeline_doc: Mapping[str, Any]) -> None:
        """Write ``pipeline.yaml`` and a summary saying the run goes on; start the journal."""
        write_atomic(self.folder / PIPELINE_FILE, yamlio.dump(pipeline_doc).encode())
        started = pipeline_doc["run"]["started"]
        counts = {Status.NOT_STARTED.value: len(self.keys)}
        self._summary(pipeline_doc["pipeline"]["name"], started, None, None, counts)
        self._journal = open(self.folder / JOURNAL_FILE, "a", encoding="utf-8")  # noqa: SIM115
        self._write({"run": "started", "t": time.time(), "pipeline": pipeline_doc})

    def planned(
        self, to_run: Sequence[str], cached: Sequence[str], console: logging.Handler | None = None
    ) -> None:
        """Note which tasks the run takes from the store (journal)."""
        self._write({"run": "planned", "t": time.time(), "cached": list(cached)})

    def changed(self, name: str, run: TaskRun) -> None:
        """Note a task's new status, with its whole record (journal)."""
        self._changed.add(name)
        self._write({"task": name, "t": time.time(), "run": run.to_dict()})

    def handlers(self) -> Sequence[logging.Handler]:
        """The handler that writes each task's records to its own log file."""
        return (self._task_logs,)

    def end(self, pipeline_doc: Mapping[str, Any], outcome: Mapping[str, Any]) -> None:
        """Write ``run.yaml`` and the final summary, and close the journal and task logs."""
        write_atomic(self.folder / RUN_FILE, yamlio.dump(outcome).encode())
        counts = collections.Counter(record["status"] for record in outcome["tasks"].values())
        started = pipeline_doc["run"]["started"]
        name = pipeline_doc["pipeline"]["name"]
        duration = outcome["duration"]
        self._summary(name, started, outcome["finished"], duration, counts, outcome.get("error"))
        cached = [
            (task, record)
            for task, record in outcome["tasks"].items()
            if record["status"] == Status.CACHED.value and task not in self._changed
        ]
        sizes = {task: record["output_bytes"] for task, record in cached}
        previews = {task: record["preview"] for task, record in cached if record.get("preview")}
        ended = {k: outcome.get(k) for k in ("finished", "duration", "error")}
        ended.update(sizes=sizes, previews=previews)
        self._write({"run": "ended", "t": time.time(), **ended})
        self.close()

    def close(self) -> None:
        """Close the journal and the task logs (once the run is recorded, or it failed to)."""
        if self._journal is not None:
            self._journal.close()
            self._journal = None
        self._task_logs.close()

    def _write(self, event: Mapping[str, Any]) -> None:
        if self._journal is not None:
            self._journal.write(_JSON(event) + "\n")
            self._journal.flush()  # followed live by readers

    def _summary(
        self,
        name: str,
        started: str,
        finished: str | None,
        duration: float | None,
        counts: Mapping[str, int],
        error: str | None = None,
    ) -> None:
        doc = {
            "pipeline": name,
            "started": started,
            "finished": finished,
            "duration": duration,
            "tasks": len(self.keys),
            "counts": dict(counts),
            "error": error,
        }
        write_atomic(self.folder / SUMMARY_FILE, json.dumps(doc, indent=1).encode())


class _TaskLogs(logging.Handler):
    """Writes each task's log records to ``<folder>/<key>.log``, keeping a few files open."""

    _OPEN = 32

    def __init__(self, folder: Path, keys: Mapping[str, str]) -> None:
        super().__init__(logging.DEBUG)
        self.folder, self.keys = folder, keys
        self._files: collections.OrderedDict[str, IO[str]] = collections.OrderedDict()

    def emit(self, record: logging.LogRecord) -> None:
        key = self.keys.get(getattr(record, "task", ""))
        if key is None:
            return
        try:
            handle = self._files.pop(key, None) or self._open(key)
            self._files[key] = handle
            handle.write(self.format(record) + "\n")
            handle.flush()
        except Exception:
            self.handleError(record)

    def _open(self, key: str) -> IO[str]:
        if len(self._files) >= self._OPEN:
            self._files.popitem(last=False)[1].close()
        self.folder.mkdir(exist_ok=True)
        return open(self.folder / f"{key}.log", "a", encoding="utf-8", errors="backslashreplace")

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files.clear()
        super().close()
