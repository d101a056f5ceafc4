"""Planning: which tasks of a pipeline must run, and why; a pure function of its inputs.

A task runs when it has no cached result, when it was created with ``reload=True``, when the run
uses ``force_reload``, or when any task upstream of it runs. Everything else is CACHED and is not
even loaded unless a task that runs needs its output (its worker reads it from the store).
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable, Mapping

import networkx as nx


class Reason(str, enum.Enum):
    """Why a task runs; the value is the sentence logs and reports show."""

    NOT_CACHED = "no cached result"
    RELOAD = "reload=True"
    FORCE_RELOAD = "force_reload"
    UPSTREAM = "an upstream task runs"


@dataclasses.dataclass(frozen=True)
class Plan:
    """The decision for one run: ``reasons`` holds every task that runs; the rest are cached.

    ``forced`` are the tasks that must compute even if their result appears in the store while
    the run goes on (another run may compute the same entry meanwhile; the others then reuse it).
    """

    order: tuple[str, ...]
    reasons: Mapping[str, Reason]
    forced: frozenset[str] = frozenset()

    @property
    def to_run(self) -> list[str]:
        """Tasks that run, in topological order."""
        return [name for name in self.order if name in self.reasons]

    @property
    def cached(self) -> list[str]:
        """Tasks whose stored result is used, in topological order."""
        return [name for name in self.order if name not in self.reasons]


def make_plan(
    graph: nx.DiGraph,
    is_cached: Callable[[str], bool],
    reload: Callable[[str], bool],
    force_reload: bool = False,
) -> Plan:
    """Decide for every task of ``graph`` (names, edges parent -> child) whether it runs."""
    order = tuple(nx.lexicographical_topological_sort(graph))
    reasons: dict[str, Reason] = {}
    forced: set[str] = set()
    for name in order:
        parents = list(graph.predecessors(name))
        if force_reload:
            reasons[name] = Reason.FORCE_RELOAD
        elif reload(name):
            reasons[name] = Reason.RELOAD
        elif any(parent in reasons for parent in parents):
            reasons[name] = Reason.UPSTREAM
        elif not is_cached(name):
            reasons[name] = Reason.NOT_CACHED
        if reasons.get(name) in (Reason.FORCE_RELOAD, Reason.RELOAD) or any(
            parent in forced for parent in parents
        ):
            forced.add(name)
    return Plan(order=order, reasons=reasons, forced=frozenset(forced))
