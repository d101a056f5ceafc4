"""The ``pyperunner`` command group: its errors (exit codes), its shared options, and how its
answers are printed; the commands are in the modules beside it."""

from __future__ import annotations

import pprint
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from .. import (
    PipelineError,
    Status,
    TaskDefinitionError,
    UnhashableParameterError,
    WiringError,
    __version__,
    runfolder,
    yamlio,
)
from ..runfolder import RunFolderError
from ..status import format_counts

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


# --------------------------------------------------------------------------- options

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


# --------------------------------------------------------------------------- printing


def first_line(text: str | None) -> str | None:
    """The first line of an error, marked as cut if there is more (``result`` shows it all)."""
    if not text or "\n" not in text.strip():
        return text and text.strip()
    return text.strip().splitlines()[0] + " [...]"


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
