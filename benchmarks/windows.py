"""How big pipelines look: ``python benchmarks/windows.py [--repeat N] [--workdir DIR]``.

Four pipelines are run once with the inline executor: the features pipeline (7 sources, a
clean task each, 6 features of each of which two fail, a model trained on all 42 and its
report: 58 tasks), a grid search (10 datasets each fitted with 50 parameter settings, evaluated
per dataset, the best kept: 521 tasks) and fan-outs of 5,000 and 20,000 tasks (one source, the
tasks, one task collecting them). ``--workdir DIR`` keeps their runs there and reuses them the
next time (the 20,000-task run takes half a minute); by default they go to a temporary folder.

For each run the table shows the size of its ``status.png`` and the boxes in it, the time to
draw that picture again (in this process, after a first drawing), what writing its folder costs
the runner a task (the journal, the summary, ``pipeline.yaml`` and ``run.yaml``, ``status.png``
and ``report.html``: written again into a scratch folder), and ``pyperunner show`` of its
run folder, each in a fresh interpreter ``--repeat`` times (median and [min-max]; for ``show``
also the CPU time of its process, which depends less on what else the machine runs), with the
widest line it prints at 120 columns (its output is not a terminal) and at ``COLUMNS=80``.
Bytecode goes to the temporary folder, filled by a first ``show`` that is not timed, so no
figure pays for compiling modules (as with an installed package), whatever
``PYTHONDONTWRITEBYTECODE`` says. Last, ``pyperunner runs`` of a log folder of 200 runs: the
20,000-task one (or the biggest run measured) and 199 copies of the features run. The tables go
to stdout, progress to stderr.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PIL import Image

from pyperunner import Pipeline, PipelineResult, Runner, Task, run, runfolder, task
from pyperunner.dag import Dag
from pyperunner.report.groups import grouped
from pyperunner.report.html import write_report
from pyperunner.report.image import write_status_png
from pyperunner.runwriter import RunWriter
from pyperunner.status import TaskRun

FEATURES = ("mean", "std", "min", "max", "skew", "kurt")
FAILING = ("Feature(s2-skew)", "Feature(s5-min)")
PICTURE_TARGET = 2500  # pixels, the longest side
SHOW_TARGETS = {20_000: 2.0, 5_000: 1.0}  # seconds, by the number of tasks fanned out
FOLDER_TARGET = 1.0  # ms a task the runner spends writing the run's folder
RUNS_TARGET = 1.0  # seconds for pyperunner runs over 200 runs


@task("Source", receives_input=False)
def source(index: int) -> list[int]:
    return list(range(index, index + 10))


@task("Clean")
def clean(data: list[Any]) -> list[int]:
    return sorted(data[0])


class Feature(Task):
    @run
    def run(self, data: list[Any], kind: str) -> float:
        if self.name in FAILING:
            raise ValueError(f"no {kind} for this source")
        return float(len(data[0]))


@task("Train")
def train(data: list[Any]) -> int:
    return len(data)


@task("Report")
def report(data: list[Any]) -> str:
    return f"model of {data[0]} features"


@task("Dataset", receives_input=False)
def dataset(index: int) -> int:
    return index


@task("Fit")
def fit(data: list[Any], alpha: float, depth: int) -> float:
    return data[0] * alpha + depth


@task("Evaluate")
def evaluate(data: list[Any]) -> float:
    return max(data)


@task("Best")
def best(data: list[Any]) -> float:
    return max(data)


@task("Load", receives_input=False)
def load() -> int:
    return 1


@task("Process")
def process(data: list[Any], index: int) -> int:
    return data[0] + index


@task("Collect")
def collect(data: list[Any]) -> int:
    return len(data)


def features() -> Pipeline:
    found = []
    for s in range(7):
        cleaned = clean(f"s{s}")(source(f"s{s}", index=s))
        found += [Feature(f"s{s}-{kind}", kind=kind)(cleaned) for kind in FEATURES]
    return Pipeline("features", [report("final")(train("model")(found))])


def grid_search() -> Pipeline:
    evaluations = []
    for d in range(10):
        data = dataset(f"d{d}", index=d)
        fits = [fit(f"d{d}-p{p}", alpha=p / 10, depth=p % 5)(data) for p in range(50)]
        evaluations.append(evaluate(f"d{d}")(fits))
    return Pipeline("grid", [best("all")(evaluations)])


def fan_out(width: int) -> Callable[[], Pipeline]:
    def build() -> Pipeline:
        root = load("all")
        items = [process(f"item-{i}", index=i)(root) for i in range(width)]
        return Pipeline(f"fan-out-{width}", [collect("all")(items)])

    return build


PIPELINES: dict[str, tuple[int, Callable[[], Pipeline]]] = {
    "features": (58, features),
    "grid search": (521, grid_search),
    "fan-out 5000": (5_002, fan_out(5_000)),
    "fan-out 20000": (20_002, fan_out(20_000)),
}


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def run_folder(workdir: Path, name: str, build: Callable[[], Pipeline]) -> Path:
    """The run folder of pipeline ``name`` under ``workdir``, run now if it has none."""
    log = workdir / name.replace(" ", "-") / "log"
    done = sorted(log.glob("*/run.yaml"))
    if done:
        return done[-1].parent
    progress(f"[{name}] running it once (inline)")
    runner = Runner(log.parent / "data", log, executor="inline", console=False, progress=False)
    return runner.run(build()).run_dir


def status_graph(folder: Path) -> Dag:
    """The run's task graph with each task's status and duration, as its ``status.png`` has."""
    files = runfolder.read_run(folder)
    runs = PipelineResult.from_run(files).runs
    tasks = files.tasks
    return Dag.from_parents(
        {name: {"status": runs[name].status, "duration": runs[name].duration} for name in tasks},
        {name: spec["parents"] for name, spec in tasks.items()},
    )


def folder_cost(folder: Path, scratch: Path) -> float:
    """Seconds the runner spends writing the run's folder, written again into ``scratch``: the
    journal (a start, a record for each task, an end), the summary, ``pipeline.yaml`` and
    ``run.yaml``, ``status.png`` and ``report.html``."""
    files = runfolder.read_run(folder)
    assert files.outcome is not None
    again = scratch / "again"
    shutil.rmtree(again, ignore_errors=True)
    again.mkdir()
    records = {name: TaskRun.from_dict(r) for name, r in files.outcome["tasks"].items()}
    keys = {name: spec["key"] for name, spec in files.tasks.items()}
    graph = status_graph(folder)
    started = time.perf_counter()
    writer = RunWriter(again, keys)
    writer.begin(files.doc)
    writer.planned([], [])
    for name, record in records.items():
        writer.changed(name, record)
    writer.end(files.doc, files.outcome)
    write_status_png(graph, again / "status.png", title=folder.name)
    write_report(again, (files.doc, files.outcome))
    return time.perf_counter() - started


def runs_listing(biggest: Path, small: Path, scratch: Path, repeat: int) -> list[float]:
    """Seconds ``pyperunner runs`` takes in a fresh interpreter over 200 runs: ``biggest`` and
    199 copies of ``small``."""
    log = scratch / "two-hundred"
    log.mkdir()
    os.symlink(biggest, log / biggest.name)
    for i in range(199):
        shutil.copytree(small, log / f"{small.name}_{i:03d}")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    command = [sys.executable, "-m", "pyperunner.cli", "runs", str(log)]
    times = []
    for _ in range(repeat + 1):  # the first one compiles
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        times.append(time.perf_counter() - started)
        assert len(done.stdout.splitlines()) == 201, done.stdout[-500:]
    return times[1:]


def show(folder: Path, pycache: Path, columns: int | None = None) -> tuple[float, float, int]:
    """Seconds ``pyperunner show`` of ``folder`` takes in a fresh interpreter, of them the CPU
    time of its process, and the widest line of its drawing (failures and the command for a
    traceback left out)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "PYTHONDONTWRITEBYTECODE")}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    if columns is not None:
        env["COLUMNS"] = str(columns)
    command = [sys.executable, "-m", "pyperunner.cli", "show", str(folder)]
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    seconds, after = time.perf_counter() - started, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    drawing = [
        line
        for line in done.stdout.splitlines()
        if not line.startswith("FAILED ") and "for a traceback" not in line
    ]
    return seconds, cpu, max(map(len, drawing))


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def measure(name: str, folder: Path, repeat: int, scratch: Path) -> list[str]:
    """One row of the table."""
    tasks = PIPELINES[name][0]
    with Image.open(folder / "status.png") as image:
        size = image.size
    graph = status_graph(folder)
    write_status_png(graph, scratch / "again.png", title=name)  # fonts and glyphs loaded
    draws, shows, cpus, writes = [], [], [], []
    for i in range(repeat):
        progress(f"[{name}] measurement {i + 1}/{repeat}")
        started = time.perf_counter()
        write_status_png(graph, scratch / "again.png", title=name)
        draws.append(time.perf_counter() - started)
        writes.append(folder_cost(folder, scratch) / tasks * 1000)
        seconds, cpu, wide = show(folder, scratch / "pycache")
        shows.append(seconds)
        cpus.append(cpu)
    narrow = show(folder, scratch / "pycache", columns=80)[2]
    fanned = tasks - 2
    show_target = SHOW_TARGETS.get(fanned)
    verdicts = [max(size) <= PICTURE_TARGET, statistics.median(writes) < FOLDER_TARGET]
    if show_target is not None:
        verdicts.append(statistics.median(shows) < show_target)
    return [
        name,
        str(tasks),
        f"{size[0]}x{size[1]}",
        str(len(grouped(graph))),
        spread(draws),
        spread(writes),
        spread(shows),
        spread(cpus),
        f"{wide} / {narrow}",
        f"<= {PICTURE_TARGET} px" + (f", show < {show_target:g} s" if show_target else ""),
        "pass" if all(verdicts) else "FAIL",
    ]


def table(rows: list[list[str]]) -> str:
    headers = ["PIPELINE", "TASKS", "STATUS.PNG", "BOXES", "DRAW (s)", "FOLDER (ms a task)"]
    headers += ["SHOW (s)", "SHOW CPU (s)"]
    headers += ["SHOW WIDTH 120/80", "TARGET", "RESULT"]
    widths = [max(len(row[i]) for row in [headers, *rows]) for i in range(len(headers))]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [headers, *rows]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="measurements of each (default 5)")
    parser.add_argument("--workdir", type=Path, help="keep the runs here, and reuse them")
    parser.add_argument("--only", nargs="+", choices=list(PIPELINES), help="some pipelines")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="pyperunner-windows-"))
    workdir = args.workdir or scratch
    try:
        folders = {
            name: run_folder(workdir, name, PIPELINES[name][1]) for name in args.only or PIPELINES
        }
        show(folders[next(iter(folders))], scratch / "pycache")  # compiles before any timing
        rows = [measure(name, folder, args.repeat, scratch) for name, folder in folders.items()]
        biggest = max(folders.values(), key=lambda folder: len(runfolder.read_run(folder).tasks))
        small = min(folders.values(), key=lambda folder: len(runfolder.read_run(folder).tasks))
        progress("[runs] 200 runs")
        listing = runs_listing(biggest, small, scratch, args.repeat)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    load = os.getloadavg()[0]
    print(f"pyperunner show and status.png, {os.cpu_count()} CPUs, load average {load:.2f}")
    print(table(rows))
    verdict = "pass" if statistics.median(listing) < RUNS_TARGET else "FAIL"
    print(f"\npyperunner runs of 200 runs (one of them {biggest.name}): {spread(listing)} s")
    print(f"target < {RUNS_TARGET:g} s: {verdict}")


if __name__ == "__main__":
    main()
