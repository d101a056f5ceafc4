"""Plugs the reporting layer into the layers below it, which do not import it.

:func:`plug_in` registers the observers every run gets (``report/observers.py``: the live view,
the pictures) with ``observers.FACTORIES``, and how pyperunner's objects are drawn with
``display`` (notebook displays from ``report/notebook.py``, the ASCII drawing of
``Pipeline.summary`` from ``report/ascii.py``). The package's ``__init__`` calls it; the drawing
modules are imported only when something is drawn, so ``import pyperunner`` stays light.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .. import display, observers
from ..graph import Pipeline
from ..plan import Plan
from ..results import PipelineFailedError, PipelineResult, TaskOutputUnavailableError
from ..status import TaskRun
from .observers import live_view, pictures


def plug_in() -> None:
    """Register the reporting layer's observers and drawings (once is enough; again is harmless)."""
    for factory in (live_view, pictures):
        if factory not in observers.FACTORIES:
            observers.register(factory)
    display.register(Pipeline, _notebook("pipeline_bundle"))
    display.register(Plan, _html("plan_html"))
    display.register(TaskRun, _html("task_run_html"))
    display.register(PipelineResult, _html("result_html"))
    display.register(PipelineFailedError, _html("failed_html", lambda error: (error.result,)))
    display.register(
        TaskOutputUnavailableError, _html("unavailable_html", lambda error: (error.name, error.run))
    )
    display.register_ascii(_draw_ascii)


def _notebook(function: str) -> Callable[..., Any]:
    """``report.notebook``'s ``function``, imported when first called."""

    def call(*args: Any) -> Any:
        from . import notebook

        return getattr(notebook, function)(*args)

    return call


def _html(
    function: str, arguments: Callable[[Any], tuple[Any, ...]] = lambda obj: (obj,)
) -> display.Drawer:
    """A drawer whose HTML is ``report.notebook``'s ``function`` of ``arguments(obj)``."""
    draw = _notebook(function)
    return lambda obj: {"text/html": draw(*arguments(obj))}


def _draw_ascii(
    nodes: Sequence[str], edges: Sequence[tuple[str, str]], labels: Mapping[str, str] | None
) -> str:
    from .ascii import draw_ascii

    return draw_ascii(nodes, edges, labels)
