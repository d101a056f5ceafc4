"""Numbers for people, the same in every report: durations, sizes and counts of tasks."""

from __future__ import annotations

from collections.abc import Mapping

from ..status import Status

STATUS_ORDER = (
    Status.SUCCESS,
    Status.CACHED,
    Status.FAILURE,
    Status.CANT_RUN,
    Status.INTERRUPTED,
    Status.RUNNING,
    Status.NOT_STARTED,
)


def format_duration(seconds: float | None) -> str:
    """A short duration: ``35 ms``, ``1.2 s``, ``3 min 05 s``, ``1 h 02 min``; ``-`` if None."""
    if seconds is None:
        return "-"
    if seconds < 0.1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_bytes(size: int | None) -> str:
    """A size, e.g. ``812 B``, ``1.5 KiB``, ``3.2 MiB``; ``-`` if None."""
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            return f"{value:.1f} {unit}"
    raise AssertionError("unreachable")


def format_counts(counts: Mapping[Status, int]) -> str:
    """``6 SUCCESS, 1 FAILURE``: how many tasks ended in each status."""
    parts = [f"{counts[s]} {s.value}" for s in STATUS_ORDER if counts.get(s)]
    return ", ".join(parts) or "no tasks"
