"""The runner: the one object users call to execute a pipeline.

It owns the paths, makes a folder for every run (``<log_path>/<pipeline>_<timestamp>``), plans
the run against the store, hands the plan to the scheduler, and tells the run's observers
(``observers.py``) of every step: the journal that writes the folder (``pipeline.yaml`` with the
environment, the events, ``run.yaml``), and those the reporting layer adds (live views,
pictures). It draws nothing itself.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, NoReturn

from . import environment, runfolder
from .dag import Dag
from .executors import Executor, Job, make_executor
from .graph import Pipeline, code_fingerprints, graph_keys
from .holds import Holds
from .logs import HEADLINE, TASK_STATUS, run_logging
from .observers import RunObserver, RunSetting, observers_for
from .pipelinefile import PipelineError
from .plan import Plan, plan_with_store
from .resultfile import DEFAULT_COMPRESS
from .results import PipelineResult
from .runfolder import LOG_FILE
from .runwriter import RunWriter, make_folder
from .scheduler import Listener, RunInterrupted, preparing, run_plan
from .status import Status, TaskRun
from .store import Store
from .task import Task

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
        self._observers: list[RunObserver] = []  # the last run's

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
        run = _Run(self, pipeline)
        self.run_dir, self._observers = None, run.observers
        with contextlib.ExitStack() as stack:
            try:
                with preparing(run.not_started):
                    run.open_folder(stack)
                    run.start_logging(stack)
                    plan = run.make_plan(stack, force_reload, show_execution_plan)
                    run.start_executor(plan)
                runs = run.execute(plan, fail_fast)
            except RunInterrupted as interrupted:
                run.interrupted(interrupted)
            except Exception as exc:
                run.could_not_start(exc)
                raise
            finally:
                run.release()
            run.record(runs)
        assert self._result is not None
        return self._result

    def plan(self, pipeline: Pipeline, force_reload: bool = False) -> Plan:
        """Decide, without running anything, which tasks a run would execute and why.

        The pipeline remembers the plan, so ``pipeline.summary()`` then marks each task.
        """
        graph = pipeline.graph()
        keys, tasks, records = _tasks_of(graph)
        plan = plan_with_store(self.store, graph, tasks, keys, records, force_reload, dry=True)
        pipeline.planned(plan)
        return plan

    def results(self) -> PipelineResult:
        """The results of the last run of this runner."""
        if self._result is None:
            raise RuntimeError("this runner has not run a pipeline yet: call run(pipeline) first")
        return self._result

    def write_status_image(self, fname: str | os.PathLike[str] = "status.png") -> Path:
        """Draw the last run's DAG coloured by status as PNG; a relative name goes in its folder.

        The drawing is the run's observers' (the reporting layer's pictures)."""
        if self._graph is None or self._result is None or self.run_dir is None:
            raise RuntimeError("nothing to draw yet: call run(pipeline) first")
        for observer in self._observers:
            drawn = observer.status_picture(self._graph, self._result.runs, self.run_dir / fname)
            if drawn is not None:
                return drawn
        raise RuntimeError("none of the last run's observers draws pictures")

    def _run_info(self) -> dict[str, Any]:
        """What a run's ``pipeline.yaml`` tells of where and how it ran (``run_dir`` set later)."""
        return {
            "started": dt.datetime.now().isoformat(timespec="seconds"),
            "data_path": str(self.store.root),
            "log_path": str(self.log_path),
            "run_dir": None,
            "executor": self.executor if isinstance(self.executor, str) else repr(self.executor),
            "process_limit": self.process_limit,
            **environment.describe(),
        }


class _Run:
    """One run of a pipeline by a runner, as the sequence of steps ``Runner.run`` calls: open its
    folder (journal and observers), start logging, plan, start the executor, execute, record.
    It holds what the steps share; what the run leaves behind it gives back to the runner."""

    def __init__(self, runner: Runner, pipeline: Pipeline) -> None:
        graph = pipeline.graph()
        if not graph:
            raise PipelineError(
                f"No tasks in pipeline {pipeline.name!r}: add one with pipeline.add(task) "
                "before running it"
            )
        self.runner, self.store, self.pipeline, self.graph = runner, runner.store, pipeline, graph
        self.keys, self.tasks, self.records = _tasks_of(graph)
        self.doc = {"pipeline": pipeline._described(graph, self.keys), "run": runner._run_info()}
        self.observers: list[RunObserver] = []  # the journal first; told of every step
        self.executor = make_executor(runner.executor)
        self.jobs: dict[str, Job] = {}
        self.to_run: dict[str, Job] = {}
        self.holds: Holds | None = None
        self.console: logging.Handler | None = None
        self.started = time.time()
        self.launched = False
        self.restore_signals: Callable[[], None] | None = None

    def not_started(self) -> dict[str, TaskRun]:
        """Every task's record before anything ran."""
        return {name: TaskRun(Status.NOT_STARTED) for name in self.graph}

    def open_folder(self, stack: contextlib.ExitStack) -> None:
        """Make the run's folder, its journal, and its observers (which ``stack`` closes)."""
        runner = self.runner
        run_dir = make_folder(runner.log_path, self.pipeline.name)
        self.observers.append(stack.enter_context(RunWriter(run_dir, self.keys)))
        runner.run_dir, runner._graph = run_dir, self.graph  # a signal from here is recorded
        stack.enter_context(runfolder.running(run_dir))
        self.doc["run"]["run_dir"] = str(run_dir)
        setting = RunSetting(
            self.pipeline.name, run_dir, self.graph, runner.console, runner.progress
        )
        for observer in observers_for(setting):
            self.observers.append(stack.enter_context(observer))

    def start_logging(self, stack: contextlib.ExitStack) -> None:
        """Log to the run's folder, the console (or the view that takes its lines) and the
        observers' handlers; write ``pipeline.yaml``."""
        assert self.runner.run_dir is not None
        taken = [o.console for o in self.observers if o.console is not None]
        self.console = stack.enter_context(
            run_logging(
                self.runner.run_dir / LOG_FILE,
                taken[0] if taken else self.runner.console,
                any(o.live for o in self.observers),
                [handler for o in self.observers for handler in o.handlers()],
            )
        )
        for observer in self.observers:
            observer.begin(self.doc)
        where = self.runner.run_dir / runfolder.PIPELINE_FILE
        log.info("Stored pipeline parameters in %s", where, extra={HEADLINE: True})

    def make_plan(
        self, stack: contextlib.ExitStack, force_reload: bool, show_execution_plan: bool
    ) -> Plan:
        """Plan the run, holding the cached results it reads, and tell the observers."""
        self.holds = Holds(self.store, self.graph, self.keys)
        stack.callback(self.holds.close)
        plan = plan_with_store(
            self.store,
            self.graph,
            self.tasks,
            self.keys,
            self.records,
            force_reload,
            self.holds.take,
        )
        self.holds.start(plan)
        log.info("Plan: %d task(s) to run, %d cached", len(plan.to_run), len(plan.cached))
        if show_execution_plan:
            self.pipeline.planned(plan)
            self.pipeline.summary()
        self.pipeline.planned(None)  # the boxes of a later summary() are not this run's
        for observer in self.observers:  # after the plan is printed, so a view comes below it
            observer.planned(plan.to_run, plan.cached, self.console)
        return plan

    def start_executor(self, plan: Plan) -> None:
        """Make every task's job (a cached one whose result vanishes runs too) and start the
        executor with those to run."""
        self.jobs = {
            name: Job(
                task,
                self.keys[name],
                _inputs(task, self.keys),
                self.records[name],
                reuse=name not in plan.forced,
            )
            for name, task in self.tasks.items()
        }
        self.to_run = {name: self.jobs[name] for name in plan.to_run}
        self.started = time.time()
        if self.to_run:
            self.executor.start(self.store, self.runner.process_limit, self.to_run)

    def execute(self, plan: Plan, fail_fast: bool) -> dict[str, TaskRun]:
        """Run the plan's tasks; every task's record at the end."""
        workers = self.executor.capacity(self.runner.process_limit)
        self.launched = True
        listeners = [_log_change, *(observer.changed for observer in self.observers)]
        assert self.holds is not None
        return run_plan(
            self.graph,
            plan,
            self.jobs,
            self.executor,
            workers,
            self.holds,
            _all(listeners),
            fail_fast,
        )

    def interrupted(self, interrupted: RunInterrupted) -> NoReturn:
        """Record a run a signal stopped, then raise what the signal means."""
        self.restore_signals = interrupted.restore_signals
        if self.observers:  # else it stopped before there was a run to record
            self.record(interrupted.runs)
            log.error("Run interrupted by %s", signal.Signals(interrupted.signum).name)
        if interrupted.signum == signal.SIGINT:
            raise KeyboardInterrupt from None
        raise SystemExit(128 + interrupted.signum) from None

    def could_not_start(self, exc: Exception) -> None:
        """Record a run that failed before its tasks were launched as one that never began."""
        if self.observers and not self.launched:
            error = f"{type(exc).__name__}: {exc}"
            log.error("The run could not start: %s", error)
            with contextlib.suppress(Exception):  # best effort: exc is what to tell
                self.record(self.not_started(), error)

    def release(self) -> None:
        """Shut the executor down, put what the run stored on disk, restore the signals."""
        self.executor.shutdown()  # idempotent; releases what an executor holds (a client)
        if self.to_run:
            self.store.sync()  # the run's results survive a power cut from here on
        if self.restore_signals is not None:
            self.restore_signals()

    def record(self, runs: Mapping[str, TaskRun], error: str | None = None) -> None:
        """Keep the run's results, tell the observers its outcome (``run.yaml``), and log it;
        ``error`` says why a run never began."""
        runner = self.runner
        assert runner.run_dir is not None
        result = PipelineResult(self.pipeline.name, self.store, self.keys, runs, runner.run_dir)
        runner._result = result
        self.pipeline.ran(result)
        outcome = {
            "finished": dt.datetime.now().isoformat(timespec="seconds"),
            "duration": round(time.time() - self.started, 3),
            "tasks": {name: run.to_dict() for name, run in runs.items()},
        }
        if error is not None:
            outcome["error"] = error
        for observer in self.observers:
            observer.end(self.doc, outcome)
        _log_outcome(result, time.time() - self.started)


def _log_outcome(result: PipelineResult, duration: float) -> None:
    """The run's last log lines: what failed, and how the run ended."""
    counts = collections.Counter(run.status.value for run in result.runs.values())
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    failed = result.failed
    for name, run in failed.items():  # beside a live view, which lists them itself
        log.error("Failed: %s: %s", name, run.error, extra={TASK_STATUS: True})
    if Status.INTERRUPTED.value in counts:
        log.warning("Pipeline stopped before the end (%s)", summary)
    elif failed:
        log.error("Pipeline finished with failures in %s (%s)", ", ".join(failed), summary)
    elif Status.NOT_STARTED.value in counts:
        log.warning("Pipeline stopped before the end (%s)", summary)
    else:
        log.info("Pipeline finished successfully (%s) in %.1f s", summary, duration)


def _all(listeners: Sequence[Listener]) -> Listener:
    """One listener telling each of ``listeners`` in turn."""

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


def _tasks_of(
    graph: Dag,
) -> tuple[dict[str, str], dict[str, Task], dict[str, dict[str, Any]]]:
    """Every task's key, the task itself, and its record (see :func:`_record_of`), by name."""
    keys = graph_keys(graph)
    tasks = {name: graph.nodes[name]["task"] for name in graph}
    codes = code_fingerprints(tasks.values())
    records = {name: _record_of(task, keys, codes[type(task)]) for name, task in tasks.items()}
    return keys, tasks, records


def _record_of(task: Task, keys: Mapping[str, str], code: str) -> dict[str, Any]:
    """What ``params.yaml`` says of a task: how it was made (``code``: its class's code
    fingerprint, taken once for all its tasks) and from which inputs."""
    return {
        "task": {
            "name": task.name,
            "module": type(task).__module__,
            "class": type(task).__qualname__,
            "tag": task.tag,
            "key": keys[task.name],
            "code": code,
            "params": {k: _plain(v) for k, v in task.params.items()},
        },
        "parents": dict(_inputs(task, keys)),
    }


def _plain(value: Any) -> Any:
    from .keys import encode

    return encode(value, for_key=False)
