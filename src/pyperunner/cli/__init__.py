"""The ``pyperunner`` command: run a saved pipeline, and look at runs, results and the cache.

It is glue: it parses arguments, calls the module that owns each answer, and prints. It uses the
public API (``Pipeline``, ``Runner``, ``PipelineResult``), the readers of run folders
(``runfolder``), the store and its garbage (``store.Store``, ``garbage``), the text formats
(``text``, ``status.format_counts``), and for their commands ``report.terminal``,
``report.html`` and ``ui.server``; so every answer it gives can also be had from Python. Exit
codes: 0 success, 1 a task failed, 2 bad usage or input (a one-line error saying what to do).
"""

from __future__ import annotations

from . import cache, pipelines, runs  # noqa: F401 (importing each registers its commands)
from .group import first_line, main

__all__ = ["first_line", "main"]
