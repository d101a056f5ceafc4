"""Numbers and text for people, the same in every message and report: durations, sizes and the
frame of a traceback in the user's own code (counts of tasks by status: ``status.format_counts``).
"""

from __future__ import annotations

import functools
import os
import re
import sys


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


def user_frame(traceback: str | None) -> str:
    """The lines of ``traceback`` about its last frame in the user's own code, the place to look
    first; a task's traceback begins at the user's code, so at worst its first frame. A frame
    without its source line (a notebook cell's code, run in a worker) gets it from this process,
    and a cell's file its name in a notebook.
    """
    frames: list[list[str]] = []
    for line in (traceback or "").splitlines():
        if _FRAME.match(line):
            frames.append([line[2:]])
        elif frames and line.startswith("    ") and len(frames[-1]) < 6:
            frames[-1].append(line[2:])
    if not frames:
        return ""
    mine = [frame for frame in frames if _is_user_file(_FRAME.match("  " + frame[0])["file"])]
    frame = (mine or frames)[-1]
    match = _FRAME.match("  " + frame[0])
    if len(frame) == 1:
        import linecache

        source = linecache.getline(match["file"], int(match["line"])).strip()
        if source:
            frame.append(f"  {source}")
    return with_cell_names("\n".join(frame))


_FRAME = re.compile(r'  File "(?P<file>.*)", line (?P<line>\d+)(?:, in .*)?\Z')


@functools.cache
def _libraries() -> tuple[str, ...]:
    """The folders of Python's own modules, of installed packages and of pyperunner."""
    import sysconfig  # on first use: it is most of this module's import time

    paths = sysconfig.get_paths()
    folders = [paths.get(key) for key in ("stdlib", "platstdlib", "purelib", "platlib")]
    folders.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return tuple({os.path.join(os.path.realpath(folder), "") for folder in folders if folder})


def _is_user_file(path: str) -> bool:
    """Whether ``path`` is the user's code: not Python's, not an installed package's, not
    pyperunner's."""
    if path.startswith("<frozen ") or "-packages" + os.sep in path:
        return False
    return not os.path.realpath(path).startswith(_libraries())


def with_cell_names(traceback: str) -> str:
    """``traceback`` with each notebook cell's file named as IPython names it (``Cell In[3]``)
    when this process is a kernel; as it is otherwise."""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None else None
    name_of = getattr(getattr(shell, "compile", None), "format_code_name", None)
    if name_of is None:
        return traceback

    def named(match: re.Match[str]) -> str:
        label = name_of(match[1])
        return f"{label[0]} {label[1]}" if label else match[0]

    return re.sub(r'File "([^"]+)"', named, traceback)
