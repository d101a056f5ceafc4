"""Tests for the runner on real runs: inputs, caching rules, parallelism, run folder, results,
status image and failures (``pyperunner.runner`` with the scheduler and the executors)."""

from __future__ import annotations

import itertools
import json
import logging
import multiprocessing
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import joblib
import pytest
import yaml
from conftest import parent_of, record_call

from pyperunner import (
    Pipeline,
    PipelineError,
    PipelineResult,
    Runner,
    Sequential,
    Status,
    Task,
    TaskOutputUnavailableError,
    run,
    runfolder,
    task,
)
from pyperunner.executors import ThreadExecutor
from pyperunner.journal import read_journal
from pyperunner.runfolder import RunFolderError

EXECUTORS = ["process", "thread", "inline"]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
STAMP = re.compile(r"^\d{6}T\d{6}")


# --------------------------------------------------------------------------- module-level tasks


class Node(Task):
    """Records its execution and returns its tag."""

    @run
    def run(self, data):
        record_call(self.name)
        return self.tag


class Collect(Task):
    """Returns what it received: whether ``data`` is a list, and its items in order."""

    @run
    def run(self, data):
        record_call(self.name)
        return {"is_list": isinstance(data, list), "items": list(data), "len": len(data)}


class Pick(Task):
    """Returns the output of the parent called ``parent`` by indexing ``data`` by name."""

    @run
    def run(self, data, parent):
        record_call(self.name)
        return data[parent]


@task("simple-task")
def simpletask(data, param):
    record_call(str(param))
    return "simple-task"


PARAM_TO_NAME = {
    "1": "simple-task(first)",
    "2": "simple-task(second)",
    "3": "simple-task(third)",
    "4": "simple-task(fourth)",
    "CHANGED": "simple-task(second)",
}


class Stamp(Task):
    """Sleeps ``seconds`` and writes its start and end time to ``folder/<name>``."""

    @run
    def run(self, data, folder, seconds):
        start = time.time()
        time.sleep(seconds)
        end = time.time()
        Path(folder, self.name).write_text(f"{start} {end}")
        return self.name


class Pid(Task):
    """Returns the id of the process it runs in, and of that process's parent and grandparent."""

    @run
    def run(self, data):
        return {"pid": os.getpid(), "ancestors": [os.getppid(), parent_of(os.getppid())]}


class Printer(Task):
    """Prints and logs marker lines."""

    @run
    def run(self, data):
        print("hello from print marker")
        logging.getLogger("some.library").info("info from logger marker")
        return "printed"


class Boom(Task):
    """Raises."""

    @run
    def run(self, data):
        record_call(self.name)
        raise ZeroDivisionError("kaboom-marker")


class Debugs(Task):
    """Logs at DEBUG, as libraries do."""

    @run
    def run(self, data):
        logging.getLogger("somelib").debug("library-debug-marker")
        return 1


class Unpicklable(Task):
    """Returns a lambda, which cannot be stored."""

    @run
    def run(self, data):
        record_call(self.name)
        return lambda x: x


class HardExit(Task):
    """Kills its own worker process without reporting."""

    @run
    def run(self, data):
        record_call(self.name)
        os._exit(3)


# --------------------------------------------------------------------------- helpers


def make_runner(paths, **kwargs) -> Runner:
    data, log = paths
    return Runner(data_path=data, log_path=log, **kwargs)


def run_dirs(log_path: Path) -> list[Path]:
    """The run folders under ``log_path``, oldest first."""
    return sorted((p for p in log_path.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)


def only_run_dir(log_path: Path) -> Path:
    dirs = run_dirs(log_path)
    assert len(dirs) == 1, dirs
    return dirs[0]


def manual_sequential(third_reload: bool = False, second_param=2) -> Sequential:
    """The manual's "Result Caching" example pipeline."""
    first_task = simpletask(tag="first", param=1)
    second_task = simpletask(tag="second", param=second_param)
    third_task = simpletask(tag="third", param=3, reload=third_reload)
    fourth_task = simpletask(tag="fourth", param=4)
    return Sequential("sequential", [first_task, second_task, third_task, fourth_task])


def executed(calls) -> list[str]:
    """Names of the manual's simple tasks that executed, sorted."""
    return sorted(PARAM_TO_NAME[p] for p in calls.order())


ALL_FOUR = sorted(
    ["simple-task(first)", "simple-task(second)", "simple-task(third)", "simple-task(fourth)"]
)


def read_stamps(folder: Path) -> list[tuple[float, float]]:
    stamps = []
    for f in folder.iterdir():
        start, end = f.read_text().split()
        stamps.append((float(start), float(end)))
    return sorted(stamps)


# --------------------------------------------------------------------------- inputs


@pytest.mark.parametrize("executor", EXECUTORS)
def test_data_holds_parent_outputs_in_connection_order(paths, calls, executor):
    a, b = Node("a"), Node("b")
    c = Collect("c")([b, a])
    result = make_runner(paths, executor=executor).run(Pipeline("inputs", [a, b]))
    assert result["Collect(c)"] == {"is_list": True, "items": ["b", "a"], "len": 2}
    assert result.ok
    assert c.name == "Collect(c)"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_data_order_follows_connection_order_not_names(paths, calls, executor):
    parents = [Node(tag) for tag in ["z", "a", "m"]]
    Collect("c")(parents[0])(parents[1:])  # connected in two calls: z, then a and m
    result = make_runner(paths, executor=executor).run(Pipeline("inputs", parents))
    assert result["Collect(c)"]["items"] == ["z", "a", "m"]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_data_indexed_by_parent_name(paths, calls, executor):
    a, b = Node("x"), Node("y")
    Pick("by-name", parent="Node(x)")([b, a])
    Pick("by-name-2", parent="Node(y)")([b, a])
    result = make_runner(paths, executor=executor).run(Pipeline("inputs", [a, b]))
    assert result["Pick(by-name)"] == "x"
    assert result["Pick(by-name-2)"] == "y"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_root_task_taking_data_gets_empty_list(paths, calls, executor):
    root = Collect("root")
    result = make_runner(paths, executor=executor).run(Pipeline("root", [root]))
    assert result["Collect(root)"] == {"is_list": True, "items": [], "len": 0}


# --------------------------------------------------------------------------- caching rules


@pytest.mark.parametrize("executor", EXECUTORS)
def test_caching_first_run_executes_all_four(paths, calls, executor):
    result = make_runner(paths, executor=executor).run(manual_sequential())
    assert executed(calls) == ALL_FOUR
    assert set(result.statuses.values()) == {Status.SUCCESS}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_caching_rerun_executes_nothing(paths, calls, executor):
    runner = make_runner(paths, executor=executor)
    pipeline = manual_sequential()
    runner.run(pipeline)
    calls.reset()
    result = runner.run(pipeline)
    assert executed(calls) == []
    assert set(result.statuses.values()) == {Status.CACHED}
    # a fresh pipeline object with the same tasks is cached too
    result = runner.run(manual_sequential())
    assert executed(calls) == []
    assert result["simple-task(fourth)"] == "simple-task"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_caching_reload_executes_task_and_downstream(paths, calls, executor):
    runner = make_runner(paths, executor=executor)
    runner.run(manual_sequential())
    calls.reset()
    result = runner.run(manual_sequential(third_reload=True))
    assert executed(calls) == ["simple-task(fourth)", "simple-task(third)"]
    assert result.statuses == {
        "simple-task(first)": Status.CACHED,
        "simple-task(second)": Status.CACHED,
        "simple-task(third)": Status.SUCCESS,
        "simple-task(fourth)": Status.SUCCESS,
    }


@pytest.mark.parametrize("executor", EXECUTORS)
def test_caching_force_reload_executes_all(paths, calls, executor):
    runner = make_runner(paths, executor=executor)
    pipeline = manual_sequential()
    runner.run(pipeline)
    calls.reset()
    result = runner.run(pipeline, force_reload=True)
    assert executed(calls) == ALL_FOUR
    assert set(result.statuses.values()) == {Status.SUCCESS}


@pytest.mark.parametrize("executor", EXECUTORS)
def test_caching_changed_parameter_executes_task_and_downstream(paths, calls, executor):
    runner = make_runner(paths, executor=executor)
    runner.run(manual_sequential())
    calls.reset()
    result = runner.run(manual_sequential(second_param="CHANGED"))
    assert sorted(calls.order()) == ["3", "4", "CHANGED"]
    assert result.statuses["simple-task(first)"] is Status.CACHED
    calls.reset()
    # both parameter configurations are cached now
    runner.run(manual_sequential(second_param="CHANGED"))
    runner.run(manual_sequential())
    assert calls.order() == []


def test_caching_walkthrough_reusing_task_objects_as_the_manual_does(paths, calls):
    """The manual re-wraps the *same* task objects in new ``Sequential`` pipelines."""
    runner = make_runner(paths, executor="inline")
    first_task = simpletask(tag="first", param=1)
    second_task = simpletask(tag="second", param=2)
    third_task = simpletask(tag="third", param=3)
    fourth_task = simpletask(tag="fourth", param=4)
    pipeline = Sequential("sequential", [first_task, second_task, third_task, fourth_task])
    runner.run(pipeline)
    assert executed(calls) == ALL_FOUR
    calls.reset()

    third_task = simpletask(tag="third", param=3, reload=True)
    pipeline = Sequential("sequential", [first_task, second_task, third_task, fourth_task])
    runner.run(pipeline)
    assert executed(calls) == ["simple-task(fourth)", "simple-task(third)"]
    calls.reset()

    pipeline = Sequential("sequential", [first_task, second_task, third_task, fourth_task])
    runner.run(pipeline, force_reload=True)
    assert executed(calls) == ALL_FOUR


@pytest.mark.parametrize("executor", EXECUTORS)
def test_cached_outputs_not_loaded_when_nothing_downstream_needs_them(paths, calls, executor):
    data, _ = paths
    runner = make_runner(paths, executor=executor)
    pipeline = manual_sequential()
    runner.run(pipeline)
    # Corrupt the stored outputs of the first two tasks, keeping their size (so the store's
    # integrity check passes): a run that loads them would fail.
    for t in pipeline.tasks()[:2]:
        path = data / t.name / t.hash() / "result.dump.gz"
        path.write_bytes(b"x" * path.stat().st_size)
    calls.reset()
    result = runner.run(manual_sequential())
    assert set(result.statuses.values()) == {Status.CACHED}
    assert executed(calls) == []
    # only the fourth task runs: it needs the third's output, never the first's or second's
    fourth = simpletask(tag="fourth", param=4, reload=True)
    pipeline = Sequential(
        "sequential",
        [
            simpletask(tag="first", param=1),
            simpletask(tag="second", param=2),
            simpletask(tag="third", param=3),
            fourth,
        ],
    )
    result = runner.run(pipeline)
    assert executed(calls) == ["simple-task(fourth)"]
    assert result.statuses["simple-task(fourth)"] is Status.SUCCESS
    assert result.statuses["simple-task(first)"] is Status.CACHED
    assert result.ok


@pytest.mark.parametrize("executor", ["process", "pool", "thread"])
def test_process_limit_one_runs_tasks_one_at_a_time(paths, tmp_path, executor):
    folder = tmp_path / "stamps"
    folder.mkdir()
    roots = [Stamp(str(i), folder=str(folder), seconds=0.1) for i in range(3)]
    result = make_runner(paths, process_limit=1, executor=executor).run(Pipeline("lim", roots))
    assert result.ok
    stamps = read_stamps(folder)
    assert len(stamps) == 3
    for (_, end), (start, _) in itertools.pairwise(stamps):
        assert start >= end, stamps


@pytest.mark.parametrize("executor", ["process", "pool", "thread"])
def test_process_limit_two_overlaps_independent_tasks(paths, tmp_path, executor):
    folder = tmp_path / "stamps"
    folder.mkdir()
    roots = [Stamp(str(i), folder=str(folder), seconds=0.3) for i in range(2)]
    result = make_runner(paths, process_limit=2, executor=executor).run(Pipeline("lim", roots))
    assert result.ok
    (s1, e1), (s2, e2) = read_stamps(folder)
    assert max(s1, s2) < min(e1, e2), "the two tasks did not run at the same time"


def test_default_process_limit_is_cpu_count(paths):
    assert make_runner(paths).process_limit == (os.cpu_count() or 1)


# --------------------------------------------------------------------------- parallelism


def test_process_executor_is_default_and_runs_tasks_in_child_processes(paths):
    result = make_runner(paths).run(Pipeline("pid", [Pid("a"), Pid("b")]))
    for name in ["Pid(a)", "Pid(b)"]:
        assert result[name]["pid"] != os.getpid()
        assert os.getpid() in result[name]["ancestors"]  # forked by the runner or its fork server


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_inline_and_thread_run_in_this_process(paths, executor):
    result = make_runner(paths, executor=executor).run(Pipeline("pid", [Pid("a")]))
    assert result["Pid(a)"]["pid"] == os.getpid()


@pytest.mark.parametrize("executor", EXECUTORS)
def test_tasks_defined_inside_a_function_work(paths, executor):
    offset = 100

    @task("Inner", receives_input=False)
    def inner(value):
        return value + offset

    @task("InnerChild")
    def inner_child(data, factor):
        return [x * factor for x in data]

    class InnerClass(Task):
        @run
        def run(self, data):
            return sum(data[0])

    first = inner(tag="a", value=1)
    second = inner_child(tag="b", factor=2)(first)
    InnerClass("c")(second)
    result = make_runner(paths, executor=executor).run(Pipeline("closures", [first]))
    assert result["Inner(a)"] == 101
    assert result["InnerChild(b)"] == [202]
    assert result["InnerClass(c)"] == 202


# --------------------------------------------------------------------------- run folder


def test_run_folder_name_and_contents(paths):
    _, log = paths
    make_runner(paths).run(Pipeline("my-pipeline", [Node("a")]))
    run_dir = only_run_dir(log)
    assert run_dir.parent == log
    prefix, _, stamp = run_dir.name.partition("_")
    assert prefix == "my-pipeline"
    assert STAMP.match(stamp), run_dir.name
    for fname in ["pipeline.yaml", "pipeline.log", "run.yaml", "status.png"]:
        assert (run_dir / fname).is_file(), fname
    assert (run_dir / "status.png").read_bytes().startswith(PNG_SIGNATURE)
    assert isinstance(yaml.safe_load((run_dir / "run.yaml").read_text()), dict)


def test_every_run_gets_its_own_folder_even_within_a_second(paths):
    _, log = paths
    runner = make_runner(paths, executor="inline")
    pipeline = Pipeline("fast", [Node("a")])
    for _ in range(4):
        runner.run(pipeline)  # cached after the first: fast, several in the same second
    dirs = run_dirs(log)
    assert len(dirs) == 4
    assert len({d.name for d in dirs}) == 4
    for d in dirs:
        assert d.name.startswith("fast_")
        assert STAMP.match(d.name[len("fast_") :]), d.name
        assert (d / "pipeline.yaml").is_file()
    by_name = [p.parent for p in sorted(log.glob("*/pipeline.yaml"))]  # the latest run last
    assert by_name == sorted(dirs, key=lambda d: (d / "pipeline.yaml").stat().st_mtime_ns)


class CannotStart(ThreadExecutor):
    """An executor whose start fails, as a Dask cluster that cannot be reached does."""

    def start(self, store, workers, jobs=None):
        raise OSError("no cluster-marker at tcp://nowhere")


def test_a_run_that_cannot_start_is_recorded_with_why(paths, calls):
    runner = make_runner(paths, executor=CannotStart(), console=False)
    with pytest.raises(OSError, match="no cluster-marker"):
        runner.run(Pipeline("p", [Node("a")]))
    outcome = yaml.safe_load((runner.run_dir / "run.yaml").read_text())
    assert outcome["error"] == "OSError: no cluster-marker at tcp://nowhere"
    assert outcome["tasks"]["Node(a)"]["status"] == "NOT_STARTED"
    log = (runner.run_dir / "pipeline.log").read_text()
    assert "The run could not start: OSError: no cluster-marker" in log
    assert "Pipeline stopped before the end (1 NOT_STARTED)" in log
    assert calls.counts() == {}


def test_pipeline_yaml_describes_tasks_and_run(paths):
    data, log = paths
    a = Node("a")
    b = Node("b")
    c = Collect("c")([a, b])
    pipeline = Pipeline("described", [a, b])
    make_runner(paths).run(pipeline)
    doc = yaml.safe_load((only_run_dir(log) / "pipeline.yaml").read_text())
    tasks = doc["pipeline"]["tasks"]
    if isinstance(tasks, list):  # accept a list of task records carrying a name, too
        tasks = {t["name"]: t for t in tasks}
    assert set(tasks) == {"Node(a)", "Node(b)", "Collect(c)"}
    spec = tasks["Collect(c)"]
    assert spec["module"] == __name__
    assert spec["tag"] == "c"
    assert spec["params"] == {}
    assert spec["key"] == c.hash()
    assert spec["parents"] == ["Node(a)", "Node(b)"]
    assert tasks["Node(a)"]["parents"] == []
    assert tasks["Node(a)"]["key"] == a.hash()

    run_info = doc["run"]
    assert Path(run_info["data_path"]) == data.absolute()
    assert run_info["host"]
    assert run_info["python"] == sys.version.split()[0]
    assert isinstance(run_info["packages"], dict)
    assert any(name.lower() == "pyperunner" for name in run_info["packages"])
    import pyperunner

    assert run_info["pyperunner"] == pyperunner.__version__
    assert "git" in run_info


def test_pipeline_yaml_records_params(paths, tmp_path):
    _, log = paths
    folder = tmp_path / "stamps"
    folder.mkdir()
    make_runner(paths, executor="inline").run(
        Pipeline("params", [Stamp("s", folder=str(folder), seconds=0)])
    )
    doc = yaml.safe_load((only_run_dir(log) / "pipeline.yaml").read_text())
    params = doc["pipeline"]["tasks"]["Stamp(s)"]["params"]
    assert params == {"folder": str(folder), "seconds": 0}


LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\s+(?P<level>[A-Z]+)\s+(?P<process>\S+)\s+"
    r"(?P<task>\S+)\s+(?P<message>.*)$"
)


def test_log_stores_pipeline_parameters_line_as_in_manual(paths):
    _, log = paths
    make_runner(paths).run(Pipeline("my-pipeline", [Node("a")]))
    run_dir = only_run_dir(log)
    lines = (run_dir / "pipeline.log").read_text().splitlines()
    pattern = re.compile(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d INFO     MainProcess  root      "
        r"Stored pipeline parameters in (?P<path>\S+)$"
    )
    found = [m for m in map(pattern.match, lines) if m]
    assert found, lines
    assert Path(found[0]["path"]) == run_dir / "pipeline.yaml"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_log_lines_carry_time_level_process_task_and_message(paths, executor):
    _, log = paths
    make_runner(paths, executor=executor).run(Pipeline("logged", [Printer("p")]))
    lines = (only_run_dir(log) / "pipeline.log").read_text().splitlines()
    parsed = [LOG_LINE.match(line) for line in lines]
    assert all(parsed[0:1]), lines
    by_message = {m["message"].strip(): m for m in parsed if m}
    printed = by_message.get("hello from print marker")
    assert printed is not None, lines
    assert printed["task"] == "Printer(p)"
    assert printed["level"] == "INFO"
    logged = by_message.get("info from logger marker")
    assert logged is not None, lines
    assert logged["task"] == "Printer(p)"
    assert logged["level"] == "INFO"
    if executor == "process":
        assert printed["process"] != "MainProcess"
    else:
        assert printed["process"] == "MainProcess"


# --------------------------------------------------------------------------- results


def multi_path() -> tuple[Pipeline, list[str]]:
    load_db = Node("database")
    norm_l2 = Node("normalize-l2")(load_db)
    load_csv = Node("csv")
    norm_l1 = Node("normalize-l1")(load_csv)
    augment = Node("augment")(norm_l1)
    Collect("both")([norm_l2, augment])
    pipeline = Pipeline("my-pipeline")
    pipeline.add(load_db)
    pipeline.add(load_csv)
    names = [
        "Node(database)",
        "Node(normalize-l2)",
        "Node(csv)",
        "Node(normalize-l1)",
        "Node(augment)",
        "Collect(both)",
    ]
    return pipeline, names


def test_run_returns_pipeline_result_and_pipeline_results_are_sorted(paths):
    pipeline, names = multi_path()
    runner = make_runner(paths)
    result = runner.run(pipeline)
    assert isinstance(result, PipelineResult)
    assert list(pipeline.results()) == sorted(names)
    assert list(result) == sorted(names)
    assert list(runner.results()) == sorted(names)
    assert len(result) == 6
    assert "Node(csv)" in result
    for name in names:
        assert pipeline[name] == result[name] == runner.results()[name]
    assert result["Node(csv)"] == "csv"
    assert result["Collect(both)"]["items"] == ["normalize-l2", "augment"]
    with pytest.raises(KeyError):
        result["Node(nope)"]


def test_result_is_read_only(paths):
    pipeline, _ = multi_path()
    result = make_runner(paths).run(pipeline)
    with pytest.raises(TypeError):
        result["Node(csv)"] = "other"  # type: ignore[index]


def test_results_before_run_is_an_error(paths):
    pipeline, _ = multi_path()
    with pytest.raises(Exception, match="run"):
        pipeline.results()
    with pytest.raises(Exception, match="run"):
        make_runner(paths).results()


def test_results_from_file_and_from_run_folder(paths):
    pipeline, names = multi_path()
    _, log = paths
    result = make_runner(paths).run(pipeline)
    run_dir = only_run_dir(log)
    expected = {name: result[name] for name in names}
    for source in [run_dir / "pipeline.yaml", run_dir, str(run_dir / "pipeline.yaml")]:
        loaded = PipelineResult.from_file(source)
        assert list(loaded) == sorted(names)
        assert {name: loaded[name] for name in loaded} == expected


def test_results_from_file_in_fresh_process(paths, tmp_path):
    pipeline, names = multi_path()
    _, log = paths
    result = make_runner(paths).run(pipeline)
    fname = only_run_dir(log) / "pipeline.yaml"
    code = textwrap.dedent(
        f"""
        import json
        from pyperunner import PipelineResult
        results = PipelineResult.from_file({str(fname)!r})
        print(json.dumps({{name: results[name] for name in results}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert list(loaded) == sorted(names)
    assert loaded == {name: result[name] for name in names}


def test_result_path_is_store_layout_and_joblib_loadable(paths):
    data, _ = paths
    pipeline, _ = multi_path()
    result = make_runner(paths).run(pipeline)
    for t in pipeline.tasks():
        path = result.path(t.name)
        assert path == data.absolute() / t.name / t.hash() / "result.dump.gz"
        assert joblib.load(path) == result[t.name]


# --------------------------------------------------------------------------- status image


def test_write_status_image_relative_goes_into_run_folder(paths):
    _, log = paths
    runner = make_runner(paths)
    pipeline, _ = multi_path()
    runner.run(pipeline)
    written = Path(runner.write_status_image("status.img"))
    assert written == only_run_dir(log) / "status.img"
    assert written.read_bytes().startswith(PNG_SIGNATURE)


def test_write_status_image_absolute_path_is_honoured(paths, tmp_path):
    runner = make_runner(paths, executor="inline")
    runner.run(Pipeline("img", [Node("a")]))
    target = tmp_path / "elsewhere" / "picture.png"
    target.parent.mkdir()
    written = Path(runner.write_status_image(target))
    assert written == target
    assert target.read_bytes().startswith(PNG_SIGNATURE)


def test_write_status_image_before_run_is_a_clear_error(paths):
    runner = make_runner(paths)
    with pytest.raises(RuntimeError, match=r"run\(pipeline\)|run"):
        runner.write_status_image("status.img")


# --------------------------------------------------------------------------- failures


def failing_pipeline() -> Pipeline:
    boom = Boom("x")
    child = Node("child")(boom)
    Node("grandchild")(child)
    other = Node("other")
    Node("other-child")(other)
    return Pipeline("failing", [boom, other])


@pytest.mark.parametrize("executor", EXECUTORS)
def test_failure_marks_descendants_cant_run_and_independent_branch_finishes(paths, calls, executor):
    result = make_runner(paths, executor=executor).run(failing_pipeline())
    assert result.statuses == {
        "Boom(x)": Status.FAILURE,
        "Node(child)": Status.CANT_RUN,
        "Node(grandchild)": Status.CANT_RUN,
        "Node(other)": Status.SUCCESS,
        "Node(other-child)": Status.SUCCESS,
    }
    assert calls.counts() == {"Boom(x)": 1, "Node(other)": 1, "Node(other-child)": 1}
    assert not result.ok
    assert list(result) == ["Node(other)", "Node(other-child)"]
    assert result["Node(other-child)"] == "other-child"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_failure_traceback_in_log_and_result(paths, calls, executor):
    _, log = paths
    result = make_runner(paths, executor=executor).run(failing_pipeline())
    run = result.runs["Boom(x)"]
    assert "Traceback (most recent call last)" in run.traceback
    assert "ZeroDivisionError: kaboom-marker" in run.traceback
    first_frame = run.traceback.splitlines()[1]  # the user's own code, not pyperunner's
    assert "test_runner.py" in first_frame and "raise ZeroDivisionError" in run.traceback
    assert "executors/base.py" not in run.traceback and "pyperunner/task.py" not in run.traceback
    assert set(result.failed) == {"Boom(x)"}

    text = (only_run_dir(log) / "pipeline.log").read_text()
    assert "Traceback (most recent call last)" in text
    assert "ZeroDivisionError: kaboom-marker" in text
    last = [line for line in text.splitlines() if line.strip()][-1]
    assert "Boom(x)" in last, last

    with pytest.raises(TaskOutputUnavailableError) as info:
        result["Boom(x)"]
    assert "kaboom-marker" in str(info.value)
    assert "Traceback" in str(info.value)
    with pytest.raises(TaskOutputUnavailableError):
        result["Node(grandchild)"]


@pytest.mark.parametrize("executor", EXECUTORS)
def test_the_whole_traceback_is_in_the_log_file_at_debug_level_only(paths, executor, capsys):
    """The log file has a failure's whole traceback, pyperunner's frames too, at DEBUG; it takes
    no other DEBUG record, and the console does not show it."""
    root = logging.getLogger()
    before = root.level
    root.setLevel(logging.DEBUG)  # the user's: libraries' DEBUG records are logged
    try:
        make_runner(paths, executor=executor).run(Pipeline("debug", [Boom("x"), Debugs("y")]))
    finally:
        root.setLevel(before)
    text = (only_run_dir(paths[1]) / "pipeline.log").read_text()
    (debug,) = [line for line in text.splitlines() if " DEBUG " in line]
    assert "Boom(x)" in debug and "full traceback" in debug
    whole = text[text.index(debug) :]
    assert "executors/base.py" in whole and "ZeroDivisionError: kaboom-marker" in whole
    assert "library-debug-marker" not in text
    err = capsys.readouterr().err
    assert "ZeroDivisionError: kaboom-marker" in err
    assert "full traceback" not in err and "executors/base.py" not in err


def test_failure_is_recorded_in_run_yaml_and_from_file(paths, calls):
    _, log = paths
    make_runner(paths).run(failing_pipeline())
    loaded = PipelineResult.from_file(only_run_dir(log))
    assert loaded.statuses["Boom(x)"] is Status.FAILURE
    assert loaded.statuses["Node(grandchild)"] is Status.CANT_RUN
    with pytest.raises(TaskOutputUnavailableError, match="kaboom-marker"):
        loaded["Boom(x)"]


def test_failed_task_runs_again_next_time(paths, calls):
    runner = make_runner(paths)
    runner.run(failing_pipeline())
    calls.reset()
    result = runner.run(failing_pipeline())
    assert calls.counts() == {"Boom(x)": 1}
    assert result.statuses["Node(other)"] is Status.CACHED
    assert result.statuses["Node(child)"] is Status.CANT_RUN


@pytest.mark.parametrize("executor", EXECUTORS)
def test_unpicklable_output_fails_naming_task_and_type(paths, calls, executor):
    bad = Unpicklable("lam")
    Node("after")(bad)
    result = make_runner(paths, executor=executor).run(Pipeline("unpicklable", [bad]))
    assert result.statuses["Unpicklable(lam)"] is Status.FAILURE
    assert result.statuses["Node(after)"] is Status.CANT_RUN
    error = result.runs["Unpicklable(lam)"].error
    assert "Unpicklable(lam)" in error
    assert "function" in error or "lambda" in error
    assert calls.counts() == {"Unpicklable(lam)": 1}


def test_worker_exiting_hard_is_a_failure_and_run_ends(paths, calls):
    _, log = paths
    dead = HardExit("x")
    Node("after")(dead)
    other = Node("other")
    result = make_runner(paths).run(Pipeline("exit", [dead, other]))
    assert result.statuses == {
        "HardExit(x)": Status.FAILURE,
        "Node(after)": Status.CANT_RUN,
        "Node(other)": Status.SUCCESS,
    }
    error = result.runs["HardExit(x)"].error
    assert re.search(r"\b3\b", error), error
    assert "exit" in error.lower()
    assert calls.counts() == {"HardExit(x)": 1, "Node(other)": 1}
    last = (only_run_dir(log) / "pipeline.log").read_text().strip().splitlines()[-1]
    assert "HardExit(x)" in last


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("limit", [0, -1])
def test_process_limit_below_one_is_rejected(paths, limit):
    with pytest.raises(ValueError, match="process_limit"):
        make_runner(paths, process_limit=limit)


def test_unknown_executor_is_rejected(paths):
    with pytest.raises(ValueError, match="no-such-executor"):
        make_runner(paths, executor="no-such-executor")


def test_runner_paths_relative_to_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = Runner(data_path="data/", log_path="log/", executor="inline").run(
        Pipeline("rel", [Node("a")])
    )
    assert result.path("Node(a)").is_file()
    assert str(result.path("Node(a)")).startswith(str(tmp_path / "data"))
    assert len(list((tmp_path / "log").glob("rel_*/pipeline.yaml"))) == 1


def test_a_cached_task_reports_the_size_and_preview_of_its_stored_output(paths):
    data, log = paths
    runner = Runner(data, log, executor="inline", console=False)
    first = runner.run(Pipeline("sizes", [Node("big")]))
    again = runner.run(Pipeline("sizes", [Node("big")]))
    assert again.runs["Node(big)"].status is Status.CACHED
    size, preview = first.runs["Node(big)"].output_bytes, first.runs["Node(big)"].preview
    assert size and again.runs["Node(big)"].output_bytes == size
    assert preview and again.runs["Node(big)"].preview == preview
    reloaded = PipelineResult.from_file(again.run_dir / "pipeline.yaml")
    assert reloaded.runs["Node(big)"].output_bytes == size
    assert reloaded.runs["Node(big)"].preview == preview


@task("Noisy", receives_input=False)
def noisy():
    thread = threading.Thread(target=lambda: print("marker: a thread of the task prints"))
    thread.start()
    thread.join()
    os.system("echo marker: a shell the task started")
    subprocess.run([sys.executable, "-c", "import sys; sys.stderr.write('marker: stderr\\n')"])
    os.write(1, b"marker: no newline at the end")
    return 1


def test_output_of_a_tasks_threads_and_processes_lands_in_the_log_under_its_name(paths):
    result = make_runner(paths).run(Pipeline("noisy", [noisy()]))
    assert result.ok
    lines = [
        LOG_LINE.match(line) for line in (result.run_dir / "pipeline.log").read_text().splitlines()
    ]
    found = {m["message"]: m for m in lines if m and m["message"].startswith("marker:")}
    assert set(found) == {
        "marker: a thread of the task prints",
        "marker: a shell the task started",
        "marker: stderr",
        "marker: no newline at the end",
    }
    assert {m["task"] for m in found.values()} == {"Noisy()"}
    assert found["marker: stderr"]["level"] == "WARNING"
    assert {m["process"] for m in found.values()} == {"Worker-1"}


@task("Cached", receives_input=False)
def cached_input():
    return 41


@task("DeleteMyInput")
def delete_my_input(data, data_path):
    from pyperunner.store import Store

    key = Pipeline("p", [cached_input()]).keys()["Cached()"]
    return {"deleted": Store(data_path).delete("Cached()", key), "value": data[0] + 1}


@pytest.mark.parametrize("cached", [True, False], ids=["cached-input", "input-of-this-run"])
def test_a_result_the_run_still_reads_is_never_deleted_by_gc(paths, cached):
    data, _ = paths
    runner = make_runner(paths, executor="inline", console=False)
    if cached:
        runner.run(Pipeline("p", [cached_input()]))
    result = runner.run(Pipeline("p", [delete_my_input(data_path=str(data))(cached_input())]))
    assert result["DeleteMyInput()"] == {"deleted": False, "value": 42}
    assert result["Cached()"] == 41


@task("Mid")
def mid(data):
    return data[0]


def test_a_result_is_let_go_once_its_last_child_in_the_run_has_ended(paths):
    """Cached() -> Mid() -> DeleteMyInput(): by the time the last task runs, no task of the run
    reads Cached() any more, so gc may delete it; Mid() is still read, so it stays."""
    data, _ = paths
    runner = make_runner(paths, executor="inline", console=False)
    result = runner.run(
        Pipeline("p", [delete_my_input(data_path=str(data))(mid()(cached_input()))])
    )
    assert result["DeleteMyInput()"] == {"deleted": True, "value": 42}
    assert result["Mid()"] == 41


@pytest.mark.parametrize("shape", ["chain", "fan-in"])
@pytest.mark.parametrize("executor", ["inline", "process"])
def test_pipelines_bigger_than_the_open_file_limit_run(tmp_path, executor, shape):
    """Each held result is an open file: a 600-task chain, or 599 tasks feeding one, under a
    limit of 256 open files (the fan-in's inputs cannot all be held: the log says so)."""
    script = tmp_path / "long.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import resource

            from pyperunner import Pipeline, Runner, Sequential, task

            @task("Start", receives_input=False)
            def start():
                return 0

            @task("Step")
            def step(data):
                return data[0] + 1

            _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
            resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
            @task("Total")
            def total(data):
                return sum(data)

            if {shape!r} == "chain":
                pipeline = Sequential("big", [start("0")] + [step(str(i)) for i in range(1, 600)])
                last = "Step(599)"
            else:
                sources = [start(str(i)) for i in range(599)]
                total("all")(sources)
                pipeline, last = Pipeline("big", sources), "Total(all)"
            runner = Runner("data", "log", executor={executor!r}, console=False)
            result = runner.run(pipeline)
            assert result.ok, {{n: r.error for n, r in result.runs.items() if r.error}}
            print(result[last])
            print("not held" if "Too many results to hold" in
                  (runner.run_dir / "pipeline.log").read_text() else "all held")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    value, held = done.stdout.split("\n")[:2]
    assert value == ("599" if shape == "chain" else "0")
    assert held == ("all held" if shape == "chain" else "not held")


# --------------------------------------------------------------------------- early interrupts


@pytest.mark.parametrize(
    ("signum", "raised"),
    [(signal.SIGINT, KeyboardInterrupt), (signal.SIGTERM, SystemExit)],
    ids=["SIGINT", "SIGTERM"],
)
@pytest.mark.parametrize("when", ["planning", "forking workers"])
def test_a_signal_while_the_run_gets_ready_is_recorded_as_an_interrupted_run(
    paths, calls, monkeypatch, signum, raised, when
):
    from pyperunner import runner as runner_module
    from pyperunner.executors import ProcessExecutor

    planning = when == "planning"
    target, method = (
        (runner_module, "plan_with_store") if planning else (ProcessExecutor, "_fork_ahead")
    )
    original = getattr(target, method)

    def signalled(*args, **kwargs):
        result = original(*args, **kwargs)
        signal.raise_signal(signum)  # a real signal, as from Ctrl-C or kill, at this point
        return result

    monkeypatch.setattr(target, method, signalled)
    pipeline = Pipeline("early", [Node("a"), Node("b")])
    runner = make_runner(paths, executor="process")
    with pytest.raises(raised) as stopped:
        runner.run(pipeline)
    if raised is SystemExit:
        assert stopped.value.code == 128 + signum
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers as before the run
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    (run_dir,) = run_dirs(paths[1])
    runs = yaml.safe_load((run_dir / "run.yaml").read_text())["tasks"]
    assert {name: r["status"] for name, r in runs.items()} == {
        "Node(a)": "NOT_STARTED",
        "Node(b)": "NOT_STARTED",
    }
    assert (
        f"Run interrupted by {signal.Signals(signum).name}"
        in (run_dir / "pipeline.log").read_text()
    )
    assert (run_dir / "status.png").is_file()
    assert calls.order() == []  # nothing ran, and no forked worker is left
    assert not multiprocessing.active_children()


# --------------------------------------------------------------------------- bad paths


@pytest.mark.parametrize("which", ["data_path", "log_path"])
def test_a_path_that_is_a_file_is_refused_when_the_runner_is_made(tmp_path, which):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    folders = {"data_path": tmp_path / "data", "log_path": tmp_path / "log", which: afile}
    with pytest.raises(ValueError, match=rf"{which} .*afile is a file, not a folder"):
        Runner(**folders)
    assert afile.read_text() == "not a folder"


def test_a_log_path_that_cannot_be_made_says_so_before_anything_runs(tmp_path, calls):
    (tmp_path / "afile").write_text("")
    runner = Runner(tmp_path / "data", tmp_path / "afile" / "log", executor="inline")
    with pytest.raises(OSError, match=r"cannot create a run folder in .*afile/log .*log_path"):
        runner.run(Pipeline("nolog", [Node("a")]))
    assert calls.order() == []
    assert not (tmp_path / "data").exists()


def test_a_file_where_a_tasks_folder_goes_fails_that_task_not_the_run(paths, calls):
    data, _ = paths
    runner = make_runner(paths, executor="inline")
    runner.run(Pipeline("blocked", [Node("a")]))
    data_a = data / "Node(a)"
    shutil.rmtree(data_a)
    data_a.write_text("in the way")
    result = runner.run(Pipeline("blocked", [Node("a"), Node("b")]))
    assert result.statuses == {"Node(a)": Status.FAILURE, "Node(b)": Status.SUCCESS}
    assert (
        "Not a directory" in result.runs["Node(a)"].error
        and str(data_a) in result.runs["Node(a)"].error
    )
    assert data_a.read_text() == "in the way"


def test_a_task_planned_to_run_but_found_stored_says_both_in_its_record(paths, calls):
    runner = make_runner(paths, executor="inline")
    first = runner.run(Pipeline("reuse", [Collect("c")(Node("a"))]))
    first.path("Node(a)").write_bytes(b"")  # damaged: Node(a) runs again, with the same key
    calls.reset()
    second = runner.run(Pipeline("reuse", [Collect("c")(Node("a"))]))
    assert calls.order() == ["Node(a)"]
    assert second.statuses == {"Node(a)": Status.SUCCESS, "Collect(c)": Status.CACHED}
    reason = yaml.safe_load((second.run_dir / "run.yaml").read_text())["tasks"]["Collect(c)"][
        "reason"
    ]
    assert reason.startswith("upstream task Node(a) runs") and "found stored" in reason


def test_a_run_whose_runner_was_killed_is_read_back_from_its_journal(paths):
    runner = make_runner(paths, executor="inline")
    runner.run(Pipeline("lost", [Node("a")]))
    done = runner.run(Pipeline("lost", [Collect("c")(Node("a")), Collect("d")(Boom("x"))]))
    (done.run_dir / "run.yaml").unlink()  # as when the runner is killed before recording
    journal = done.run_dir / "events.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(line for line in lines if '"run":"ended"' not in line))

    recovered = PipelineResult.from_file(done.run_dir)

    assert (
        recovered.statuses
        == done.statuses
        == {
            "Node(a)": Status.CACHED,
            "Collect(c)": Status.SUCCESS,
            "Boom(x)": Status.FAILURE,
            "Collect(d)": Status.CANT_RUN,
        }
    )
    assert recovered.runs["Boom(x)"].error == done.runs["Boom(x)"].error
    assert recovered["Collect(c)"] == done["Collect(c)"]
    from pyperunner.report.rundata import run_document

    doc = run_document(done.run_dir)  # what report.html and the UI draw
    assert {t["name"]: Status(t["status"]) for t in doc["tasks"]} == done.statuses
    assert doc["finished"] is None


def test_a_killed_run_is_told_by_its_journal_not_by_what_a_later_run_stored(paths):
    pipeline = Pipeline("killed", [Collect("c")(Node("a"))])
    killed = make_runner(paths, executor="inline").run(pipeline)
    (killed.run_dir / "run.yaml").unlink()  # as if its runner died right after Node(a)
    journal = killed.run_dir / "events.jsonl"
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(line for line in lines if "Collect(c)" not in line))
    assert killed.path("Collect(c)").exists()  # stored, as by a later run

    recovered = PipelineResult.from_file(killed.run_dir)
    assert recovered.statuses == {"Node(a)": Status.SUCCESS, "Collect(c)": Status.NOT_STARTED}
    assert recovered.durations["Node(a)"] is not None  # the journal holds whole records


def test_a_journal_line_cut_short_by_a_kill_is_skipped(paths):
    killed = make_runner(paths, executor="inline").run(Pipeline("cut", [Collect("c")(Node("a"))]))
    (killed.run_dir / "run.yaml").unlink()
    journal = killed.run_dir / "events.jsonl"
    text = journal.read_text()
    cut = text.rindex('{"task":"Collect(c)"')
    journal.write_text(text[: cut + 20])  # the last record of Collect(c) cut in its middle
    recovered = PipelineResult.from_file(killed.run_dir)
    assert recovered.statuses == {"Node(a)": Status.SUCCESS, "Collect(c)": Status.INTERRUPTED}


def test_a_damaged_result_of_a_task_that_runs_anyway_is_still_named(paths, calls):
    runner = make_runner(paths, executor="inline")
    first = runner.run(Pipeline("both", [Collect("c")(Node("a"))]))
    for name in ("Node(a)", "Collect(c)"):
        first.path(name).write_bytes(b"")  # Collect(c) runs anyway: its input runs again
    second = runner.run(Pipeline("both", [Collect("c")(Node("a"))]))
    assert second.ok and calls.counts() == {"Node(a)": 2, "Collect(c)": 2}
    log = (second.run_dir / "pipeline.log").read_text()
    warned = [line for line in log.splitlines() if "WARNING" in line and "damaged" in line]
    assert any("Collect(c)" in line and str(first.path("Collect(c)")) in line for line in warned)


# --------------------------------------------------------------------------- hostile run folders


@pytest.mark.parametrize(
    "content, problem",
    [
        ("just a string\n", "not a mapping"),
        ("tasks: [1, 2]\n", "'tasks' is not a mapping"),
        ("tasks: {a: [unclosed\n", "cannot be read"),
    ],
    ids=["scalar", "tasks a list", "garbage"],
)
def test_results_from_a_damaged_run_yaml_name_the_file_and_the_problem(paths, content, problem):
    make_runner(paths, executor="inline").run(Pipeline("p", [Node("a")]))
    run_dir = only_run_dir(paths[1])
    (run_dir / "events.jsonl").unlink()  # as a run made before journals: run.yaml is read
    (run_dir / "run.yaml").write_text(content)
    with pytest.raises(RunFolderError, match=re.escape(problem)) as refused:
        PipelineResult.from_file(run_dir)
    message = str(refused.value)
    assert str(run_dir / "run.yaml") in message and "<unicode string>" not in message


def test_results_from_a_pipeline_yaml_that_is_no_mapping_name_the_file(paths):
    make_runner(paths, executor="inline").run(Pipeline("p", [Node("a")]))
    run_dir = only_run_dir(paths[1])
    (run_dir / "events.jsonl").unlink()
    (run_dir / "pipeline.yaml").write_text("- a list\n")
    with pytest.raises(RunFolderError, match=r"pipeline\.yaml: not a pyperunner pipeline file"):
        PipelineResult.from_file(run_dir)


# --------------------------------------------------------------------------- edge pipelines


def test_running_an_empty_pipeline_is_an_error_before_any_run_folder(paths):
    with pytest.raises(PipelineError, match="No tasks in pipeline 'empty'"):
        make_runner(paths).run(Pipeline("empty"))
    assert not paths[1].exists() or not any(paths[1].iterdir())


@task("After", receives_input=False)
def after(label):
    record_call(f"After({label})")
    return f"after {label}"


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_task_without_data_below_others_runs_after_them_and_reruns_with_them(
    paths, calls, executor
):
    def build(first_param):
        first, second = simpletask("first", param=first_param), simpletask("second", param=2)
        return Pipeline("order", [after("x", label="x")([first, second])])

    result = make_runner(paths, executor=executor).run(build(1))
    assert result["After(x)"] == "after x"
    assert calls.order()[-1] == "After(x)" and set(calls.order()[:2]) == {"1", "2"}
    calls.reset()
    make_runner(paths, executor=executor).run(build("CHANGED"))  # its key covers its parents'
    assert calls.counts() == {"CHANGED": 1, "After(x)": 1}


def test_a_task_without_data_can_sit_inside_a_sequential(paths, calls):
    chain = [simpletask("first", param=1), after("mid", label="mid"), Collect("end")]
    result = make_runner(paths, executor="inline").run(Sequential("seq", chain))
    assert calls.order() == ["1", "After(mid)", "Collect(end)"]
    assert result["Collect(end)"]["items"] == ["after mid"]


# --------------------------------------------------------------------------- the run folder's files


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_run_keeps_a_summary_a_journal_and_each_tasks_own_log(paths, executor):
    pipeline = Pipeline("files", [Boom("b")(Printer("p"))])
    result = make_runner(paths, executor=executor).run(pipeline)
    folder = result.run_dir
    summary = runfolder.read_summary(folder)
    assert summary is not None and summary.pipeline == "files" and summary.tasks == 2
    assert summary.counts == {"SUCCESS": 1, "FAILURE": 1} and summary.state == "finished"
    events = read_journal(folder)
    assert events is not None and events.ended
    assert events.tasks["Boom(b)"].status is Status.FAILURE
    assert "kaboom-marker" in events.tasks["Boom(b)"].traceback
    assert events.tasks["Printer(p)"].duration == result.durations["Printer(p)"]
    keys = result.task_keys
    printed = runfolder.read_task_log(folder, keys["Printer(p)"])
    assert "hello from print marker" in printed and "info from logger marker" in printed
    failed = runfolder.read_task_log(folder, keys["Boom(b)"])
    assert "kaboom-marker" in failed and "print marker" not in failed


def test_the_journal_is_read_on_from_where_a_reader_left_it(paths):
    result = make_runner(paths, executor="inline").run(Pipeline("on", [Node("a")]))
    journal_file = result.run_dir / "events.jsonl"
    whole = journal_file.read_bytes()
    journal_file.write_bytes(whole[: whole.index(b"\n") + 1] + b'{"task": "Node(a)", "ru')
    seen = read_journal(result.run_dir)
    assert seen is not None and seen.tasks == {} and not seen.ended
    journal_file.write_bytes(whole)  # the run went on
    seen = read_journal(result.run_dir, seen)
    assert seen.tasks["Node(a)"].status is Status.SUCCESS and seen.ended
    assert seen.size == len(whole)
