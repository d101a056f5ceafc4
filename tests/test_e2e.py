"""End-to-end tests: the manual's examples written as scripts into a temporary folder and run in a
fresh Python process, exactly as a user would run them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import joblib
import pytest
import yaml

MULTI_PATH_NAMES = [
    "LoadData(database)",
    "ProcessData(normalize-l2)",
    "LoadData(csv)",
    "ProcessData(normalize-l1)",
    "AugmentData(augment)",
    "Evaluate(both)",
]


def write(folder: Path, name: str, code: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(code).lstrip())
    return path


def run_script(folder: Path, name: str, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, name, *args],
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done


def stored_results(data: Path) -> dict[str, list[Path]]:
    """Every stored result file under ``data`` by task folder name."""
    found: dict[str, list[Path]] = {}
    for path in data.glob("*/*/result.dump.gz"):
        found.setdefault(path.parent.parent.name, []).append(path)
    return found


def run_folders(log: Path, pipeline: str) -> list[Path]:
    return sorted(p.parent for p in log.glob(f"{pipeline}_*/pipeline.yaml"))


# --------------------------------------------------------------------------- hello worlds


HELLO_FUNC = """
from pyperunner import Runner, Sequential, task


@task("Hello", receives_input=False)
def hello():
    return "Hello"


@task("World")
def world(data):
    return f"{data[0]} world"


# create a sequential pipeline and supply whole pipeline as list in constructor
pipeline = Sequential("hello-world-example", [hello(), world()])

# run pipeline
runner = Runner(data_path="data/", log_path="log/")
runner.run(pipeline)

results = runner.results()
for task_name in results:
    print(f"Output of task '{task_name}' was '{results[task_name]}'")
"""

HELLO_CLASS = """
from pyperunner import Runner, Sequential, Task, run


class Hello(Task):
    @run
    def run(self, data):
        return "Hello"


class World(Task):
    @run
    def run(self, data):
        return f"{data[0]} world"


# create a sequential pipeline and supply whole pipeline as list in constructor
pipeline = Sequential("hello-world-example", [Hello(), World()])

# print a summary of the pipeline
pipeline.summary()

# run pipeline
runner = Runner(data_path="data/", log_path="log/")
runner.run(pipeline)

# get pipeline results object from the pipeline that was just run
results = runner.results()

# show the results
for task_name in results:
    print(f"Output of task '{task_name}' was '{results[task_name]}'")
"""


@pytest.mark.parametrize("code", [HELLO_FUNC, HELLO_CLASS], ids=["function", "class"])
def test_hello_world(tmp_path, code):
    write(tmp_path, "hello.py", code)
    done = run_script(tmp_path, "hello.py")
    assert "Output of task 'Hello()' was 'Hello'" in done.stdout
    assert "Output of task 'World()' was 'Hello world'" in done.stdout
    results = stored_results(tmp_path / "data")
    assert set(results) == {"Hello()", "World()"}
    assert joblib.load(results["World()"][0]) == "Hello world"
    assert len(run_folders(tmp_path / "log", "hello-world-example")) == 1
    # the console shows the run's log lines
    assert "Stored pipeline parameters in" in done.stderr + done.stdout


def test_hello_world_class_summary_is_printed(tmp_path):
    write(tmp_path, "hello.py", HELLO_CLASS)
    done = run_script(tmp_path, "hello.py")
    assert "| Hello() |" in done.stdout
    assert "| World() |" in done.stdout


# --------------------------------------------------------------------------- multi path


MULTI_PATH = """
import json
import time

from pyperunner import Pipeline, Runner, Task, run


class WaitTask(Task):
    \"\"\"Base class for tasks that wait a given number of seconds.\"\"\"

    @run
    def run(self, data, wait, **kwargs):
        time.sleep(wait)
        return {"name": self.name, "inputs": list(data), "params": kwargs}


class LoadData(WaitTask):
    pass


class ProcessData(WaitTask):
    pass


class AugmentData(WaitTask):
    pass


class Evaluate(WaitTask):
    pass


if __name__ == "__main__":
    pipeline = Pipeline("my-pipeline")

    load_db = LoadData(
        "database",
        database={"host": "localhost", "username": "user", "password": "password"},
        wait=0.05,
    )
    norm_l2 = ProcessData("normalize-l2", norm="l2", axis=0, wait=0.05)(load_db)

    load_csv = LoadData("csv", filename="data.csv", wait=0.05)
    norm_l1 = ProcessData("normalize-l1", norm="l1", wait=0.05)(load_csv)
    augment = AugmentData("augment", types=["rotate", "noise"], wait=0.05)(norm_l1)

    evaluate = Evaluate("both", wait=0.05)([norm_l2, augment])

    pipeline.add(load_db)
    pipeline.add(load_csv)

    pipeline.summary()

    runner = Runner(data_path="data/", log_path="log/")
    runner.run(pipeline)
    runner.write_status_image("status.img")

    print("RESULTS", sorted(pipeline.results()))
    print("KEYS", json.dumps({t.name: t.hash() for t in pipeline.tasks()}))
"""


def test_multi_path_pipeline_as_main_script(tmp_path):
    write(tmp_path, "multi_path.py", MULTI_PATH)
    done = run_script(tmp_path, "multi_path.py")

    # the ASCII summary
    for name in MULTI_PATH_NAMES:
        assert f"| {name} |" in done.stdout, done.stdout
    assert "+---" in done.stdout
    assert "*" in done.stdout

    # the results, in the store layout data/<Name(tag)>/<key>/result.dump.gz
    keys_line = next(line for line in done.stdout.splitlines() if line.startswith("KEYS "))
    keys = json.loads(keys_line[len("KEYS ") :])
    assert set(keys) == set(MULTI_PATH_NAMES)
    for name, key in keys.items():
        path = tmp_path / "data" / name / key / "result.dump.gz"
        assert path.is_file(), path
        assert joblib.load(path)["name"] == name
        assert (path.parent / "params.yaml").is_file()
    evaluate = joblib.load(
        tmp_path / "data" / "Evaluate(both)" / keys["Evaluate(both)"] / "result.dump.gz"
    )
    assert [item["name"] for item in evaluate["inputs"]] == [
        "ProcessData(normalize-l2)",
        "AugmentData(augment)",
    ]
    results_line = next(line for line in done.stdout.splitlines() if line.startswith("RESULTS "))
    assert results_line == f"RESULTS {sorted(MULTI_PATH_NAMES)}"

    # the run folder
    (run_dir,) = run_folders(tmp_path / "log", "my-pipeline")
    doc = yaml.safe_load((run_dir / "pipeline.yaml").read_text())
    assert doc["pipeline"]["name"] == "my-pipeline"
    assert (run_dir / "status.img").read_bytes().startswith(b"\x89PNG")
    assert (run_dir / "status.png").is_file()
    # tasks are defined in __main__
    assert {spec["module"] for spec in doc["pipeline"]["tasks"].values()} == {"__main__"}


# --------------------------------------------------------------------------- save and load


TASKS_MOD = """
from pyperunner import Task, run, task


@task("Load", receives_input=False)
def load(source):
    return f"loaded {source}"


@task("Transform")
def transform(data, factor=2):
    return [f"{item} x{factor}" for item in data]


class Combine(Task):
    @run
    def run(self, data):
        return " + ".join(str(item) for item in data)
"""

SAVE = """
from pyperunner import Pipeline

from tasks_mod import Combine, load, transform

first = load("a", source="a.csv")
second = load("b", source="b.csv")
left = transform("left", factor=3)(first)
right = transform("right")(second)
Combine("all")([left, right])

pipeline = Pipeline("my-pipeline", [first, second])
pipeline.to_file("my-pipeline.yml")
"""

LOAD_AND_RUN = """
from pyperunner import Pipeline, Runner

import tasks_mod  # noqa: F401  (the tasks must be importable to rebuild the pipeline)

pipeline = Pipeline.from_file("my-pipeline.yml")

runner = Runner(data_path="data/", log_path="log/")
runner.run(pipeline)
for task_name in pipeline.results():
    print(task_name, "=", pipeline[task_name])
"""

READ_RESULTS = """
import sys

from pyperunner import PipelineResult

results = PipelineResult.from_file(sys.argv[1])
for task_name in results:
    print(task_name, "=", results[task_name])
"""

EXPECTED_SAVED = [
    "Combine(all) = ['loaded a.csv x3'] + ['loaded b.csv x2']",
    "Load(a) = loaded a.csv",
    "Load(b) = loaded b.csv",
    "Transform(left) = ['loaded a.csv x3']",
    "Transform(right) = ['loaded b.csv x2']",
]


def test_save_and_load_pipeline_then_read_results(tmp_path):
    write(tmp_path, "tasks_mod.py", TASKS_MOD)
    write(tmp_path, "save.py", SAVE)
    write(tmp_path, "load_and_run.py", LOAD_AND_RUN)
    write(tmp_path, "read_results.py", READ_RESULTS)

    run_script(tmp_path, "save.py")
    saved = yaml.safe_load((tmp_path / "my-pipeline.yml").read_text())
    assert saved["pipeline"]["name"] == "my-pipeline"
    assert set(saved["pipeline"]["tasks"]) == {
        "Load(a)",
        "Load(b)",
        "Transform(left)",
        "Transform(right)",
        "Combine(all)",
    }
    assert not stored_results(tmp_path / "data")  # saving runs nothing

    done = run_script(tmp_path, "load_and_run.py")
    assert done.stdout.splitlines() == EXPECTED_SAVED
    (run_dir,) = run_folders(tmp_path / "log", "my-pipeline")
    keys = {name: spec["key"] for name, spec in saved["pipeline"]["tasks"].items()}
    for name, key in keys.items():
        assert (tmp_path / "data" / name / key / "result.dump.gz").is_file(), name

    done = run_script(tmp_path, "read_results.py", str(run_dir / "pipeline.yaml"))
    assert done.stdout.splitlines() == EXPECTED_SAVED

    # the run's own pipeline.yaml loads with Pipeline.from_file, and everything is cached
    write(
        tmp_path,
        "rerun.py",
        f"""
        from pyperunner import Pipeline, Runner

        import tasks_mod  # noqa: F401

        pipeline = Pipeline.from_file({str(run_dir / "pipeline.yaml")!r})
        result = Runner(data_path="data/", log_path="log/").run(pipeline)
        print(sorted(set(s.value for s in result.statuses.values())))
        """,
    )
    done = run_script(tmp_path, "rerun.py")
    assert done.stdout.strip() == "['CACHED']"


MAIN_ROUND_TRIP = """
from pyperunner import Pipeline, Runner, Sequential, task


@task("First", receives_input=False)
def first(value):
    return value


@task("Second")
def second(data, offset):
    return data[0] + offset


if __name__ == "__main__":
    pipeline = Sequential("round-trip", [first(value=1), second(offset=10)])
    pipeline.to_file("round-trip.yml")
    loaded = Pipeline.from_file("round-trip.yml")
    print("SAME KEYS", {t.name: t.hash() for t in loaded.tasks()} == {
        t.name: t.hash() for t in pipeline.tasks()
    })
    print("TYPES", sorted(type(t).__module__ for t in loaded.tasks()))
    result = Runner(data_path="data/", log_path="log/").run(loaded)
    print("RESULT", result["Second()"])
"""


def test_main_script_function_tasks_round_trip_through_file(tmp_path):
    write(tmp_path, "round_trip.py", MAIN_ROUND_TRIP)
    done = run_script(tmp_path, "round_trip.py")
    lines = done.stdout.splitlines()
    assert "SAME KEYS True" in lines
    assert "TYPES ['__main__', '__main__']" in lines
    assert "RESULT 11" in lines


# --------------------------------------------------------------------------- caching walkthrough


CACHING = """
import json
from pathlib import Path

from pyperunner import Runner, Sequential, task

RAN = Path("ran.txt")


@task("simple-task")
def simpletask(data, param):
    with open(RAN, "a") as handle:
        handle.write(f"{param}\\n")
    return "simple-task"


def ran():
    names = sorted(RAN.read_text().split()) if RAN.exists() else []
    RAN.unlink(missing_ok=True)
    return names


if __name__ == "__main__":
    first_task = simpletask(tag="first", param=1)
    second_task = simpletask(tag="second", param=2)
    third_task = simpletask(tag="third", param=3)
    fourth_task = simpletask(tag="fourth", param=4)
    pipeline = Sequential("sequential", [first_task, second_task, third_task, fourth_task])

    runner = Runner(data_path="data/", log_path="log/")
    runner.run(pipeline)
    steps = {"first run": ran()}

    runner.run(pipeline)
    steps["re-run"] = ran()

    third_task = simpletask(tag="third", param=3, reload=True)
    pipeline = Sequential("sequential", [first_task, second_task, third_task, fourth_task])
    runner.run(pipeline)
    steps["reload"] = ran()

    pipeline = Sequential("sequential", [first_task, second_task, third_task, fourth_task])
    runner.run(pipeline, force_reload=True)
    steps["force_reload"] = ran()

    first_task = simpletask(tag="first", param=1)
    second_task = simpletask(tag="second", param="CHANGED")
    third_task = simpletask(tag="third", param=3)
    fourth_task = simpletask(tag="fourth", param=4)
    pipeline = Sequential("sequential", [first_task, second_task, third_task, fourth_task])
    runner.run(pipeline)
    steps["changed"] = ran()

    print("STEPS", json.dumps(steps))
"""


def test_caching_walkthrough_of_the_manual(tmp_path):
    write(tmp_path, "caching.py", CACHING)
    done = run_script(tmp_path, "caching.py")
    line = next(line for line in done.stdout.splitlines() if line.startswith("STEPS "))
    steps = json.loads(line[len("STEPS ") :])
    assert steps == {
        "first run": ["1", "2", "3", "4"],
        "re-run": [],
        "reload": ["3", "4"],
        "force_reload": ["1", "2", "3", "4"],
        "changed": ["3", "4", "CHANGED"],
    }
    assert len(run_folders(tmp_path / "log", "sequential")) == 5
