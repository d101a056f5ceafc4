"""The ``pyperunner ui`` server: a read-only JSON API over run folders and the store, and the page.

::

    browser ──HTTP GET──► uvicorn (one process, 127.0.0.1 by default)
                             │
                             ├─ /, /static/<file>          the page: index.html, app.js, app.css
                             └─ /api/...                   JSON, built per request:
                                  runs                     Catalog.listing   (summary.json files)
                                  runs/<id>                rundata.run_document
                                  runs/<id>/changes        rundata.live_changes (the journal)
                                  runs/<id>/tasks/<key>/log     the task's own log lines
                                  runs/<id>/tasks/<key>/result  the result file, a download
                                  compare?a=<id>&b=<id>    rundata.compare_documents
                                  cache                    Catalog.cache

It never writes in the log or data folders. A run is named by its id, which the catalog gives
only to folders directly under the log paths; a result is served only for a task and key its
run's ``pipeline.yaml`` names, stored under a data path allowed (see :class:`Catalog`); any
other path, ``..`` included, is a 404. The page watches a running run by asking for its changes
about twice a second. Ctrl-C (SIGINT) or SIGTERM stops the server after the requests in flight.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from ..report import rundata
from ..runfolder import RunFolderError, read_task_log
from .catalog import Catalog, Run

STATIC = Path(__file__).parent / "static"
"""The page's files (index.html, app.js, app.css, the vendored layout library)."""


def make_app(catalog: Catalog) -> Starlette:
    """The web app over ``catalog``'s runs; its handlers are plain functions, which Starlette
    runs in its thread pool, as each reads files."""

    def run_of(request: Request) -> Run:
        run = catalog.run(request.path_params["run_id"])
        if run is None:
            raise HTTPException(404, "no such run")
        return run

    def page(request: Request) -> Response:
        return FileResponse(STATIC / "index.html", media_type="text/html")

    def runs(request: Request) -> Response:
        query = request.query_params
        return JSONResponse(
            catalog.listing(
                query=query.get("q", ""),
                state=query.get("state", ""),
                failed=query.get("failed", "") in ("1", "true"),
                offset=_whole(query.get("offset"), 0),
                limit=_whole(query.get("limit"), 50),
            )
        )

    def run(request: Request) -> Response:
        return _document(lambda: rundata.run_document(run_of(request).folder))

    def changes(request: Request) -> Response:
        since = _whole(request.query_params.get("since"), 0)
        return _document(lambda: rundata.live_changes(run_of(request).folder, since))

    def task_log(request: Request) -> Response:
        folder = run_of(request).folder
        return JSONResponse({"log": read_task_log(folder, request.path_params["key"])})

    def result(request: Request) -> Response:
        found = _document_or_none(
            lambda: catalog.result_file(run_of(request), request.path_params["key"])
        )
        if found is None:
            raise HTTPException(404, "no stored result of this task that this UI may serve")
        name, path = found
        return FileResponse(path, filename=f"{name}.{path.name}")

    def compare(request: Request) -> Response:
        first, second = (catalog.run(request.query_params.get(k, "")) for k in ("a", "b"))
        if first is None or second is None:
            raise HTTPException(404, "give two runs to compare: ?a=<id>&b=<id>")
        return _document(lambda: rundata.compare_documents(first.folder, second.folder))

    def cache(request: Request) -> Response:
        return JSONResponse(catalog.cache())

    routes = [
        Route("/", page),
        Route("/api/runs", runs),
        Route("/api/runs/{run_id}", run),
        Route("/api/runs/{run_id}/changes", changes),
        Route("/api/runs/{run_id}/tasks/{key}/log", task_log),
        Route("/api/runs/{run_id}/tasks/{key}/result", result),
        Route("/api/compare", compare),
        Route("/api/cache", cache),
        Mount("/static", StaticFiles(directory=STATIC)),
    ]
    return Starlette(routes=routes)


def _document(build: Any) -> Response:
    """``build()`` as JSON; a run whose files cannot be read is a 422 saying why."""
    try:
        return JSONResponse(build())
    except RunFolderError as exc:
        return JSONResponse({"error": str(exc)}, status_code=422)


def _document_or_none(build: Any) -> Any:
    try:
        return build()
    except (RunFolderError, OSError):
        return None


def _whole(text: str | None, default: int) -> int:
    """A non-negative whole number given in a query, else ``default``."""
    return int(text) if text is not None and text.isdigit() else default


def serve(
    log_paths: Sequence[Path],
    data_paths: Sequence[str] = (),
    host: str = "127.0.0.1",
    port: int = 8765,
    announce: Any = print,
) -> None:
    """Serve the UI until Ctrl-C; ``announce`` gets the URL once the server listens (port 0:
    a free one)."""
    import uvicorn

    listening = socket.create_server((host, port), family=_family(host))
    url_host = f"[{host}]" if ":" in host else host
    config = uvicorn.Config(
        make_app(Catalog(log_paths, data_paths)), log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    announce(f"pyperunner ui: http://{url_host}:{listening.getsockname()[1]}/ (Ctrl-C stops it)")
    server.run(sockets=[listening])


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
