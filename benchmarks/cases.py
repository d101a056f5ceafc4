"""One measurement in a fresh interpreter: ``python benchmarks/cases.py CASE VARIANT [options]``.

``benchmarks/run.py`` starts this script once per measurement, in a temporary working folder,
and reads the one line ``RESULT {json}`` it prints. Every figure is timed here, after the
imports and after building the pipeline, with ``time.perf_counter``. ``VARIANT`` is
``pyperunner-<executor>`` for pyperunner and ``ref-<what>`` for the plain reference.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import plain

CHAIN = 200
FANOUT = 200
LADDER = 200
CPU_TASKS = 8
CORES = os.cpu_count() or 1

Metrics = dict[str, Any]


def _runner(workdir: str, executor: str = "process", process_limit: int | None = None) -> Any:
    from pyperunner import Runner

    return Runner(
        os.path.join(workdir, "data"),
        os.path.join(workdir, "log"),
        process_limit=process_limit,
        executor=executor,
        console=False,
        progress=False,
    )


def _check(condition: bool, what: str) -> None:
    if not condition:
        raise RuntimeError(f"wrong result: {what}")


def _check_run(result: Any) -> None:
    statuses = {name: str(getattr(s, "value", s)) for name, s in result.statuses.items()}
    _check(result.ok, f"not every task succeeded: {statuses}")


# -- 1. chain -----------------------------------------------------------------------------------


def _in_fresh_processes(
    calls: list[tuple[Callable[..., Any], tuple[Any, ...]]], at_once: int
) -> list[Any]:
    """Run each call in a new forked ``multiprocessing.Process``, up to ``at_once`` at a time,
    its result sent back through a pipe: the plain form of "one process per task"."""
    import multiprocessing
    from multiprocessing.connection import wait

    ctx = multiprocessing.get_context("fork")
    results: list[Any] = [None] * len(calls)
    running: dict[Any, tuple[int, Any]] = {}
    pending = list(enumerate(calls))[::-1]
    while pending or running:
        while pending and len(running) < at_once:
            i, (fn, fn_args) = pending.pop()
            ours, theirs = ctx.Pipe(duplex=False)
            process = ctx.Process(target=_send_call, args=(theirs, fn, fn_args))
            process.start()
            theirs.close()
            running[ours] = (i, process)
        for conn in wait(list(running)):
            i, process = running.pop(conn)
            results[i] = conn.recv()
            conn.close()
            process.join()
    return results


def _send_call(conn: Any, fn: Callable[..., Any], fn_args: tuple[Any, ...]) -> None:
    conn.send(fn(*fn_args))
    conn.close()


def _one_task_run(workdir: str, executor: str) -> float:
    """Seconds of a run of a single task in a fresh store: a run's fixed costs, warm."""
    import bench_tasks

    pipeline, _ = bench_tasks.chain(1)
    runner = _runner(workdir, executor)
    t = time.perf_counter()
    _check_run(runner.run(pipeline))
    return time.perf_counter() - t


def _cpu_seconds() -> float:
    """User and system CPU time of this process and of its children that have ended."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    ended = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + ended.ru_utime + ended.ru_stime


def _per_task(
    elapsed: float, cpu: float, first: float, workdir: str, executor: str, tasks: int
) -> Metrics:
    """Wall and CPU time per task, and the cost of a task beyond what a one-task run costs.

    Both runs are timed warm: ``first`` (the run before, in this fresh interpreter) paid the
    one-time costs (lazy imports, first calls), which are no task's."""
    fixed = _one_task_run(os.path.join(workdir, "one"), executor)
    return {
        "total": elapsed,
        "per_task": elapsed / tasks,
        "cpu_per_task": cpu / tasks,
        "first": first,
        "fixed": fixed,
        "marginal": (elapsed - fixed) / (tasks - 1),
    }


def chain(variant: str, args: argparse.Namespace) -> Metrics:
    kind, _, executor = variant.partition("-")
    if kind == "pyperunner":
        import bench_tasks

        pipeline, last = bench_tasks.chain(CHAIN)
        first = _one_task_run(os.path.join(args.workdir, "first"), executor)
        runner = _runner(args.workdir, executor)
        cpu, t = _cpu_seconds(), time.perf_counter()
        result = runner.run(pipeline)
        elapsed, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
        _check_run(result)
        _check(pipeline[last] == CHAIN - 1, f"{last} = {pipeline[last]}")
        return _per_task(elapsed, cpu, first, args.workdir, executor, CHAIN)
    else:
        cpu, t = _cpu_seconds(), time.perf_counter()
        if executor == "inline":
            x = plain.start(0)
            for _ in range(CHAIN - 1):
                x = plain.inc(x)
        elif executor == "fresh":
            [x] = _in_fresh_processes([(plain.start, (0,))], 1)
            for _ in range(CHAIN - 1):
                [x] = _in_fresh_processes([(plain.inc, (x,))], 1)
        else:
            from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

            pool = ProcessPoolExecutor if executor == "process" else ThreadPoolExecutor
            with pool(1) as ex:
                x = ex.submit(plain.start, 0).result()
                for _ in range(CHAIN - 1):
                    x = ex.submit(plain.inc, x).result()
        elapsed, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
        _check(x == CHAIN - 1, f"chain ends at {x}")
    return {"total": elapsed, "per_task": elapsed / CHAIN, "cpu_per_task": cpu / CHAIN}


# -- 2. fan-out ---------------------------------------------------------------------------------


def fanout(variant: str, args: argparse.Namespace) -> Metrics:
    kind, _, executor = variant.partition("-")
    expected = list(range(1, FANOUT))
    if kind == "pyperunner":
        import bench_tasks

        pipeline, children = bench_tasks.fanout(FANOUT)
        first = _one_task_run(os.path.join(args.workdir, "first"), executor)
        runner = _runner(args.workdir, executor)
        cpu, t = _cpu_seconds(), time.perf_counter()
        result = runner.run(pipeline)
        elapsed, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
        _check_run(result)
        _check(sorted(pipeline[c] for c in children) == expected, "fan-out outputs")
        return _per_task(elapsed, cpu, first, args.workdir, executor, FANOUT)
    else:
        cpu, t = _cpu_seconds(), time.perf_counter()
        root = plain.start(0)
        if executor == "inline":
            out = [plain.add(root, i) for i in expected]
        elif executor == "joblib":
            from joblib import Parallel, delayed

            out = Parallel(n_jobs=CORES)(delayed(plain.add)(root, i) for i in expected)
        elif executor == "fresh":
            [root] = _in_fresh_processes([(plain.start, (0,))], 1)
            out = _in_fresh_processes([(plain.add, (root, i)) for i in expected], CORES)
        else:
            from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

            pool = ProcessPoolExecutor if executor == "process" else ThreadPoolExecutor
            with pool(CORES) as ex:
                root = ex.submit(plain.start, 0).result()
                out = list(ex.map(plain.add, [root] * len(expected), expected))
        elapsed, cpu = time.perf_counter() - t, _cpu_seconds() - cpu
        _check(sorted(out) == expected, "fan-out outputs")
    return {"total": elapsed, "per_task": elapsed / FANOUT, "cpu_per_task": cpu / FANOUT}


# -- 3. fully cached re-run ---------------------------------------------------------------------


def cached(variant: str, args: argparse.Namespace) -> Metrics:
    """``pyperunner-populate`` / ``ref-populate`` fill the cache; the others time the re-run."""
    kind, _, step = variant.partition("-")
    if kind == "pyperunner":
        import bench_tasks

        pipeline, last = bench_tasks.chain(CHAIN)
        runner = _runner(args.workdir, "inline" if step == "populate" else "process")
        t = time.perf_counter()
        result = runner.run(pipeline)
        elapsed = time.perf_counter() - t
        _check_run(result)
        if step != "populate":
            statuses = {str(getattr(s, "value", s)).upper() for s in result.statuses.values()}
            _check(statuses == {"CACHED"}, f"a cached re-run has statuses {statuses}")
        _check(pipeline[last] == CHAIN - 1, f"{last} = {pipeline[last]}")
    else:
        from joblib import Memory

        memory = Memory(os.path.join(args.workdir, "joblib"), verbose=0)
        start, inc = memory.cache(plain.start), memory.cache(plain.inc)
        if step != "populate":  # nothing may be computed: the cached functions would fail
            _check(inc.check_call_in_cache(0), "joblib cache not populated")
        t = time.perf_counter()
        x = start(0)
        for _ in range(CHAIN - 1):
            x = inc(x)
        elapsed = time.perf_counter() - t
        _check(x == CHAIN - 1, f"chain ends at {x}")
    return {"total": elapsed}


# -- 4. ladder keys -----------------------------------------------------------------------------


def keys(variant: str, args: argparse.Namespace) -> Metrics:
    if variant.startswith("pyperunner"):
        import bench_tasks

        pipeline = bench_tasks.ladder(LADDER)
        t = time.perf_counter()
        found = pipeline.keys()
        elapsed = time.perf_counter() - t
        _check(len(set(found.values())) == 2 * LADDER, f"{len(found)} distinct keys")
    else:
        import joblib

        layers = [[("RungRoot", s, {"i": 0, "side": s}) for s in "ab"]] + [
            [("Rung", s, {"i": k, "side": s}) for s in "ab"] for k in range(1, LADDER)
        ]
        t = time.perf_counter()
        above: list[str] = []
        found_ref = []
        for layer in layers:
            row = [
                joblib.hash({"task": name, "tag": tag, "params": params, "parents": above})
                for name, tag, params in layer
            ]
            found_ref.extend(row)
            above = row
        elapsed = time.perf_counter() - t
        _check(len(set(found_ref)) == 2 * LADDER, "distinct keys")
    return {"total": elapsed}


# -- 5. parallel efficiency ---------------------------------------------------------------------


def parallel(variant: str, args: argparse.Namespace) -> Metrics:
    n = args.iterations
    t = time.perf_counter()
    plain.burn(n)
    single = time.perf_counter() - t
    if variant.startswith("pyperunner"):
        import bench_tasks

        pipeline = bench_tasks.cpu_bound(CPU_TASKS, n)
        runner = _runner(args.workdir, "process", process_limit=CORES)
        t = time.perf_counter()
        result = runner.run(pipeline)
        wall = time.perf_counter() - t
        _check_run(result)
    else:
        from concurrent.futures import ProcessPoolExecutor

        t = time.perf_counter()
        with ProcessPoolExecutor(CORES) as ex:
            list(ex.map(plain.burn, [n] * CPU_TASKS))
        wall = time.perf_counter() - t
    return {
        "single": single,
        "wall": wall,
        "efficiency": CPU_TASKS * single / (CORES * wall),
        "cores": CORES,
    }


def calibrate(variant: str, args: argparse.Namespace) -> Metrics:
    """The loop length of ``plain.burn`` that takes about ``--seconds`` here."""
    n, elapsed = 100_000, 0.0
    while elapsed < 0.25:
        n *= 2
        t = time.perf_counter()
        plain.burn(n)
        elapsed = time.perf_counter() - t
    for _ in range(2):  # refine on runs of about the target length
        n = int(n * args.seconds / elapsed)
        t = time.perf_counter()
        plain.burn(n)
        elapsed = time.perf_counter() - t
    return {"iterations": n, "seconds": elapsed}


# -- 6. the large hand-off ----------------------------------------------------------------------


def handoff(variant: str, args: argparse.Namespace) -> Metrics:
    """Make an array of ``--size`` random bytes in one process, sum it in another."""
    size = args.size
    if variant.startswith("pyperunner"):
        import bench_tasks

        pipeline, last = bench_tasks.handoff(size)
        runner = _runner(args.workdir, "process")
        t = time.perf_counter()
        result = runner.run(pipeline)
        elapsed = time.perf_counter() - t
        _check_run(result)
        total = int(pipeline[last])
    elif variant == "ref-numpy":
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        path = os.path.join(args.workdir, "array.npy")
        t = time.perf_counter()
        producer = ctx.Process(target=_produce, args=(path, size))
        producer.start()
        producer.join()
        _check(producer.exitcode == 0, f"producer exit code {producer.exitcode}")
        reader, writer = ctx.Pipe(duplex=False)
        consumer = ctx.Process(target=_consume, args=(path, writer))
        consumer.start()
        total = reader.recv()
        consumer.join()
        elapsed = time.perf_counter() - t
    elif variant == "ref-cf":
        from concurrent.futures import ProcessPoolExecutor

        t = time.perf_counter()
        with ProcessPoolExecutor(2) as ex:
            array = ex.submit(plain.make_array, size).result()
            total = ex.submit(plain.array_sum, array).result()
            del array
        elapsed = time.perf_counter() - t
    elif variant == "ref-make":  # how much of the hand-off is making the array
        t = time.perf_counter()
        plain.make_array(size)
        elapsed = time.perf_counter() - t
        total = None
    else:
        raise SystemExit(f"unknown variant {variant}")
    return {"total": elapsed, "sum": total, "size": size}


def _produce(path: str, size: int) -> None:
    import numpy as np

    np.save(path, plain.make_array(size))


def _consume(path: str, conn: Any) -> None:
    import numpy as np

    conn.send(plain.array_sum(np.load(path, mmap_mode="r")))
    conn.close()


def storeio(variant: str, args: argparse.Namespace) -> Metrics:
    """Write and read one array through ``Store`` or through ``numpy.save``/``numpy.load``."""
    import numpy as np

    array = plain.make_array(args.size)
    if variant.startswith("pyperunner"):
        from pyperunner.store import Store

        store, name, key = Store(os.path.join(args.workdir, "store")), "Big()", "0" * 32
        t = time.perf_counter()
        store.save(name, key, array, {})
        save = time.perf_counter() - t
        t = time.perf_counter()
        loaded = store.load(name, key)
        load = time.perf_counter() - t
        total = plain.array_sum(loaded)  # a memory-mapped result is read only now
        read = time.perf_counter() - t
    else:
        path = os.path.join(args.workdir, "array.npy")
        t = time.perf_counter()
        np.save(path, array)
        save = time.perf_counter() - t
        t = time.perf_counter()
        loaded = np.load(path)
        load = time.perf_counter() - t
        total = plain.array_sum(loaded)
        read = time.perf_counter() - t
    _check(loaded.shape == array.shape and loaded.dtype == array.dtype, "loaded array shape")
    _check(bool(np.array_equal(loaded[-4096:], array[-4096:])), "loaded array content")
    _check(total == plain.array_sum(array), "sum of the loaded array")
    return {"save": save, "load": load, "load_and_read": read}


CASES: dict[str, Callable[[str, argparse.Namespace], Metrics]] = {
    "chain": chain,
    "fanout": fanout,
    "cached": cached,
    "keys": keys,
    "parallel": parallel,
    "calibrate": calibrate,
    "handoff": handoff,
    "storeio": storeio,
}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("case", choices=sorted(CASES))
    parser.add_argument("variant")
    parser.add_argument("--workdir", required=True, help="a temporary folder to work in")
    parser.add_argument("--size", type=int, default=2**30, help="bytes of the hand-off array")
    parser.add_argument("--iterations", type=int, default=0, help="loop length of a CPU task")
    parser.add_argument("--seconds", type=float, default=1.0, help="calibration target")
    args = parser.parse_args(argv)
    os.makedirs(args.workdir, exist_ok=True)
    metrics = CASES[args.case](args.variant, args)
    sys.stdout.flush()
    print("RESULT " + json.dumps(metrics), flush=True)


if __name__ == "__main__":
    main()
