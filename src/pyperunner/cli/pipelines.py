"""``pyperunner run`` and ``pyperunner explain``: a pipeline file loaded, then run or planned."""

from __future__ import annotations

import collections
import importlib
import signal
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from .. import (
    KeyMismatchError,
    Pipeline,
    Runner,
    yamlio,
)
from ..executors import EXECUTORS
from ..status import format_counts
from .group import (
    INPUT_ERRORS,
    BadUsage,
    data_path_option,
    first_line,
    format_table,
    from_options,
    import_option,
    main,
    trust_option,
)

# --------------------------------------------------------------------------- run


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
