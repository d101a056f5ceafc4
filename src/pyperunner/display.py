"""How pyperunner's objects show in a notebook and as text, drawn by the reporting layer.

A ``Pipeline``, a ``Plan``, a ``TaskRun``, a ``PipelineResult`` and its errors answer IPython's
``_repr_html_`` (or ``_repr_mimebundle_``) through :func:`bundle`, which calls the function
registered for the object's class; ``Pipeline.summary`` prints :func:`ascii_drawing`. The reporting
layer registers the drawings (``report/wiring.py``, when the package is imported), so those
classes do not import the code that draws them. An object whose class has nothing registered
shows as its ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

Drawer = Callable[[Any], Mapping[str, str]]
"""Draws an object as a MIME bundle: ``{"text/html": ..., "image/svg+xml": ...}``."""

AsciiDrawer = Callable[[Sequence[str], Sequence[tuple[str, str]], Mapping[str, str] | None], str]
"""Draws a DAG from its node names, its edges (parent, child) and labels of nodes, as text."""

_DRAWERS: dict[type, Drawer] = {}
_ASCII: list[AsciiDrawer] = []


def register(cls: type, draw: Drawer) -> None:
    """Draw instances of ``cls`` (and its subclasses) with ``draw``."""
    _DRAWERS[cls] = draw


def register_ascii(draw: AsciiDrawer) -> None:
    """Draw DAGs as text with ``draw``."""
    _ASCII[:] = [draw]


def ascii_drawing(
    nodes: Sequence[str], edges: Sequence[tuple[str, str]], labels: Mapping[str, str] | None = None
) -> str:
    """The DAG of ``nodes`` and ``edges`` drawn as text by what is registered."""
    if not _ASCII:
        raise RuntimeError("no text drawing is registered: import pyperunner, which registers it")
    return _ASCII[0](nodes, edges, labels)


def bundle(obj: Any) -> dict[str, str] | None:
    """``obj`` drawn by what is registered for its class; None if nothing is (IPython then
    shows its ``repr``)."""
    for cls in type(obj).__mro__:
        draw = _DRAWERS.get(cls)
        if draw is not None:
            return dict(draw(obj))
    return None


def html(obj: Any) -> str | None:
    """The HTML of :func:`bundle`; None if there is none."""
    return (bundle(obj) or {}).get("text/html")
