"""Why each task runs: the plan before a run, its reasons, and the log of a run."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from pyperunner import Runner, Sequential, task


@task("Step")
def step(data, factor, offset=0):
    return factor + offset


def chain(second_factor=2, second_offset=0, reload_third=False):
    return Sequential(
        "why",
        [
            step("first", factor=1),
            step("second", factor=second_factor, offset=second_offset),
            step("third", factor=3, reload=reload_third),
            step("fourth", factor=4),
        ],
    )


@pytest.fixture
def runner(tmp_path: Path) -> Runner:
    return Runner(tmp_path / "data", tmp_path / "log", executor="inline", console=False)


def test_first_plan_says_no_cached_result_and_upstream(runner):
    plan = runner.plan(chain())
    assert plan.why == {
        "Step(first)": "no cached result",
        "Step(second)": "upstream task Step(first) runs",
        "Step(third)": "upstream task Step(second) runs",
        "Step(fourth)": "upstream task Step(third) runs",
    }


def test_plan_names_the_parameters_that_changed(runner):
    runner.run(chain())
    plan = runner.plan(chain(second_factor=20, second_offset=1))
    assert plan.cached == ["Step(first)"]
    assert plan.why["Step(second)"] == "parameters changed: factor, offset"
    assert plan.why["Step(third)"] == "upstream task Step(second) runs"


def chain_with_third_factor(third_factor):
    return Sequential(
        "why",
        [
            step("first", factor=1),
            step("second", factor=2),
            step("third", factor=third_factor),
            step("fourth", factor=4),
        ],
    )


def test_a_task_that_runs_for_upstream_also_names_its_own_changed_parameters(runner):
    runner.run(chain_with_third_factor(3))
    pipeline = chain_with_third_factor(30)
    pipeline.tasks()[1].reload = True  # Step(second): runs, and so does everything below it
    plan = runner.plan(pipeline)
    assert plan.why["Step(third)"] == "upstream task Step(second) runs; parameters changed: factor"
    assert plan.why["Step(fourth)"] == "upstream task Step(third) runs"


def test_a_damaged_result_is_the_reason_given_not_a_parameter_change(runner):
    runner.run(chain())
    runner.run(chain(second_factor=20))  # the newest stored Step(second) has other parameters
    first_key = chain().keys()["Step(second)"]
    damaged = runner.store.result_path("Step(second)", first_key)
    damaged.write_bytes(damaged.read_bytes()[:-1])
    why = runner.plan(chain()).why["Step(second)"]
    assert why.startswith("stored result is damaged") and str(damaged) in why


def test_summary_after_a_run_shows_plain_names_not_that_runs_plan(runner):
    pipeline = chain()
    runner.run(pipeline, show_execution_plan=True)
    text = pipeline.summary(echo=False)
    assert "[run:" not in text and "[cached]" not in text
    assert "| Step(first) |" in text


def test_plan_says_reload_and_force_reload(runner):
    runner.run(chain())
    assert runner.plan(chain(reload_third=True)).why == {
        "Step(third)": "reload=True",
        "Step(fourth)": "upstream task Step(third) runs",
    }
    assert set(runner.plan(chain(), force_reload=True).why.values()) == {"force_reload=True"}


def test_summary_after_planning_marks_what_runs_and_what_is_cached(runner, capsys):
    runner.run(chain())
    pipeline = chain(second_factor=5)
    runner.plan(pipeline)
    pipeline.summary()
    text = capsys.readouterr().out
    assert "| Step(first) [cached] |" in text
    assert "| Step(second) [run: parameters changed: factor] |" in text
    assert "| Step(fourth) [run: upstream task Step(third) runs] |" in text


def test_show_execution_plan_prints_the_marked_drawing_before_running(runner, capsys):
    runner.run(chain())
    runner.run(chain(second_factor=7), show_execution_plan=True)
    out = capsys.readouterr().out
    assert "[run: parameters changed: factor]" in out and "[cached]" in out


def test_the_log_says_why_each_task_runs(runner):
    runner.run(chain())
    result = runner.run(chain(second_factor=9))
    log = (result.run_dir / "pipeline.log").read_text()
    assert "Starting Step(second) (parameters changed: factor)" in log
    assert "Starting Step(third) (upstream task Step(second) runs)" in log
    assert "Starting Step(first)" not in log
    assert result.runs["Step(second)"].reason == "parameters changed: factor"


def test_code_change_is_named_as_the_reason(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def load(body: str):
        folder = tmp_path / f"v{abs(hash(body))}"
        folder.mkdir()
        (folder / "codemod.py").write_text(
            textwrap.dedent(
                f"""
                from pyperunner import Pipeline, task

                @task("Code", receives_input=False)
                def code():
                    return {body}
                """
            )
        )
        monkeypatch.syspath_prepend(str(folder))
        sys.modules.pop("codemod", None)
        return importlib.import_module("codemod")

    runner = Runner(tmp_path / "data", tmp_path / "log", executor="inline", console=False)
    try:
        module = load("1")
        runner.run(Sequential("code", [module.code()]))
        module = load("2")
        assert runner.plan(Sequential("code", [module.code()])).why == {"Code()": "code changed"}
    finally:
        sys.modules.pop("codemod", None)


@task("Twin", receives_input=False)
def twin_one():
    return 1


@task("Twin", receives_input=False)
def twin_two():
    return 2


def test_another_task_class_under_the_same_name_is_named_as_the_reason(runner):
    runner.run(Sequential("twins", [twin_one()]))
    why = runner.plan(Sequential("twins", [twin_two()])).why["Twin()"]
    assert why == "another task class (was test_explain.twin_one)"
