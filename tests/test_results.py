"""Tests for a run's results failing loudly: ``PipelineResult.raise_on_failure`` and
``PipelineFailedError`` (pyperunner.results), in a script and as IPython shows it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from conftest import feature_pipeline

import pyperunner
from pyperunner import PipelineFailedError, PipelineResult, Runner


@pytest.fixture(scope="module")
def failed(tmp_path_factory: pytest.TempPathFactory) -> PipelineResult:
    """The features pipeline's run: two features fail, so Train and Report cannot run."""
    root = tmp_path_factory.mktemp("results")
    return Runner(root / "data", root / "log", executor="inline", console=False).run(
        feature_pipeline()
    )


def test_a_run_without_failures_returns_itself_to_chain(tmp_path: Path) -> None:
    runner = Runner(tmp_path / "data", tmp_path / "log", executor="inline", console=False)
    pipeline = feature_pipeline()
    for name in ("Feature(s2-max)", "Feature(s5-std)"):  # the two that fail, and what needs them
        task = next(t for t in pipeline.tasks() if t.name == name)
        task.detach()
    pipeline = pyperunner.Pipeline("features", [t for t in pipeline.tasks() if not t.parents])
    result = runner.run(pipeline)
    assert result.raise_on_failure() is result
    assert runner.run(pipeline).raise_on_failure()["Report(final)"] == "done"


def test_a_failed_run_raises_one_error_naming_each_failed_task(failed: PipelineResult) -> None:
    with pytest.raises(PipelineFailedError) as raised:
        failed.raise_on_failure()
    error = raised.value
    assert isinstance(error, RuntimeError) and pyperunner.PipelineFailedError is type(error)
    assert error.result is failed and list(error.failed) == ["Feature(s2-max)", "Feature(s5-std)"]
    lines = str(error).splitlines()
    assert lines[0] == (
        f"pipeline 'features' (run {failed.run_dir.name}) failed: 54 SUCCESS, 2 FAILURE, 2 CANT_RUN"
    )
    frame = 'raise ValueError(f"no {kind} for {self.tag}")'
    assert lines[1] == "  Feature(s2-max): ValueError: no max for s2-max"
    assert lines[2].startswith('      File "') and lines[2].endswith(", in run")
    assert "conftest.py" in lines[2] and lines[3] == f"        {frame}"
    assert lines[4] == "  Feature(s5-std): ValueError: no std for s5-std"
    assert lines[7] == "  without an output because of them: Train(model), Report(final)"
    assert lines[8] == f"  report: {failed.run_dir / 'report.html'}"


def test_ipython_shows_the_failures_instead_of_pyperunners_frames(failed: PipelineResult) -> None:
    error = PipelineFailedError(failed)
    shown = error._render_traceback_()
    assert shown[0] == f"\x1b[1;31mPipelineFailedError\x1b[0m: {str(error).splitlines()[0]}"
    assert shown[1:] == str(error).splitlines()[1:]


def test_a_result_read_back_from_its_run_folder_raises_the_same(failed: PipelineResult) -> None:
    again = PipelineResult.from_file(failed.run_dir)
    with pytest.raises(PipelineFailedError) as raised:
        again.raise_on_failure()
    assert str(raised.value) == str(PipelineFailedError(failed))


def test_a_script_ends_with_the_failures_and_a_nonzero_status(tmp_path: Path) -> None:
    script = tmp_path / "analysis.py"
    script.write_text(
        textwrap.dedent(
            """
            from pyperunner import Pipeline, Runner, task

            @task("Load", receives_input=False)
            def load():
                return [1, 2, 0]

            @task("Invert")
            def invert(data):
                return [1 / x for x in data[0]]

            pipeline = Pipeline("script", [invert("all")(load("numbers"))])
            runner = Runner("data", "log", executor="inline", console=False)
            runner.run(pipeline).raise_on_failure()
            print("not reached")
            """
        )
    )
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1 and "not reached" not in done.stdout
    lines = done.stderr.splitlines()
    start = next(i for i, line in enumerate(lines) if "PipelineFailedError: pipeline" in line)
    assert lines[start].endswith("failed: 1 SUCCESS, 1 FAILURE")
    assert lines[start + 1] == "  Invert(all): ZeroDivisionError: division by zero"
    assert lines[start + 2].startswith(f'      File "{script}", line 10, in ')  # in its code
    assert lines[start + 3] == "        return [1 / x for x in data[0]]"
    assert lines[-1] == f"  report: {next((tmp_path / 'log').iterdir()) / 'report.html'}"


def test_from_file_reads_the_tasks_records_only_when_asked_for(
    failed: PipelineResult, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``from_file`` reads a run's pipeline and end, not its tasks' records (most of a big
    run's journal): those are read the first time a status or an output is asked for."""
    from pyperunner.status import TaskRun

    rebuilt: list[object] = []
    real = TaskRun.from_dict.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        TaskRun, "from_dict", classmethod(lambda cls, doc: rebuilt.append(doc) or real(cls, doc))
    )
    assert failed.run_dir is not None

    again = PipelineResult.from_file(failed.run_dir)

    assert rebuilt == [] and again.task_keys == failed.task_keys
    assert again.statuses == failed.statuses
    assert len(rebuilt) == len(failed.task_keys)
    assert list(again.failed) == list(failed.failed) == ["Feature(s2-max)", "Feature(s5-std)"]
