"""Tests for the ``pyperunner`` command (``pyperunner.cli``): run, runs, show, result, report,
explain and gc on pipelines saved from a task module written into a temporary folder, mostly
in-process with click's runner and the inline executor, once as a real subprocess."""

from __future__ import annotations

import base64
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import joblib
import pytest
import yaml
from click.testing import CliRunner, Result
from conftest import Clean, Feature, Source, Train, feature_pipeline

from pyperunner import Pipeline, PipelineError, PipelineResult, Runner, StoreError
from pyperunner.cli import main
from pyperunner.report.ascii import draw_ascii
from pyperunner.store import Store

TASKS = """
from pyperunner import Pipeline, Task, run, task


@task("Load", receives_input=False)
def load(size=3):
    return list(range(size))


@task("Scale")
def scale(data, factor=2, fail=False):
    if fail:
        raise ValueError("asked to fail")
    return [x * factor for x in data[0]]


class Total(Task):
    @run
    def run(self, data):
        return {"total": sum(data[0]), "count": len(data[0])}


def make(factor=2, fail=False):
    return Pipeline("demo", [Total()(scale(factor=factor, fail=fail)(load()))])
"""

NAMES = ["Load()", "Scale()", "Total()"]


@dataclass
class Project:
    """A folder with ``mytasks.py``, the current directory of the test."""

    root: Path

    def pipeline(self, fname: str = "pipeline.yml", **params: object) -> Path:
        """Save the demo pipeline built with ``params`` to ``fname`` and return its path."""
        mytasks = importlib.import_module("mytasks")
        return mytasks.make(**params).to_file(self.root / fname)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "log"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    (tmp_path / "mytasks.py").write_text(textwrap.dedent(TASKS).lstrip())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))  # undo what the command adds
    sys.modules.pop("mytasks", None)
    importlib.invalidate_caches()
    monkeypatch.syspath_prepend(str(tmp_path))
    yield Project(tmp_path)
    sys.modules.pop("mytasks", None)


def cli(*args: object, code: int = 0) -> Result:
    """Invoke the command in-process and check its exit code."""
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == code, result.output
    return result


def error(*args: object) -> str:
    """The error of a command that must fail as bad usage (exit 2): one line, no traceback."""
    output = cli(*args, code=2).output.strip()
    assert len(output.splitlines()) == 1 and output.startswith("Error: "), output
    return output


def edit_yaml(path: Path, change: Callable[[Any], object]) -> None:
    """Rewrite a YAML file after ``change(doc)`` edited its document in place."""
    doc = yaml.safe_load(path.read_text())
    change(doc)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))


def run_inline(pipeline: Path, *args: object, code: int = 0) -> Path:
    """``pyperunner run`` with the inline executor; returns the run folder it made."""
    result = cli("run", pipeline, "--executor", "inline", *args, code=code)
    return run_folder(result.output)


def run_folder(output: str) -> Path:
    match = re.search(r"^Run folder: (.+)$", output, re.MULTILINE)
    assert match, output
    return Path(match.group(1))


def statuses(run_dir: Path) -> dict[str, str]:
    doc = yaml.safe_load((run_dir / "run.yaml").read_text())
    return {name: spec["status"] for name, spec in doc["tasks"].items()}


def task_keys(run_dir: Path) -> set[tuple[str, str]]:
    doc = yaml.safe_load((run_dir / "pipeline.yaml").read_text())
    return {(name, spec["key"]) for name, spec in doc["pipeline"]["tasks"].items()}


# --------------------------------------------------------------------------- run


def test_run_success_makes_a_run_folder_and_stores_results(project: Project) -> None:
    run_dir = run_inline(project.pipeline())
    assert run_dir.parent == project.log
    assert {p.name for p in run_dir.iterdir()} >= {"pipeline.yaml", "run.yaml", "pipeline.log"}
    assert statuses(run_dir) == dict.fromkeys(NAMES, "SUCCESS")
    assert PipelineResult.from_file(run_dir)["Total()"] == {"total": 6, "count": 3}
    assert len(list(project.data.glob("*/*/result.dump.gz"))) == 3


def test_run_with_a_failing_task_exits_1(project: Project) -> None:
    result = cli("run", project.pipeline(fail=True), "--executor", "inline", code=1)
    assert "FAILED Scale(): ValueError: asked to fail" in result.output
    assert statuses(run_folder(result.output)) == {
        "Load()": "SUCCESS",
        "Scale()": "FAILURE",
        "Total()": "CANT_RUN",
    }


def test_run_missing_file_is_bad_usage(project: Project) -> None:
    result = cli("run", "nowhere.yml", code=2)
    assert "no pipeline file nowhere.yml" in result.output
    assert not project.log.exists()


def test_run_unknown_executor_is_bad_usage(project: Project) -> None:
    result = cli("run", project.pipeline(), "--executor", "nope", code=2)
    assert "nope" in result.output
    assert not project.log.exists()


def test_run_unloadable_pipeline_says_what_to_do(project: Project) -> None:
    path = project.pipeline()
    path.write_text(path.read_text().replace("module: mytasks", "module: othertasks"))
    result = cli("run", path, code=2)
    assert "cannot load pipeline" in result.output
    assert "--import MODULE" in result.output
    assert "Traceback" not in result.output
    not_yaml = project.root / "notes.yml"
    not_yaml.write_text("just: words\n")
    assert "no 'pipeline' section" in cli("run", not_yaml, code=2).output


def test_run_imports_modules_and_finds_tasks_from_another_folder(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = project.pipeline("pipelines/demo.yml")
    elsewhere = project.root / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    sys.modules.pop("mytasks", None)
    run_dir = run_inline(path, "--import", "mytasks")
    assert run_dir.parent == elsewhere / "log"
    assert statuses(run_dir) == dict.fromkeys(NAMES, "SUCCESS")
    result = cli("run", path, "--import", "no_such_module", code=2)
    assert "cannot import module 'no_such_module'" in result.output


def test_run_force_reload_and_workers(project: Project) -> None:
    path = project.pipeline()
    run_inline(path)
    assert set(statuses(run_inline(path)).values()) == {"CACHED"}
    run_dir = run_inline(path, "--force-reload", "--workers", "1")
    assert set(statuses(run_dir).values()) == {"SUCCESS"}
    assert yaml.safe_load((run_dir / "pipeline.yaml").read_text())["run"]["process_limit"] == 1
    cli("run", path, "--workers", "0", code=2)


def test_run_as_a_real_command(project: Project) -> None:
    command = shutil.which("pyperunner")
    argv = [command] if command else [sys.executable, "-m", "pyperunner.cli"]
    path = project.pipeline()
    args = ["run", path.name, "--data-path", "store", "--log-path", "runs", "--workers", "2"]
    done = subprocess.run(
        [*argv, *args], cwd=project.root, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    run_dir = run_folder(done.stdout)
    assert run_dir.parent == project.root / "runs"
    assert statuses(run_dir) == dict.fromkeys(NAMES, "SUCCESS")
    assert "Finished Total()" in done.stderr  # the run's log on the console
    assert PipelineResult.from_file(run_dir)["Scale()"] == [0, 2, 4]
    project.pipeline("bad.yml", fail=True)
    failed = subprocess.run(
        [*argv, "run", "bad.yml", "--data-path", "store", "--log-path", "runs"],
        cwd=project.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1, failed.stdout + failed.stderr


BROKEN_MODULE = "raise RuntimeError('boom at import')\n"

MALFORMED = {  # a change to a saved pipeline file, and what the error must say
    "tasks-a-list": (
        lambda doc: doc["pipeline"].update(tasks=list(doc["pipeline"]["tasks"].values())),
        "the 'tasks' of pipeline 'demo' must map each task name to its entry",
    ),
    "entry-a-string": (
        lambda doc: doc["pipeline"]["tasks"].update({"Load()": "Load"}),
        "task entry 'Load()' is a str, not a mapping",
    ),
    "module-raises": (
        lambda doc: doc["pipeline"]["tasks"]["Load()"].update(module="broken"),
        "task 'Load()': importing its module broken failed with RuntimeError: boom at import",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
@pytest.mark.parametrize("command", ["run", "explain"])
def test_a_malformed_pipeline_file_is_a_one_line_error_naming_file_and_task(
    project: Project, command: str, case: str
) -> None:
    (project.root / "broken.py").write_text(BROKEN_MODULE)
    path = project.pipeline("bad.yml")
    change, problem = MALFORMED[case]
    edit_yaml(path, change)
    message = error(command, path)
    assert message.startswith(f"Error: cannot load pipeline {path}: {problem}"), message
    assert not project.log.exists()
    with pytest.raises(PipelineError) as info:  # the same clear error from Python
        Pipeline.from_file(path)
    assert problem in str(info.value)


def test_an_import_that_raises_is_a_one_line_error_naming_the_module(project: Project) -> None:
    (project.root / "broken.py").write_text(BROKEN_MODULE)
    (project.root / "needs.py").write_text("import no_such_dependency_pyperunner\n")
    message = error("run", project.pipeline(), "--import", "broken")
    assert "importing module 'broken' given by --import failed with RuntimeError: boom" in message
    message = error("explain", project.pipeline(), "--import", "needs")
    assert "importing module 'needs' given by --import failed with ModuleNotFoundError" in message
    assert "no_such_dependency_pyperunner" in message
    assert not project.log.exists()


SAVE_FROM_MAIN = (
    TASKS
    + """

if __name__ == "__main__":
    make().to_file("main.yml")
"""
)

LOAD_FROM_MODULE = """
from mytasks import Total, load, scale  # the same tasks, now defined in a module
from pyperunner import KeyMismatchError, Pipeline

try:
    Pipeline.from_file("main.yml")
except KeyMismatchError as exc:
    print(exc)
"""


def test_tasks_saved_from_main_name_module_and_class_and_say_what_to_do(project: Project) -> None:
    (project.root / "save.py").write_text(SAVE_FROM_MAIN)
    (project.root / "load.py").write_text(LOAD_FROM_MODULE)
    saved = subprocess.run(
        [sys.executable, "save.py"], cwd=project.root, capture_output=True, timeout=60
    )
    assert saved.returncode == 0, saved.stderr
    message = error("run", "main.yml", "--import", "mytasks")
    assert "task 'Load()': cannot find __main__.load" in message
    assert "saved from a script run as __main__" in message
    assert "define the task in a module" in message and "--import" in message
    loaded = subprocess.run(
        [sys.executable, "load.py"], cwd=project.root, capture_output=True, text=True, timeout=60
    )
    assert loaded.returncode == 0, loaded.stderr
    assert "the file saved it as __main__.load, but __main__.load is now mytasks.load" in (
        loaded.stdout
    )
    assert "define it under that module and name again" in loaded.stdout
    assert "its class or name changed" not in loaded.stdout


# --------------------------------------------------------------------------- runs, show


def test_runs_lists_every_run_in_start_order(project: Project) -> None:
    first = run_inline(project.pipeline())
    second = run_inline(project.pipeline(fail=True), code=1)
    third = run_inline(project.pipeline(factor=4))
    (third / "run.yaml").unlink()
    summary = json.loads((third / "summary.json").read_text())  # as when its runner was killed
    (third / "summary.json").write_text(json.dumps({**summary, "finished": None}))
    output = cli("runs", project.log).output
    lines = output.splitlines()
    assert lines[0].split() == ["RUN", "PIPELINE", "STARTED", "DURATION", "TASKS"]
    assert [line.split()[0] for line in lines[1:]] == [first.name, second.name, third.name]
    assert lines[1].endswith("3 SUCCESS")
    assert lines[2].endswith("1 CACHED, 1 FAILURE, 1 CANT_RUN")
    assert lines[3].endswith("incomplete")
    assert all(" demo " in line for line in lines[1:])
    assert cli("runs").output == output  # log/ by default
    cli("runs", project.root / "missing", code=2)


BAD_OUTCOMES = {  # a change to a run's run.yaml, and what the error must say
    "unknown-status": (
        lambda doc: doc["tasks"]["Load()"].update(status="WEIRD"),
        "task 'Load()' has the unknown status 'WEIRD'",
    ),
    "tasks-a-list": (
        lambda doc: doc.update(tasks=[1]),
        "its 'tasks' is not a mapping of task name to record",
    ),
}


def made_before_journals(run_dir: Path) -> Path:
    """``run_dir`` as a run made before runs kept a journal and a summary: its YAML files are
    what the commands read of it (a journal, once there, is read instead)."""
    for name in ("events.jsonl", "summary.json"):
        (run_dir / name).unlink(missing_ok=True)
    return run_dir


def broken_copy(run_dir: Path, name: str, fname: str, change: Callable[[Any], object]) -> Path:
    """A copy of ``run_dir`` called ``name``, made before journals, whose file ``fname`` is
    changed by ``change``."""
    copy = made_before_journals(shutil.copytree(run_dir, run_dir.parent / name))
    edit_yaml(copy / fname, change)
    return copy


def test_runs_lists_every_run_and_shows_broken_ones_as_unreadable(project: Project) -> None:
    good = run_inline(project.pipeline())
    for case, (change, _) in BAD_OUTCOMES.items():
        broken_copy(good, case, "run.yaml", change)
    not_yaml = shutil.copytree(good, project.log / "not-yaml")
    (not_yaml / "pipeline.yaml").write_text("pipeline: [oops\n")
    made_before_journals(not_yaml)
    broken_copy(good, "no-tasks", "pipeline.yaml", lambda doc: doc["pipeline"].pop("tasks"))
    lines = cli("runs", project.log).output.splitlines()
    rows = {line.split()[0]: line for line in lines[1:]}
    assert set(rows) == {good.name, *BAD_OUTCOMES, "not-yaml", "no-tasks"}
    assert rows[good.name].endswith("3 SUCCESS")
    for case, (_, problem) in BAD_OUTCOMES.items():
        assert rows[case].endswith(f"unreadable run.yaml: {problem}"), rows[case]
        assert " demo " in rows[case]  # pipeline.yaml is fine: its name and start are shown
    assert "unreadable pipeline.yaml: cannot be read" in rows["not-yaml"]
    assert rows["no-tasks"].endswith(
        "unreadable pipeline.yaml: its 'tasks' is not a mapping of task name to entry"
    )


@pytest.mark.parametrize("case", sorted(BAD_OUTCOMES))
@pytest.mark.parametrize("command", [["show"], ["report"], ["result", "Load()"]], ids=" ".join)
def test_a_run_with_a_broken_run_yaml_is_a_one_line_error(
    project: Project, command: list[str], case: str
) -> None:
    run_dir = made_before_journals(run_inline(project.pipeline()))
    change, problem = BAD_OUTCOMES[case]
    edit_yaml(run_dir / "run.yaml", change)
    (run_dir / "report.html").unlink(missing_ok=True)
    message = error(command[0], run_dir, *command[1:])
    assert f"{run_dir / 'run.yaml'}: {problem}; fix it, or delete it" in message
    assert not (run_dir / "report.html").exists()


@pytest.mark.parametrize("command", [["show"], ["report"], ["result", "Load()"]], ids=" ".join)
def test_a_yaml_file_that_is_not_a_run_is_a_one_line_error(
    project: Project, command: list[str]
) -> None:
    saved = project.pipeline("pipeline.yaml")  # named like a run's file, but not a run
    message = error(command[0], saved, *command[1:])
    assert "pipeline.yaml: no 'run' section saying where its data is" in message
    assert "give a run folder made by pyperunner run" in message
    notes = project.root / "notes.yaml"
    notes.write_text("just: words\n")
    assert "no 'pipeline' section" in error(command[0], notes, *command[1:])
    assert not (project.root / "report.html").exists()


def test_show_of_a_failed_run_exits_0_and_shows_the_failure_and_its_error(
    project: Project,
) -> None:
    run_dir = run_inline(project.pipeline(fail=True), code=1)
    lines = cli("show", run_dir).output.rstrip().splitlines()  # exit 0: show only looks
    assert lines[-1] == "FAILED Scale(): ValueError: asked to fail"
    assert lines[-2].startswith("1 task(s) failed; for a traceback: pyperunner result ")
    hinted = shlex.split(lines[-2].partition("for a traceback: ")[2])
    traceback = cli(*hinted[1:], code=1).output  # the command it suggests works
    assert "Traceback" in traceback and 'raise ValueError("asked to fail")' in traceback
    made_before_journals(run_dir)
    edit_yaml(run_dir / "run.yaml", lambda doc: doc["tasks"]["Scale()"].update(error=None))
    assert cli("show", run_dir).output.rstrip().endswith("FAILED Scale(): no error recorded")


def test_show_draws_statuses_durations_and_errors(project: Project) -> None:
    run_dir = run_inline(project.pipeline(fail=True), code=1)
    output = cli("show", run_dir).output
    assert re.search(r"\| Load\(\) \[SUCCESS \d+(\.\d+)? m?s\] \|", output), output
    assert re.search(r"\| Scale\(\) \[FAILURE \d+(\.\d+)? m?s\] \|", output), output
    assert "| Total() [CANT_RUN] |" in output
    assert "1 SUCCESS, 1 FAILURE, 1 CANT_RUN" in output
    assert output.rstrip().splitlines()[-1] == "FAILED Scale(): ValueError: asked to fail"
    assert cli("show", run_dir / "pipeline.yaml").output == output
    cached = run_inline(project.pipeline())
    assert "| Load() [CACHED] |" in cli("show", cached).output


def test_show_of_a_folder_without_a_run_is_bad_usage(project: Project) -> None:
    assert "does not exist" in cli("show", project.data, code=2).output
    project.data.mkdir()
    assert "not a run folder" in cli("show", project.data, code=2).output
    saved = cli("show", project.pipeline(), code=2).output  # a pipeline file, not a run
    assert "give a run folder made by pyperunner run" in saved


def features_run(tmp_path: Path, pipeline: Pipeline | None = None) -> Path:
    """The run folder of the wide features pipeline (or of ``pipeline``), run inline."""
    runner = Runner(tmp_path / "data", tmp_path / "log", executor="inline", console=False)
    return runner.run(pipeline or feature_pipeline()).run_dir


def drawn_lines(output: str) -> list[str]:
    """The lines ``show`` prints but the failures (messages left whole, as a command in them)."""
    return [line for line in output.splitlines() if not re.match(r"FAILED |\d+ task\(s\)", line)]


def test_show_fits_120_columns_by_drawing_like_tasks_as_one_box(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    output = cli("show", features_run(tmp_path)).output  # not a terminal: 120 columns
    assert max(map(len, drawn_lines(output))) <= 120  # 1572 when drawn task by task
    for box in (
        "Source(s0 ... s6), 7 tasks [7 SUCCESS]",
        "Clean(s0 ... s6), 7 tasks [7 SUCCESS]",
        "Feature(s0-len ... s6-sum), 42 tasks [40 SUCCESS, 2 FAILURE]",
        "Train(model) [CANT_RUN]",
        "Report(final) [CANT_RUN]",
    ):
        assert f"| {box} |" in output
    assert output.rstrip().splitlines()[-2:] == [
        "FAILED Feature(s2-max): ValueError: no max for s2-max",
        "FAILED Feature(s5-std): ValueError: no std for s5-std",
    ]


def test_show_fits_the_columns_asked_for_and_lists_layers_where_boxes_cannot_fit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = features_run(tmp_path)
    monkeypatch.setenv("COLUMNS", "250")
    wide = cli("show", run_dir).output
    assert max(map(len, drawn_lines(wide))) <= 250
    assert re.search(r"\| Source\(s3\) \[SUCCESS \d+ m?s\] \|", wide)  # room for each source
    assert "| Feature(s0-len ... s6-sum), 42 tasks [40 SUCCESS, 2 FAILURE] |" in wide
    monkeypatch.setenv("COLUMNS", "40")
    narrow = cli("show", run_dir).output
    listed = drawn_lines(narrow)[3:]  # after the header (wider: a message) and its blank line
    assert max(map(len, listed)) <= 40
    assert listed[listed.index("layer 3:") + 1 :][:3] == [
        "  Feature(s0-len ... s6-sum), 42 tasks",
        "    [40 SUCCESS, 2 FAILURE]",
        "    <- Clean(s0 ... s6), 7 tasks",
    ]
    assert narrow.rstrip().endswith("FAILED Feature(s5-std): ValueError: no std for s5-std")


def test_show_draws_a_pipeline_that_fits_task_by_task_as_the_run_s_tasks_are(
    tmp_path: Path,
) -> None:
    cleaned = Clean("s0")(Source("s0", rows=10))
    features = [Feature(f"s0-{kind}", kind=kind)(cleaned) for kind in ("mean", "std")]
    run_dir = features_run(tmp_path, Pipeline("small", [Train("model")(features)]))
    output = cli("show", run_dir).output
    labels = {label.partition(" [")[0]: label for label in re.findall(r"\| (.+?) \|", output)}
    tasks = yaml.safe_load((run_dir / "pipeline.yaml").read_text())["pipeline"]["tasks"]
    assert set(labels) == set(tasks) and len(tasks) == 5
    edges = [(parent, name) for name, spec in tasks.items() for parent in spec["parents"]]
    assert draw_ascii(list(tasks), edges, labels) in output  # the drawing it always was


def test_show_draws_a_long_chain_of_like_tasks_as_one_box(tmp_path: Path) -> None:
    steps = [Source("s0", rows=1)]
    for k in range(1, 150):
        steps.append(Train(f"s{k}")(steps[-1]))
    output = cli("show", features_run(tmp_path, Pipeline("long", [steps[0]]))).output
    assert "| Source(s0) [SUCCESS" in output
    assert "| Train(s1 ... s149), 149 tasks [149 SUCCESS] |" in output
    assert len(output.splitlines()) < 20  # not 3 lines a task


def test_the_width_is_the_terminal_s_or_columns_or_120(monkeypatch: pytest.MonkeyPatch) -> None:
    from pyperunner.report.terminal import terminal_width

    class Stream:
        def __init__(self, tty: bool) -> None:
            self.tty = tty

        def isatty(self) -> bool:
            return self.tty

    monkeypatch.delenv("COLUMNS", raising=False)
    assert terminal_width(Stream(tty=False)) == 120
    monkeypatch.setenv("COLUMNS", "77")
    assert terminal_width(Stream(tty=False)) == 77
    monkeypatch.delenv("COLUMNS")
    monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback: os.terminal_size((90, 30)))
    assert terminal_width(Stream(tty=True)) == 90


def test_show_result_and_report_of_a_log_folder_use_its_latest_run(project: Project) -> None:
    run_inline(project.pipeline(fail=True), code=1)
    latest = run_inline(project.pipeline(factor=3))
    shown = CliRunner().invoke(main, ["show", str(project.log)])
    assert shown.exit_code == 0, shown.output
    assert shown.stderr == f"Using the latest run in {project.log}: {latest.name}\n"
    assert shown.stdout.startswith(f"Run {latest.name} of pipeline demo")
    printed = CliRunner().invoke(main, ["result", "log", "Total"])
    assert printed.exit_code == 0, printed.output
    assert printed.stdout == "{'count': 3, 'total': 9}\n"  # the output alone, for a pipe
    assert latest.name in printed.stderr
    assert cli("report", project.log).stdout.strip() == str(latest / "report.html")
    (project.root / "empty").mkdir()
    assert "nor a log folder holding one" in error("show", project.root / "empty")


# --------------------------------------------------------------------------- result, report


def test_result_prints_and_saves_an_output(project: Project) -> None:
    run_dir = run_inline(project.pipeline())
    assert cli("result", run_dir, "Total()").output == "{'count': 3, 'total': 6}\n"
    assert cli("result", run_dir, "Scale").output == "[0, 2, 4]\n"  # the tag may be left out
    out = project.root / "total.joblib"
    result = cli("result", run_dir / "pipeline.yaml", "Total()", "--out", out)
    assert "joblib.load" in result.output
    assert joblib.load(out) == {"total": 6, "count": 3}
    nowhere = cli("result", run_dir, "Total()", "--out", project.root / "no" / "x", code=2)
    assert "cannot write" in nowhere.output and "Traceback" not in nowhere.output


def test_result_of_a_failed_task_exits_1_and_unknown_task_2(project: Project) -> None:
    run_dir = run_inline(project.pipeline(fail=True), code=1)
    failed = cli("result", run_dir, "Scale()", code=1)
    assert "ended FAILURE (ValueError: asked to fail)" in failed.output
    cli("result", run_dir, "Total()", code=1)
    unknown = cli("result", run_dir, "Nope()", code=2)
    assert "Load(), Scale(), Total()" in unknown.output


def test_report_writes_report_html(project: Project) -> None:
    pytest.importorskip("pyperunner.report.html")
    run_dir = run_inline(project.pipeline())
    (run_dir / "report.html").unlink(missing_ok=True)
    output = cli("report", run_dir).output
    assert Path(output.strip()) == run_dir / "report.html"
    assert (run_dir / "report.html").stat().st_size > 0


# --------------------------------------------------------------------------- explain


def explained(pipeline: Path, *args: object) -> dict[str, tuple[str, str]]:
    """``pyperunner explain``'s table as {task: (decision, why)}."""
    output = cli("explain", pipeline, *args).output
    rows = output.split("\n\n")[0].splitlines()[1:]
    parsed = {}
    for row in rows:
        decision, name, *why = row.split(maxsplit=2)
        parsed[name] = (decision, why[0] if why else "")
    return parsed


def test_explain_before_and_after_runs(project: Project) -> None:
    path = project.pipeline()
    assert explained(path) == {
        "Load()": ("run", "no cached result"),
        "Scale()": ("run", "upstream task Load() runs"),
        "Total()": ("run", "upstream task Scale() runs"),
    }
    assert not project.log.exists() and not project.data.exists()  # nothing ran
    run_inline(path)
    assert explained(path) == dict.fromkeys(NAMES, ("cached", ""))
    assert explained(path, "--force-reload")["Load()"] == ("run", "force_reload=True")
    changed = project.pipeline(factor=3)
    assert explained(changed) == {
        "Load()": ("cached", ""),
        "Scale()": ("run", "parameters changed: factor"),
        "Total()": ("run", "upstream task Scale() runs"),
    }
    output = cli("explain", changed, "--graph").output
    assert "2 task(s) would run, 1 cached" in output
    assert "| Scale() [run: parameters changed: factor] |" in output
    assert explained(changed, "--data-path", "elsewhere")["Load()"] == ("run", "no cached result")


def test_explain_after_a_code_change_says_code_changed(project: Project) -> None:
    path = project.pipeline()
    run_inline(path)
    source = project.root / "mytasks.py"
    source.write_text(source.read_text().replace("x * factor", "factor * x + 0"))
    sys.modules.pop("mytasks", None)
    importlib.invalidate_caches()
    result = cli("explain", path)
    assert re.search(r"^run +Scale\(\) +code changed$", result.output, re.MULTILINE), result.output
    assert "using the tasks as they are now" in result.output


# --------------------------------------------------------------------------- gc


def two_generations(project: Project) -> tuple[Path, Path, set[tuple[str, str]]]:
    """An old run (under old-log/) and a new one (under log/) with another factor.

    Returns both run folders and the entries only the old one uses.
    """
    old = run_inline(project.pipeline(factor=2), "--log-path", "old-log")
    new = run_inline(project.pipeline(factor=3))
    garbage = task_keys(old) - task_keys(new)
    assert {name for name, _ in garbage} == {"Scale()", "Total()"}
    return old, new, garbage


def listed(output: str, word: str) -> set[tuple[str, str]]:
    found = re.findall(rf"^{word} +(\S+)/(\w+)", output, re.MULTILINE)
    return {(name, key) for name, key in found}


def test_gc_dry_run_lists_exactly_the_unkept_entries(project: Project) -> None:
    _, _, garbage = two_generations(project)
    before = sorted(project.data.rglob("*"))
    output = cli("gc", project.data, "--keep", project.log).output
    assert listed(output, "would delete") == garbage
    assert re.search(r"would delete +Scale\(\)/\w+ +\d+(\.\d)? (B|KiB)$", output, re.MULTILINE)
    assert "Would delete 2 entries" in output
    assert "kept 3 entries used by 1 run(s)" in output
    assert sorted(project.data.rglob("*")) == before
    both = cli("gc", project.data, "--keep", project.log, "--keep", project.root / "old-log")
    assert "Would delete 0 entries" in both.output


def test_gc_delete_removes_garbage_and_keeps_the_rest(project: Project) -> None:
    old, new, garbage = two_generations(project)
    output = cli("gc", project.data, "--keep", project.log, "--delete").output
    assert listed(output, "deleted") == garbage
    assert "Deleted 2 entries" in output
    store = Store(project.data)
    assert set(store.entries()) == task_keys(new)
    kept = PipelineResult.from_file(new)
    assert kept["Total()"] == {"total": 9, "count": 3}
    assert kept["Load()"] == [0, 1, 2]
    with pytest.raises(StoreError):
        PipelineResult.from_file(old)["Total()"]
    again = cli("gc", project.data, "--keep", project.log)
    assert "Would delete 0 entries" in again.output


def test_gc_delete_also_sweeps_leftovers_of_interrupted_writes_in_kept_entries(
    project: Project,
) -> None:
    _, new, _ = two_generations(project)
    kept = PipelineResult.from_file(new)
    leftover = kept.path("Load()").parent / ".result.dump.gz.abcd1234.tmp"
    leftover.write_bytes(b"half a result")
    listed_only = cli("gc", project.data, "--keep", project.log).output
    assert "would remove 1 temporary file(s)" in listed_only and leftover.exists()
    output = cli("gc", project.data, "--keep", project.log, "--delete").output
    assert "removed 1 temporary file(s)" in output
    assert not leftover.exists()
    assert kept["Load()"] == [0, 1, 2]


def test_gc_never_deletes_a_locked_entry(project: Project) -> None:
    _, new, garbage = two_generations(project)
    locked = min(garbage)
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with Store(project.data).lock(*locked):
            held.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(10)
        output = cli("gc", project.data, "--keep", project.log, "--delete").output
    finally:
        release.set()
        holder.join()
    assert listed(output, "skipped") == {locked}
    assert listed(output, "deleted") == garbage - {locked}
    assert "skipped 1 locked" in output
    assert Store(project.data).has(*locked)
    assert set(Store(project.data).entries()) == task_keys(new) | {locked}


def test_gc_keeps_what_one_run_folder_or_its_pipeline_yaml_uses(project: Project) -> None:
    old, new, garbage = two_generations(project)
    for keep in (new, new / "pipeline.yaml"):
        output = cli("gc", project.data, "--keep", keep).output
        assert listed(output, "would delete") == garbage
        assert "kept 3 entries used by 1 run(s)" in output
    output = cli("gc", project.data, "--keep", old, "--delete").output
    assert listed(output, "deleted") == task_keys(new) - task_keys(old)
    assert set(Store(project.data).entries()) == task_keys(old)


def test_gc_stops_with_a_one_line_error_at_an_unreadable_kept_run(project: Project) -> None:
    run_dir = made_before_journals(run_inline(project.pipeline()))
    edit_yaml(run_dir / "pipeline.yaml", lambda doc: doc["pipeline"].update(tasks=[1]))
    message = error("gc", project.data, "--keep", project.log, "--delete")
    assert f"{run_dir / 'pipeline.yaml'}: its 'tasks' is not a mapping" in message
    assert "fix or remove it, then run gc again" in message
    assert len(list(project.data.glob("*/*/result.dump.gz"))) == 3


@pytest.mark.parametrize("cut", ["after-a-task", "mid-entry"])
def test_gc_stops_at_a_kept_run_whose_pipeline_yaml_was_cut_short(
    project: Project, cut: str
) -> None:
    _, new, _ = two_generations(project)
    path = made_before_journals(new) / "pipeline.yaml"
    text = path.read_text()
    second = text.index("\n    ", text.index("    key:")) + 1  # the entry after the first key
    end = text.index("\n  ", second) if cut == "after-a-task" else text.index("    key:", second)
    path.write_text(text[:end] + "\n")
    before = set(Store(project.data).entries())
    message = error("gc", project.data, "--keep", new, "--delete")
    assert str(path) in message and "fix or remove it, then run gc again" in message
    assert set(Store(project.data).entries()) == before  # nothing was deleted


def test_gc_refuses_when_no_run_is_kept(project: Project) -> None:
    run_inline(project.pipeline())
    empty = project.root / "empty"
    empty.mkdir()
    output = cli("gc", project.data, "--keep", empty, "--delete", code=2).output
    assert "no run folder found" in output
    assert len(list(project.data.glob("*/*/result.dump.gz"))) == 3


# --------------------------------------------------------------------------- help


@pytest.mark.parametrize("command", [None, *sorted(main.commands)])
def test_every_help_explains_with_an_example(command: str | None) -> None:
    args = [command, "--help"] if command else ["--help"]
    output = cli(*args).output
    assert "Example" in output
    assert "pyperunner " in output


def test_version() -> None:
    assert re.search(r"pyperunner, version \d+\.\d+", cli("--version").output)


@pytest.mark.parametrize("command", ["run", "explain", "show", "report"])
def test_a_binary_file_given_as_pipeline_or_run_is_bad_usage(tmp_path: Path, command: str) -> None:
    binary = tmp_path / "binary.yml"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe\x00 not text")
    assert "not a text" in error(command, binary)


@pytest.mark.parametrize(
    ("command", "data_path"),
    [
        ("run", "nosuchprotocol://x"),
        ("run", "memory://cli"),  # the default process executor's workers would not see it
        ("explain", "nosuchprotocol://x"),
        ("gc", "nosuchprotocol://x"),
    ],
)
def test_a_data_path_that_cannot_be_used_is_bad_usage(project: Project, command, data_path):
    pipeline = project.pipeline()
    if command == "gc":
        run_inline(pipeline)
        message = error("gc", data_path, "--keep", project.log)
    else:
        message = error(command, pipeline, "--data-path", data_path)
    assert data_path in message


def test_hand_edited_run_files_of_the_wrong_types_are_bad_usage_naming_them(project: Project):
    run_dir = run_inline(project.pipeline())
    for file, change in [
        ("run.yaml", lambda doc: doc["tasks"]["Load()"].update(traceback=["x"])),
        ("run.yaml", lambda doc: doc["tasks"]["Load()"].update(output_bytes="abc")),
        ("pipeline.yaml", lambda doc: doc["pipeline"]["tasks"]["Load()"].update(params=[1])),
        ("pipeline.yaml", lambda doc: doc["run"].update(packages=[1])),
    ]:
        broken = project.root / f"broken-{file}-{len(list(project.root.glob('broken-*')))}"
        made_before_journals(shutil.copytree(run_dir, broken))
        edit_yaml(broken / file, change)
        for command in (["report", broken], ["show", broken], ["result", broken, "Load()"]):
            assert file in error(*command)


def test_a_run_file_that_is_not_utf8_is_named_and_the_other_runs_listed(project: Project):
    good = run_inline(project.pipeline())
    bad = project.log / "bad_run"
    made_before_journals(shutil.copytree(good, bad))
    (bad / "pipeline.yaml").write_bytes(b"\xff\xfe not text")
    listed = cli("runs", project.log).output
    assert good.name in listed and "bad_run" in listed
    assert "pipeline.yaml" in error("show", bad)


def test_an_unknown_task_name_suggests_close_ones_and_a_shared_prefix_is_ambiguous(
    project: Project,
):
    run_dir = run_inline(project.pipeline())
    assert "did you mean Load()" in error("result", run_dir, "load()")
    assert "ambiguous" not in error("result", run_dir, "Nope")


def test_a_multi_line_error_is_shown_on_one_line_marked_as_cut():
    from pyperunner.cli import first_line

    assert first_line("ValueError: bad row\n  row 3: empty\n") == "ValueError: bad row [...]"
    assert first_line("ValueError: one line\n") == "ValueError: one line"
    assert first_line(None) is None


# --------------------------------------------------------------------------- hostile files


def hostile_pipeline(project: Project, value: object) -> Path:
    """The demo pipeline file with Load()'s ``size`` replaced by ``value`` and no keys."""
    path = project.pipeline()

    def change(doc: Any) -> None:
        for entry in doc["pipeline"]["tasks"].values():
            del entry["key"]
        doc["pipeline"]["tasks"]["Load()"]["params"]["size"] = value

    edit_yaml(path, change)
    return path


def test_explain_of_a_file_naming_os_system_as_a_dataclass_runs_nothing(project: Project):
    command = {"!dataclass": "os:system", "fields": {"command": "echo PWNED > pwned.txt"}}
    message = error("explain", hostile_pipeline(project, command))
    assert "Load()" in message and "'size'" in message and "dataclass" in message
    assert not (project.root / "pwned.txt").exists()


def test_a_pickled_parameter_needs_trust_pickles_on_the_command_line(project: Project):
    blob = base64.b64encode(cloudpickle.dumps(3)).decode()
    path = hostile_pipeline(project, {"!pickle": "builtins:int", "data": blob})
    message = error("explain", path)
    assert "Load()" in message and "'size'" in message and "--trust-pickles" in message
    assert "Load()" in cli("explain", path, "--trust-pickles").output
    run_dir = run_inline(path, "--trust-pickles")
    assert "'count': 3" in cli("result", run_dir, "Total()").output


BOMB = "lol: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("command", ["run", "explain"])
def test_an_alias_bomb_as_pipeline_file_is_refused_at_once(project: Project, command: str):
    path = project.pipeline()
    path.write_text(path.read_text() + BOMB)
    assert "alias" in error(command, path)


@pytest.mark.timeout(30)
@pytest.mark.parametrize("command", ["report", "show", "runs", "result"])
def test_an_alias_bomb_as_run_yaml_is_refused_at_once(project: Project, command: str):
    run_dir = made_before_journals(run_inline(project.pipeline()))
    (run_dir / "run.yaml").write_text((run_dir / "run.yaml").read_text() + BOMB)
    if command == "runs":
        assert "unreadable run.yaml" in cli("runs", project.log).output
        return
    args = ("Total()",) if command == "result" else ()
    message = error(command, run_dir, *args)
    assert "run.yaml" in message and "alias" in message


@pytest.mark.timeout(30)
def test_an_alias_bomb_as_params_yaml_makes_its_result_damaged(project: Project):
    path = project.pipeline()
    run_inline(path)
    [params] = (project.data / "Load()").glob("*/params.yaml")
    params.write_text(BOMB)
    output = cli("explain", path).output
    assert re.search(r"run\s+Load\(\)\s+stored result is damaged", output), output


def test_a_journal_is_what_the_commands_read_and_a_hostile_one_is_named(project: Project):
    run_dir = run_inline(project.pipeline(fail=True), code=1)
    (run_dir / "run.yaml").write_text("not: [what it was\n")  # the journal is read, not this
    shown = cli("show", run_dir).output.rstrip()
    assert shown.endswith("FAILED Scale(): ValueError: asked to fail")
    journal = run_dir / "events.jsonl"
    first, *rest = journal.read_text().splitlines(keepends=True)
    started = json.loads(first)
    started["pipeline"]["pipeline"]["tasks"]["Load()"]["parents"] = ["Nowhere()"]
    journal.write_text(json.dumps(started) + "\n" + "".join(rest))
    problem = "task entry 'Load()' has 'parents' that are not a list of its tasks"
    assert f"{journal}: {problem}" in error("show", run_dir)
