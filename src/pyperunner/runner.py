"""The runner: the one object users call to execute a pipeline.

It owns the paths, makes a folder for every run (``<log_path>/<pipeline>_<timestamp>``) with the
pipeline and its environment in ``pipeline.yaml``, the log, the outcome in ``run.yaml`` and a
status picture; then it plans the run and hands the plan to the scheduler.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import functools
import getpass
import logging
import os
import platform
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import runfolder
from .executors import Executor, Job, make_executor
from .graph import Dag, Pipeline, PipelineError, graph_keys
from .holds import Holds
from .logs import HEADLINE, TASK_STATUS, run_logging
from .plan import Change, Plan, compare_records, make_plan
from .results import PipelineResult
from .runfolder import LOG_FILE
from .runwriter import RunWriter, make_folder
from .scheduler import Listener, RunInterrupted, preparing, run_plan
from .status import Status, TaskRun
from .store import DEFAULT_COMPRESS, EntryState, Store
from .task import Task

STATUS_IMAGE = "status.png"

log = logging.getLogger()


class Runner:
    """Runs pipelines, caching every task's output under ``data_path`` and logging to ``log_path``.

    ``process_limit`` caps how many tasks run at once (default: the number of CPUs);
    ``executor`` is ``"process"`` (default), ``"thread"``, ``"inline"`` or an ``Executor``;
    ``console=False`` keeps log lines off the console (the run's log file still has them);
    ``progress`` shows a live view of the run: by default when the console is a terminal or a
    notebook (where the log lines go into the view, folded, also with ``progress=False``);
    ``compress`` is how results are compressed (``joblib.dump``'s argument; default none,
    checked here);
    ``data_path`` may be an fsspec URL (``s3://bucket/cache``), ``storage_options`` then go to
    its filesystem (see ``docs/storage.md``).
    """

    def __init__(
        self,
        data_path: str | os.PathLike[str],
        log_path: str | os.PathLike[str],
        process_limit: int | None = None,
        executor: str | Executor = "process",
        console: bool = True,
        progress: bool | None = None,
        compress: Any = DEFAULT_COMPRESS,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if process_limit is not None and (
            not isinstance(process_limit, int)
            or isinstance(process_limit, bool)
            or process_limit < 1
        ):
            raise ValueError(
                f"process_limit must be a whole number of at least 1 (or None: one per CPU), got "
                f"{process_limit!r}"
            )
        self.store = Store(data_path, compress, storage_options)
        self.log_path = Path(log_path).absolute()
        for what, path in (("data_path", self.store.root), ("log_path", self.log_path)):
            if isinstance(path, Path) and path.exists() and not path.is_dir():
                raise ValueError(
                    f"{what} {path} is a file, not a folder; give a folder (one that does not "
                    "exist yet is created)"
                )
        self.process_limit = process_limit or os.cpu_count() or 1
        self.executor = executor
        make_executor(executor).check_store(self.store)  # fail now, not at run()
        self.console = console
        self.progress = progress
        self.run_dir: Path | None = None
        self._graph: Dag | None = None
        self._result: PipelineResult | None = None

    @property
    def data_path(self) -> Path | str:
        """Where task outputs are stored: a folder, or the URL given."""
        return self.store.root

    def run(
        self,
        pipeline: Pipeline,
        force_reload: bool = False,
        fail_fast: bool = False,
        show_execution_plan: bool = False,
    ) -> PipelineResult:
        """Run every task of ``pipeline`` that is not cached; return the run's results.

        ``force_reload`` runs every task; ``fail_fast`` stops launching tasks after the first
        failure; ``show_execution_plan`` prints the DAG marked with what will run and why before
        anything runs. On SIGINT, SIGTERM or SIGHUP the run stops its workers, records the run,
        and then raises ``KeyboardInterrupt`` (SIGINT) or ``SystemExit(128 + signal)``.
        """
        graph = pipeline.graph()
        if not graph:
            raise PipelineError(
                f"No tasks in pipeline {pipeline.name!r}: add one with pipeline.add(task) "
                "before running it"
            )
        keys = graph_keys(graph)
        tasks = {name: graph.nodes[name]["task"] for name in graph}
        pipeline_doc = {"pipeline": pipeline._described(graph, keys), "run": self._run_info()}
        self.run_dir = None
        with contextlib.ExitStack() as stack:
            started = time.time()
            executor, to_run, restore_signals = make_executor(self.executor), {}, None

            def not_started() -> dict[str, TaskRun]:
                return {name: TaskRun(Status.NOT_STARTED) for name in graph}

            launched, writer = False, None
            try:
                with preparing(not_started):
                    run_dir = make_folder(self.log_path, pipeline.name)
                    writer = RunWriter(run_dir, keys)
                    stack.callback(writer.close)
                    self.run_dir, self._graph = run_dir, graph  # a signal from here is recorded
                    stack.enter_context(runfolder.running(run_dir))
                    pipeline_doc["run"]["run_dir"] = str(run_dir)
                    view = self._view()
                    notebook = None
                    if view == "notebook":  # its log takes the console's lines from the start
                        from .report.notebook_progress import NotebookProgress

                        shown = NotebookProgress(
                            pipeline.name, run_dir / LOG_FILE, live=self.progress is not False
                        )
                        notebook = stack.enter_context(shown)
                    console = stack.enter_context(
                        run_logging(
                            run_dir / LOG_FILE,
                            self.console if notebook is None else notebook.handler,
                            view == "terminal",
                            [writer.task_logs()],
                        )
                    )
                    writer.begin(pipeline_doc)
                    log.info(
                        "Stored pipeline parameters in %s",
                        run_dir / runfolder.PIPELINE_FILE,
                        extra={HEADLINE: True},
                    )
                    records = {name: _record_of(tasks[name], keys) for name in graph}
                    holds = Holds(self.store, graph, keys)
                    stack.callback(holds.close)
                    plan = self._plan(graph, tasks, keys, records, force_reload, pipeline, holds)
                    holds.start(plan)
                    writer.planned(plan.cached)
                    log.info(
                        "Plan: %d task(s) to run, %d cached", len(plan.to_run), len(plan.cached)
                    )
                    if show_execution_plan:
                        pipeline.summary()
                    pipeline._plan = None  # the boxes of a later summary() are not this run's
                    listener: Listener = _both(_log_change, writer.changed)
                    if notebook is not None:  # shown after the plan is printed, so below it
                        notebook.plan(plan.to_run, plan.cached)
                        listener = _both(listener, notebook.update)
                    elif view == "terminal":
                        from .report.progress import LiveProgress

                        live = stack.enter_context(LiveProgress(pipeline.name))
                        live.plan(plan.to_run, plan.cached)
                        if isinstance(console, logging.StreamHandler):  # lines go above the view
                            console.setStream(live.stream)
                        listener = _both(listener, live.update)
                    jobs = {  # every task's: a cached one whose result vanishes runs too
                        name: Job(
                            tasks[name],
                            keys[name],
                            _inputs(tasks[name], keys),
                            records[name],
                            reuse=name not in plan.forced,
                        )
                        for name in graph
                    }
                    to_run = {name: jobs[name] for name in plan.to_run}
                    started = time.time()
                    if to_run:
                        executor.start(self.store, self.process_limit, to_run)
                workers = executor.capacity(self.process_limit)
                launched = True
                runs = run_plan(graph, plan, jobs, executor, workers, holds, listener, fail_fast)
            except RunInterrupted as interrupted:
                restore_signals = interrupted.restore_signals
                if writer is not None:  # else it stopped before there was a run to record
                    self._record(writer, pipeline, pipeline_doc, keys, interrupted.runs, started)
                    log.error("Run interrupted by %s", signal.Signals(interrupted.signum).name)
                if interrupted.signum == signal.SIGINT:
                    raise KeyboardInterrupt from None
                raise SystemExit(128 + interrupted.signum) from None
            except Exception as exc:
                if writer is not None and not launched:  # recorded as a run that never began
                    error = f"{type(exc).__name__}: {exc}"
                    log.error("The run could not start: %s", error)
                    with contextlib.suppress(Exception):  # best effort: exc is what to tell
                        self._record(
                            writer, pipeline, pipeline_doc, keys, not_started(), started, error
                        )
                raise
            finally:
                executor.shutdown()  # idempotent; releases what an executor holds (a client)
                if to_run:
                    self.store.sync()  # the run's results survive a power cut from here on
                if restore_signals is not None:
                    restore_signals()
            self._record(writer, pipeline, pipeline_doc, keys, runs, started)
        assert self._result is not None
        return self._result

    def _record(
        self,
        writer: RunWriter,
        pipeline: Pipeline,
        pipeline_doc: Mapping[str, Any],
        keys: Mapping[str, str],
        runs: Mapping[str, TaskRun],
        started: float,
        error: str | None = None,
    ) -> None:
        """Keep the run's results and write its outcome (run.yaml and the summary through
        ``writer``, the pictures, the last log lines); ``error`` says why a run never began."""
        assert self.run_dir is not None
        run_dir = self.run_dir
        self._result = PipelineResult(pipeline.name, self.store, keys, runs, run_dir)
        pipeline._result = self._result
        for name, run in runs.items():
            if run.status is Status.CACHED and run.output_bytes is None:
                run.output_bytes = self.store.result_size(name, keys[name])
        doc = {
            "finished": dt.datetime.now().isoformat(timespec="seconds"),
            "duration": round(time.time() - started, 3),
            "tasks": {name: run.to_dict() for name, run in runs.items()},
        }
        if error is not None:
            doc["error"] = error
        writer.end(pipeline_doc, doc)
        try:  # pictures must never fail a run that computed everything
            from .report.html import write_report

            self.write_status_image(STATUS_IMAGE)
            write_report(run_dir, (pipeline_doc, doc))
        except Exception as exc:
            log.warning("could not draw the run's pictures: %s", exc)
        counts = collections.Counter(run.status.value for run in runs.values())
        summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
        failed = self._result.failed
        for name, run in failed.items():  # beside a live view, which lists them itself
            log.error("Failed: %s: %s", name, run.error, extra={TASK_STATUS: True})
        if Status.INTERRUPTED.value in counts:
            log.warning("Pipeline stopped before the end (%s)", summary)
        elif failed:
            log.error("Pipeline finished with failures in %s (%s)", ", ".join(failed), summary)
        elif Status.NOT_STARTED.value in counts:
            log.warning("Pipeline stopped before the end (%s)", summary)
        else:
            log.info(
                "Pipeline finished successfully (%s) in %.1f s", summary, time.time() - started
            )

    def plan(self, pipeline: Pipeline, force_reload: bool = False) -> Plan:
        """Decide, without running anything, which tasks a run would execute and why.

        The pipeline remembers the plan, so ``pipeline.summary()`` then marks each task.
        """
        graph = pipeline.graph()
        keys = graph_keys(graph)
        tasks = {name: graph.nodes[name]["task"] for name in graph}
        records = {name: _record_of(tasks[name], keys) for name in graph}
        return self._plan(graph, tasks, keys, records, force_reload, pipeline, dry=True)

    def _plan(
        self,
        graph: Dag,
        tasks: Mapping[str, Task],
        keys: Mapping[str, str],
        records: Mapping[str, Mapping[str, Any]],
        force_reload: bool,
        pipeline: Pipeline | None = None,
        holds: Holds | None = None,
        dry: bool = False,
    ) -> Plan:
        """What must run and why; ``dry`` (a plan only looked at) changes nothing in the store:
        leftovers stay, and a damaged result is reported but not moved aside.

        With ``holds``, every cached result a task of the run will read is held, so gc cannot
        delete it from here on; one that is gone by then counts as not cached after all.
        """
        damaged: dict[str, str] = {}
        verified: set[str] = set()
        gone: set[str] = set()

        def found_damaged(name: str, problem: str) -> None:
            if name not in damaged:
                log.warning(
                    "Cached result of %s is damaged (%s); computing it again", name, problem
                )
                damaged[name] = problem

        def is_cached(name: str) -> bool:
            if name in damaged or name in gone:  # damaged by its checksum, or deleted since
                return False
            state, problem = self.store.check(name, keys[name])
            if state is EntryState.DAMAGED:
                found_damaged(name, problem)
            elif state is EntryState.OK and not dry:
                for leftover in self.store.sweep(name, keys[name]):
                    log.info("Removed %s, left by an interrupted write", leftover)
            return state is EntryState.OK

        def changes(name: str) -> Change:
            if name in damaged:
                return Change((f"stored result is damaged ({damaged[name]})",))
            aside = self.store.damaged_copy(name, keys[name])
            if aside is not None and not self.store.has(name, keys[name]):
                return Change((f"stored result is damaged (it was moved aside to {aside})",))
            previous = self.store.latest_record(name, except_key=keys[name])
            return compare_records(records[name], previous)

        while True:  # until every cached result this run will read is held and checked
            plan = make_plan(
                graph,
                is_cached=is_cached,
                reload=lambda name: tasks[name].reload,
                force_reload=force_reload,
                changes=changes,
            )
            to_read = {
                name
                for name in plan.cached
                if any(child in plan.reasons for child in graph.successors(name))
            }
            vanished = set() if holds is None else {n for n in to_read if not holds.take(n)}
            for name in vanished:
                log.warning(
                    "The stored result of %s vanished while the run was planned; computing it "
                    "again",
                    name,
                )
            gone |= vanished
            problems = {
                name: self.store.verify(name, keys[name], set_aside=not dry)
                for name in to_read - verified - gone
            }
            verified |= to_read
            for name, problem in problems.items():
                if problem is not None:
                    found_damaged(name, problem)
            if not vanished and not any(problems.values()):
                break
        if pipeline is not None:
            pipeline._plan = plan
        return plan

    def _view(self) -> str | None:
        """The run's view: "notebook" inside a Jupyter kernel (its log lines go there too, also
        without progress), "terminal" for the live view on a terminal, or None."""
        if not self.console:
            return None
        if _in_notebook():
            return "notebook"
        if self.progress is False:
            return None
        return "terminal" if self.progress or sys.stderr.isatty() else None

    def results(self) -> PipelineResult:
        """The results of the last run of this runner."""
        if self._result is None:
            raise RuntimeError("this runner has not run a pipeline yet: call run(pipeline) first")
        return self._result

    def write_status_image(self, fname: str | os.PathLike[str] = STATUS_IMAGE) -> Path:
        """Draw the last run's DAG coloured by status as PNG; a relative name goes in its folder."""
        from .report.image import write_status_png

        if self._graph is None or self._result is None or self.run_dir is None:
            raise RuntimeError("nothing to draw yet: call run(pipeline) first")
        graph = self._graph.copy()
        for name, run in self._result.runs.items():
            graph.nodes[name]["status"] = run.status
            graph.nodes[name]["duration"] = run.duration
        return write_status_png(graph, self.run_dir / fname, title=self._result.pipeline_name)

    # -- internals ----------------------------------------------------------------------------

    def _run_info(self) -> dict[str, Any]:
        """What a run's ``pipeline.yaml`` tells of where and how it ran (``run_dir`` set later)."""
        from . import __version__

        return {
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "data_path": str(self.store.root),
            "log_path": str(self.log_path),
            "run_dir": None,
            "executor": self.executor if isinstance(self.executor, str) else repr(self.executor),
            "process_limit": self.process_limit,
            "host": socket.gethostname(),
            "user": _user(),
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "argv": list(sys.argv),
            "cwd": os.getcwd(),
            "pyperunner": __version__,
            "git": _git_state(),
            "packages": _packages(),
        }


def _in_notebook() -> bool:
    """Whether this is an IPython kernel (a notebook's), not IPython in a terminal, nor a worker
    process forked from a kernel, which cannot send to the notebook; looked up only where
    IPython is imported already, as a kernel has it."""
    ipython = sys.modules.get("IPython")
    kernel = getattr(ipython.get_ipython() if ipython is not None else None, "kernel", None)
    session = getattr(kernel, "session", None)
    return kernel is not None and getattr(session, "pid", os.getpid()) == os.getpid()


def _both(*listeners: Listener) -> Listener:
    def notify(name: str, run: TaskRun) -> None:
        for listener in listeners:
            listener(name, run)

    return notify


def _log_change(name: str, run: TaskRun) -> None:
    flag = {TASK_STATUS: True}
    if run.status is Status.RUNNING:
        attempt = f", attempt {run.attempts}" if run.attempts > 1 else ""
        log.info("Starting %s (%s%s)", name, run.reason, attempt, extra=flag)
    elif run.status is Status.SUCCESS:
        log.info("Finished %s in %.2f s", name, run.duration or 0.0, extra=flag)
    elif run.status is Status.FAILURE:
        log.error("Task %s failed: %s", name, run.error, extra=flag)
    elif run.status is Status.CANT_RUN:
        log.warning("Task %s can't run: %s", name, run.error, extra=flag)
    elif run.status is Status.CACHED:
        log.info("Using the stored result of %s, found when it was about to run", name, extra=flag)
    elif run.status is Status.INTERRUPTED:
        log.warning("Task %s was interrupted", name, extra=flag)


def _inputs(task: Task, keys: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple((p.name, keys[p.name]) for p in task.parents)


def _record_of(task: Task, keys: Mapping[str, str]) -> dict[str, Any]:
    """What ``params.yaml`` says of a task: how it was made and from which inputs."""
    return {
        "task": {
            "name": task.name,
            "module": type(task).__module__,
            "class": type(task).__qualname__,
            "tag": task.tag,
            "key": keys[task.name],
            "code": task.code_fingerprint(),
            "params": {k: _plain(v) for k, v in task.params.items()},
        },
        "parents": dict(_inputs(task, keys)),
    }


def _plain(value: Any) -> Any:
    from .keys import encode

    return encode(value, for_key=False)


def _user() -> str | None:
    try:
        return getpass.getuser()
    except Exception:
        return None


def _git_state() -> dict[str, Any] | None:
    main = sys.modules.get("__main__")
    where = Path(getattr(main, "__file__", None) or os.getcwd()).absolute()
    folder = where if where.is_dir() else where.parent
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


@functools.cache
def _packages() -> dict[str, str]:
    """Installed distributions and their versions, read from the ``*.dist-info`` folder names.

    Much faster than parsing every distribution's metadata; cached, as installs do not change
    under a running interpreter in any way a run should record twice.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                project, _, version = name[: -len(".dist-info")].rpartition("-")
                found.setdefault(project.replace("_", "-"), version)
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))
