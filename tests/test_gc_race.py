"""Tests that ``pyperunner gc --delete`` never deletes what a running pipeline will read, with
every executor (``pyperunner.holds``, the hand-over of holds in ``pyperunner.executors``, the
scheduler's recomputing of results that vanish anyway, and the entry locks of
``pyperunner.storage``).

Each window is forced where it opens: gc (``Store.delete``, what the command calls) runs at the
instant an outcome reaches the runner, right after planning found a cached result, or under a
run that waits for an entry's lock; a task deletes its parent's result by hand, past every hold.
A stress test then runs the real command in a loop beside runs of every executor.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import local_cluster, record_call

from pyperunner import Pipeline, Runner, Sequential, Status, Task, storage, task
from pyperunner.executors import Executor, InlineExecutor, ProcessExecutor, ThreadExecutor
from pyperunner.executors.base import Outcome
from pyperunner.scheduler import VANISHED, VANISHED_LIMIT
from pyperunner.store import MissingResult, Store

LOCAL = ["inline", "thread", "process", "pool"]
NAME, KEY = "Task()", "0123456789abcdef0123456789abcdef"


# --------------------------------------------------------------------------- tasks


@task("Root", receives_input=False)
def root():
    record_call("Root")
    return 1


@task("Link")
def link(data):
    record_call("Link")
    return data[0] + 1


@task("Forget")
def forget(data, entries):
    """Deletes stored results by hand (``rm -r``), as no hold can prevent."""
    for entry in entries:
        shutil.rmtree(entry)
    return data[0]


@task("Sum")
def total(data):
    return sum(data)


@task("Expect")
def expect(data, value):
    """Fails unless its input is ``value``: each task before it read its parent's result."""
    if data[0] != value:
        raise ValueError(f"read {data[0]}, expected {value}")
    return value


def chain(links: int, *after: Task) -> Pipeline:
    """Root() -> Link(c0) -> ... -> Link(last) -> ``after``, ``links`` links: each adds 1 to
    its parent's value, so the last one is ``links + 1``."""
    middle = [link(f"c{i}") for i in range(links - 1)]
    return Sequential("chain", [root(), *middle, link("last"), *after])


def entry(data: Path, pipeline: Pipeline, name: str) -> str:
    return str(Store(data).entry(name, pipeline.keys()[name]))


# --------------------------------------------------------------------------- executors


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    with local_cluster() as cluster, distributed.Client(cluster, set_as_default=False) as client:
        yield client


def make_executor(kind: str, request: pytest.FixtureRequest) -> Executor:
    """A fresh executor of ``kind``; "dask" runs on the module's local cluster."""
    if kind == "dask":
        from pyperunner.executors.dask import DaskExecutor

        return DaskExecutor(request.getfixturevalue("dask_client"))
    makers: dict[str, Callable[[], Executor]] = {
        "inline": InlineExecutor,
        "thread": ThreadExecutor,
        "process": ProcessExecutor,
        "pool": lambda: ProcessExecutor(max_tasks_per_child=None),
    }
    return makers[kind]()


def on_arrival(
    executor: Executor, monkeypatch: pytest.MonkeyPatch, act: Callable[[Outcome], Outcome]
) -> None:
    """Have ``act`` see (and replace) every outcome the moment ``executor`` has it, before the
    run does: for a stored result, the instant after its worker let go of the entry's lock."""
    wait = executor.wait

    def waiting(timeout: float | None = None) -> list[Outcome]:
        return [act(outcome) for outcome in wait(timeout)]

    monkeypatch.setattr(executor, "wait", waiting)


# --------------------------------------------------------------------------- outputs of the run


@pytest.mark.parametrize("kind", [*LOCAL, "dask"])
def test_an_output_is_held_from_the_instant_it_is_stored(tmp_path, kind, request, monkeypatch):
    """gc at the instant each outcome arrives cannot delete the output: the worker took its
    hold before it let go of the entry's lock and handed it over with the outcome. No hold
    outlives the run (the worker's, the one passed to the runner, a pool worker's)."""
    data, pipeline = tmp_path / "data", chain(2)
    keys, tried = pipeline.keys(), {}
    executor = make_executor(kind, request)

    def gc(outcome: Outcome) -> Outcome:
        if outcome.ok:
            tried[outcome.name] = Store(data).delete(outcome.name, keys[outcome.name])
        return outcome

    on_arrival(executor, monkeypatch, gc)
    result = Runner(data, tmp_path / "log", executor=executor, console=False).run(pipeline)
    assert result.ok, {name: run.error for name, run in result.runs.items() if run.error}
    assert result["Link(last)"] == 3
    read_in_the_run = {"Root()": False, "Link(c0)": False}  # refused: the next task reads it
    assert {name: tried[name] for name in read_in_the_run} == read_in_the_run
    if kind != "dask":  # a Dask worker lets go when its scheduler says so, after the run
        assert all(Store(data).delete(name, keys[name]) for name in read_in_the_run)


def test_an_output_gone_before_the_run_held_it_is_computed_again(tmp_path, calls, monkeypatch):
    """Where no hold comes with the outcome (a worker that could not hand one over) and gc
    deletes the result before the run holds it, the task runs again, then its child."""
    data, pipeline = tmp_path / "data", chain(1)
    executor, lost = InlineExecutor(), []

    def lose_root(outcome: Outcome) -> Outcome:
        if outcome.name == "Root()" and not lost:
            outcome.release()
            lost.append(Store(data).delete("Root()", pipeline.keys()["Root()"]))
            return dataclasses.replace(outcome, hold=None)
        return outcome

    on_arrival(executor, monkeypatch, lose_root)
    result = Runner(data, tmp_path / "log", executor=executor, console=False).run(pipeline)
    assert lost == [True]
    assert result.ok and result["Link(last)"] == 2
    assert calls.counts() == {"Root": 2, "Link": 1}
    assert result.runs["Root()"].reason == VANISHED


# --------------------------------------------------------------------------- cached inputs


def test_a_cached_input_deleted_right_after_planning_checked_it_is_computed_again(
    tmp_path, calls, monkeypatch
):
    """gc deleting a cached input just after planning found it: the run holds what it will
    read before trusting it, so the input counts as not cached and is computed in the run."""
    data, log = tmp_path / "data", tmp_path / "log"
    pipeline = Sequential("p", [root(), link("mid"), link("last", reload=True)])
    Runner(data, log, executor="inline", console=False).run(pipeline)
    calls.reset()
    check, deleted = Store.check, []

    def check_then_gc(store: Store, name: str, key: str) -> Any:
        found = check(store, name, key)
        if name == "Link(mid)" and not deleted:  # the first check: planning's
            deleted.append(Store(data).delete(name, key))
        return found

    monkeypatch.setattr(Store, "check", check_then_gc)
    result = Runner(data, log, executor="inline", console=False).run(pipeline)
    assert deleted == [True]
    assert result.ok and result["Link(last)"] == 3
    assert result.runs["Link(mid)"].status is Status.SUCCESS
    assert calls.counts() == {"Link": 2}
    assert "The stored result of Link(mid) vanished while the run was planned" in (
        (result.run_dir / "pipeline.log").read_text()
    )


# --------------------------------------------------------------------------- vanished anyway


@pytest.mark.parametrize("cached", [False, True], ids=["output-of-the-run", "cached-input"])
@pytest.mark.parametrize("kind", LOCAL)
def test_an_input_deleted_by_hand_is_computed_again_before_its_child_runs(
    tmp_path, calls, kind, cached
):
    """Root() feeds Forget() and Sum(); Forget() deletes Root()'s result by hand, past the
    run's hold. Sum() does not fail for want of it: Root() runs again first."""
    data, log = tmp_path / "data", tmp_path / "log"
    where = entry(data, Pipeline("p", [root()]), "Root()")
    if cached:
        Runner(data, log, executor="inline", console=False).run(Pipeline("p", [root()]))
        calls.reset()
    source = root()
    pipeline = Pipeline("p", [total()([forget(entries=[where])(source), source])])
    result = Runner(data, log, executor=kind, console=False).run(pipeline)
    assert result.ok, {name: run.error for name, run in result.runs.items() if run.error}
    assert result["Sum()"] == 2
    assert calls.counts()["Root"] == (1 if cached else 2)
    assert result.runs["Root()"].status is Status.SUCCESS
    assert result.runs["Root()"].reason == VANISHED
    assert "no stored result" not in (result.run_dir / "pipeline.log").read_text()


def test_inputs_deleted_by_hand_are_computed_again_as_far_up_as_needed(tmp_path, calls):
    """Cached Root() -> Link(mid), both deleted by hand: Link(mid) runs again for its child,
    and finds that Root() must run again first."""
    data, log = tmp_path / "data", tmp_path / "log"
    mid = link("mid")
    upstream = Sequential("p", [root(), mid])
    Runner(data, log, executor="inline", console=False).run(upstream)
    calls.reset()
    gone = [entry(data, upstream, "Link(mid)"), entry(data, upstream, "Root()")]
    pipeline = Pipeline("p", [total()([forget(entries=gone)(mid), mid])])
    result = Runner(data, log, executor="inline", console=False).run(pipeline)
    assert result.ok and result["Sum()"] == 4
    assert calls.counts() == {"Root": 1, "Link": 1}
    assert {result.runs[n].reason for n in ("Root()", "Link(mid)")} == {VANISHED}


def test_a_result_that_keeps_vanishing_fails_its_reader_after_a_bounded_number_of_runs(
    tmp_path, calls, monkeypatch
):
    """Root()'s result is deleted by hand whenever Link(last) is about to load it: Root() runs
    again at most VANISHED_LIMIT times, then Link(last) fails saying why, and the run ends."""
    load = Store.load

    def deleted_first(store: Store, name: str, key: str) -> Any:
        if name == "Root()":
            shutil.rmtree(store.entry(name, key))
        return load(store, name, key)

    monkeypatch.setattr(Store, "load", deleted_first)
    result = Runner(tmp_path / "data", tmp_path / "log", executor="inline", console=False).run(
        chain(1)
    )
    assert calls.counts() == {"Root": 1 + VANISHED_LIMIT}
    failed = result.runs["Link(last)"]
    assert failed.status is Status.FAILURE
    assert f"vanished during the run {VANISHED_LIMIT + 1} times" in (failed.error or "")


def test_a_result_deleted_between_its_size_check_and_its_reading_is_missing(tmp_path, monkeypatch):
    """Deleted by hand just after ``load`` found it: missing (so computed again), not a
    result that "cannot be read"."""
    store = Store(tmp_path)
    store.save(NAME, KEY, "value", {})
    size = storage.LocalFiles.size

    def size_then_delete(path: Path) -> int:
        found = size(path)
        path.unlink()
        return found

    monkeypatch.setattr(storage.LocalFiles, "size", staticmethod(size_then_delete))
    with pytest.raises(MissingResult, match="no stored result for task Task"):
        store.load(NAME, KEY)


# --------------------------------------------------------------------------- entry locks


def test_locking_an_entry_whose_folder_gc_just_removed_makes_it_again(tmp_path, monkeypatch):
    """gc removes the entry folder between its making and the opening of its lock file."""
    store, made = Store(tmp_path), []
    make_folder = storage._make_folder

    def made_then_removed(folder: Path) -> None:
        make_folder(folder)
        if not made:
            made.append(folder)
            folder.rmdir()  # gc, in between

    monkeypatch.setattr(storage, "_make_folder", made_then_removed)
    with store.lock(NAME, KEY):
        assert (Path(store.entry(NAME, KEY)) / storage.LOCK_FILE).is_file()
        with storage.LocalFiles.try_lock(Path(store.entry(NAME, KEY))) as other:
            assert not other
    assert made == [Path(store.entry(NAME, KEY))]


def test_a_run_waiting_for_a_lock_while_gc_deletes_the_entry_locks_a_folder_gc_leaves(
    tmp_path, monkeypatch
):
    """A run waits for an entry's lock while gc holds it to delete the entry. Once gc is done,
    the run holds a lock in a folder that exists, which a third process cannot take."""
    store = Store(tmp_path)
    store.save(NAME, KEY, "garbage", {})
    folder = Path(store.entry(NAME, KEY))
    gc_locked, run_waits, run_locked, gc_done = (threading.Event() for _ in range(4))
    unlink, rmtree = storage._unlink_unless_read, shutil.rmtree

    def unlink_once_the_run_waits(path: Path) -> bool:
        gc_locked.set()
        assert run_waits.wait(10)
        return unlink(path)

    def rmtree_once_the_run_locked(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path) == folder:  # where gc removed the folder after letting go of the lock
            run_locked.wait(10)
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(storage, "_unlink_unless_read", unlink_once_the_run_waits)
    monkeypatch.setattr(shutil, "rmtree", rmtree_once_the_run_locked)
    deleted: list[bool] = []

    def gc() -> None:
        deleted.append(Store(tmp_path).delete(NAME, KEY))
        gc_done.set()

    collector = threading.Thread(target=gc)
    collector.start()
    assert gc_locked.wait(10)
    with Store(tmp_path).lock(NAME, KEY, on_wait=run_waits.set):
        run_locked.set()
        assert gc_done.wait(10)
        assert (folder / storage.LOCK_FILE).is_file()
        with storage.LocalFiles.try_lock(folder) as other:
            assert not other
    collector.join()
    assert deleted == [True]


# --------------------------------------------------------------------------- stress

GC_LOOP = """
import select, sys
from pyperunner.cli import main

data, keep = sys.argv[1:]
main(["gc", data, "--keep", keep, "--delete"], standalone_mode=False)
print("looping", file=sys.stderr, flush=True)
while not select.select([sys.stdin], [], [], 0)[0]:  # until the test closes stdin
    main(["gc", data, "--keep", keep, "--delete"], standalone_mode=False)
"""
RUNS = 4
LINKS = 8


@pytest.fixture
def gc_loop(tmp_path: Path) -> Iterator[Callable[[], int]]:
    """``pyperunner gc DATA --keep LOG --delete`` in a loop, in a process of its own, keeping
    only the run under ``tmp_path/kept``; yields what stops it and counts its deletions."""
    data, kept = tmp_path / "data", tmp_path / "kept"
    Runner(data, kept, executor="inline", console=False).run(Pipeline("kept", [root("kept")]))
    output = (tmp_path / "gc.out").open("w")
    loop = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(GC_LOOP), str(data), str(kept)],
        stdin=subprocess.PIPE,
        stdout=output,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert loop.stderr is not None and loop.stdin is not None
    assert loop.stderr.readline() == "looping\n", loop.stderr.read()

    def stop() -> int:
        loop.stdin.close()  # type: ignore[union-attr]
        assert loop.wait(60) == 0, loop.stderr.read()  # type: ignore[union-attr]
        output.close()
        return (tmp_path / "gc.out").read_text().count("\ndeleted ")

    try:
        yield stop
    finally:
        if loop.poll() is None:
            loop.kill()
            loop.wait()
        output.close()


@pytest.mark.parametrize("kinds", [LOCAL, ["dask"]], ids=["local", "dask"])
def test_gc_in_a_loop_beside_runs_of_every_executor_deletes_nothing_they_read(
    tmp_path, gc_loop, kinds, request
):
    """Every run of a chain whose last task always runs succeeds, each task having read its
    parent, while gc deletes everything no kept run uses: cached results between runs, and
    would delete inputs and outputs of a run under it if it could."""
    data, log = tmp_path / "data", tmp_path / "log"
    for kind in kinds:
        executor = make_executor(kind, request)
        for _ in range(RUNS):
            pipeline = chain(LINKS, expect(value=LINKS + 1, reload=True))
            result = Runner(data, log, executor=executor, console=False).run(pipeline)
            failed = {name: run.error for name, run in result.runs.items() if run.error}
            assert result.ok, (kind, failed)
            assert result.runs["Expect()"].status is Status.SUCCESS
            assert "vanished" not in (result.run_dir / "pipeline.log").read_text()
    assert gc_loop() > 0
