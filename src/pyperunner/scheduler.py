"""The scheduler loop: run planned tasks as soon as their parents are done, within a limit.

It keeps a ready set of tasks whose parents have all succeeded, hands them to an executor up to
``workers`` at a time, and blocks on the executor for outcomes (no polling). A failed task marks
every task downstream of it CANT_RUN; independent branches carry on to the end.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Mapping

import networkx as nx

from .executors import Executor, Job, Outcome
from .plan import Plan
from .status import Status, TaskRun

Listener = Callable[[str, TaskRun], None]


def run_plan(
    graph: nx.DiGraph,
    plan: Plan,
    jobs: Mapping[str, Job],
    executor: Executor,
    workers: int,
    on_change: Listener = lambda name, run: None,
) -> dict[str, TaskRun]:
    """Execute ``plan`` over ``graph`` with ``executor``; return every task's record."""
    runs = {name: TaskRun(Status.CACHED) for name in plan.cached}
    runs.update(
        {name: TaskRun(Status.NOT_STARTED, reason.value) for name, reason in plan.reasons.items()}
    )
    waiting = {
        name: sum(p in plan.reasons for p in graph.predecessors(name)) for name in plan.reasons
    }
    ready = collections.deque(name for name in plan.to_run if waiting[name] == 0)
    running = 0
    try:
        while ready or running:
            while ready and running < workers:
                name = ready.popleft()
                runs[name].status = Status.RUNNING
                on_change(name, runs[name])
                executor.submit(jobs[name])
                running += 1
            for outcome in executor.wait():
                running -= 1
                _record(runs[outcome.name], outcome)
                on_change(outcome.name, runs[outcome.name])
                if outcome.ok:
                    for child in graph.successors(outcome.name):
                        if child in waiting:
                            waiting[child] -= 1
                            if waiting[child] == 0:
                                ready.append(child)
                else:
                    for name in nx.descendants(graph, outcome.name):
                        if runs[name].status is Status.NOT_STARTED:
                            runs[name].status = Status.CANT_RUN
                            runs[name].error = f"upstream task {outcome.name} failed"
                            on_change(name, runs[name])
    finally:
        executor.shutdown()
    return runs


def _record(run: TaskRun, outcome: Outcome) -> None:
    run.status = Status.SUCCESS if outcome.ok else Status.FAILURE
    run.started, run.finished = outcome.started, outcome.finished
    run.error, run.traceback = outcome.error, outcome.traceback
    run.output_bytes = outcome.output_bytes
