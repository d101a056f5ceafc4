"""The stored results a run holds, so that ``pyperunner gc`` never deletes one the run will read.

A hold is an open file under a shared lock (:class:`pyperunner.storage.Hold`), which gc respects.
A run holds every stored result a task of the run has still to read, each until the last of its
children in the run has ended, and from the first instant: a cached input from the moment
planning finds it (planning takes the hold, and a result gone before it was held counts as not
cached), an output of the run from the moment its worker stores it (the worker takes the hold
under the entry's lock and hands it over with its outcome). Each hold is an open file, so a run
spends at most half of its limit of open files on them; results beyond are not held (the log
says so), and one that vanishes anyway is computed again by the scheduler.

The runner, the planning and the scheduler all take or let go of holds, so they live here
rather than in any one of them.
"""

from __future__ import annotations

import collections
import logging
import math
import resource
from collections.abc import Mapping

from .dag import GraphLike
from .plan import Plan
from .status import Status
from .storage import Hold
from .store import Store

HOLD_SHARE = 0.5
"""The share of the process's limit of open files a run may spend holding results."""
_ENDED = frozenset(
    {Status.SUCCESS, Status.CACHED, Status.FAILURE, Status.CANT_RUN, Status.INTERRUPTED}
)
"""Statuses after which a task of the run reads no input any more (unless put back to run)."""

log = logging.getLogger()


class Holds:
    """The results one run holds, and how many of its tasks still read each."""

    def __init__(self, store: Store, graph: GraphLike, keys: Mapping[str, str]) -> None:
        self.store, self.graph, self.keys = store, graph, keys
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.room = math.inf if limit == resource.RLIM_INFINITY else HOLD_SHARE * limit
        self.held: dict[str, Hold] = {}
        self.readers: collections.Counter[str] = collections.Counter()
        self.reading: set[str] = set()  # the tasks counted in readers: those not ended
        self.full = False  # whether the room ran out (the log says so once)

    def take(self, name: str) -> bool:
        """Hold the stored result of ``name`` (unless the room is full); False if it is gone."""
        if name in self.held:
            return True
        if len(self.held) >= self.room:
            self._no_room(name)
            return True
        hold = self.store.hold(name, self.keys[name])
        if hold is None:
            return False
        self.held[name] = hold
        return True

    def start(self, plan: Plan) -> None:
        """The run starts as planned: its tasks read their parents. Held results that are not
        cached inputs of the run after all (planning changed its mind) are let go."""
        for name in plan.to_run:
            self.track(name, Status.NOT_STARTED)
        for name in [n for n in self.held if n in plan.reasons or not self.readers[n]]:
            self.held.pop(name).close()

    def keep(self, name: str, hold: Hold | None) -> bool:
        """A task of the run stored its result: hold it while tasks of the run read it, by the
        ``hold`` its worker handed over or, without one, by one taken now; False if the result
        is gone (it vanished before it could be held)."""
        earlier = self.held.pop(name, None)  # of a result stored before, now replaced
        if earlier is not None:
            earlier.close()
        if not self.readers[name]:
            if hold is not None:
                hold.close()
            return True
        if hold is None:
            return self.take(name)
        if len(self.held) >= self.room:
            hold.close()
            self._no_room(name)
        else:
            self.held[name] = hold
        return True

    def track(self, name: str, status: Status) -> None:
        """A task of the run has a new status: once it has ended it reads its parents no more
        (a parent no task reads any more is let go); until then, it does."""
        if status not in _ENDED:
            if name not in self.reading:
                self.reading.add(name)
                for parent in self.graph.predecessors(name):
                    self.readers[parent] += 1
        elif name in self.reading:
            self.reading.remove(name)
            for parent in self.graph.predecessors(name):
                self.readers[parent] -= 1
                if not self.readers[parent] and parent in self.held:
                    self.held.pop(parent).close()

    def close(self) -> None:
        """Let go of every result held."""
        while self.held:
            self.held.popitem()[1].close()

    def _no_room(self, name: str) -> None:
        if not self.full:
            self.full = True
            log.warning(
                "Too many results to hold open at once (%d): from %s on, pyperunner gc could "
                "delete a result this run still reads (it would be computed again); raise the "
                "limit of open files (ulimit -n) to keep them all",
                self.room,
                name,
            )
