"""Planning: which tasks of a pipeline must run, and why; a pure function of its inputs.

A task runs when it has no cached result, when it was created with ``reload=True``, when the run
uses ``force_reload``, or when any task upstream of it runs. Everything else is CACHED and is not
even loaded unless a task that runs needs its output (its worker reads it from the store).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping
from typing import Any

from . import display
from .graph import GraphLike, topological_order

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
    ``name`` is the pipeline's.
    """

    order: tuple[str, ...]
    reasons: Mapping[str, Reason]
    forced: frozenset[str] = frozenset()
    why: Mapping[str, str] = dataclasses.field(default_factory=dict)
    name: str = ""

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
