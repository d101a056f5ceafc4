"""Tests for ``pyperunner.graph``: wiring into pipelines, validation, summary, save and load.

Tasks that ``Pipeline.from_file`` must find again are defined at module level here (this module is
importable as ``test_graph``) or written to a module file under ``tmp_path`` and imported.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib
import itertools
import os
import pickle
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import yaml

from pyperunner import (
    KeyMismatchError,
    Pipeline,
    PipelineError,
    Runner,
    Sequential,
    Task,
    WiringError,
    run,
    task,
)

# -- tasks at module level (importable as this test module) --------------------------------------


@task("simple-task")
def simpletask(data: Any) -> str:
    return "simple-task"


@task("param-task")
def paramtask(data: Any, param: Any) -> str:
    return "param-task"


class LoadData(Task):
    @run
    def run(self, data: Any, wait: int, **kwargs: Any) -> Any:
        return {"source": self.tag, "rows": list(range(wait))}


class ProcessData(Task):
    @run
    def run(self, data: Any, wait: int, **kwargs: Any) -> Any:
        return data[0]


class AugmentData(Task):
    @run
    def run(self, data: Any, wait: int, **kwargs: Any) -> Any:
        return data[0]


class Evaluate(Task):
    @run
    def run(self, data: Any, wait: int, **kwargs: Any) -> Any:
        return len(data)


MULTI_PATH_NAMES = {
    "LoadData(database)",
    "LoadData(csv)",
    "ProcessData(normalize-l2)",
    "ProcessData(normalize-l1)",
    "AugmentData(augment)",
    "Evaluate(both)",
}
MULTI_PATH_EDGES = {
    ("LoadData(database)", "ProcessData(normalize-l2)"),
    ("LoadData(csv)", "ProcessData(normalize-l1)"),
    ("ProcessData(normalize-l1)", "AugmentData(augment)"),
    ("ProcessData(normalize-l2)", "Evaluate(both)"),
    ("AugmentData(augment)", "Evaluate(both)"),
}


def multi_path_pipeline() -> tuple[Pipeline, dict[str, Task]]:
    """The manual's multi-path example, wired by calls."""
    pipeline = Pipeline("multi-path")
    db = LoadData("database", wait=1)
    norm_l2 = ProcessData("normalize-l2", wait=1)(db)
    csv = LoadData("csv", wait=1)
    norm_l1 = ProcessData("normalize-l1", wait=1)(csv)
    augment = AugmentData("augment", wait=1)(norm_l1)
    evaluate = Evaluate("both", wait=1)([norm_l2, augment])
    pipeline.add(db)
    pipeline.add(csv)
    tasks = {t.name: t for t in [db, norm_l2, csv, norm_l1, augment, evaluate]}
    return pipeline, tasks


def manual_chain() -> list[Task]:
    first = simpletask(tag="first")
    second = simpletask(tag="second")
    third = simpletask(tag="third")
    fourth = simpletask(tag="fourth")
    fourth(third(second(first)))
    return [first, second, third, fourth]


def names(tasks: list[Task]) -> list[str]:
    return [t.name for t in tasks]


def by_name(pipeline: Pipeline) -> dict[str, Task]:
    return {t.name: t for t in pipeline.tasks()}


def assert_topological(pipeline: Pipeline) -> None:
    position = {t.name: i for i, t in enumerate(pipeline.tasks())}
    for t in pipeline.tasks():
        for parent in t.parents:
            assert position[parent.name] < position[t.name]


# -- task modules written to tmp_path ------------------------------------------------------------


@pytest.fixture
def task_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., ModuleType]]:
    """Write Python source to a fresh, uniquely named module under tmp_path and import it.

    Call it again with ``name=`` to rewrite that module's file; the module is then dropped from
    ``sys.modules`` so the next import (e.g. by ``from_file``) reads the new code.
    """
    folder = tmp_path / "task_modules"
    folder.mkdir()
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    created: list[str] = []

    def write(source: str, name: str | None = None, load: bool = True) -> ModuleType | None:
        module_name = name or f"pyperunner_test_tasks_{uuid.uuid4().hex[:12]}"
        created.append(module_name)
        sys.modules.pop(module_name, None)
        (folder / f"{module_name}.py").write_text(textwrap.dedent(source))
        importlib.invalidate_caches()
        return importlib.import_module(module_name) if load else None

    yield write
    for module_name in created:
        sys.modules.pop(module_name, None)


STEP_MODULE = """
from pyperunner import Task, run, task


@task("Load", receives_input=False)
def load(n=3):
    return list(range(n))


@task("Step")
def step(data, factor):
    return [x * factor for x in data[0]]


class Tail(Task):
    @run
    def run(self, data, keep=2):
        return data[0][-keep:]
"""

STEP_MODULE_COMMENT_EDIT = STEP_MODULE.replace(
    "    return [x * factor for x in data[0]]",
    "    # multiply every element: a comment only, the logic is the same\n"
    "    return [x * factor for x in data[0]]  # trailing comment",
)

STEP_MODULE_LOGIC_EDIT = STEP_MODULE.replace(
    "    return [x * factor for x in data[0]]",
    "    return [x * factor + 1 for x in data[0]]",
)


def step_pipeline(module: ModuleType) -> Pipeline:
    load = module.load(tag="numbers", n=5)
    step = module.step(tag="x", factor=2)(load)
    tail = module.Tail("end")(step)
    return Pipeline("steps", [tail])


# =================================================================================================
# Wiring
# =================================================================================================


def test_add_pulls_in_every_connected_task() -> None:
    chain = manual_chain()
    pipeline = Pipeline("my-pipeline")

    pipeline.add(chain[0])

    assert names(pipeline.tasks()) == names(chain)
    assert len(pipeline) == 4


def test_manual_chain_gives_four_tasks_in_topological_order() -> None:
    pipeline = Pipeline("my-pipeline")
    first, second, third, fourth = manual_chain()

    pipeline.add(first)

    assert names(pipeline.tasks()) == [
        "simple-task(first)",
        "simple-task(second)",
        "simple-task(third)",
        "simple-task(fourth)",
    ]
    assert fourth.parents == [third]
    assert third.parents == [second]
    assert second.parents == [first]
    assert first.parents == []


def test_adding_a_task_in_the_middle_also_pulls_in_its_upstream() -> None:
    chain = manual_chain()

    pipeline = Pipeline("my-pipeline", [chain[2]])

    assert names(pipeline.tasks()) == names(chain)


def test_pipeline_constructor_takes_a_list_of_roots() -> None:
    a = simpletask(tag="a")
    b = simpletask(tag="b")
    c = simpletask(tag="c")
    merge = simpletask(tag="merge")([a, b])

    pipeline = Pipeline("roots", [a, b, c])

    assert {t.name for t in pipeline.tasks()} == {
        "simple-task(a)",
        "simple-task(b)",
        "simple-task(c)",
        "simple-task(merge)",
    }
    assert merge.parents == [a, b]
    assert_topological(pipeline)


def test_tasks_wired_after_add_belong_to_the_pipeline() -> None:
    first = simpletask(tag="first")
    pipeline = Pipeline("late", [first])

    late = simpletask(tag="late")(first)

    assert late in pipeline.tasks()
    assert "simple-task(late)" in pipeline


def test_sequential_wires_a_chain_in_the_given_order() -> None:
    tasks = [simpletask(tag=tag) for tag in ["first", "second", "third", "fourth"]]

    pipeline = Sequential("sequential", tasks)

    assert tasks[0].parents == []
    for previous, current in itertools.pairwise(tasks):
        assert current.parents == [previous]
    assert names(pipeline.tasks()) == names(tasks)


def test_sequential_add_appends_to_the_end_of_the_chain() -> None:
    tasks = [simpletask(tag=tag) for tag in ["first", "second", "third", "fourth"]]
    pipeline = Sequential("sequential", tasks)
    fifth = simpletask(tag="fifth")

    pipeline.add(fifth)

    assert fifth.parents == [tasks[3]]
    assert names(pipeline.tasks())[-1] == "simple-task(fifth)"
    assert len(pipeline) == 5


def test_sequential_built_empty_then_added_to_is_a_chain() -> None:
    pipeline = Sequential("sequential")
    tasks = [simpletask(tag=tag) for tag in ["a", "b", "c"]]

    for t in tasks:
        pipeline.add(t)

    assert [t.parents for t in tasks] == [[], [tasks[0]], [tasks[1]]]
    assert names(pipeline.tasks()) == names(tasks)


def test_multi_path_example_has_six_tasks_and_the_right_edges() -> None:
    pipeline, tasks = multi_path_pipeline()

    assert {t.name for t in pipeline.tasks()} == MULTI_PATH_NAMES
    assert len(pipeline) == 6
    graph = pipeline.graph()
    assert set(graph.nodes) == MULTI_PATH_NAMES
    assert set(graph.edges) == MULTI_PATH_EDGES
    assert tasks["Evaluate(both)"].parents == [
        tasks["ProcessData(normalize-l2)"],
        tasks["AugmentData(augment)"],
    ]
    assert_topological(pipeline)


def test_graph_edges_go_from_parent_to_child_and_nodes_carry_the_task() -> None:
    first, second, third, fourth = manual_chain()
    graph = Pipeline("p", [first]).graph()

    assert set(graph.edges) == {
        (first.name, second.name),
        (second.name, third.name),
        (third.name, fourth.name),
    }
    assert list(graph.predecessors(fourth.name)) == [third.name]
    assert graph.nodes[second.name]["task"] is second


def test_tasks_are_in_topological_order_even_against_alphabetical_order() -> None:
    z = simpletask(tag="z")
    y = simpletask(tag="y")(z)
    x = simpletask(tag="x")(y)
    a = simpletask(tag="a")([x, z])

    pipeline = Pipeline("p", [a])

    assert names(pipeline.tasks()) == names([z, y, x, a])


# =================================================================================================
# Errors
# =================================================================================================


def test_duplicate_name_raises_value_error_naming_it_from_add() -> None:
    pipeline = Pipeline("p")
    pipeline.add(simpletask(tag="same"))

    with pytest.raises(ValueError, match=r"simple-task\(same\)"):
        pipeline.add(simpletask(tag="same"))


def test_pipeline_stays_usable_after_a_rejected_duplicate() -> None:
    pipeline = Pipeline("p")
    original = simpletask(tag="same")
    pipeline.add(original)
    with pytest.raises(ValueError):
        pipeline.add(simpletask(tag="same"))

    other = simpletask(tag="other")
    pipeline.add(other)

    assert pipeline.tasks() == [original, other] or pipeline.tasks() == [other, original]
    assert pipeline.graph().nodes["simple-task(same)"]["task"] is original


def test_duplicate_names_among_connected_tasks_are_rejected() -> None:
    a = simpletask(tag="dup")
    b = simpletask(tag="dup")
    merge = simpletask(tag="merge")([a, b])

    with pytest.raises(ValueError, match=r"simple-task\(dup\)"):
        Pipeline("p", [merge])


def test_sequential_add_of_a_duplicate_raises_and_leaves_the_chain_usable() -> None:
    tasks = [simpletask(tag=tag) for tag in ["first", "second"]]
    pipeline = Sequential("sequential", tasks)

    with pytest.raises(ValueError, match=r"simple-task\(first\)"):
        pipeline.add(simpletask(tag="first"))

    assert names(pipeline.tasks()) == names(tasks)
    third = simpletask(tag="third")
    pipeline.add(third)
    assert third.parents == [tasks[1]]
    assert len(pipeline) == 3


def test_a_wide_fan_in_is_walked_once_and_still_checked_for_duplicates(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Adding the roots of a fan-in one by one visits each task once in all (the first root
    finds the rest through their common child), not once per root; a duplicate name added
    afterwards is still caught."""
    from pyperunner import graph

    visited: list[str] = []
    walk = graph._connected

    def counting(*args: Any, **kwargs: Any) -> Iterator[Task]:
        for t in walk(*args, **kwargs):
            visited.append(t.name)
            yield t

    monkeypatch.setattr(graph, "_connected", counting)
    roots = [simpletask(tag=f"root{k}") for k in range(300)]
    gather = simpletask(tag="gather")(roots)

    pipeline = Pipeline("fan-in", roots)

    assert sorted(visited) == sorted([t.name for t in roots] + [gather.name])
    with pytest.raises(ValueError, match=r"simple-task\(root7\)"):
        pipeline.add(simpletask(tag="root7"))
    assert len(pipeline.graph()) == 301


def test_adding_the_same_task_twice_is_harmless() -> None:
    first, *_ = chain = manual_chain()
    pipeline = Pipeline("p", [first])

    pipeline.add(first)
    pipeline.add(chain[3])

    assert names(pipeline.tasks()) == names(chain)


def test_adding_a_task_class_instead_of_an_instance_is_rejected() -> None:
    pipeline = Pipeline("p")

    with pytest.raises(WiringError) as info:
        pipeline.add(LoadData)  # type: ignore[arg-type]

    assert "LoadData" in str(info.value)
    assert "instance" in str(info.value) or "LoadData(...)" in str(info.value)
    assert len(pipeline) == 0


def test_adding_a_function_task_class_instead_of_an_instance_is_rejected() -> None:
    with pytest.raises(WiringError, match="simpletask"):
        Pipeline("p", [simpletask])  # type: ignore[list-item]


@pytest.mark.parametrize("thing", ["LoadData(csv)", 42, None, [1, 2], simpletask.func])
def test_adding_a_non_task_is_rejected_naming_its_type(thing: Any) -> None:
    pipeline = Pipeline("p")

    with pytest.raises(WiringError, match=type(thing).__qualname__):
        pipeline.add(thing)


def test_connecting_a_class_or_non_task_as_parent_is_rejected() -> None:
    child = simpletask(tag="child")

    with pytest.raises(WiringError, match="LoadData"):
        child(LoadData)  # type: ignore[arg-type]
    with pytest.raises(WiringError, match="str"):
        child("LoadData(csv)")  # type: ignore[arg-type]
    assert child.parents == []


def test_wiring_a_cycle_is_rejected() -> None:
    a = simpletask(tag="a")
    b = simpletask(tag="b")(a)

    with pytest.raises(WiringError, match="cycle"):
        a(b)

    assert a.parents == []
    assert names(Pipeline("p", [a]).tasks()) == names([a, b])


@pytest.mark.parametrize("name", ["", None, 3])
def test_pipeline_needs_a_non_empty_string_name(name: Any) -> None:
    with pytest.raises(ValueError, match="name"):
        Pipeline(name)


def test_sequential_needs_a_non_empty_name() -> None:
    with pytest.raises(ValueError, match="name"):
        Sequential("", [simpletask(tag="a")])


# =================================================================================================
# Summary
# =================================================================================================


def test_summary_prints_boxed_names_and_echo_false_returns_them(
    capsys: pytest.CaptureFixture,
) -> None:
    pipeline, _ = multi_path_pipeline()

    assert pipeline.summary() is None  # a REPL or notebook shows the drawing once
    out = capsys.readouterr().out
    text = pipeline.summary(echo=False)

    assert capsys.readouterr().out == ""
    assert text
    assert out == text + "\n"
    for name in MULTI_PATH_NAMES:
        assert f"| {name} |" in text
        border = "+" + "-" * (len(name) + 2) + "+"
        assert border in text
    assert "*" in text  # the manual draws edges with asterisks


def test_summary_of_a_chain_draws_each_task_once_top_to_bottom(
    capsys: pytest.CaptureFixture,
) -> None:
    chain = manual_chain()
    pipeline = Pipeline("p", [chain[0]])

    pipeline.summary()

    text = capsys.readouterr().out
    rows = [text.index(f"| {t.name} |") for t in chain]
    assert rows == sorted(rows)
    for t in chain:
        assert text.count(f"| {t.name} |") == 1


def test_summary_sends_each_line_to_print_fn_as_the_original_did(
    capsys: pytest.CaptureFixture,
) -> None:
    pipeline, _ = multi_path_pipeline()
    lines: list[str] = []

    assert pipeline.summary(print_fn=lines.append) is None

    assert capsys.readouterr().out == ""
    assert lines == pipeline.summary(echo=False).splitlines()
    assert len(lines) > 1 and all("\n" not in line for line in lines)


# =================================================================================================
# Save and load
# =================================================================================================


def test_to_file_writes_yaml_that_safe_load_reads(tmp_path: Path) -> None:
    pipeline, _ = multi_path_pipeline()
    fname = tmp_path / "sub" / "my-pipeline.yml"

    written = pipeline.to_file(fname)

    assert Path(written) == fname
    doc = yaml.safe_load(fname.read_text())
    assert isinstance(doc, dict) and "pipeline" in doc
    assert doc["pipeline"]["name"] == "multi-path"
    saved = doc["pipeline"]["tasks"]
    assert set(saved) == MULTI_PATH_NAMES
    evaluate = saved["Evaluate(both)"]
    assert evaluate["module"] == Evaluate.__module__
    assert evaluate["class"] == "Evaluate"
    assert evaluate["tag"] == "both"
    assert evaluate["parents"] == ["ProcessData(normalize-l2)", "AugmentData(augment)"]
    assert evaluate["key"] == pipeline.keys()["Evaluate(both)"]


def test_from_file_rebuilds_class_tasks_defined_in_the_test_module(tmp_path: Path) -> None:
    pipeline, _ = multi_path_pipeline()
    pipeline.to_file(tmp_path / "p.yml")

    loaded = Pipeline.from_file(tmp_path / "p.yml")

    assert loaded.name == "multi-path"
    assert_same_pipeline(loaded, pipeline)
    assert type(by_name(loaded)["LoadData(csv)"]) is LoadData


def test_from_file_rebuilds_function_tasks_defined_in_the_test_module(tmp_path: Path) -> None:
    first = paramtask(tag="first", param=1)
    second = paramtask(tag="second", param=2)
    third = paramtask(tag="third", param=3)
    fourth = paramtask(tag="fourth", param=4)
    pipeline = Sequential("sequential", [first, second, third, fourth])
    pipeline.to_file(tmp_path / "p.yml")

    loaded = Pipeline.from_file(tmp_path / "p.yml")

    assert_same_pipeline(loaded, pipeline)
    assert type(by_name(loaded)["param-task(third)"]) is type(third)


def test_from_file_rebuilds_tasks_defined_inside_a_function_in_the_same_process(
    tmp_path: Path,
) -> None:
    @task("Local", receives_input=False)
    def local(n=1):
        return n

    class Doubled(Task):
        @run
        def run(self, data):
            return 2 * data[0]

    pipeline = Pipeline("local", [Doubled("d")(local("x", n=4))])
    pipeline.to_file(tmp_path / "p.yml")

    loaded = Pipeline.from_file(tmp_path / "p.yml")

    assert_same_pipeline(loaded, pipeline)
    assert type(by_name(loaded)["Doubled(d)"]) is Doubled


def test_a_task_defined_inside_a_function_that_is_gone_is_a_clear_error(tmp_path: Path) -> None:
    @task("Gone", receives_input=False)
    def gone():
        return 1

    Pipeline("gone", [gone()]).to_file(tmp_path / "p.yml")
    doc = yaml.safe_load((tmp_path / "p.yml").read_text())
    doc["pipeline"]["tasks"]["Gone()"]["class"] += "_elsewhere"  # as if in another process
    (tmp_path / "p.yml").write_text(yaml.safe_dump(doc))

    with pytest.raises(PipelineError, match=r"Gone\(\).*inside a function.*top level of a module"):
        Pipeline.from_file(tmp_path / "p.yml")


def test_from_file_rebuilds_tasks_from_an_imported_module(
    tmp_path: Path, task_module: Callable[..., ModuleType]
) -> None:
    module = task_module(STEP_MODULE)
    pipeline = step_pipeline(module)
    pipeline.to_file(tmp_path / "p.yml")

    loaded = Pipeline.from_file(tmp_path / "p.yml")

    assert_same_pipeline(loaded, pipeline)
    rebuilt = by_name(loaded)
    assert type(rebuilt["Step(x)"]) is module.step
    assert type(rebuilt["Tail(end)"]) is module.Tail
    assert rebuilt["Load(numbers)"].params == {"n": 5}
    assert rebuilt["Tail(end)"].params == {"keep": 2}


def test_from_file_rebuilds_the_reload_flag(tmp_path: Path) -> None:
    first = simpletask(tag="first")
    second = simpletask(tag="second", reload=True)(first)
    Pipeline("p", [second]).to_file(tmp_path / "p.yml")

    loaded = by_name(Pipeline.from_file(tmp_path / "p.yml"))

    assert loaded["simple-task(second)"].reload is True
    assert loaded["simple-task(first)"].reload is False


def test_from_file_accepts_a_str_path(tmp_path: Path) -> None:
    chain = manual_chain()
    Pipeline("p", [chain[0]]).to_file(str(tmp_path / "p.yml"))

    loaded = Pipeline.from_file(str(tmp_path / "p.yml"))

    assert names(loaded.tasks()) == names(chain)


def assert_same_pipeline(loaded: Pipeline, original: Pipeline) -> None:
    before, after = by_name(original), by_name(loaded)
    assert list(after) == list(before)
    for name, t in before.items():
        rebuilt = after[name]
        assert rebuilt is not t
        assert type(rebuilt).__module__ == type(t).__module__
        assert type(rebuilt).__qualname__ == type(t).__qualname__
        assert rebuilt.tag == t.tag
        assert names(rebuilt.parents) == names(t.parents)
    assert loaded.keys() == original.keys()
    assert set(loaded.graph().edges) == set(original.graph().edges)


PARAM_TYPES_MODULE = """
import dataclasses
import enum

from pyperunner import Task, run


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


@dataclasses.dataclass(frozen=True)
class Window:
    start: int
    stop: int
    label: str = "w"


class Everything(Task):
    @run
    def run(self, data, **kwargs):
        return kwargs
"""


def param_values(module: ModuleType) -> dict[str, Any]:
    return {
        "an_int": 3,
        "a_big_int": 2**70,
        "a_float": 0.1,
        "an_inf": float("inf"),
        "a_str": "normalize-l2",
        "an_odd_str": "!tuple: not a tag, yes, no, null, 1e3",
        "a_none": None,
        "a_true": True,
        "a_false": False,
        "a_list": [1, "two", 3.0, None],
        "a_nested_dict": {"outer": {"inner": [1, {"deep": (1, 2)}]}, "n": 1},
        "a_dict_with_int_keys": {1: "one", 2: "two"},
        "a_tuple": (1, "a", (2.5, None)),
        "a_set": {"b", "a", "c"},
        "a_frozenset": frozenset({1, 2}),
        "a_path": Path("data") / "raw.csv",
        "a_date": dt.date(2021, 1, 23),
        "a_datetime": dt.datetime(2021, 1, 23, 17, 23, 18),
        "an_enum": module.Color.GREEN,
        "a_dataclass": module.Window(1, 5, label="first"),
        "an_array": np.arange(12, dtype=np.float32).reshape(3, 4),
    }


def test_parameter_types_round_trip_through_the_file(
    tmp_path: Path, task_module: Callable[..., ModuleType]
) -> None:
    module = task_module(PARAM_TYPES_MODULE)
    values = param_values(module)
    original = module.Everything("all", **values)
    pipeline = Pipeline("types", [original])
    pipeline.to_file(tmp_path / "p.yml")

    loaded = by_name(Pipeline.from_file(tmp_path / "p.yml"))["Everything(all)"]

    assert set(loaded.params) == set(values)
    for name, value in values.items():
        got = loaded.params[name]
        assert type(got) is type(value), name
        if isinstance(value, np.ndarray):
            assert got.dtype == value.dtype
            np.testing.assert_array_equal(got, value)
        else:
            assert got == value, name
    assert loaded.hash() == original.hash()


@pytest.mark.parametrize("name", ["a_tuple", "a_set", "a_path", "a_date", "an_enum", "an_array"])
def test_each_parameter_type_alone_keeps_the_key_through_the_file(
    tmp_path: Path, task_module: Callable[..., ModuleType], name: str
) -> None:
    module = task_module(PARAM_TYPES_MODULE)
    value = param_values(module)[name]
    pipeline = Pipeline("types", [module.Everything("one", value=value)])
    pipeline.to_file(tmp_path / "p.yml")

    loaded = Pipeline.from_file(tmp_path / "p.yml")

    assert loaded.keys() == pipeline.keys()


def test_tuple_and_list_parameters_stay_distinct_through_the_file(
    tmp_path: Path, task_module: Callable[..., ModuleType]
) -> None:
    module = task_module(PARAM_TYPES_MODULE)
    as_tuple = module.Everything("tuple", value=(1, 2))
    as_list = module.Everything("list", value=[1, 2])
    assert as_tuple.hash() != as_list.hash()
    Pipeline("p", [as_tuple, as_list]).to_file(tmp_path / "p.yml")

    loaded = by_name(Pipeline.from_file(tmp_path / "p.yml"))

    assert loaded["Everything(tuple)"].params["value"] == (1, 2)
    assert loaded["Everything(list)"].params["value"] == [1, 2]


# -- key mismatches -------------------------------------------------------------------------------


def edit_file(fname: Path, change: Callable[[dict[str, Any]], None]) -> None:
    doc = yaml.safe_load(fname.read_text())
    change(doc["pipeline"]["tasks"])
    fname.write_text(yaml.safe_dump(doc, sort_keys=False))


def param_chain_pipeline() -> Pipeline:
    tasks = [paramtask(tag=tag, param=i) for i, tag in enumerate(["first", "second", "third"])]
    return Sequential("sequential", tasks)


def test_edited_parameter_in_the_file_raises_key_mismatch_naming_task_and_reason(
    tmp_path: Path,
) -> None:
    fname = tmp_path / "p.yml"
    param_chain_pipeline().to_file(fname)

    edit_file(fname, lambda tasks: tasks["param-task(second)"]["params"].update(param="CHANGED"))

    with pytest.raises(KeyMismatchError) as info:
        Pipeline.from_file(fname)
    message = str(info.value)
    assert "param-task(second)" in message
    assert "param" in message and "differ" in message
    assert "param-task(third)" not in message


def test_key_mismatch_is_a_pipeline_error(tmp_path: Path) -> None:
    fname = tmp_path / "p.yml"
    param_chain_pipeline().to_file(fname)
    edit_file(fname, lambda tasks: tasks["param-task(first)"]["params"].update(param=99))

    with pytest.raises(PipelineError, match=r"param-task\(first\)"):
        Pipeline.from_file(fname)


def test_child_listed_before_its_changed_parent_reports_the_upstream_reason(
    tmp_path: Path,
) -> None:
    fname = tmp_path / "p.yml"
    param_chain_pipeline().to_file(fname)

    def move_third_first_and_change_second(tasks: dict[str, Any]) -> None:
        tasks["param-task(second)"]["params"]["param"] = "CHANGED"
        third = tasks.pop("param-task(third)")
        rest = dict(tasks)
        tasks.clear()
        tasks["param-task(third)"] = third
        tasks.update(rest)

    edit_file(fname, move_third_first_and_change_second)

    with pytest.raises(KeyMismatchError) as info:
        Pipeline.from_file(fname)
    message = str(info.value)
    assert "param-task(third)" in message
    assert "upstream" in message
    assert "parameters differ" not in message
    assert "code" not in message


def test_changed_task_code_raises_key_mismatch_naming_task_and_code(
    tmp_path: Path, task_module: Callable[..., ModuleType]
) -> None:
    module = task_module(STEP_MODULE)
    fname = tmp_path / "p.yml"
    step_pipeline(module).to_file(fname)

    task_module(STEP_MODULE_LOGIC_EDIT, name=module.__name__, load=False)

    with pytest.raises(KeyMismatchError) as info:
        Pipeline.from_file(fname)
    message = str(info.value)
    assert "Step(x)" in message
    assert "code" in message
    assert "Tail(end)" not in message
    assert "Load(numbers)" not in message


def test_comment_only_edit_of_task_code_still_loads(
    tmp_path: Path, task_module: Callable[..., ModuleType]
) -> None:
    module = task_module(STEP_MODULE)
    fname = tmp_path / "p.yml"
    original = step_pipeline(module)
    original.to_file(fname)

    task_module(STEP_MODULE_COMMENT_EDIT, name=module.__name__, load=False)
    loaded = Pipeline.from_file(fname)

    assert loaded.keys() == original.keys()


def test_edited_key_in_the_file_raises_key_mismatch(tmp_path: Path) -> None:
    fname = tmp_path / "p.yml"
    param_chain_pipeline().to_file(fname)

    edit_file(fname, lambda tasks: tasks["param-task(first)"].update(key="0" * 32))

    with pytest.raises(KeyMismatchError, match=r"param-task\(first\)"):
        Pipeline.from_file(fname)


# -- files that cannot be loaded -------------------------------------------------------------------


def test_unknown_module_raises_pipeline_error_naming_task_and_saying_to_import(
    tmp_path: Path,
) -> None:
    fname = tmp_path / "p.yml"
    param_chain_pipeline().to_file(fname)
    edit_file(
        fname, lambda tasks: tasks["param-task(second)"].update(module="no_such_module_pyperunner")
    )

    with pytest.raises(PipelineError) as info:
        Pipeline.from_file(fname)
    message = str(info.value)
    assert "param-task(second)" in message
    assert "no_such_module_pyperunner" in message
    assert "import" in message


def test_unknown_class_raises_pipeline_error_naming_task_and_saying_to_import(
    tmp_path: Path,
) -> None:
    fname = tmp_path / "p.yml"
    multi_path_pipeline()[0].to_file(fname)
    edit_file(fname, lambda tasks: tasks["Evaluate(both)"].update({"class": "NoSuchTask"}))

    with pytest.raises(PipelineError) as info:
        Pipeline.from_file(fname)
    message = str(info.value)
    assert "Evaluate(both)" in message
    assert "NoSuchTask" in message
    assert "import" in message


def test_a_class_that_is_not_a_task_raises_pipeline_error(tmp_path: Path) -> None:
    fname = tmp_path / "p.yml"
    multi_path_pipeline()[0].to_file(fname)
    edit_file(
        fname,
        lambda tasks: tasks["Evaluate(both)"].update({"module": "pathlib", "class": "Path"}),
    )

    with pytest.raises(PipelineError, match=r"Evaluate\(both\)"):
        Pipeline.from_file(fname)


@pytest.mark.parametrize(
    "content",
    [
        "name: p\ntasks: {}\n",
        "- just\n- a list\n",
        "",
        "tasks:\n  a: 1\n",
    ],
    ids=["no-pipeline-section", "a-list", "empty", "tasks-at-top-level"],
)
def test_a_file_without_a_pipeline_section_raises_pipeline_error(
    tmp_path: Path, content: str
) -> None:
    fname = tmp_path / "p.yml"
    fname.write_text(content)

    with pytest.raises(PipelineError, match="pipeline"):
        Pipeline.from_file(fname)


def test_a_file_with_python_specific_yaml_tags_is_not_executed(tmp_path: Path) -> None:
    fname = tmp_path / "p.yml"
    fname.write_text("pipeline: !!python/object/apply:os.system ['echo pwned']\n")

    with pytest.raises((yaml.YAMLError, PipelineError)):
        Pipeline.from_file(fname)


OPAQUE_MODULE = """
from pyperunner import Task, run


class Opaque:
    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return isinstance(other, Opaque) and other.n == self.n


class Takes(Task):
    @run
    def run(self, data, thing):
        return thing
"""


def test_a_pickled_parameter_is_refused_naming_task_parameter_and_opt_in(
    tmp_path: Path, task_module: Callable[..., ModuleType]
) -> None:
    module = task_module(OPAQUE_MODULE)
    pipeline = Pipeline("p", [module.Takes("t", thing=module.Opaque(3))])
    pipeline.to_file(tmp_path / "p.yml")

    with pytest.raises(PipelineError) as refused:
        Pipeline.from_file(tmp_path / "p.yml")
    message = str(refused.value)
    assert "Takes(t)" in message and "'thing'" in message and "trust_pickles=True" in message

    loaded = Pipeline.from_file(tmp_path / "p.yml", trust_pickles=True)
    assert by_name(loaded)["Takes(t)"].params["thing"] == module.Opaque(3)
    assert loaded == pipeline


class Pwn:
    """Unpickling it runs a shell command."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, ("echo PWNED > pwned.txt",))


HOSTILE = {
    "dataclass": {"!dataclass": "os:system", "fields": {"command": "echo PWNED > pwned.txt"}},
    "enum": {"!enum": "os:system", "name": "echo PWNED > pwned.txt"},
    "pickle": {"!pickle": "os:system", "data": base64.b64encode(pickle.dumps(Pwn())).decode()},
}


@pytest.mark.parametrize("hostile", HOSTILE.values(), ids=HOSTILE.keys())
def test_a_hostile_parameter_in_a_pipeline_file_runs_no_code(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    task_module: Callable[..., ModuleType],
    hostile: dict[str, Any],
) -> None:
    monkeypatch.chdir(tmp_path)
    step_pipeline(task_module(STEP_MODULE)).to_file("p.yml")
    doc = yaml.safe_load(Path("p.yml").read_text())
    for entry in doc["pipeline"]["tasks"].values():
        del entry["key"]
    doc["pipeline"]["tasks"]["Load(numbers)"]["params"] = {"n": hostile}
    Path("p.yml").write_text(yaml.safe_dump(doc))

    with pytest.raises(PipelineError, match=r"Load\(numbers\).*parameter 'n'"):
        Pipeline.from_file("p.yml")
    assert not Path("pwned.txt").exists()


BILLION_LAUGHS = "lol: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + "".join(
    f"l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)


@pytest.mark.timeout(30)
def test_a_yaml_alias_bomb_is_refused_at_once_naming_the_file(tmp_path: Path) -> None:
    fname = tmp_path / "bomb.yml"
    fname.write_text("pipeline:\n  name: p\n  tasks: {}\n" + BILLION_LAUGHS)

    with pytest.raises(PipelineError, match="alias") as refused:
        Pipeline.from_file(fname)
    assert str(fname) in str(refused.value)


def test_a_runs_pipeline_yaml_loads_with_from_file(tmp_path: Path) -> None:
    pipeline, _ = multi_path_pipeline()
    runner = Runner(tmp_path / "data", tmp_path / "log", executor="inline", console=False)
    runner.run(pipeline)
    [run_file] = list((tmp_path / "log").glob("multi-path_*/pipeline.yaml"))

    loaded = Pipeline.from_file(run_file)

    assert_same_pipeline(loaded, pipeline)


@pytest.mark.parametrize("name", ["team/experiment", "..", "a\\b"])
def test_a_pipeline_name_that_is_no_folder_name_is_rejected(name):
    with pytest.raises(PipelineError, match="folder name"):
        Pipeline(name)


def test_a_pipeline_name_too_long_for_its_run_folders_is_rejected_naming_the_limit():
    Pipeline("p" * 234)  # with '_yymmddTHHMMSS_ffffff': 255 bytes, the most a name holds
    with pytest.raises(PipelineError, match="234 bytes"):
        Pipeline("p" * 235)


def test_a_pipeline_file_cut_short_is_refused_not_loaded_as_another_pipeline(
    tmp_path: Path,
) -> None:
    pipeline, _ = multi_path_pipeline()
    text = pipeline.to_file(tmp_path / "p.yml").read_text()
    cut = text[: text.index("    key:", len(text) // 2)]  # mid-entry: the rest of the file is gone
    (tmp_path / "cut.yml").write_text(cut)
    with pytest.raises(PipelineError, match=r"has no 'key' but .* cut short"):
        Pipeline.from_file(tmp_path / "cut.yml")

    doc = yaml.safe_load(text)
    for spec in doc["pipeline"]["tasks"].values():
        del spec["key"]  # a file without any key loads, unchecked, as it says
    (tmp_path / "nokeys.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    assert Pipeline.from_file(tmp_path / "nokeys.yml").keys() == pipeline.keys()


def test_a_pipeline_loaded_from_its_file_equals_the_pipeline_saved(tmp_path: Path) -> None:
    pipeline, _ = multi_path_pipeline()
    loaded = Pipeline.from_file(pipeline.to_file(tmp_path / "p.yml"))
    assert loaded == pipeline
    other, _ = multi_path_pipeline()
    other.add(LoadData("extra", wait=1))
    assert other != pipeline
    assert pipeline != "multi-path"


def test_an_entry_whose_tag_no_longer_matches_its_name_says_how_to_fix_it(tmp_path):
    path = Pipeline("p", [LoadData("ok", wait=0)]).to_file(tmp_path / "p.yml")
    doc = yaml.safe_load(path.read_text())
    doc["pipeline"]["tasks"]["LoadData(ok)"]["tag"] = "changed"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(PipelineError, match=r"rebuilds as the task LoadData\(changed\).*rename"):
        Pipeline.from_file(path)


def test_a_dags_order_follows_edits_made_after_it_was_sorted() -> None:
    """A run sorts its graph once and reuses the order: an edit must drop the kept order."""
    from pyperunner.dag import Dag, topological_order

    dag = Dag()
    dag.add_edge("b", "c")
    dag.add_node("a")
    assert topological_order(dag) == ["a", "b", "c"]
    dag.add_edge("c", "a")
    assert topological_order(dag) == ["b", "c", "a"]
    copy = dag.copy()
    copy.add_node("0")
    copy.add_edge("a", "z")
    assert topological_order(copy) == ["0", "b", "c", "a", "z"]
    assert topological_order(dag) == ["b", "c", "a"]
    dag.add_node("a", status="SUCCESS")  # attributes alone leave the order as it was
    assert topological_order(dag) == ["b", "c", "a"]
    dag.add_edge("a", "b")
    with pytest.raises(ValueError, match="cycle"):
        topological_order(dag)
