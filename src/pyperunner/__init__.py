"""pyperunner: reproducible, cached, parallel task pipelines.

Tasks are functions (``@task``) or classes (``Task`` with ``@run``), wired by calling them with
their parents, collected in a ``Pipeline`` and executed by a ``Runner``, which caches every output
under a key of the task's parameters, code and whole upstream.
"""

from __future__ import annotations

from ._version import __version__
from .executors import DaskExecutor, Executor, InlineExecutor, ProcessExecutor, ThreadExecutor
from .functiontask import task
from .graph import Pipeline, Sequential
from .keys import UnhashableParameterError
from .pipelinefile import KeyMismatchError, PipelineError
from .report import wiring
from .results import PipelineFailedError, PipelineResult, TaskOutputUnavailableError
from .runner import Runner
from .status import Status, TaskRun
from .store import ResultNotStorableError, StoreError
from .task import Inputs, Task, TaskDefinitionError, TaskError, WiringError, run

wiring.plug_in()  # the live views, the pictures and the notebook displays: see report/wiring.py

__all__ = [
    "DaskExecutor",
    "Executor",
    "InlineExecutor",
    "Inputs",
    "KeyMismatchError",
    "Pipeline",
    "PipelineError",
    "PipelineFailedError",
    "PipelineResult",
    "ProcessExecutor",
    "ResultNotStorableError",
    "Runner",
    "Sequential",
    "Status",
    "StoreError",
    "Task",
    "TaskDefinitionError",
    "TaskError",
    "TaskOutputUnavailableError",
    "TaskRun",
    "ThreadExecutor",
    "UnhashableParameterError",
    "WiringError",
    "__version__",
    "run",
    "task",
]
