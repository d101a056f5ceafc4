"""Peak resident memory of a whole process tree, sampled from a thread of the caller.

Reads ``/proc`` directly (Linux only, no psutil): every ``interval`` seconds it finds the root
and all its descendants (by parent pid) and sums their ``VmRSS`` (``/proc/<pid>/status``) and
``Pss`` (``/proc/<pid>/smaps_rollup``). RSS counts a page shared by several processes (after a
fork, or a file mapped twice) once per process; PSS splits it between them, so the PSS sum is
the tree's real footprint and the RSS sum an upper bound.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

KIB = 1024


def children_map() -> dict[int, list[int]]:
    """Every live process's children, from the parent pid field of ``/proc/<pid>/stat``."""
    children: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat.rsplit(b")", 1)[-1].split()
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def descendants(root: int) -> list[int]:
    """``root`` and every process below it."""
    children = children_map()
    found, stack = [], [root]
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, ()))
    return found


def _field_kib(path: str, field: bytes) -> int:
    try:
        with open(path, "rb") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


class TreeMonitor:
    """Samples the memory of ``root``'s process tree until :meth:`stop`; keeps the peaks."""

    def __init__(self, root: int, interval: float = 0.01) -> None:
        self.root = root
        self.interval = interval
        self.peak_rss = 0
        self.peak_pss = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-monitor", daemon=True)

    def start(self) -> TreeMonitor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            t = time.monotonic()
            pids = descendants(self.root)
            rss = sum(_field_kib(f"/proc/{p}/status", b"VmRSS:") for p in pids) * KIB
            pss = sum(_field_kib(f"/proc/{p}/smaps_rollup", b"Pss:") for p in pids) * KIB
            self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss)
            self.samples += 1
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - t)))


def kill_tree(root: int) -> None:
    """SIGKILL ``root`` and all its descendants (found first, so none escapes by reparenting)."""
    for pid in reversed(descendants(root)):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
