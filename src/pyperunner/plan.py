"""Planning: which tasks of a pipeline must run, and why.

:func:`make_plan` is a pure function of the graph and of what it is told about each task;
:func:`plan_with_store` asks a store those questions (cached? damaged? changed since?), holding
the cached results a run will read.

A task runs when it has no cached result, when it was created with ``reload=True``, when the run
uses ``force_reload``, or when any task upstream of it runs. Everything else is CACHED and is not
even loaded unless a task that runs needs its output (its worker reads it from the store).
"""

from __future__ import annotations

import dataclasses
import enum
import logging
from collections.abc import Callable, Mapping
from typing import Any

from . import display
from .dag import GraphLike, topological_order
from .store import Checked, EntryState, Store
from .task import Task

log = logging.getLogger()

_MISSING = object()


class Reason(str, enum.Enum):
    """Why a task runs; the value is the sentence logs and reports show."""

    NOT_CACHED = "no cached result"
    RELOAD = "reload=True"
    FORCE_RELOAD = "force_reload"
    UPSTREAM = "an upstream task runs"


@dataclasses.dataclass(frozen=True, repr=False)
class Plan:
    """The decision for one run: ``reasons`` holds every task that runs; the rest are cached.

    ``forced`` are the tasks that must compute even if their result appears in the store while
    the run goes on (another run may compute the same entry meanwhile; the others then reuse it).
    ``name`` is the pipeline's; ``found`` is what the store said of each cached task's entry
    when the plan was made (its result's size and preview, read once).
    """

    order: tuple[str, ...]
    reasons: Mapping[str, Reason]
    forced: frozenset[str] = frozenset()
    why: Mapping[str, str] = dataclasses.field(default_factory=dict)
    name: str = ""
    found: Mapping[str, Checked] = dataclasses.field(default_factory=dict)

    @property
    def to_run(self) -> list[str]:
        """Tasks that run, in topological order."""
        return [name for name in self.order if name in self.reasons]

    @property
    def cached(self) -> list[str]:
        """Tasks whose stored result is used, in topological order."""
        return [name for name in self.order if name not in self.reasons]

    def __repr__(self) -> str:
        name = f" {self.name!r}" if self.name else ""
        cached = len(self.order) - len(self.reasons)
        return (
            f"<Plan{name}: {len(self.reasons)} of {len(self.order)} tasks to run, {cached} cached>"
        )

    def _repr_html_(self) -> str | None:
        """What will run and why, as a table, for notebooks."""
        return display.html(self)


@dataclasses.dataclass(frozen=True)
class Change:
    """How a task differs from its last stored result: its own changes and changed parents."""

    own: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()

    def text(self) -> str:
        """One line for logs and reports; "no cached result" if nothing is known to differ."""
        parts = list(self.own)
        if self.upstream:
            parts.append(f"upstream changed: {', '.join(self.upstream)}")
        return "; ".join(parts) or Reason.NOT_CACHED.value


def make_plan(
    graph: GraphLike,
    is_cached: Callable[[str], bool],
    reload: Callable[[str], bool],
    force_reload: bool = False,
    changes: Callable[[str], Change] = lambda name: Change(),
) -> Plan:
    """Decide for every task of ``graph`` (names, edges parent -> child) whether it runs, and why.

    ``changes`` tells how a task differs from its last stored result (e.g. which parameters
    changed); it is asked only about tasks that run for want of a result or because an upstream
    task runs, and ``is_cached`` only about tasks whose parents are all cached.
    """
    order = tuple(topological_order(graph))
    reasons: dict[str, Reason] = {}
    why: dict[str, str] = {}
    forced: set[str] = set()
    for name in order:
        parents = list(graph.predecessors(name))
        running_parents = [p for p in parents if p in reasons]
        if force_reload:
            reasons[name], why[name] = Reason.FORCE_RELOAD, "force_reload=True"
        elif reload(name):
            reasons[name], why[name] = Reason.RELOAD, "reload=True"
        elif running_parents:
            reasons[name] = Reason.UPSTREAM
            why[name] = "; ".join((f"upstream task {running_parents[0]} runs", *changes(name).own))
        elif not is_cached(name):
            reasons[name], why[name] = Reason.NOT_CACHED, changes(name).text()
        if reasons.get(name) in (Reason.FORCE_RELOAD, Reason.RELOAD) or any(
            parent in forced for parent in parents
        ):
            forced.add(name)
    name = str(getattr(graph, "name", "") or "")
    return Plan(order=order, reasons=reasons, forced=frozenset(forced), why=why, name=name)


def compare_records(current: Mapping[str, Any], previous: Mapping[str, Any] | None) -> Change:
    """How a task's record differs from the last one stored (records are what ``params.yaml``
    holds: ``task.params``, ``task.code`` and ``parents``)."""
    if previous is None:
        return Change()
    own = []
    now, before = current.get("task", {}), previous.get("task", {})
    old_params, new_params = before.get("params") or {}, now.get("params") or {}
    changed = sorted(
        name
        for name in old_params.keys() | new_params.keys()
        if old_params.get(name, _MISSING) != new_params.get(name, _MISSING)
    )
    if changed:
        own.append(f"parameters changed: {', '.join(changed)}")
    old_class = (before.get("module"), before.get("class"))
    if old_class != (now.get("module"), now.get("class")) and None not in old_class:
        own.append(f"another task class (was {'.'.join(old_class)})")
    elif before.get("code") is not None and before.get("code") != now.get("code"):
        own.append("code changed")
    old_parents, new_parents = previous.get("parents") or {}, current.get("parents") or {}
    upstream = [p for p in new_parents if old_parents.get(p) != new_parents[p]]
    if list(old_parents) != list(new_parents) and not upstream:
        upstream = ["(parents rewired)"]
    return Change(tuple(own), tuple(upstream))


def plan_with_store(
    store: Store,
    graph: GraphLike,
    tasks: Mapping[str, Task],
    keys: Mapping[str, str],
    records: Mapping[str, Mapping[str, Any]],
    force_reload: bool,
    hold: Callable[[str], bool] | None = None,
    dry: bool = False,
) -> Plan:
    """What must run and why, asking ``store`` what is cached and how it differs from what was
    stored before; ``dry`` (a plan only looked at) changes nothing in the store:
    leftovers stay, and a damaged result is reported but not moved aside.

    With ``hold`` (``holds.Holds.take``), every cached result a task of the run will read is
    held, so gc cannot delete it from here on; one that is gone by then counts as not cached
    after all.
    """
    damaged: dict[str, str] = {}
    verified: set[str] = set()
    gone: set[str] = set()
    found: dict[str, Checked] = {}

    def found_damaged(name: str, problem: str) -> None:
        if name not in damaged:
            log.warning("Cached result of %s is damaged (%s); computing it again", name, problem)
            damaged[name] = problem

    def is_cached(name: str) -> bool:
        if name in damaged or name in gone:  # damaged by its checksum, or deleted since
            return False
        checked = found[name] = store.check(name, keys[name])
        if checked.state is EntryState.DAMAGED:
            found_damaged(name, checked.problem)
        elif checked.state is EntryState.OK and not dry:
            for leftover in store.sweep(name, keys[name]):
                log.info("Removed %s, left by an interrupted write", leftover)
        return checked.state is EntryState.OK

    def changes(name: str) -> Change:
        if name in damaged:
            return Change((f"stored result is damaged ({damaged[name]})",))
        aside = store.damaged_copy(name, keys[name])
        if aside is not None and not store.has(name, keys[name]):
            return Change((f"stored result is damaged (it was moved aside to {aside})",))
        previous = store.latest_record(name, except_key=keys[name])
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
        vanished = set() if hold is None else {n for n in to_read if not hold(n)}
        for name in vanished:
            log.warning(
                "The stored result of %s vanished while the run was planned; computing it again",
                name,
            )
        gone |= vanished
        problems = {
            name: store.verify(name, keys[name], set_aside=not dry)
            for name in to_read - verified - gone
        }
        verified |= to_read
        for name, problem in problems.items():
            if problem is not None:
                found_damaged(name, problem)
        if not vanished and not any(problems.values()):
            return dataclasses.replace(plan, found={name: found[name] for name in plan.cached})
