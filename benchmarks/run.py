"""The pyperunner benchmark suite: ``python benchmarks/run.py [--quick] [--only NAME ...]``.

Every measurement runs in a fresh interpreter (``benchmarks/cases.py``, or ``python -c`` for the
import times) in a temporary folder, ``--repeat`` times; the table shows the median with the
minimum and maximum, the plain reference (``concurrent.futures``, ``joblib``, ``numpy``)
measured in the same run, the ratio of the two and the target. See ``benchmarks/README.md``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.dont_write_bytecode = True  # never leave __pycache__ in the repo
sys.path.insert(0, str(Path(__file__).resolve().parent))

import treemem  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CASES = HERE / "cases.py"
GIB = 2**30
MIB = 2**20
CORES = os.cpu_count() or 1

BENCHMARKS = ["chain", "fanout", "cached", "keys", "parallel", "handoff", "storeio", "import"]
IMPORT_SNIPPET = (
    "import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
)


class CaseError(Exception):
    """A measurement subprocess failed, timed out or printed no result."""


@dataclass
class Target:
    """``figure < value``, ``figure <= value``, ``figure >= value`` or ``ratio <= value``."""

    op: str
    value: float
    unit: str = ""

    def check(self, figure: float, ratio: float | None) -> bool | None:
        if self.op == "ratio<=":
            return None if ratio is None else ratio <= self.value
        return {
            "<": figure < self.value,
            "<=": figure <= self.value,
            ">=": figure >= self.value,
        }[self.op]

    def __str__(self) -> str:
        if self.op == "ratio<=":
            return f"ratio <= {self.value:g}x"
        return f"{self.op} {self.value:g}{(' ' + self.unit) if self.unit else ''}"


@dataclass
class Row:
    """One line of the table: a figure of pyperunner beside a figure of a reference."""

    name: str
    unit: str
    figure: tuple[str, str]  # (sample key, metric)
    reference: tuple[str, str] | None = None
    ref_label: str = ""
    scale: float = 1.0
    target: Target | None = None
    informative: bool = False  # target shown but not judged (e.g. --quick's smaller array)


@dataclass
class Harness:
    """Runs measurement subprocesses and keeps their results by sample key."""

    tmp: Path
    repeat: int
    timeout_scale: float = 1.0
    env: dict[str, str] = field(default_factory=dict)
    samples: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)

    def workdir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="run-", dir=self.tmp))

    def case(
        self,
        key: str | None,
        case: str,
        variant: str,
        *extra: str,
        timeout: float = 180,
        monitor: bool = False,
        workdir: Path | None = None,
    ) -> dict[str, Any] | None:
        """Run ``cases.py case variant`` and keep its metrics under ``key`` (None: not kept)."""
        if key is not None and key in self.errors:
            return None  # it failed before: do not wait for it again
        own = workdir is None
        folder = self.workdir() if workdir is None else workdir
        cmd = [sys.executable, str(CASES), case, variant, "--workdir", str(folder), *extra]
        try:
            return self._keep(key, self.command(cmd, folder, timeout, monitor), monitor)
        except CaseError as exc:
            self._fail(key or f"{case}/{variant}", str(exc))
            return None
        finally:
            if own:
                shutil.rmtree(folder, ignore_errors=True)

    def snippet(self, key: str, code: str, timeout: float = 60) -> None:
        """Run ``python -c code`` (which prints one number) and keep it as metric ``total``."""
        if key in self.errors:
            return
        folder = self.workdir()
        try:
            result = self.command([sys.executable, "-c", code], folder, timeout, False, raw=True)
            self._keep(key, result, False)
        except CaseError as exc:
            self._fail(key, str(exc))
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def command(
        self, cmd: list[str], cwd: Path, timeout: float, monitor: bool, raw: bool = False
    ) -> dict[str, Any]:
        timeout *= self.timeout_scale
        env = self.env or None
        started = time.perf_counter()
        proc = subprocess.Popen(
            cmd,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        watch = treemem.TreeMonitor(proc.pid).start() if monitor else None
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            treemem.kill_tree(proc.pid)
            proc.communicate()
            raise CaseError(f"timed out after {timeout:.0f} s") from None
        finally:
            if watch is not None:
                watch.stop()
        if proc.returncode != 0:
            tail = " | ".join(line for line in err.strip().splitlines()[-3:])
            raise CaseError(f"exit code {proc.returncode}: {tail or '(no output)'}")
        try:
            if raw:
                result: dict[str, Any] = {"total": float(out.strip().splitlines()[-1])}
            else:
                line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
                result = json.loads(line[len("RESULT ") :])
        except (IndexError, ValueError):
            raise CaseError(f"no result printed; stderr: {err.strip()[-300:]}") from None
        result["_seconds"] = time.perf_counter() - started
        if watch is not None:
            result["peak_rss"], result["peak_pss"] = watch.peak_rss, watch.peak_pss
            result["mem_samples"] = watch.samples
            if result.get("size"):
                result["rss_x"] = watch.peak_rss / result["size"]
                result["pss_x"] = watch.peak_pss / result["size"]
        return result

    def _keep(self, key: str | None, result: dict[str, Any], monitor: bool) -> dict[str, Any]:
        if key is not None:
            self.samples.setdefault(key, []).append(result)
            shown = {
                k: round(v, 4)
                for k, v in result.items()
                if isinstance(v, float) and not k.startswith("_")
            }
            progress(f"  {key}: {shown} ({result['_seconds']:.1f} s)")
        return result

    def _fail(self, key: str, message: str) -> None:
        self.errors.setdefault(key, message)
        progress(f"  {key}: ERROR {message}")


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def repeats(h: Harness, name: str) -> Iterator[int]:
    for i in range(h.repeat):
        progress(f"[{name}] run {i + 1}/{h.repeat}")
        yield i


# -- the benchmarks -----------------------------------------------------------------------------

EXECUTORS = ("process", "pool", "thread", "inline")
REFERENCE_OF = {"process": "fresh", "pool": "process", "thread": "thread", "inline": "inline"}
CHAIN_REF = {
    "fresh": "a new mp.Process per call",
    "process": "ProcessPoolExecutor(1)",
    "thread": "ThreadPoolExecutor(1)",
    "inline": "direct calls",
}
FANOUT_REF = {
    "fresh": f"a new mp.Process per call, {CORES} at once",
    "process": f"ProcessPoolExecutor({CORES}).map",
    "thread": f"ThreadPoolExecutor({CORES}).map",
    "inline": "direct calls",
}
PER_TASK_TARGET = {
    "process": Target("<", 3, "ms"),
    "pool": Target("<", 3, "ms"),
    "inline": Target("<", 0.3, "ms"),
}


def _per_task_rows(shape: str, label: str, refs: dict[str, str]) -> list[Row]:
    """Per executor: the overhead of one more task (judged), wall/task and a run's fixed cost."""
    rows = []
    for ex in EXECUTORS:
        ref = (f"{shape}/ref-{REFERENCE_OF[ex]}", "per_task")
        ours = f"{shape}/pyperunner-{ex}"
        rows += [
            Row(
                f"{label}, {ex}: overhead/task",
                "ms",
                (ours, "marginal"),
                ref,
                refs[REFERENCE_OF[ex]],
                1000,
                PER_TASK_TARGET.get(ex),
            ),
            Row("  wall/task", "ms", (ours, "per_task"), ref, refs[REFERENCE_OF[ex]], 1000),
            Row(
                "  CPU/task, all processes",
                "ms",
                (ours, "cpu_per_task"),
                (ref[0], "cpu_per_task"),
                refs[REFERENCE_OF[ex]],
                1000,
            ),
            Row("  a run of 1 task", "ms", (ours, "fixed"), scale=1000),
            Row("  the first run of 1 task", "ms", (ours, "first"), scale=1000),
        ]
    return rows


def bench_chain(h: Harness, quick: bool) -> list[Row]:
    for _ in repeats(h, "chain"):
        for ex in EXECUTORS:
            h.case(f"chain/pyperunner-{ex}", "chain", f"pyperunner-{ex}")
        for ex in set(REFERENCE_OF.values()):
            h.case(f"chain/ref-{ex}", "chain", f"ref-{ex}")
    return _per_task_rows("chain", "chain 200", CHAIN_REF)


def bench_fanout(h: Harness, quick: bool) -> list[Row]:
    for _ in repeats(h, "fanout"):
        for ex in EXECUTORS:
            h.case(f"fanout/pyperunner-{ex}", "fanout", f"pyperunner-{ex}")
        for ex in set(REFERENCE_OF.values()):
            h.case(f"fanout/ref-{ex}", "fanout", f"ref-{ex}")
        h.case("fanout/ref-joblib", "fanout", "ref-joblib")
    rows = _per_task_rows("fanout", "fan-out 200", FANOUT_REF)
    rows.append(
        Row(
            "fan-out 200, pool: overhead/task",
            "ms",
            ("fanout/pyperunner-pool", "marginal"),
            ("fanout/ref-joblib", "per_task"),
            f"joblib.Parallel(n_jobs={CORES})",
            1000,
            PER_TASK_TARGET["pool"],
        )
    )
    return rows


def bench_cached(h: Harness, quick: bool) -> list[Row]:
    for _ in repeats(h, "cached"):
        for kind, rerun in (("pyperunner", "pyperunner-rerun"), ("ref", "ref-rerun")):
            folder = h.workdir()
            try:
                key = f"cached/{kind}"
                if key in h.errors:
                    continue
                if h.case(None, "cached", f"{kind}-populate", workdir=folder) is not None:
                    h.case(key, "cached", rerun, workdir=folder)
                else:
                    h.errors.setdefault(key, "populating the cache failed")
            finally:
                shutil.rmtree(folder, ignore_errors=True)
    return [
        Row(
            "cached re-run of chain 200",
            "s",
            ("cached/pyperunner", "total"),
            ("cached/ref", "total"),
            "joblib.Memory, 200 cached calls",
            target=Target("<", 0.15, "s"),
        )
    ]


def bench_keys(h: Harness, quick: bool) -> list[Row]:
    for _ in repeats(h, "keys"):
        h.case("keys/pyperunner", "keys", "pyperunner")
        h.case("keys/ref", "keys", "ref")
    return [
        Row(
            "keys of ladder depth 200 (400 tasks)",
            "s",
            ("keys/pyperunner", "total"),
            ("keys/ref", "total"),
            "joblib.hash of params + parent hashes",
            target=Target("<", 0.5, "s"),
        )
    ]


def bench_parallel(h: Harness, quick: bool) -> list[Row]:
    progress("[parallel] calibrating a 1 s CPU task")
    calibration = h.case("parallel/calibrate", "calibrate", "-", "--seconds", "1")
    if calibration is None:
        return []
    iterations = str(calibration["iterations"])
    for _ in repeats(h, "parallel"):
        for variant in ("pyperunner-process", "ref"):
            h.case(f"parallel/{variant}", "parallel", variant, "--iterations", iterations)
    ref = f"ProcessPoolExecutor({CORES})"
    return [
        Row(
            f"parallel efficiency, 8 x 1 s on {CORES} cores",
            "%",
            ("parallel/pyperunner-process", "efficiency"),
            ("parallel/ref", "efficiency"),
            ref,
            100,
            Target(">=", 95, "%"),
        ),
        Row(
            "  wall time of the 8 tasks",
            "s",
            ("parallel/pyperunner-process", "wall"),
            ("parallel/ref", "wall"),
            ref,
        ),
        Row(
            "  one task alone (in the same process)",
            "s",
            ("parallel/pyperunner-process", "single"),
            ("parallel/ref", "single"),
            ref,
        ),
    ]


def enough_room(h: Harness, size: int) -> str | None:
    """Why the machine cannot hold the hand-off of ``size`` bytes, or None if it can."""
    need_ram, need_disk = 3.5 * size, 2.5 * size
    available = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    if available and available < need_ram:
        return f"needs {need_ram / GIB:.1f} GiB of free RAM, {available / GIB:.1f} available"
    free_disk = shutil.disk_usage(h.tmp).free
    if free_disk < need_disk:
        return f"needs {need_disk / GIB:.1f} GiB free in {h.tmp}, {free_disk / GIB:.1f} free"
    return None


def size_label(size: int) -> str:
    return f"{size / GIB:g} GiB" if size >= GIB else f"{size / MIB:g} MiB"


def bench_handoff(h: Harness, quick: bool) -> list[Row]:
    size = 128 * MIB if quick else GIB
    why = enough_room(h, size)
    if why:
        h.errors["handoff"] = f"skipped: {why}"
        return []
    arg = ("--size", str(size))
    for _ in repeats(h, "handoff"):
        for variant in ("pyperunner-process", "ref-numpy", "ref-cf"):
            h.case(f"handoff/{variant}", "handoff", variant, *arg, timeout=600, monitor=True)
        h.case("handoff/ref-make", "handoff", "ref-make", *arg, timeout=300)
    sums = {s["sum"] for k, v in h.samples.items() if k.startswith("handoff/") for s in v}
    sums.discard(None)
    if len(sums) > 1:
        h.errors["handoff/sum"] = f"the variants disagree on the array's sum: {sorted(sums)}"
    label = size_label(size)
    informative = size < GIB  # the targets are for 1 GiB; a small array is dominated by Python
    numpy_ref, cf_ref = "numpy.save + load(mmap), 2 procs", "ProcessPoolExecutor(2) returns it"
    rows = [
        Row(
            f"{label} hand-off: end to end",
            "s",
            ("handoff/pyperunner-process", "total"),
            ("handoff/ref-numpy", "total"),
            numpy_ref,
            target=Target("<", 5, "s"),
            informative=informative,
        ),
        Row(
            f"{label} hand-off: end to end",
            "s",
            ("handoff/pyperunner-process", "total"),
            ("handoff/ref-cf", "total"),
            cf_ref,
        ),
        Row(
            "  of which making the array",
            "s",
            ("handoff/ref-make", "total"),
        ),
        Row(
            f"{label} hand-off: peak RSS of tree",
            "x size",
            ("handoff/pyperunner-process", "rss_x"),
            ("handoff/ref-numpy", "rss_x"),
            numpy_ref,
            target=Target("<=", 1.3, "x"),
            informative=informative,
        ),
        Row(
            f"{label} hand-off: peak RSS of tree",
            "x size",
            ("handoff/pyperunner-process", "rss_x"),
            ("handoff/ref-cf", "rss_x"),
            cf_ref,
        ),
        Row(
            f"{label} hand-off: peak PSS of tree",
            "x size",
            ("handoff/pyperunner-process", "pss_x"),
            ("handoff/ref-numpy", "pss_x"),
            numpy_ref,
        ),
    ]
    return rows


def bench_storeio(h: Harness, quick: bool) -> list[Row]:
    size = 128 * MIB if quick else GIB
    why = enough_room(h, size)
    if why:
        h.errors["storeio"] = f"skipped: {why}"
        return []
    for _ in repeats(h, "storeio"):
        for variant in ("pyperunner", "ref"):
            h.case(f"storeio/{variant}", "storeio", variant, "--size", str(size), timeout=600)
    label = size_label(size)
    return [
        Row(
            f"Store.save of {label}",
            "s",
            ("storeio/pyperunner", "save"),
            ("storeio/ref", "save"),
            "numpy.save",
            target=Target("ratio<=", 2),
        ),
        Row(
            f"Store.load of {label}",
            "s",
            ("storeio/pyperunner", "load"),
            ("storeio/ref", "load"),
            "numpy.load",
            target=Target("ratio<=", 2),
        ),
        Row(
            f"Store.load of {label} + sum of all bytes",
            "s",
            ("storeio/pyperunner", "load_and_read"),
            ("storeio/ref", "load_and_read"),
            "numpy.load + sum",
            target=Target("ratio<=", 2),
        ),
    ]


def bench_import(h: Harness, quick: bool) -> list[Row]:
    modules = ("pyperunner", "joblib", "concurrent.futures")
    for _ in repeats(h, "import"):
        for module in modules:
            h.snippet(f"import/{module}", IMPORT_SNIPPET.format(module=module))
    return [
        Row(
            "import pyperunner",
            "s",
            ("import/pyperunner", "total"),
            (f"import/{ref}", "total"),
            f"import {ref}",
            target=Target("<", 0.2, "s"),
        )
        for ref in modules[1:]
    ]


RUNNERS: dict[str, Callable[[Harness, bool], list[Row]]] = {
    "chain": bench_chain,
    "fanout": bench_fanout,
    "cached": bench_cached,
    "keys": bench_keys,
    "parallel": bench_parallel,
    "handoff": bench_handoff,
    "storeio": bench_storeio,
    "import": bench_import,
}

# -- warm-up, table, machine ---------------------------------------------------------------------


def warm_up(h: Harness, selected: Sequence[str]) -> None:
    """Fill the run's bytecode cache (``PYTHONPYCACHEPREFIX``) so no figure pays for compiling."""
    progress("[warm-up] compiling what the benchmarks import (not measured)")
    h.snippet("warm-up/import", "import pyperunner, joblib, concurrent.futures; print(0)")
    h.case(None, "chain", "pyperunner-inline")
    h.case(None, "chain", "pyperunner-process")
    h.case(None, "chain", "ref-process")
    if "fanout" in selected:
        h.case(None, "fanout", "ref-joblib")
    if "cached" in selected:
        h.case(None, "cached", "ref-populate")
    if {"handoff", "storeio"} & set(selected) and has_numpy():
        h.case(None, "storeio", "pyperunner", "--size", str(MIB))
    h.samples.pop("warm-up/import", None)


def has_numpy() -> bool:
    return importlib.util.find_spec("numpy") is not None


def summarize(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def evaluate(h: Harness, row: Row) -> dict[str, Any]:
    def values(source: tuple[str, str] | None) -> list[float]:
        if source is None:
            return []
        key, metric = source
        return [s[metric] * row.scale for s in h.samples.get(key, []) if s.get(metric) is not None]

    figure, reference = values(row.figure), values(row.reference)
    out: dict[str, Any] = {
        "name": row.name,
        "unit": row.unit,
        "figure": summarize(figure) if figure else None,
        "samples": figure,
        "reference_label": row.ref_label,
        "reference": summarize(reference) if reference else None,
        "reference_samples": reference,
        "ratio": None,
        "target": str(row.target) if row.target else None,
        "pass": None,
        "informative": row.informative,
        "error": None,
    }
    if not figure:
        out["error"] = h.errors.get(row.figure[0], "no measurement")
        return out
    if reference and out["reference"]["median"] > 0:
        out["ratio"] = out["figure"]["median"] / out["reference"]["median"]
    if row.target and not row.informative:
        out["pass"] = row.target.check(out["figure"]["median"], out["ratio"])
    return out


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 1:
        return f"{value:.2f}"
    if magnitude >= 0.01:
        return f"{value:.3f}"
    return f"{value:.2g}"


def table(results: list[dict[str, Any]]) -> str:
    header = ["benchmark", "pyperunner [min-max]", "unit", "reference", "ref.", "ratio"]
    header += ["target", "result"]
    lines = [header]
    for r in results:
        if r["figure"] is None:
            figure, mark = "ERROR", "ERROR"
        else:
            f = r["figure"]
            figure = f"{fmt(f['median'])} [{fmt(f['min'])}-{fmt(f['max'])}]"
            mark = {True: "pass", False: "FAIL", None: "-"}[r["pass"]]
            if r["informative"]:
                mark = "(1 GiB only)"
        ref = fmt(r["reference"]["median"]) if r["reference"] else "-"
        ratio = f"{fmt(r['ratio'])}x" if r["ratio"] is not None else "-"
        label, target = r["reference_label"] or "-", r["target"] or "-"
        lines.append([r["name"], figure, r["unit"], label, ref, ratio, target, mark])
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {1, 4, 5}
    text = []
    for n, line in enumerate(lines):
        cells = [
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(line, widths, strict=True))
        ]
        text.append("  ".join(cells).rstrip())
        if n == 0:
            text.append("  ".join("-" * w for w in widths))
    return "\n".join(text)


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                total = int(line.split()[1]) * 1024

    def git(*args: str) -> str:
        try:
            done = subprocess.run(
                ["git", "-C", str(REPO), *args], capture_output=True, text=True, timeout=10
            )
            return done.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    def version(name: str) -> str | None:
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            return None

    return {
        "date": dt.datetime.now().isoformat(timespec="seconds"),
        "commit": git("rev-parse", "--short", "HEAD"),
        "uncommitted_changes_in_src": bool(git("status", "--porcelain", "--", "src")),
        "cpus": CORES,
        "cpu": cpu,
        "memory_gib": round(total / GIB, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "numpy": version("numpy"),
        "joblib": version("joblib"),
        "pyperunner": version("pyperunner"),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }


def _entry_speed(folder: Path, entries: int = 200) -> str:
    """How fast ``folder``'s file system makes a store entry: two folders, three small files."""
    base = Path(tempfile.mkdtemp(prefix="fs-speed-", dir=folder))
    try:
        started = time.perf_counter()
        for i in range(entries):
            entry = base / f"Step({i})" / "0123456789abcdef0123456789abcdef"
            entry.mkdir(parents=True)
            for name in (".lock", ".a.tmp", ".b.tmp"):
                (entry / name).write_bytes(b"x" * 100)
            os.replace(entry / ".a.tmp", entry / "result")
            os.replace(entry / ".b.tmp", entry / "params")
        per_entry = (time.perf_counter() - started) / entries
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return f"{per_entry * 1000:.2f} ms to make one store entry of plain files"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Benchmark pyperunner against plain concurrent.futures / joblib / numpy.",
        epilog=f"Benchmarks: {', '.join(BENCHMARKS)}.",
    )
    parser.add_argument("--quick", action="store_true", help="2 runs each, 128 MiB hand-off")
    parser.add_argument(
        "--only", nargs="+", action="extend", choices=BENCHMARKS, metavar="NAME", default=[]
    )
    parser.add_argument("--repeat", type=int, default=None, help="runs of each (default 5)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write results as JSON")
    parser.add_argument(
        "--timeout-scale", type=float, default=1.0, help="multiply every subprocess time limit"
    )
    parser.add_argument(
        "--scratch",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the temporary folder goes (default: the system's, e.g. /tmp); its file "
        "system's speed at creating folders and files is part of every per-task figure",
    )
    args = parser.parse_args(argv)
    repeat = args.repeat or (2 if args.quick else 5)
    if repeat < 1:
        parser.error("--repeat must be at least 1")
    selected = [b for b in BENCHMARKS if not args.only or b in args.only]
    info = machine()
    tmp = Path(tempfile.mkdtemp(prefix="pyperunner-bench-", dir=args.scratch))
    # Subprocesses keep their bytecode in the temporary folder (never in the repo), so that
    # after the warm-up no figure includes compiling modules, as for an installed package.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
    h = Harness(tmp, repeat, args.timeout_scale, env)
    results: list[dict[str, Any]] = []
    started = time.perf_counter()
    try:
        warm_up(h, selected)
        for name in selected:
            if name in ("handoff", "storeio") and not has_numpy():
                h.errors[name] = "skipped: numpy is not installed"
                progress(f"[{name}] skipped: numpy is not installed")
                continue
            results.extend(evaluate(h, row) for row in RUNNERS[name](h, args.quick))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    dirty = " + uncommitted changes in src/" if info["uncommitted_changes_in_src"] else ""
    print(
        f"pyperunner {info['pyperunner']} at {info['commit']}{dirty}, {info['date']}; "
        f"{info['cpus']} CPUs ({info['cpu']}), {info['memory_gib']} GiB, Python {info['python']}"
    )
    print(f"scratch folder in {tmp.parent} ({_entry_speed(tmp.parent)})")
    load = ", ".join(f"{x:g}" for x in info["load_average"])
    print(
        f"median [min-max] of {repeat} runs, each in a fresh interpreter; took {elapsed:.0f} s; "
        f"load average before: {load}\n"
    )
    print(table(results))
    problems = {k: v for k, v in h.errors.items() if not k.startswith("warm-up")}
    if problems:
        print("\nErrors and skips:")
        for key, message in problems.items():
            print(f"  {key}: {message}")
    if args.json:
        doc = {
            "machine": info,
            "repeat": repeat,
            "quick": args.quick,
            "seconds": round(elapsed, 1),
            "rows": results,
            "errors": problems,
            "samples": h.samples,
        }
        args.json.write_text(json.dumps(doc, indent=2))
    failed = any(k for k, v in problems.items() if not v.startswith("skipped"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
