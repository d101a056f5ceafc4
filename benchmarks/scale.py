"""How pyperunner's cost grows with a pipeline: ``python benchmarks/scale.py [--sizes 200,2000]``.

The same task bodies (``plain.combine``: the sum of a task's inputs plus its index) are run
under pyperunner's executors, ``joblib.Memory`` (every call cached, one after another) and
``dask.delayed`` (the processes scheduler, nothing cached), over four shapes of ``n`` tasks:

- ``chain``: each task the child of the one before;
- ``fanout``: one root and ``n - 1`` children of it;
- ``fanin``: ``n - 1`` roots and one task gathering them all;
- ``dag``: layers of about sqrt(n) tasks, each with one to three parents drawn (seeded) from the
  layer above.

Every measurement is a fresh interpreter (this script with ``--measure``), the tools interleaved
in each of ``--repeat`` rounds; the tables show medians. What is timed, inside the subprocess and
after the imports: for a run, ``runner.run(pipeline)`` after building the pipeline and after a
run of one task has paid the interpreter's one-time costs (lazy imports); for joblib the calls,
for dask ``dask.compute``. Then, on the run folder the inline run left, what one does with a
big run: build the pipeline, ``pipeline.keys()`` and ``runner.plan(pipeline)``,
``pipeline.summary()``, a fully cached re-run, ``PipelineResult.from_file``, and the commands
``pyperunner show`` and ``pyperunner runs`` (wall time of the command). Results are checked:
the last task's value must be what plain Python computes, so a fast wrong answer is an error.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # never leave __pycache__ in the repo
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import plain  # noqa: E402
import treemem  # noqa: E402

SHAPES = ("chain", "fanout", "fanin", "dag")
EXECUTORS = ("inline", "thread", "pool", "process")
TOOLS = (*(f"pyperunner-{e}" for e in EXECUTORS), "joblib", "dask")
OPS = ("build", "keys+plan", "summary", "cached", "from_file", "show", "runs")
"""What is done with the run folder of the inline run, in seconds."""

Shape = list[list[int]]
"""A pipeline's shape: task ``k``'s parents (indices below ``k``), tasks in topological order."""


def make_shape(kind: str, n: int) -> Shape:
    """The parents of each of ``n`` tasks for one of :data:`SHAPES`."""
    if kind == "chain":
        return [[]] + [[k - 1] for k in range(1, n)]
    if kind == "fanout":
        return [[]] + [[0] for _ in range(1, n)]
    if kind == "fanin":
        return [[] for _ in range(n - 1)] + [list(range(n - 1))]
    if kind == "dag":
        rng = random.Random(0)
        width = max(1, math.isqrt(n))
        parents: Shape = []
        for k in range(n):
            layer_start = k - k % width
            above = range(max(0, layer_start - width), layer_start)
            parents.append(sorted(rng.sample(above, min(len(above), rng.randint(1, 3)))))
        return parents
    raise ValueError(f"unknown shape {kind!r}")


def expected(shape: Shape) -> int:
    """The last task's value, computed in plain Python."""
    values: list[int] = []
    for k, parents in enumerate(shape):
        values.append(plain.combine([values[p] for p in parents], k))
    return values[-1]


# -- one measurement, in a fresh interpreter ------------------------------------------------------


def build_pipeline(kind: str, shape: Shape) -> tuple[Any, str]:
    """The pyperunner pipeline of ``shape`` (tasks ``Source(k)`` and ``Node(k)``) and the last
    task's name: tasks wired by calls, then ``Pipeline(name, roots)``."""
    import bench_tasks

    from pyperunner import Pipeline

    tasks: list[Any] = []
    for k, parents in enumerate(shape):
        if parents:
            tasks.append(bench_tasks.node(str(k), i=k)([tasks[p] for p in parents]))
        else:
            tasks.append(bench_tasks.source(str(k), i=k))
    roots = [t for t, parents in zip(tasks, shape, strict=True) if not parents]
    return Pipeline(f"{kind}{len(shape)}", roots), tasks[-1].name


def runner(workdir: Path, executor: str = "inline") -> Any:
    """A quiet runner with its store and run folders in ``workdir``."""
    from pyperunner import Runner

    return Runner(workdir / "data", workdir / "log", executor=executor, console=False)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def check(value: Any, shape: Shape) -> None:
    if value != expected(shape):
        raise RuntimeError(f"wrong result: {value!r}, not {expected(shape)}")


def measure_pyperunner(executor: str, kind: str, shape: Shape, workdir: Path) -> dict[str, float]:
    """Seconds of ``runner.run`` (after a warm-up run of one task in another store)."""
    import bench_tasks

    from pyperunner import Pipeline

    runner(workdir / "warm-up", executor).run(Pipeline("warm-up", [bench_tasks.source("0", i=0)]))
    pipeline, last = build_pipeline(kind, shape)
    seconds, result = timed(lambda: runner(workdir, executor).run(pipeline))
    if not result.ok:
        raise RuntimeError(f"not every task succeeded: {result!r}")
    check(result[last], shape)
    return {"run": seconds}


def measure_ops(kind: str, shape: Shape, workdir: Path) -> dict[str, float]:
    """Building the pipeline, its keys and plan and its summary, on the store the inline run
    filled (so the plan finds every task cached)."""
    import bench_tasks  # noqa: F401  (imports pyperunner before the clock starts)

    build, (pipeline, _) = timed(lambda: build_pipeline(kind, shape))
    run = runner(workdir)
    keys_and_plan, plan = timed(lambda: run.plan(pipeline))  # the plan computes the keys
    if plan.why:
        raise RuntimeError(f"{len(plan.why)} tasks would run, not 0")
    summary, _ = timed(lambda: pipeline.summary(echo=False))
    return {"build": build, "keys+plan": keys_and_plan, "summary": summary}


def measure_cached(kind: str, shape: Shape, workdir: Path) -> dict[str, float]:
    """A fully cached re-run in a fresh interpreter."""
    pipeline, last = build_pipeline(kind, shape)
    seconds, result = timed(lambda: runner(workdir).run(pipeline))
    if {status.value for status in result.statuses.values()} != {"CACHED"}:
        raise RuntimeError("a cached re-run ran tasks")
    check(result[last], shape)
    return {"cached": seconds}


def measure_from_file(shape: Shape, workdir: Path) -> dict[str, float]:
    """``PipelineResult.from_file`` of the inline run's folder, and one output read from it."""
    from pyperunner import PipelineResult

    (folder,) = (workdir / "log").iterdir()
    seconds, result = timed(lambda: PipelineResult.from_file(folder))
    check(result[f"Node({len(shape) - 1})"], shape)
    return {"from_file": seconds}


def measure_joblib(shape: Shape, workdir: Path) -> dict[str, float]:
    """Every task a call of a ``joblib.Memory``-cached function, one after another; run twice
    on one cache folder, the second run (a fresh interpreter) finds every call cached."""
    import joblib

    combine = joblib.Memory(workdir / "joblib", verbose=0).cache(plain.combine)

    def calls() -> int:
        values: list[int] = []
        for k, parents in enumerate(shape):
            values.append(combine([values[p] for p in parents], k))
        return values[-1]

    seconds, last = timed(calls)
    check(last, shape)
    return {"run": seconds}


def measure_dask(shape: Shape) -> dict[str, float]:
    """The tasks as ``dask.delayed`` calls, computed by the processes scheduler (no cache)."""
    import dask

    combine = dask.delayed(plain.combine, pure=True)
    nodes: list[Any] = []
    for k, parents in enumerate(shape):
        nodes.append(combine([nodes[p] for p in parents], k, dask_key_name=f"node-{k}"))
    has_child = {p for parents in shape for p in parents}
    leaves = [node for k, node in enumerate(nodes) if k not in has_child]
    seconds, values = timed(lambda: dask.compute(*leaves, scheduler="processes"))
    check(values[-1], shape)
    return {"run": seconds}


def measure(what: str, kind: str, n: int, workdir: Path) -> dict[str, float]:
    """One measurement (``what``: a tool of :data:`TOOLS`, ``ops``, ``cached``, ``from_file``
    or ``joblib-cached``) of a pipeline of ``kind`` with ``n`` tasks."""
    shape = make_shape(kind, n)
    if what.startswith("pyperunner-"):
        return measure_pyperunner(what.removeprefix("pyperunner-"), kind, shape, workdir)
    if what in ("joblib", "joblib-cached"):
        return measure_joblib(shape, workdir)
    measures: dict[str, Callable[[], dict[str, float]]] = {
        "dask": lambda: measure_dask(shape),
        "ops": lambda: measure_ops(kind, shape, workdir),
        "cached": lambda: measure_cached(kind, shape, workdir),
        "from_file": lambda: measure_from_file(shape, workdir),
    }
    return measures[what]()


# -- the harness ----------------------------------------------------------------------------------


class Failed(Exception):
    """A measurement crashed, timed out or printed no result."""


@dataclasses.dataclass(frozen=True)
class Version:
    """The pyperunner measured: its ``src`` folder put first on ``PYTHONPATH`` (None: the one
    installed), ``name`` told in the tables when several are compared."""

    name: str = ""
    src: str | None = None

    def row(self, kind: str) -> str:
        """The shape column of this version's rows."""
        return f"{kind} [{self.name}]" if self.name else kind


def subprocess_seconds(
    cmd: Sequence[str], timeout: float, version: Version = Version()
) -> tuple[float, str]:
    """Run ``cmd`` (killed with its descendants after ``timeout`` s): wall time and stdout."""
    env = {**os.environ, "COLUMNS": "120"}
    if version.src is not None:
        others = filter(None, env.get("PYTHONPATH", "").split(os.pathsep))
        env["PYTHONPATH"] = os.pathsep.join([version.src, *others])
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        env=env,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        treemem.kill_tree(proc.pid)
        proc.communicate()
        raise Failed(f"timed out after {timeout:.0f} s") from None
    if proc.returncode != 0:
        raise Failed(f"exit code {proc.returncode}: {err.strip()[-300:]}")
    return time.perf_counter() - started, out


def run_measure(
    what: str, kind: str, n: int, workdir: Path, timeout: float, version: Version
) -> dict[str, float]:
    """:func:`measure` in a fresh interpreter."""
    cmd = [sys.executable, __file__, "--measure", what, kind, str(n), str(workdir)]
    _, out = subprocess_seconds(cmd, timeout, version)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise Failed("no result printed")
    return json.loads(lines[-1].removeprefix("RESULT "))


def cli_seconds(args: Sequence[str], timeout: float, version: Version) -> float:
    """Wall time of ``pyperunner ARGS`` in a fresh interpreter."""
    cmd = [sys.executable, "-c", "from pyperunner.cli import main; main()", *args]
    return subprocess_seconds(cmd, timeout, version)[0]


class Samples:
    """Every figure measured, by (shape, size, row); a failed row keeps its error."""

    def __init__(self) -> None:
        self.values: dict[tuple[str, int, str], list[float]] = {}
        self.errors: dict[tuple[str, int, str], str] = {}

    def add(self, key: tuple[str, int, str], value: float) -> None:
        self.values.setdefault(key, []).append(value)
        print(f"  {key}: {value:.4f} s", file=sys.stderr, flush=True)

    def fail(self, key: tuple[str, int, str], message: str) -> None:
        self.errors[key] = message
        print(f"  {key}: ERROR {message}", file=sys.stderr, flush=True)

    def median(self, key: tuple[str, int, str]) -> float | None:
        values = self.values.get(key)
        return statistics.median(values) if values else None


def one_round(
    samples: Samples,
    kind: str,
    n: int,
    tools: Sequence[str],
    scratch: Path,
    timeout: float,
    version: Version,
) -> None:
    """Every tool once on a pipeline of ``kind`` and size ``n``, then the big-run operations
    on the inline run's folder."""
    inline = None
    for tool in tools:
        key = (version.row(kind), n, tool)
        if key in samples.errors:
            continue  # it failed before: do not wait for it again
        workdir = Path(tempfile.mkdtemp(prefix=f"{tool}-", dir=scratch))
        try:
            samples.add(key, run_measure(tool, kind, n, workdir, timeout, version)["run"])
            if tool == "joblib":
                again = run_measure("joblib-cached", kind, n, workdir, timeout, version)["run"]
                samples.add((version.row(kind), n, "joblib-cached"), again)
        except Failed as exc:
            samples.fail(key, str(exc))
        if tool == "pyperunner-inline" and key not in samples.errors:
            inline = workdir
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if inline is not None:
        big_run_ops(samples, kind, n, inline, timeout, version)
        shutil.rmtree(inline, ignore_errors=True)


def big_run_ops(
    samples: Samples, kind: str, n: int, workdir: Path, timeout: float, version: Version
) -> None:
    """:data:`OPS` on the run folder (and store) of an inline run, each in a fresh interpreter."""
    (folder,) = (workdir / "log").iterdir()

    def measured(what: str) -> Callable[[], dict[str, float]]:
        return lambda: run_measure(what, kind, n, workdir, timeout, version)

    def command(*args: str) -> Callable[[], dict[str, float]]:
        return lambda: {args[0]: cli_seconds(args, timeout, version)}

    steps: list[tuple[Sequence[str], Callable[[], dict[str, float]]]] = [
        (("build", "keys+plan", "summary"), measured("ops")),
        (("from_file",), measured("from_file")),
        (("show",), command("show", str(folder))),
        (("runs",), command("runs", str(workdir / "log"))),
        (("cached",), measured("cached")),  # last: it adds a run folder
    ]
    row = version.row(kind)
    for names, step in steps:
        if any((row, n, name) in samples.errors for name in names):
            continue
        try:
            figures = step()
        except Failed as exc:
            for name in names:
                samples.fail((row, n, name), str(exc))
            continue
        for name in names:
            samples.add((row, n, name), figures[name])


# -- the tables -----------------------------------------------------------------------------------


def per_task_table(samples: Samples, shapes: Sequence[str], sizes: Sequence[int]) -> str:
    """Milliseconds a task of each tool, and pyperunner's ratio to joblib.Memory and dask."""
    rows = [["shape", "tasks", "tool", "ms/task", "x joblib", "x dask", f"x at {sizes[0]}"]]
    for kind in shapes:
        for n in sizes:
            joblib_ms = ms_per_task(samples, kind, n, "joblib")
            dask_ms = ms_per_task(samples, kind, n, "dask")
            for tool in (*TOOLS, "joblib-cached"):
                ms = ms_per_task(samples, kind, n, tool)
                if ms is None and (kind, n, tool) not in samples.errors:
                    continue
                first = ms_per_task(samples, kind, sizes[0], tool)
                rows.append(
                    [
                        kind,
                        str(n),
                        tool,
                        "ERROR" if ms is None else f"{ms:.3f}",
                        ratio(ms, joblib_ms) if tool.startswith("pyperunner") else "",
                        ratio(ms, dask_ms) if tool.startswith("pyperunner") else "",
                        ratio(ms, first) if n != sizes[0] else "",
                    ]
                )
    return columns(rows)


def ops_table(samples: Samples, shapes: Sequence[str], sizes: Sequence[int]) -> str:
    """Seconds of each big-run operation, and the cached re-run beside joblib's."""
    rows = [["shape", "tasks", *OPS, "joblib cached"]]
    for kind in shapes:
        for n in sizes:
            figures = [samples.median((kind, n, op)) for op in (*OPS, "joblib-cached")]
            if all(f is None for f in figures):
                continue
            rows.append([kind, str(n), *("-" if f is None else f"{f:.3f}" for f in figures)])
    return columns(rows)


def ms_per_task(samples: Samples, kind: str, n: int, tool: str) -> float | None:
    seconds = samples.median((kind, n, tool))
    return None if seconds is None else 1000 * seconds / n


def ratio(value: float | None, reference: float | None) -> str:
    return "" if value is None or not reference else f"{value / reference:.2f}"


def columns(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="200,2000", help="task counts, comma-separated")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="of: " + " ".join(SHAPES))
    parser.add_argument("--tools", default=",".join(TOOLS), help="of: " + " ".join(TOOLS))
    parser.add_argument("--repeat", type=int, default=3, help="rounds (the median is shown)")
    parser.add_argument("--quick", action="store_true", help="one round")
    parser.add_argument("--scratch", default=None, help="folder for the temporary files")
    parser.add_argument(
        "--timeout-per-task", type=float, default=0.05, help="seconds a task, for time limits"
    )
    parser.add_argument(
        "--compare",
        nargs="+",
        metavar="NAME=SRC",
        help="measure several pyperunners interleaved, each its src folder (e.g. a checkout's)",
    )
    parser.add_argument("--measure", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        what, kind, n, workdir = args.measure
        print("RESULT " + json.dumps(measure(what, kind, int(n), Path(workdir))))
        return 0
    sizes = sorted(int(s) for s in args.sizes.split(","))
    versions = [Version(*pair.split("=", 1)) for pair in args.compare or ()] or [Version()]
    shapes = args.shapes.split(",")
    tools = args.tools.split(",")
    samples = Samples()
    scratch = Path(tempfile.mkdtemp(prefix="pyperunner-scale-", dir=args.scratch))
    # bytecode goes to the scratch folder, compiled once by a first import, so no figure pays
    # for compiling modules
    os.environ["PYTHONPYCACHEPREFIX"] = str(scratch / "pycache")
    try:
        subprocess_seconds([sys.executable, "-c", "import pyperunner, joblib, dask"], 120)
        for round_ in range(1 if args.quick else args.repeat):
            for n in sizes:
                for kind in shapes:
                    for version in versions:
                        print(f"[{round_ + 1}] {version.row(kind)} {n}", file=sys.stderr)
                        timeout = 120 + args.timeout_per_task * n * 10
                        one_round(samples, kind, n, tools, scratch, timeout, version)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    rows = [version.row(kind) for kind in shapes for version in versions]
    print(per_task_table(samples, rows, sizes))
    print()
    print("seconds of what one does with a run's folder (inline), and joblib.Memory's re-run:")
    print(ops_table(samples, rows, sizes))
    for key, message in samples.errors.items():
        print(f"ERROR {key}: {message}")
    return 1 if samples.errors else 0


if __name__ == "__main__":
    sys.exit(main())
