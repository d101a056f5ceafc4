"""A short description of a task's output, made where the output is in memory anyway.

The worker that stores a result describes it too (its type; shape and dtype for arrays; the head
of a table; a shortened ``repr`` otherwise), and the description is kept with the result's record
and the run's, so the UI and the report show what a task returned without ever loading (that is,
unpickling) a stored result. Describing must be cheap and must never fail a task: a value whose
``repr`` raises or runs long is described by its type alone.
"""

from __future__ import annotations

import reprlib
from typing import Any

TEXT_LIMIT = 1500
"""Characters of text a preview keeps."""
_ROWS = 5


class _Short(reprlib.Repr):
    """``repr`` with limits on every container, so a million-element list costs little."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlist = self.maxtuple = self.maxset = self.maxfrozenset = self.maxdeque = 20
        self.maxdict = 20
        self.maxstring = self.maxother = 400
        self.maxlevel = 4


_short = _Short()


def describe(value: Any) -> dict[str, Any]:
    """``{"type": ..., "text": ...}`` and, where they apply, ``shape``, ``dtype``, ``length``
    and ``columns``: what a person wants to know of an output at a glance."""
    kind = type(value)
    name = f"{kind.__module__}.{kind.__qualname__}".removeprefix("builtins.")
    found: dict[str, Any] = {"type": name}
    try:
        found.update(_details(value))
    except Exception as exc:  # the value's own code (a repr, a property) may raise anything
        found["text"] = f"<cannot be shown: {type(exc).__name__}: {exc}>"
    text = found.get("text")
    if isinstance(text, str) and len(text) > TEXT_LIMIT:
        found["text"] = text[:TEXT_LIMIT] + " ..."
    return found


def _details(value: Any) -> dict[str, Any]:
    module = type(value).__module__.partition(".")[0]
    if module == "numpy" and hasattr(value, "shape") and hasattr(value, "dtype"):
        import numpy

        with numpy.printoptions(threshold=50, edgeitems=3, linewidth=100):
            text = repr(value)
        return {"shape": list(value.shape), "dtype": str(value.dtype), "text": text}
    if module == "pandas" and hasattr(value, "head") and hasattr(value, "shape"):
        details: dict[str, Any] = {
            "shape": list(value.shape),
            "text": value.head(_ROWS).to_string(),
        }
        columns = getattr(value, "columns", None)
        if columns is not None:
            details["columns"] = [str(c) for c in list(columns)[:50]]
        return details
    details = {"text": _short.repr(value)}
    if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset)):
        details["length"] = len(value)
    return details
