"""The ``pyperunner`` command: run a saved pipeline, and look at runs, results and the cache.

It works only through the public API (``Pipeline``, ``Runner``, ``PipelineResult``, the store) and
the files a run leaves in its folder (``pipeline.yaml``, ``run.yaml``, ``report.html``), so every
answer it gives can also be had from Python. Exit codes: 0 success, 1 a task failed, 2 bad usage.
"""

from __future__ import annotations

import collections
import dataclasses
import importlib
import pprint
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

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
    WiringError,
    __version__,
    yamlio,
)
from .report.text import format_bytes, format_duration
from .store import Store

PIPELINE_FILE = "pipeline.yaml"
RUN_FILE = "run.yaml"
EXECUTORS = ("process", "thread", "inline")
PRINT_LIMIT = 20_000  # characters of a task's output `result` prints before cutting it short

STATUS_ORDER = (
    Status.SUCCESS,
    Status.CACHED,
    Status.FAILURE,
    Status.CANT_RUN,
    Status.INTERRUPTED,
    Status.RUNNING,
    Status.NOT_STARTED,
)


class BadUsage(click.ClickException):
    """The command was called wrongly (a file that is not a pipeline, an unknown task): exit 2."""

    exit_code = 2


class TaskFailed(click.ClickException):
    """A task failed or its output is not available: exit 1."""

    exit_code = 1


# --------------------------------------------------------------------------- the group


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
    type=click.Path(file_okay=False),
    help="Folder of the result cache.",
)
import_option = click.option(
    "--import",
    "imports",
    metavar="MODULE",
    multiple=True,
    help="Import MODULE first so its task classes can be found (repeatable).",
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
    type=click.Choice(EXECUTORS),
    default="process",
    show_default=True,
    help="How each task runs.",
)
@import_option
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
    show_plan: bool,
) -> None:
    """Run a pipeline file; cached tasks are not run again.

    Task classes are found by module and name: the current folder and the folder of PIPELINE.yml
    are searched, and --import loads other modules first. Exits with 0 if every task succeeded or
    was cached, 1 if a task failed.

    \b
    Example:
        pyperunner run pipeline.yml --data-path data/ --log-path log/ --workers 4
        pyperunner run pipeline.yml --import mypackage.tasks --force-reload
    """
    pipeline = load_pipeline(Path(pipeline_file), imports)
    try:
        runner = Runner(data_path, log_path, process_limit=workers, executor=executor)
    except ValueError as exc:
        raise BadUsage(str(exc)) from exc
    try:
        result = runner.run(
            pipeline,
            force_reload=force_reload,
            fail_fast=fail_fast,
            show_execution_plan=show_plan,
        )
    except PipelineError as exc:
        raise BadUsage(str(exc)) from exc
    click.echo(f"Run folder: {runner.run_dir}")
    click.echo(f"Tasks: {format_counts(result.statuses.values())}")
    for name, task_run in result.failed.items():
        click.echo(f"FAILED {name}: {task_run.error}")
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
    incomplete.

    \b
    Example:
        pyperunner runs log/
    """
    infos = sorted(
        (read_run(folder) for folder in run_folders(Path(log_path))),
        key=lambda info: (info.started or "", modified(info.folder / PIPELINE_FILE)),
    )
    if not infos:
        click.echo(f"No runs in {log_path}")
        return
    rows = [
        [
            info.folder.name,
            info.pipeline,
            (info.started or "?").replace("T", " "),
            format_duration(info.duration),
            format_counts(info.statuses) if info.statuses is not None else "incomplete",
        ]
        for info in infos
    ]
    click.echo(format_table(["RUN", "PIPELINE", "STARTED", "DURATION", "TASKS"], rows))


# --------------------------------------------------------------------------- show


@main.command()
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
def show(run_path: str) -> None:
    """Draw a run's DAG with statuses and durations; list failures.

    RUN is a run folder or the pipeline.yaml in it. Each box reads Name(tag) [STATUS duration].

    \b
    Example:
        pyperunner show log/my-pipeline_240101T120000
    """
    path = run_file(Path(run_path))
    info = read_run(path.parent)
    result = open_result(path)
    tasks = read_yaml(path)["pipeline"]["tasks"]
    edges = [(parent, name) for name, spec in tasks.items() for parent in spec.get("parents", [])]
    durations = result.durations
    labels = {
        name: f"{name} [{status.value}{duration_suffix(durations.get(name))}]"
        for name, status in result.statuses.items()
    }
    from .report.ascii import draw_ascii

    state = format_counts(info.statuses) if info.statuses is not None else "incomplete"
    started = (info.started or "?").replace("T", " ")
    click.echo(f"Run {info.folder.name} of pipeline {info.pipeline}, started {started}")
    click.echo(f"Took {format_duration(info.duration)}: {state}")
    click.echo()
    click.echo(draw_ascii(list(tasks), edges, labels))
    if result.failed:
        click.echo()
    for name, task_run in result.failed.items():
        click.echo(f"FAILED {name}: {task_run.error}")


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

    RUN is a run folder or its pipeline.yaml; TASK is a task name such as 'Train(final)' (the
    tag may be left out when only one task has that name). Containers are pretty-printed, other
    values shown with repr. Exits with 1 if the task has no output in that run.

    \b
    Example:
        pyperunner result log/my-pipeline_240101T120000 'Evaluate(both)'
        pyperunner result log/my-pipeline_240101T120000 Evaluate --out evaluation.joblib
    """
    pipeline_result = open_result(run_file(Path(run_path)))
    name = match_task(task_name, pipeline_result.statuses)
    try:
        value = pipeline_result[name]
    except (TaskOutputUnavailableError, StoreError) as exc:
        raise TaskFailed(str(exc)) from exc
    if out is not None:
        import joblib

        joblib.dump(value, out)
        click.echo(f"Wrote the output of {name} to {out} (read it with joblib.load)")
        return
    click.echo(format_value(value))


# --------------------------------------------------------------------------- report


@main.command()
@click.argument("run_path", metavar="RUN", type=click.Path(exists=True))
def report(run_path: str) -> None:
    """Write a run's HTML report and print its path.

    RUN is a run folder or its pipeline.yaml. The report (report.html in the run folder, written
    again if it exists) is one self-contained file.

    \b
    Example:
        pyperunner report log/my-pipeline_240101T120000
    """
    from .report.html import write_report

    click.echo(str(write_report(run_file(Path(run_path)).parent)))


# --------------------------------------------------------------------------- explain


@main.command()
@click.argument("pipeline_file", metavar="PIPELINE.yml", type=click.Path(dir_okay=False))
@data_path_option
@import_option
@click.option("--force-reload", is_flag=True, help="Explain a run with --force-reload.")
@click.option("--graph", is_flag=True, help="Also draw the DAG marked with the plan.")
def explain(
    pipeline_file: str, data_path: str, imports: tuple[str, ...], force_reload: bool, graph: bool
) -> None:
    """Say which tasks a run would execute, and why; runs nothing.

    For every task of PIPELINE.yml: "run" with the reason, or "cached". Reasons: no cached
    result, parameters changed (which), code changed, upstream changed,
    reload=True, force_reload, or an upstream task runs.

    \b
    Example:
        pyperunner explain pipeline.yml --data-path data/
    """
    pipeline = load_pipeline(Path(pipeline_file), imports)
    runner = Runner(data_path, "log/", executor="inline", console=False)
    try:
        plan = runner.plan(pipeline, force_reload=force_reload)
    except PipelineError as exc:
        raise BadUsage(str(exc)) from exc
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
@click.argument("data_path", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--keep",
    "keep_paths",
    required=True,
    multiple=True,
    type=click.Path(exists=True),
    metavar="LOG_PATH",
    help="Keep every entry a run under LOG_PATH uses (repeatable; a pipeline file works too).",
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

    An entry of DATA_PATH is kept if the pipeline.yaml of a run folder under a --keep LOG_PATH
    names its task and key. Without --delete nothing is removed: the entries that would go are
    listed with their sizes. An entry that is locked (being computed or read) is never deleted.

    \b
    Example:
        pyperunner gc data/ --keep log/            # dry run: what would go
        pyperunner gc data/ --keep log/ --delete
    """
    delete = not dry_run
    used, run_count = used_entries([Path(p) for p in keep_paths])
    if run_count == 0:
        raise BadUsage(
            f"no run folder found under {', '.join(keep_paths)}; refusing to treat every entry as "
            "garbage (pass the log folder of the runs to keep)"
        )
    store = Store(data_path)
    entries = list(store.entries())
    garbage = [entry for entry in entries if entry not in used]
    sizes = {entry: entry_size(store, *entry) for entry in garbage}
    deleted, skipped = [], []
    for name, key in garbage:
        where = f"{name}/{key}"
        if not delete:
            click.echo(f"would delete  {where}  {format_bytes(sizes[name, key])}")
        elif store.delete(name, key):
            deleted.append((name, key))
            click.echo(f"deleted       {where}  {format_bytes(sizes[name, key])}")
        else:
            skipped.append((name, key))
            click.echo(f"skipped       {where}  (locked: in use by a run)")
    kept = f"kept {len(entries) - len(garbage)} entries used by {run_count} run(s)"
    if delete:
        freed = format_bytes(sum(sizes[entry] for entry in deleted))
        click.echo(
            f"Deleted {len(deleted)} entries ({freed}), skipped {len(skipped)} locked; {kept}"
        )
    else:
        total = format_bytes(sum(sizes.values()))
        click.echo(f"Would delete {len(garbage)} entries ({total}); {kept}")
        if garbage:
            click.echo("Run again with --delete to delete them.")


# --------------------------------------------------------------------------- loading pipelines


def load_pipeline(path: Path, imports: Iterable[str]) -> Pipeline:
    """Load a pipeline file, importing ``imports`` first; any problem is a ``BadUsage``."""
    if not path.is_file():
        raise BadUsage(f"no pipeline file {path}: save one with Pipeline.to_file({str(path)!r})")
    extend_sys_path([Path.cwd(), path.absolute().parent])
    for module in imports:
        import_module(module)
    try:
        doc = read_yaml(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("pipeline"), dict):
            raise PipelineError("not a pyperunner pipeline file (no 'pipeline' section)")
        try:
            return Pipeline.from_dict(doc["pipeline"])
        except KeyMismatchError as exc:
            click.echo(f"Note: {exc}; using the tasks as they are now", err=True)
            return Pipeline.from_dict(without_keys(doc["pipeline"]))
    except (
        PipelineError,
        TaskDefinitionError,
        WiringError,
        yamlio.YAMLError,
        KeyError,
        TypeError,
        ValueError,
    ) as exc:
        raise BadUsage(f"cannot load pipeline {path}: {exc}{load_hint(exc)}") from exc


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
    except ImportError as exc:
        raise BadUsage(
            f"cannot import module {name!r} given by --import ({exc}); check its name and that "
            "it can be imported from the current folder or the pipeline file's folder"
        ) from exc


def load_hint(exc: Exception) -> str:
    """What to do when a task class cannot be found."""
    text = str(exc)
    if "__main__" in text:
        return (
            "; tasks defined in a script run as __main__ cannot be found again: define them in "
            "a module and save the pipeline from there"
        )
    if "cannot find" in text:
        return "; pass --import MODULE or run pyperunner from the folder of the task module"
    return ""


def without_keys(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A pipeline description without its saved keys, so it loads with the code as it is now."""
    tasks = {
        name: {k: v for k, v in spec.items() if k != "key"} for name, spec in doc["tasks"].items()
    }
    return {**doc, "tasks": tasks}


# --------------------------------------------------------------------------- run folders


@dataclasses.dataclass(frozen=True)
class RunInfo:
    """What a run folder says about its run; ``statuses`` is None while run.yaml is missing."""

    folder: Path
    pipeline: str
    started: str | None
    duration: float | None
    statuses: list[Status] | None


def read_yaml(path: Path) -> Any:
    """Parse a YAML file written by pyperunner."""
    return yamlio.load(path.read_text(encoding="utf-8"))


def run_folders(log_path: Path) -> list[Path]:
    """The run folders directly under ``log_path`` (those holding a pipeline.yaml)."""
    return sorted(p.parent for p in log_path.glob(f"*/{PIPELINE_FILE}"))


def read_run(folder: Path) -> RunInfo:
    """Summarise one run folder; unreadable files count as an incomplete run."""
    try:
        doc = read_yaml(folder / PIPELINE_FILE)
    except (OSError, yamlio.YAMLError):
        doc = None
    if not isinstance(doc, dict):
        doc = {}
    pipeline = (doc.get("pipeline") or {}).get("name", "?")
    started = (doc.get("run") or {}).get("started")
    try:
        outcome = read_yaml(folder / RUN_FILE)
    except (OSError, yamlio.YAMLError):
        outcome = None
    if not isinstance(outcome, dict):
        return RunInfo(folder, pipeline, started, None, None)
    tasks = outcome.get("tasks") or {}
    statuses = [Status(spec.get("status", Status.NOT_STARTED.value)) for spec in tasks.values()]
    return RunInfo(folder, pipeline, started, outcome.get("duration"), statuses)


def modified(path: Path) -> int:
    """When a file was last written (ns), 0 if it is gone: orders runs started in one second."""
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return 0


def run_file(path: Path) -> Path:
    """The pipeline.yaml of a run given as its folder or the file itself."""
    found = path / PIPELINE_FILE if path.is_dir() else path
    if not found.is_file():
        raise BadUsage(f"{path} is not a run folder: it holds no {PIPELINE_FILE}")
    return found


def open_result(path: Path) -> PipelineResult:
    """The ``PipelineResult`` of a run's pipeline.yaml."""
    try:
        return PipelineResult.from_file(path)
    except (OSError, yamlio.YAMLError, KeyError, TypeError, ValueError) as exc:
        raise BadUsage(
            f"cannot read the run in {path} ({exc}); give a run folder made by pyperunner run"
        ) from exc


def match_task(name: str, names: Iterable[str]) -> str:
    """``name`` itself, or the one task called ``name(...)``; else bad usage listing the names."""
    known = sorted(names)
    if name in known:
        return name
    by_prefix = [n for n in known if n.startswith(f"{name}(")]
    if len(by_prefix) == 1:
        return by_prefix[0]
    raise BadUsage(f"no task {name!r} in this run; tasks: {', '.join(known)}")


def entry_size(store: Store, name: str, key: str) -> int:
    """Bytes of one store entry, 0 if it vanishes while measured (another gc, a crash)."""
    try:
        return store.size(name, key)
    except OSError:
        return 0


def used_entries(keep_paths: Iterable[Path]) -> tuple[set[tuple[str, str]], int]:
    """Every (task name, key) the kept runs use, and how many run or pipeline files were read.

    An unreadable pipeline.yaml stops everything: without it we cannot know what it keeps.
    """
    used: set[tuple[str, str]] = set()
    files: list[Path] = []
    for keep in keep_paths:
        files.extend([keep] if keep.is_file() else sorted(keep.glob(f"*/{PIPELINE_FILE}")))
    for path in files:
        try:
            tasks = read_yaml(path)["pipeline"]["tasks"]
            used.update((name, spec["key"]) for name, spec in tasks.items())
        except (OSError, yamlio.YAMLError, KeyError, TypeError, AttributeError) as exc:
            raise click.ClickException(
                f"cannot read the task keys of {path} ({exc}); fix or remove it, then run gc again"
            ) from exc
    return used, len(files)


# --------------------------------------------------------------------------- formatting


def format_counts(statuses: Iterable[Status]) -> str:
    """``6 SUCCESS, 1 FAILURE``: how many tasks ended in each status."""
    counts = collections.Counter(statuses)
    parts = [f"{counts[status]} {status.value}" for status in STATUS_ORDER if counts[status]]
    return ", ".join(parts) or "no tasks"


def duration_suffix(seconds: float | None) -> str:
    """`` 1.2 s`` after a status, or nothing for a task that did not run."""
    return "" if seconds is None else f" {format_duration(seconds)}"


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
