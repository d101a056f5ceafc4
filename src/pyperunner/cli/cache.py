"""``pyperunner gc`` and ``pyperunner ui``: the cache cleaned, and runs browsed in a browser."""

from __future__ import annotations

from pathlib import Path

import click

from .. import (
    garbage,
)
from ..store import Store
from ..text import format_bytes
from .group import (
    BadUsage,
    from_options,
    main,
)

# --------------------------------------------------------------------------- gc


@main.command()
@click.argument("data_path")
@click.option(
    "--keep",
    "keep_paths",
    required=True,
    multiple=True,
    type=click.Path(exists=True),
    metavar="PATH",
    help="Keep every entry the runs under a log folder, one run folder or a pipeline file use "
    "(repeatable).",
)
@click.option(
    "--dry-run/--delete",
    "dry_run",
    default=True,
    show_default=True,
    help="List the garbage (the default), or delete it.",
)
def gc(data_path: str, keep_paths: tuple[str, ...], dry_run: bool) -> None:
    """List (or --delete) cached results that no kept run uses.

    An entry of DATA_PATH is kept if a kept pipeline file names its task and key: --keep takes a
    log folder (every run in it), a run folder, or a pipeline file. Without --delete nothing is
    removed: the entries that would go are listed with their sizes. An entry that is locked (being
    computed or read) is never deleted. With --delete, temporary files that interrupted writes
    left in kept entries go too.

    \b
    Example:
        pyperunner gc data/ --keep log/            # dry run: what would go
        pyperunner gc data/ --keep log/ --delete
        pyperunner gc data/ --keep log/my-pipeline_240101T120000 --keep pipeline.yml
    """
    try:
        used, runs = garbage.used_by(Path(p) for p in keep_paths)
    except garbage.NothingKeptError as exc:
        raise BadUsage(str(exc)) from exc
    store = from_options(lambda: Store(data_path))
    if isinstance(store.root, Path) and not store.root.is_dir():
        raise BadUsage(f"DATA_PATH {data_path} is not a folder")
    found = garbage.find_garbage(store, used, runs)
    sizes = found.garbage
    kept = f"kept {len(found.kept)} entries used by {found.runs} run(s)"
    if dry_run:
        for name, key in sizes:
            click.echo(f"would delete  {name}/{key}  {format_bytes(sizes[name, key])}")
        if leftovers := found.leftovers():
            click.echo(f"would remove {leftovers} temporary file(s) left by interrupted writes")
        total = format_bytes(sum(sizes.values()))
        click.echo(f"Would delete {len(sizes)} entries ({total}); {kept}")
        if sizes:
            click.echo("Run again with --delete to delete them.")
        return
    deleted, skipped = [], []
    for (name, key), gone in found.delete():
        if gone:
            deleted.append((name, key))
            click.echo(f"deleted       {name}/{key}  {format_bytes(sizes[name, key])}")
        else:
            skipped.append((name, key))
            click.echo(f"skipped       {name}/{key}  (locked: in use by a run)")
    if swept := found.sweep():  # kept entries lose what interrupted writes left in them
        click.echo(f"removed {swept} temporary file(s) left by interrupted writes")
    freed = format_bytes(sum(sizes[entry] for entry in deleted))
    click.echo(f"Deleted {len(deleted)} entries ({freed}), skipped {len(skipped)} locked; {kept}")


# --------------------------------------------------------------------------- ui


@main.command()
@click.argument("log_paths", metavar="[LOG_PATH]...", nargs=-1, type=click.Path(file_okay=False))
@click.option(
    "--data-path",
    "data_paths",
    multiple=True,
    help="A data path whose cache to show and whose results may be downloaded (repeatable; "
    "default: those the runs name).",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8765,
    show_default=True,
    help="Port to listen on (0: a free one).",
)
def ui(log_paths: tuple[str, ...], data_paths: tuple[str, ...], host: str, port: int) -> None:
    """Browse, compare and watch runs in the browser; Ctrl-C stops it.

    Serves a local web app over the runs under LOG_PATH (default: log/): the runs, each run's
    DAG, tasks and logs, comparisons of two runs, and the cache. It only reads: nothing in the
    log or data folders is changed. Needs the ui extra: pip install "pyperunner[ui]".

    \b
    Example:
        pyperunner ui log/
        pyperunner ui log/ other-project/log/ --data-path data/ --port 8000
    """
    try:
        from ..ui.server import serve
    except ImportError as exc:
        hint = 'pip install "pyperunner[ui]"'
        raise BadUsage(f"pyperunner ui needs the ui extra ({exc.name} is missing): {hint}") from exc
    folders = [Path(p) for p in log_paths or ["log/"]]
    missing = [str(p) for p in folders if not p.is_dir()]
    if missing:
        raise BadUsage(f"no log folder {', '.join(missing)}: give the log_path of your runs")
    try:
        serve(folders, data_paths, host, port, announce=click.echo)
    except OSError as exc:
        raise BadUsage(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from exc
    except KeyboardInterrupt:  # uvicorn raises Ctrl-C again once it has stopped serving
        pass
    click.echo("pyperunner ui: stopped")
