"""``pyperunner runs``, ``show``, ``result`` and ``report``: looking at the runs in a log folder."""

from __future__ import annotations

import difflib
import shlex
import sys
from collections.abc import Iterable
from pathlib import Path

import click

from .. import (
    PipelineResult,
    StoreError,
    TaskOutputUnavailableError,
    runfolder,
)
from ..runfolder import PIPELINE_FILE
from ..text import format_duration
from .group import (
    BadUsage,
    TaskFailed,
    first_line,
    format_table,
    format_value,
    main,
    state_words,
)

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
    from ..report.terminal import draw_run, terminal_width

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
    from ..report.html import write_report

    run = open_run(Path(run_path))
    click.echo(str(write_report(run.folder, (run.doc, run.outcome or {}))))


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
