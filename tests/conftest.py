"""Shared test helpers: counting task executions across processes without touching task keys,
and a realistic wide pipeline for the pictures and ``pyperunner show``."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from pyperunner import Pipeline, Task, run, task

CALLS_ENV = "PYPERUNNER_TEST_CALLS"

# Hypothesis keeps caches in a `.hypothesis` folder of the working directory: keep them out of the
# repository, and keep no example database at all (each run draws afresh).
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="pyperunner-hypothesis-"))
settings.register_profile("pyperunner", database=None)
settings.load_profile("pyperunner")


def local_cluster() -> Any:
    """A Dask ``LocalCluster`` of two worker processes with one thread each, for Dask tests
    (which skip where ``distributed`` is not installed)."""
    import distributed

    return distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )


def parent_of(pid: int) -> int:
    """The parent of process ``pid`` (Linux ``/proc``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


def record_call(name: str) -> None:
    """Append ``name`` to the calls file named by the environment (one line per execution).

    Tasks call this; the file is opened in append mode so concurrent processes do not clobber it.
    """
    path = os.environ.get(CALLS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")


class Calls:
    """Reads back which tasks executed, in which order, since the last reset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def order(self) -> list[str]:
        if not self.path.exists():
            return []
        return self.path.read_text(encoding="utf-8").splitlines()

    def counts(self) -> Counter[str]:
        return Counter(self.order())

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Executions of tasks that call ``record_call``, across processes and threads."""
    path = tmp_path / "calls.txt"
    monkeypatch.setenv(CALLS_ENV, str(path))
    return Calls(path)


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh (data_path, log_path) pair inside tmp_path."""
    return tmp_path / "data", tmp_path / "log"


def double_fork_sleeper() -> int:
    """Detach ``sleep 61`` as daemons do (fork, setsid, fork, exec): the middle process exits at
    once, so the sleeper is an orphan in a session of its own; return its pid."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # the caller may have threads: this child only forks, writes and exits
        try:
            os.setsid()
            sleeper = os.fork()
            if sleeper == 0:
                os.execvp("sleep", ["sleep", "61"])
            os.write(write_end, str(sleeper).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(middle, 0)
    with os.fdopen(read_end, "rb") as reading:
        return int(reading.read())


# -- a wide pipeline -------------------------------------------------------------------------

FEATURES = ("mean", "std", "min", "max", "skew", "kurt")
FAILING_FEATURES = ("Feature(s2-skew)", "Feature(s5-min)")


@task("Source", receives_input=False)
def source(index: int) -> list[int]:
    return list(range(index, index + 10))


@task("Clean")
def clean(data: list[Any]) -> list[int]:
    return sorted(data[0])


class Feature(Task):
    @run
    def run(self, data: list[Any], kind: str) -> float:
        if self.name in FAILING_FEATURES:
            raise ValueError(f"no {kind} for this source")
        return float(len(data[0]))


@task("Train")
def train(data: list[Any]) -> int:
    return len(data)


@task("Report")
def report(data: list[Any]) -> str:
    return f"model of {data[0]} features"


def features_pipeline() -> Pipeline:
    """7 sources, a clean task each, 6 features of each (``Feature(s0-mean)``; two of them
    fail), one model trained on all 42 features and its report: 58 tasks."""
    features = []
    for s in range(7):
        cleaned = clean(f"s{s}")(source(f"s{s}", index=s))
        features += [Feature(f"s{s}-{kind}", kind=kind)(cleaned) for kind in FEATURES]
    return Pipeline("features", [report("final")(train("model")(features))])
