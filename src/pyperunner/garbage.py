"""Garbage in a store: the entries no kept run uses, found and deleted (``pyperunner gc``).

An entry is kept if a kept pipeline file names its task and key; the paths to keep are log
folders (every run in them), run folders or pipeline files (``runfolder.entries_used``). An
entry being computed or read is locked, and is never deleted.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from pathlib import Path

from . import runfolder
from .store import Store

Entry = tuple[str, str]
"""A store entry: (task name, key)."""
HINT = "fix or remove it, then run gc again"


class NothingKeptError(ValueError):
    """No run was found under the paths to keep: every entry would count as garbage."""


@dataclasses.dataclass
class Garbage:
    """The entries of ``store``: ``garbage`` (with each one's size in bytes) and ``kept``, those
    the ``runs`` kept pipeline files use."""

    store: Store
    garbage: dict[Entry, int]
    kept: list[Entry]
    runs: int

    def delete(self) -> Iterator[tuple[Entry, bool]]:
        """Delete the garbage, yielding each entry and whether it went (False: locked)."""
        for entry in self.garbage:
            yield entry, self.store.delete(*entry)

    def leftovers(self) -> int:
        """How many temporary files interrupted writes left in the kept entries."""
        return sum(len(self.store.leftovers(*entry)) for entry in self.kept)

    def sweep(self) -> int:
        """Remove what interrupted writes left in the kept entries; how many files went."""
        return sum(len(self.store.sweep(*entry)) for entry in self.kept)


def used_by(keep_paths: Iterable[Path]) -> tuple[set[Entry], int]:
    """The entries the pipelines under ``keep_paths`` use, and how many pipeline files that was.

    A kept pipeline file that cannot be read is a ``RunFolderError`` (what it keeps is unknown);
    no run at all under ``keep_paths`` is a :class:`NothingKeptError`.
    """
    keep_paths = list(keep_paths)
    try:
        used, runs = runfolder.entries_used(keep_paths)
    except runfolder.RunFolderError as exc:
        raise runfolder.RunFolderError(exc.path, exc.problem, HINT) from exc
    if runs == 0:
        raise NothingKeptError(
            f"no run folder found under {', '.join(map(str, keep_paths))}; refusing to treat "
            "every entry as garbage (pass the log folder of the runs to keep)"
        )
    return used, runs


def find_garbage(store: Store, used: set[Entry], runs: int) -> Garbage:
    """The entries of ``store`` that are not ``used`` by the ``runs`` kept (see :func:`used_by`)."""
    entries = list(store.entries())
    garbage = {entry: store.size(*entry) for entry in entries if entry not in used}
    return Garbage(store, garbage, [entry for entry in entries if entry in used], runs)
