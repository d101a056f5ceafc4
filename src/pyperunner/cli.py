"""The ``pyperunner`` command: run a saved pipeline, and look at runs, results and the cache.

It is glue: it parses arguments, calls the module that owns each answer, and prints. It uses the
public API (``Pipeline``, ``Runner``, ``PipelineResult``), the readers of run folders
(``runfolder``), the store and its garbage (``store.Store``, ``garbage``), the text formats
(``text``, ``status.format_counts``), and for their commands ``report.terminal``,
``report.html`` and ``ui.server``; so every answer it gives can also be had from Python. Exit
codes: 0 success, 1 a task failed, 2 bad usage or input (a one-line error saying what to do).
"""

from __future__ import annotations

import collections
import difflib
import importlib
import pprint
import shlex
import signal
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from . import (
    KeyMismatchError,
    Pipeline,
    PipelineError,
    PipelineResult,
    Runner,
    Status,
    StoreError,
    TaskDefinitionError,
    TaskOutputUnavailableError,
    UnhashableParameterError,
    WiringError,
    __version__,
    garbage,
    runfolder,
    yamlio,
)
from .executors import EXECUTORS
from .runfolder import PIPELINE_FILE, RunFolderError
from .status import format_counts
from .store import Store
from .text import format_bytes, format_duration

PRINT_LIMIT = 20_000  # characters of a task's output `result` prints before cutting it short

T = TypeVar("T")
# What the library raises for a pipeline file or task that is not as it should be: exit 2.
INPUT_ERRORS: tuple[type[Exception], ...] = (
    PipelineError,
    TaskDefinitionError,
    WiringError,
    UnhashableParameterError,
    RunFolderError,
    yamlio.YAMLError,
)


class BadUsage(click.ClickException):
    """The command was called wrongly (a file that is not a pipeline, an unknown task): exit 2."""

    exit_code = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))  # one line, even for YAML's error messages


class TaskFailed(click.ClickException):
    """A task failed or its output is not available: exit 1."""

    exit_code = 1


# --------------------------------------------------------------------------- the group


class Group(click.Group):
    """The command group; it turns the library's errors about bad input into exit 2."""

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, mapping ``INPUT_ERRORS`` to a one-line ``BadUsage``."""
        try:
            return super().invoke(ctx)
        except INPUT_ERRORS as exc:
            raise BadUsage(str(exc)) from exc
        except UnicodeDecodeError as exc:
            raise BadUsage(f"a file given is not a text (YAML) file: {exc}") from exc


def from_options(make: Callable[[], T]) -> T:
    """``make()`` a Runner or Store from the command's options; what it refuses (a data path no
    filesystem knows, a file where a folder must be, a package missing for a URL) is bad usage."""
    try:
        return make()
    except (ValueError, ImportError) as exc:
        raise BadUsage(str(exc)) from exc


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="pyperunner")
def main() -> None:
    """Run pyperunner pipelines saved as YAML and inspect their runs, results and cache.

    Save a pipeline with Pipeline.to_file("pipeline.yml") from the module that defines its
    tasks, then run and inspect it from the shell.

    \b
    Example:
        pyperunner run pipeline.yml --import mytasks
        pyperunner runs log/
        pyperunner show log/my-pipeline_240101T120000
        pyperunner explain pipeline.yml
    """


# --------------------------------------------------------------------------- run

data_path_option = click.option(
    "--data-path",
    default="data/",
    show_default=True,
    help="Folder (or fsspec URL, e.g. s3://bucket/cache) of the result cache.",
)
import_option = click.option(
    "--import",
    "imports",
    metavar="MODULE",
    multiple=True,
    help="Import MODULE first so its task classes can be found (repeatable).",
)
trust_option = click.option(
    "--trust-pickles",
    is_flag=True,
    help="Load parameters the file stores as pickles (loading a pickle can run any code: only "
    "for files you trust).",
)


@main.command()
@click.argument("pipeline_file", metavar="PIPELINE.yml", type=click.Path(dir_okay=False))
@data_path_option
@click.option(
    "--log-path",
    default="log/",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Folder that gets one folder per run.",
)
@click.option("--force-reload", is_flag=True, help="Run every task, ignoring cached results.")
@click.option("--fail-fast", is_flag=True, help="Start no new task after the first failure.")
@click.option(
    "--workers",
    type=click.IntRange(min=1),
    default=None,
    help="Tasks run at once (default: the number of CPUs).",
)
@click.option(
    "--executor",
    type=click.Choice(list(EXECUTORS)),
    default="process",
    show_default=True,
    help="How each task runs.",
)
@import_option
@trust_option
@click.option("--show-plan", is_flag=True, help="Print the DAG with what will run before running.")
def run(
    pipeline_file: str,
    data_path: str,
    log_path: str,
    force_reload: bool,
    fail_fast: bool,
    workers: int | None,
    executor: str,
    imports: tuple[str, ...],
    trust_pickles: bool,
    show_plan: bool,
) -> None:
    """Run a pipeline file; cached tasks are not run again.

    Task classes are found by module and name: the current folder and the folder of PIPELINE.yml
    are searched, and --import loads other modules first. Exits with 0 if every task succeeded or
    was cached, 1 if a task failed, 130 on Ctrl-C (the run is recorded: run it again to resume).

    \b
    Example:
        pyperunner run pipeline.yml --data-path data/ --log-path log/ --workers 4
        pyperunner run pipeline.yml --import mypackage.tasks --force-reload
    """
    pipeline = load_pipeline(Path(pipeline_file), imports, trust_pickles)
    runner = from_options(
        lambda: Runner(data_path, log_path, process_limit=workers, executor=executor)
    )
    try:
        result = runner.run(
            pipeline, force_reload=force_reload, fail_fast=fail_fast, show_execution_plan=show_plan
        )
    except KeyboardInterrupt:  # the run is recorded: say where, and exit as Ctrl-C does
        if runner.run_dir is not None:
            click.echo(f"Run folder: {runner.run_dir}")
        click.echo("Interrupted: run it again to go on from what is stored", err=True)
        raise SystemExit(128 + signal.SIGINT) from None
    click.echo(f"Run folder: {runner.run_dir}")
    click.echo(f"Tasks: {format_counts(collections.Counter(result.statuses.values()))}")
    for name, task_run in result.failed.items():
        click.echo(f"FAILED {name}: {first_line(task_run.error)}")
    if not result.ok:
        click.get_current_context().exit(1)


# --------------------------------------------------------------------------- runs


@main.command()
@click.argument(
    "log_path", default="log/", type=click.Path(exists=True, file_okay=False), required=False
)
def runs(log_path: str) -> None:
    """List runs with their start, duration and task statuses.

    LOG_PATH defaults to log/. A run without run.yaml (still going, or killed) is shown as
    incomplete, one whose files cannot be read as unreadable, with what is wrong.

    \b
    Example:
        pyperunner runs log/
    """
    summaries = runfolder.runs_in(Path(log_path))
    if not summaries:
        click.echo(f"No runs in {log_path}")
        return
    rows = [
        [
            summary.folder.name,
            summary.pipeline,
            (summary.started or "?").replace("T", " "),
            format_duration(summary.duration),
            state_words(summary),
        ]
        for summary in summaries
    ]
    click.echo(format_table(["RUN", "PIPELINE", "STARTED", "DURATION", "TASKS"], rows))


# --------------------------------------------------------------------------- show


@main.command()
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
def show(run_path: str) -> None:
    """Draw a run's DAG with statuses and durations; list failures.

    RUN is a run folder, the pipeline.yaml in it, or a log folder (its latest run). Each box
    reads Name(tag) [STATUS duration]. The drawing is as wide as the terminal at most (COLUMNS,
    or 120 columns when the output is not a terminal): like tasks of a layer too wide are one
    box, Name(first ... last), N tasks, and where even that is too wide the tasks are listed
    layer by layer. A run with failures still exits with 0: this command only looks.

    \b
    Example:
        pyperunner show log/my-pipeline_240101T120000
        pyperunner show log/
    """
    from .report.terminal import draw_run, terminal_width

    run = open_run(Path(run_path))
    summary = runfolder.summary_of(run)
    result = PipelineResult.from_run(run)
    started = (summary.started or "?").replace("T", " ")
    click.echo(f"Run {run.folder.name} of pipeline {summary.pipeline}, started {started}")
    click.echo(f"Took {format_duration(summary.duration)}: {state_words(summary)}")
    if run.outcome is None:
        click.echo(
            "It is still going: the statuses below are what its journal tells so far."
            if summary.state == "running"
            else "Its runner ended without recording the run (killed?): the statuses below are "
            "what its journal tells."
        )
    elif run.outcome and run.outcome.get("error"):
        click.echo(f"It could not start: {run.outcome['error']}")
    click.echo()
    click.echo(draw_run(run.tasks, result.runs, terminal_width(sys.stdout)))
    failed = result.failed
    if failed:
        command = shlex.join(["pyperunner", "result", str(run.folder), next(iter(failed))])
        click.echo(f"\n{len(failed)} task(s) failed; for a traceback: {command}")
    for name, task_run in failed.items():
        click.echo(f"FAILED {name}: {first_line(task_run.error) or 'no error recorded'}")


# --------------------------------------------------------------------------- result


@main.command()
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
@click.argument("task_name", metavar="TASK")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    help="Write the output to this file with joblib.dump (read it back with joblib.load).",
)
def result(run_path: str, task_name: str, out: str | None) -> None:
    """Print the output of a task in a run, or save it with --out.

    RUN is a run folder, its pipeline.yaml, or a log folder (its latest run); TASK is a task
    name such as 'Train(final)' (the tag may be left out when only one task has that name).
    Containers are pretty-printed, other values shown with repr. Exits with 1 if the task has
    no output in that run.

    \b
    Example:
        pyperunner result log/my-pipeline_240101T120000 'Evaluate(both)'
        pyperunner result log/my-pipeline_240101T120000 Evaluate --out evaluation.joblib
        pyperunner result log/ Evaluate
    """
    run = open_run(Path(run_path))
    pipeline_result = PipelineResult.from_run(run)
    name = match_task(task_name, pipeline_result.statuses)
    try:
        value = pipeline_result[name]
    except (TaskOutputUnavailableError, StoreError) as exc:
        raise TaskFailed(str(exc)) from exc
    if out is not None:
        import joblib

        try:
            joblib.dump(value, out)
        except OSError as exc:
            raise BadUsage(
                f"cannot write {out} ({exc.strerror or exc}); give --out a file in a folder that "
                "exists and that you can write to"
            ) from exc
        click.echo(f"Wrote the output of {name} to {out} (read it with joblib.load)")
        return
    click.echo(format_value(value))


# --------------------------------------------------------------------------- report


@main.command()
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
def report(run_path: str) -> None:
    """Write a run's HTML report and print its path.

    RUN is a run folder, its pipeline.yaml, or a log folder (its latest run). The report
    (report.html in the run folder, written again if it exists) is one self-contained file.

    \b
    Example:
        pyperunner report log/my-pipeline_240101T120000
    """
    from .report.html import write_report

    run = open_run(Path(run_path))
    click.echo(str(write_report(run.folder, (run.doc, run.outcome or {}))))


# --------------------------------------------------------------------------- explain


@main.command()
@click.argument("pipeline_file", metavar="PIPELINE.yml", type=click.Path(dir_okay=False))
@data_path_option
@import_option
@trust_option
@click.option("--force-reload", is_flag=True, help="Explain a run with --force-reload.")
@click.option("--graph", is_flag=True, help="Also draw the DAG marked with the plan.")
def explain(
    pipeline_file: str,
    data_path: str,
    imports: tuple[str, ...],
    trust_pickles: bool,
    force_reload: bool,
    graph: bool,
) -> None:
    """Say which tasks a run would execute, and why; runs nothing.

    For every task of PIPELINE.yml: "run" with the reason, or "cached". Reasons: no cached
    result, parameters changed (which), code changed, upstream changed,
    reload=True, force_reload, or an upstream task runs.

    \b
    Example:
        pyperunner explain pipeline.yml --data-path data/
    """
    pipeline = load_pipeline(Path(pipeline_file), imports, trust_pickles)
    runner = from_options(lambda: Runner(data_path, "log/", executor="inline", console=False))
    plan = runner.plan(pipeline, force_reload=force_reload)
    rows = [
        ["run", name, plan.why.get(name, "")] if name in plan.why else ["cached", name, ""]
        for name in plan.order
    ]
    click.echo(format_table(["DECISION", "TASK", "WHY"], rows))
    click.echo(f"\n{len(plan.to_run)} task(s) would run, {len(plan.cached)} cached")
    if graph:
        click.echo()
        click.echo(pipeline.summary(echo=False))


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
        from .ui.server import serve
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


# --------------------------------------------------------------------------- loading pipelines


def load_pipeline(path: Path, imports: Iterable[str], trust_pickles: bool) -> Pipeline:
    """Load a pipeline file, importing ``imports`` first; any problem is a ``BadUsage``."""
    if not path.is_file():
        raise BadUsage(f"no pipeline file {path}: save one with Pipeline.to_file({str(path)!r})")
    extend_sys_path([Path.cwd(), path.absolute().parent])
    for module in imports:
        import_module(module)
    try:
        return read_pipeline(path, trust_pickles)
    except (*INPUT_ERRORS, OSError) as exc:
        problem = str(exc).removeprefix(f"{path}: ")
        raise BadUsage(f"cannot load pipeline {path}: {problem}{load_hint(problem)}") from exc


def read_pipeline(path: Path, trust_pickles: bool) -> Pipeline:
    """``Pipeline.from_file``; if only keys differ, say so and rebuild the tasks as they are now."""
    try:
        return Pipeline.from_file(path, trust_pickles)
    except KeyMismatchError as exc:
        click.echo(f"Note: {exc}; using the tasks as they are now", err=True)
        return Pipeline.from_dict(without_keys(yamlio.read(path)["pipeline"]), trust_pickles)


def extend_sys_path(folders: Sequence[Path]) -> None:
    """Put ``folders`` first on ``sys.path`` so local task modules import, as in a script."""
    for folder in reversed(folders):
        entry = str(folder.absolute())
        if entry not in sys.path:
            sys.path.insert(0, entry)


def import_module(name: str) -> None:
    """Import a module named by ``--import``; a failure is bad usage."""
    try:
        importlib.import_module(name)
    except Exception as exc:  # the module's own code may raise anything
        if isinstance(exc, ModuleNotFoundError) and f"{name}.".startswith(f"{exc.name}."):
            raise BadUsage(
                f"cannot import module {name!r} given by --import ({exc}); check its name and "
                "that it can be imported from the current folder or the pipeline file's folder"
            ) from exc
        raise BadUsage(
            f"importing module {name!r} given by --import failed with {type(exc).__name__}: "
            f"{exc}; fix the module (python -c 'import {name}' shows the traceback)"
        ) from exc


def load_hint(problem: str) -> str:
    """What to do on the command line when a task class cannot be found."""
    if "cannot find __main__." in problem:
        return "; pyperunner then finds the module in the pipeline file's folder or by --import"
    if "cannot find" in problem:
        return "; pass --import MODULE or run pyperunner from the folder of the task module"
    return ""


def without_keys(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A pipeline description without its saved keys, so it loads with the code as it is now."""
    tasks = {
        name: {k: v for k, v in spec.items() if k != "key"} for name, spec in doc["tasks"].items()
    }
    return {**doc, "tasks": tasks}


# --------------------------------------------------------------------------- run folders


def open_run(path: Path) -> runfolder.RunFiles:
    """The checked files of a run given as its folder or its pipeline.yaml, or of the latest run
    in a log folder (named on stderr, so that the output stays the run's)."""
    if path.is_dir() and not (path / PIPELINE_FILE).exists():
        runs = runfolder.runs_in(path)
        if not runs:
            raise BadUsage(
                f"{path} is not a run folder, nor a log folder holding one; give a run folder "
                "made by pyperunner run, the pipeline.yaml in it, or the log folder of its runs"
            )
        path = runs[-1].folder
        click.echo(f"Using the latest run in {path.parent}: {path.name}", err=True)
    return runfolder.read_run(path)


def first_line(text: str | None) -> str | None:
    """The first line of an error, marked as cut if there is more (``result`` shows it all)."""
    if not text or "\n" not in text.strip():
        return text and text.strip()
    return text.strip().splitlines()[0] + " [...]"


def match_task(name: str, names: Iterable[str]) -> str:
    """``name`` itself, or the one task called ``name(...)``; else bad usage listing the names."""
    known = sorted(names)
    if name in known:
        return name
    by_prefix = [n for n in known if n.startswith(f"{name}(")]
    if len(by_prefix) == 1:
        return by_prefix[0]
    if by_prefix:
        raise BadUsage(
            f"{name!r} is ambiguous: {len(by_prefix)} tasks of this run are called {name}(...), "
            f"such as {', '.join(by_prefix[:5])}; give the whole name"
        )
    close = difflib.get_close_matches(name, known, n=5) or known[:5]
    more = f" (of {len(known)})" if len(known) > len(close) else ""
    raise BadUsage(f"no task {name!r} in this run; did you mean {', '.join(close)}{more}?")


# --------------------------------------------------------------------------- formatting


def state_words(summary: runfolder.Summary) -> str:
    """``3 SUCCESS``, ``still going``, ``incomplete`` or ``unreadable ...``: a run in a few
    words."""
    if summary.problem is not None:
        return f"unreadable {summary.problem}"
    if summary.finished is None:
        return "still going" if summary.state == "running" else "incomplete"
    return format_counts({Status(k): n for k, n in summary.counts.items()})


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Plain columns aligned with spaces: readable in a terminal, a pipe or a file."""
    widths = [max(len(str(row[i])) for row in [headers, *rows]) for i in range(len(headers))]
    lines = [
        "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def format_value(value: Any) -> str:
    """``pprint`` for containers, ``repr`` otherwise, cut short when very long."""
    containers = (dict, list, tuple, set, frozenset)
    text = pprint.pformat(value, width=100) if isinstance(value, containers) else repr(value)
    if len(text) > PRINT_LIMIT:
        rest = len(text) - PRINT_LIMIT
        text = f"{text[:PRINT_LIMIT]}\n... ({rest} more characters; use --out FILE to save it all)"
    return text


if __name__ == "__main__":
    main()
