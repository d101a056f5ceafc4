"""Write a run's ``report.html``: the UI's run page as one self-contained file.

The page is the run browser's own (``pyperunner/ui/static``): its ``index.html`` with the style
sheet, the vendored layout library and the scripts inlined in the order the shell loads them, and
the run document (:func:`~pyperunner.report.rundata.run_document`, with each task's log lines)
inlined as JSON. It opens from ``file://`` with no server and no network. The static part is read
once per process; writing a report costs the run document and one ``json.dumps``.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .rundata import run_document

__all__ = ["REPORT_FILE", "write_report"]

#: Name of the report in a run folder.
REPORT_FILE = "report.html"

STATIC = Path(__file__).resolve().parent.parent / "ui" / "static"
"""The run browser's files, which the report inlines."""

DATA_ID = "pyperunner-data"
_LINKED = re.compile(
    r'<link rel="stylesheet" href="static/([\w./-]+)">|<script src="static/([\w./-]+)"></script>'
)
_JSON_ESCAPES = str.maketrans({"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"})


def write_report(
    run_dir: str | Path,
    docs: tuple[Mapping[str, Any], Mapping[str, Any] | None] | None = None,
) -> Path:
    """Write ``report.html`` into ``run_dir`` and return its path; ``docs`` are the run's
    ``pipeline.yaml`` and ``run.yaml`` documents if in memory (else they are read)."""
    folder = Path(run_dir)
    doc = run_document(folder, docs, logs=True)
    before, after = _page()
    # ASCII: a lone surrogate (a file name that was not UTF-8) is written as its \u escape
    data = json.dumps(doc, separators=(",", ":")).translate(_JSON_ESCAPES)
    path = folder / REPORT_FILE
    path.write_text(
        f'{before}<script type="application/json" id="{DATA_ID}">{data}</script>\n{after}',
        encoding="utf-8",
    )
    return path


@functools.cache
def _page() -> tuple[str, str]:
    """The shell with every style sheet and script inlined, cut where the data goes (before
    the first script), with a content security policy that lets only those scripts run."""
    shell = (STATIC / "index.html").read_text(encoding="utf-8")
    hashes: list[str] = []

    def inline(match: re.Match[str]) -> str:
        css, js = match.groups()
        text = (STATIC / (css or js)).read_text(encoding="utf-8")
        if re.search(r"</(script|style)", text, re.IGNORECASE):
            raise ValueError(f"{css or js} would end its inline element early")
        if css:
            return f"<style>\n{text}</style>"
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        hashes.append(f"'sha256-{digest}'")
        return f"<script>{text}</script>"

    page = _LINKED.sub(inline, shell)
    policy = (
        f"default-src 'none'; script-src {' '.join(hashes)}; style-src 'unsafe-inline'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    page = page.replace(
        '<meta charset="utf-8">',
        f'<meta charset="utf-8">\n<meta http-equiv="Content-Security-Policy" content="{policy}">',
        1,
    )
    cut = page.index("<script>")
    return page[:cut], page[cut:]
