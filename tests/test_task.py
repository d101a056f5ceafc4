"""Tasks: naming, ``@task`` on functions and classes, ``@run``, parameter binding, inputs, wiring.

Everything here is real behaviour of :mod:`pyperunner.task`: tasks are created, wired and, where
it matters, executed in-process through ``Task.execute`` (no runner, no mocks).
"""

from __future__ import annotations

import pickle

import pytest

from pyperunner import Inputs, Task, TaskDefinitionError, WiringError, run, task

# -- tasks used throughout (module level, as a user would define them) ------------------------


@task("simple-task")
def simpletask(data):
    return "simple-task"


@task("SimpleTaskWithInput")
def simpletask_with_input(data):
    return "simple-task"


@task("SimpleTaskWithoutInput", receives_input=False)
def simpletask_without_input():
    return "simple-task"


@task("MyTaskWithParameters")
def my_function(data, reduce, n_iterations=10):
    return {"data": list(data), "reduce": reduce, "n_iterations": n_iterations}


@task("Source", receives_input=False)
def source(value=1):
    return value


class Hello(Task):
    @run
    def run(self, data):
        return "Hello"


@task("MyTaskWithParameters")
class SomeWorker(Task):
    @run
    def run(self, data, reduce, n_iterations=10):
        return {"data": list(data), "reduce": reduce, "n_iterations": n_iterations}


class LoadData(Task):
    """The manual's multi-path example: ``run(self, data, wait, **kwargs)``."""

    @run
    def run(self, data, wait, **kwargs):
        return {"wait": wait, **kwargs}


class Undecorated(Task):
    def run(self, data):
        return "never"


class NoRunAtAll(Task):
    pass


class Start(Task):
    @run
    def run(self):
        return "start"


class ReservedTag(Task):
    @run
    def run(self, data, tag):
        return tag


class ReservedReload(Task):
    @run
    def run(self, data, reload):
        return reload


# -- names -------------------------------------------------------------------------------------


def test_function_task_name_is_name_and_keyword_tag():
    assert simpletask(tag="first").name == "simple-task(first)"


def test_function_task_name_with_positional_tag():
    assert simpletask("first").name == "simple-task(first)"


def test_function_task_without_tag_is_named_with_empty_parentheses():
    assert simpletask().name == "simple-task()"


def test_manual_example_first_and_second_task_names():
    first_task = simpletask(tag="first")
    second_task = simpletask(tag="second")
    assert first_task.name == "simple-task(first)"
    assert second_task.name == "simple-task(second)"


def test_class_task_name_is_class_name_and_tag():
    assert Hello().name == "Hello()"
    assert Hello("x").name == "Hello(x)"
    assert Hello(tag="y").name == "Hello(y)"


def test_non_string_tag_is_rendered_in_name():
    assert simpletask(tag=3).name == "simple-task(3)"


def test_tag_is_stored_on_the_task():
    assert simpletask(tag="first").tag == "first"
    assert simpletask().tag == ""


# -- @task on functions ------------------------------------------------------------------------


def test_function_task_is_a_task_subclass_created_by_calling_the_function():
    created = simpletask_with_input()
    assert isinstance(created, Task)
    assert created.receives_input()


def test_function_task_executes_the_function_on_its_inputs():
    created = simpletask_with_input()
    assert created.execute(Inputs([("A()", 1)])) == "simple-task"


def test_function_without_data_raises_the_manuals_attribute_error():
    manual = 'To receive input data, the function must accept the named parameter "data"'
    with pytest.raises(AttributeError, match=manual) as raised:

        @task("SimpleTaskError")
        def simpletask_without_input_error():
            return "simple-task"

    assert "SimpleTaskError" in str(raised.value) and "receives_input=False" in str(raised.value)


def test_receives_input_false_task_is_created_and_runs_without_data():
    created = simpletask_without_input()
    assert created.name == "SimpleTaskWithoutInput()"
    assert not created.receives_input()
    assert created.execute(Inputs()) == "simple-task"


def test_receives_input_false_with_data_parameter_is_rejected():
    with pytest.raises(TaskDefinitionError, match="data"):

        @task("Contradiction", receives_input=False)
        def contradiction(data):
            return data


def test_bare_task_decorator_raises_helpful_type_error():
    with pytest.raises(TypeError, match=r"@task\(\"Name\"\)"):

        @task
        def bare(data):
            return data


def test_task_decorator_on_non_function_non_task_raises_type_error():
    with pytest.raises(TypeError):
        task("Thing")(42)


def test_function_task_parameters_are_passed_when_executing():
    created = my_function(reduce=True, n_iterations=20)
    result = created.execute(Inputs([("P()", "x")]))
    assert result == {"data": ["x"], "reduce": True, "n_iterations": 20}


def test_function_task_keeps_function_module_and_qualname():
    assert my_function.__module__ == __name__
    assert my_function.__qualname__ == "my_function"
    assert my_function.identity() == f"{__name__}:my_function"


@pytest.mark.parametrize("reserved", ["tag", "reload"])
def test_function_parameter_with_reserved_name_is_rejected(reserved):
    source_code = f"def f(data, {reserved}):\n    return data\n"
    namespace: dict = {}
    exec(source_code, namespace)
    with pytest.raises(TaskDefinitionError, match=reserved):
        task("Reserved")(namespace["f"])


@pytest.mark.parametrize("cls", [ReservedTag, ReservedReload])
def test_class_run_parameter_with_reserved_name_is_rejected(cls):
    with pytest.raises(TaskDefinitionError, match="reserved"):
        cls()


# -- @task(name) on a Task subclass (clarifications.md) ---------------------------------------


def test_task_decorator_on_task_subclass_returns_the_class():
    assert isinstance(SomeWorker, type)
    assert issubclass(SomeWorker, Task)
    assert SomeWorker.__name__ == "SomeWorker"


def test_task_decorator_on_task_subclass_sets_the_task_name():
    assert SomeWorker(reduce=True).name == "MyTaskWithParameters()"
    assert SomeWorker("t", reduce=True).name == "MyTaskWithParameters(t)"


def test_task_decorator_on_task_subclass_keeps_parameters_and_execution():
    worker = SomeWorker(reduce=True, n_iterations=20)
    assert worker.params == {"reduce": True, "n_iterations": 20}
    assert worker.execute(Inputs([("A()", 1)])) == {
        "data": [1],
        "reduce": True,
        "n_iterations": 20,
    }


# -- class tasks and @run ----------------------------------------------------------------------


def test_class_task_with_run_decorator_is_created_and_executes():
    hello = Hello()
    assert hello.execute(Inputs()) == "Hello"


def test_undecorated_run_is_an_error_at_creation_naming_class_and_run_decorator():
    with pytest.raises(TaskDefinitionError) as excinfo:
        Undecorated()
    message = str(excinfo.value)
    assert "Undecorated" in message
    assert "@run" in message


def test_task_definition_error_is_a_type_error():
    assert issubclass(TaskDefinitionError, TypeError)
    with pytest.raises(TypeError):
        Undecorated()


def test_task_subclass_without_run_is_an_error_at_creation():
    with pytest.raises(TaskDefinitionError, match=r"NoRunAtAll has no run\(\): implement.*@run"):
        NoRunAtAll()


def test_task_base_class_cannot_be_instantiated():
    with pytest.raises(TaskDefinitionError):
        Task()


def test_subclass_inheriting_decorated_run_is_valid():
    class LoadCsv(LoadData):
        pass

    created = LoadCsv(tag="csv", wait=1)
    assert created.name == "LoadCsv(csv)"
    assert created.execute(Inputs()) == {"wait": 1}


def test_class_task_without_data_does_not_receive_input():
    start = Start()
    assert not start.receives_input()
    assert start.execute(Inputs()) == "start"


# -- parameter binding -------------------------------------------------------------------------


def test_missing_parameter_of_function_task_names_task_and_parameter():
    with pytest.raises(TaskDefinitionError) as excinfo:
        my_function(tag="t")
    message = str(excinfo.value)
    assert "MyTaskWithParameters(t)" in message
    assert "reduce" in message


def test_unknown_parameter_of_function_task_names_task_and_parameter():
    with pytest.raises(TaskDefinitionError) as excinfo:
        my_function(tag="t", reduce=True, n_iteration=3)
    message = str(excinfo.value)
    assert "MyTaskWithParameters(t)" in message
    assert "n_iteration" in message


def test_missing_parameter_of_class_task_names_task_and_parameter():
    with pytest.raises(TaskDefinitionError) as excinfo:
        SomeWorker(tag="w")
    message = str(excinfo.value)
    assert "MyTaskWithParameters(w)" in message
    assert "reduce" in message


def test_unknown_parameter_of_class_task_names_task_and_parameter():
    with pytest.raises(TaskDefinitionError) as excinfo:
        Hello(tag="h", colour="red")
    message = str(excinfo.value)
    assert "Hello(h)" in message
    assert "colour" in message


def test_data_cannot_be_passed_as_a_parameter():
    with pytest.raises(TaskDefinitionError, match="data"):
        my_function(reduce=True, data=[1])


def test_parameter_errors_are_type_errors():
    with pytest.raises(TypeError):
        my_function()


def test_var_keyword_run_accepts_any_extra_parameters():
    created = LoadData(tag="csv", wait=1, path="in.csv", retries=3)
    assert created.params == {"wait": 1, "path": "in.csv", "retries": 3}
    assert created.execute(Inputs()) == {"wait": 1, "path": "in.csv", "retries": 3}


def test_var_keyword_run_still_requires_named_parameters():
    with pytest.raises(TaskDefinitionError, match="wait"):
        LoadData(tag="csv", path="in.csv")


def test_defaults_are_bound_at_creation():
    assert my_function(reduce=True).params == {"reduce": True, "n_iterations": 10}
    assert SomeWorker(reduce=False).params == {"reduce": False, "n_iterations": 10}


def test_defaults_applied_before_hashing_function_task():
    assert my_function(reduce=True).hash() == my_function(reduce=True, n_iterations=10).hash()
    assert my_function(reduce=True).hash() != my_function(reduce=True, n_iterations=20).hash()


def test_defaults_applied_before_hashing_class_task():
    assert SomeWorker(reduce=True).hash() == SomeWorker(reduce=True, n_iterations=10).hash()
    assert SomeWorker(reduce=True).hash() != SomeWorker(reduce=True, n_iterations=11).hash()


def test_reload_flag_is_stored():
    assert simpletask(tag="a", reload=True).reload is True
    assert simpletask(tag="a").reload is False


# -- Inputs (the `data` list) ------------------------------------------------------------------


def make_inputs():
    return Inputs([("Load(csv)", "csv-rows"), ("Load(db)", "db-rows"), ("Other()", 3)])


def test_inputs_is_a_list_in_parent_order():
    data = make_inputs()
    assert isinstance(data, list)
    assert data == ["csv-rows", "db-rows", 3]
    assert len(data) == 3
    assert list(data) == ["csv-rows", "db-rows", 3]


def test_inputs_supports_integer_index_negative_index_and_slice():
    data = make_inputs()
    assert data[0] == "csv-rows"
    assert data[-1] == 3
    assert data[0:2] == ["csv-rows", "db-rows"]


def test_inputs_supports_unpacking_and_iteration():
    first, second, third = make_inputs()
    assert (first, second, third) == ("csv-rows", "db-rows", 3)
    assert [item for item in make_inputs()] == ["csv-rows", "db-rows", 3]


def test_inputs_can_be_indexed_by_parent_name():
    data = make_inputs()
    assert data["Load(csv)"] == "csv-rows"
    assert data["Load(db)"] == "db-rows"
    assert data["Other()"] == 3


def test_inputs_unknown_name_raises_key_error_listing_parents():
    data = make_inputs()
    with pytest.raises(KeyError) as excinfo:
        data["Load(parquet)"]
    message = str(excinfo.value)
    assert "Load(parquet)" in message
    assert "Load(csv)" in message
    assert "Load(db)" in message
    assert "Other()" in message


def test_empty_inputs_is_an_empty_list():
    data = Inputs()
    assert data == []
    assert len(data) == 0
    with pytest.raises(KeyError):
        data["Anything()"]


def test_inputs_pickle_round_trip_keeps_values_and_names():
    data = make_inputs()
    restored = pickle.loads(pickle.dumps(data))
    assert isinstance(restored, Inputs)
    assert restored == ["csv-rows", "db-rows", 3]
    assert restored["Load(db)"] == "db-rows"
    assert restored.names == ["Load(csv)", "Load(db)", "Other()"]


def test_task_receives_inputs_with_names():
    @task("Pick", receives_input=True)
    def pick(data):
        return data["Load(db)"]

    assert pick().execute(make_inputs()) == "db-rows"


# -- wiring ------------------------------------------------------------------------------------


def test_calling_a_task_with_a_parent_connects_both_directions():
    parent = simpletask(tag="p")
    child = simpletask(tag="c")
    assert child(parent) is child
    assert child.parents == [parent]
    assert parent.children == [child]


def test_calling_a_task_with_a_list_connects_parents_in_order():
    p1, p2, p3 = simpletask(tag="1"), simpletask(tag="2"), simpletask(tag="3")
    child = simpletask(tag="c")
    assert child([p2, p1, p3]) is child
    assert child.parents == [p2, p1, p3]


def test_calling_a_task_with_a_tuple_connects_parents():
    p1, p2 = simpletask(tag="1"), simpletask(tag="2")
    child = simpletask(tag="c")
    child((p1, p2))
    assert child.parents == [p1, p2]


def test_chaining_returns_the_child():
    first_task = simpletask(tag="first")
    second_task = simpletask(tag="second")
    third_task = simpletask(tag="third")
    fourth_task = simpletask(tag="fourth")
    assert fourth_task(third_task(second_task(first_task))) is fourth_task
    assert fourth_task.parents == [third_task]
    assert third_task.parents == [second_task]
    assert second_task.parents == [first_task]
    assert first_task.parents == []


def test_ancestors_and_descendants_cover_the_chain():
    a, b, c = simpletask(tag="a"), simpletask(tag="b"), simpletask(tag="c")
    c(b(a))
    assert set(c.ancestors()) == {a, b}
    assert set(a.descendants()) == {b, c}
    assert list(a.ancestors()) == []


def test_connecting_a_class_instead_of_an_instance_is_a_wiring_error():
    child = simpletask(tag="c")
    with pytest.raises(WiringError) as excinfo:
        child(Hello)
    message = str(excinfo.value)
    assert "Hello" in message
    assert "class" in message


def test_connecting_a_function_task_class_instead_of_an_instance_is_a_wiring_error():
    child = simpletask(tag="c")
    with pytest.raises(WiringError, match="class"):
        child(simpletask_without_input)


@pytest.mark.parametrize("not_a_task", [42, "Load(csv)", None, {"a": 1}])
def test_connecting_a_non_task_is_a_wiring_error(not_a_task):
    child = simpletask(tag="c")
    with pytest.raises(WiringError, match="task"):
        child(not_a_task)
    assert child.parents == []


def test_non_task_in_a_list_is_rejected_and_nothing_is_connected():
    good = simpletask(tag="good")
    child = simpletask(tag="c")
    with pytest.raises(WiringError):
        child([good, 42])
    assert child.parents == []
    assert good.children == []


def test_wiring_error_is_a_value_error():
    assert issubclass(WiringError, ValueError)
    with pytest.raises(ValueError):
        simpletask(tag="c")(42)


def test_a_task_without_data_can_follow_other_tasks_and_its_key_covers_theirs():
    parent = source("p", value=1)
    start = simpletask_without_input()
    assert start(parent) is start  # an ordering-only dependency: no WiringError
    assert start.parents == [parent] and parent.children == [start]
    alone = simpletask_without_input().hash()
    assert start.hash() != alone
    other = simpletask_without_input()(source("p", value=2))
    assert other.hash() not in (start.hash(), alone)
    assert start.execute(Inputs()) == "simple-task"  # it is never given data


def test_a_class_task_without_data_can_follow_other_tasks():
    start = Start()(Hello())
    assert [p.name for p in start.parents] == ["Hello()"]


def test_connecting_the_same_parent_twice_is_a_wiring_error():
    parent = simpletask(tag="p")
    child = simpletask(tag="c")
    child(parent)
    with pytest.raises(WiringError) as excinfo:
        child(parent)
    assert "simple-task(p)" in str(excinfo.value)
    assert child.parents == [parent]
    assert parent.children == [child]


def test_duplicate_parent_in_one_list_is_a_wiring_error():
    parent = simpletask(tag="p")
    child = simpletask(tag="c")
    with pytest.raises(WiringError, match=r"simple-task\(p\)"):
        child([parent, parent])
    assert child.parents == []
    assert parent.children == []


def test_cycle_is_a_wiring_error_naming_the_tasks():
    a, b, c = simpletask(tag="a"), simpletask(tag="b"), simpletask(tag="c")
    c(b(a))
    with pytest.raises(WiringError) as excinfo:
        a(c)
    message = str(excinfo.value)
    assert "cycle" in message
    assert "simple-task(a)" in message
    assert "simple-task(c)" in message
    assert a.parents == []
    assert c.children == []


def test_two_task_cycle_is_a_wiring_error():
    a, b = simpletask(tag="a"), simpletask(tag="b")
    b(a)
    with pytest.raises(WiringError, match="cycle"):
        a(b)


def test_connecting_a_task_to_itself_is_reported_as_a_cycle():
    a = simpletask(tag="a")
    with pytest.raises(WiringError, match="cycle"):
        a(a)
    assert a.parents == []


def test_diamond_is_not_a_cycle():
    top = simpletask(tag="top")
    left, right = simpletask(tag="left"), simpletask(tag="right")
    bottom = simpletask(tag="bottom")
    left(top)
    right(top)
    assert bottom([left, right]) is bottom
    assert set(bottom.ancestors()) == {top, left, right}


# -- names and arguments that would go wrong later ---------------------------------------------


def test_a_second_positional_argument_is_an_error_naming_the_task_and_its_parameter():
    with pytest.raises(TaskDefinitionError, match=r"Source\(tg\).*only the tag.*by name") as raised:
        source("tg", 5)
    assert "source('tg', value=5)" in str(raised.value)


@pytest.mark.parametrize("make", [lambda: simpletask("x", data=[1]), lambda: source(data=[1])])
def test_data_passed_as_a_parameter_says_it_comes_from_the_parents(make):
    with pytest.raises(TaskDefinitionError, match=r"data is not a parameter.*parents.*\(parent\)"):
        make()


def test_task_twice_on_one_function_or_class_is_an_error_naming_both() -> None:
    with pytest.raises(TaskDefinitionError, match=r"@task\('A'\).*already named 'B'.*one @task"):

        @task("A")
        @task("B")
        def twice(data):
            return data

    with pytest.raises(TaskDefinitionError, match=r"already named 'B'"):

        @task("A")
        @task("B")
        class Twice(Task):
            @run
            def run(self):
                return 1

    @task("Renamed")
    class Sub(SomeWorker):  # a subclass of a named class may take its own name
        pass

    assert Sub("x", reduce=1).name == "Renamed(x)"
    assert SomeWorker("x", reduce=1).name == "MyTaskWithParameters(x)"


def test_a_positional_true_after_the_tag_suggests_reload_first():
    """``Task(tag, True)`` was ``reload=True`` in pyperunner's earlier signature."""
    with pytest.raises(TaskDefinitionError) as raised:
        source("tg", True)
    assert "e.g. source('tg', reload=True) or source('tg', value=True)" in str(raised.value)
    with pytest.raises(TaskDefinitionError) as raised:
        source("tg", 5)
    assert "reload" not in str(raised.value).split("e.g.")[1]


@pytest.mark.parametrize("tag", ["a/b", "../../escape", "back\\slash", "nul\0"])
def test_a_tag_that_is_no_folder_name_is_rejected_at_creation(tag):
    with pytest.raises(TaskDefinitionError, match="folder name"):
        source(tag)


def test_a_parameter_changed_after_creation_changes_the_key():
    values = [1, 2]
    made = source("list", value=values)
    before = made.hash()
    values.append(100)
    assert made.hash() != before
    assert made.hash() == source("list", value=[1, 2, 100]).hash()
    assert before == source("list", value=[1, 2]).hash()


@pytest.mark.parametrize("name", [None, 123, ""])
def test_task_without_a_name_string_says_how_to_write_it(name):
    with pytest.raises(TypeError, match=r'non-empty string, got .*@task\("Name"\)'):
        task() if name is None else task(name)


def test_async_and_generator_functions_are_refused_as_tasks():
    with pytest.raises(TaskDefinitionError, match=r"'Async'.*async function.*return its output"):

        @task("Async", receives_input=False)
        async def fetch():
            return 1

    with pytest.raises(TaskDefinitionError, match=r"'Gen'.*generator function.*return"):

        @task("Gen", receives_input=False)
        def numbers():
            yield 1

    with pytest.raises(TaskDefinitionError, match=r"run\(\) is an async function"):

        class AsyncRun(Task):
            @run
            async def run(self, data):
                return 1


def test_run_on_a_class_says_where_it_goes():
    with pytest.raises(TaskDefinitionError, match=r"@run decorates the run\(\) method.*def run"):

        @run
        class Misplaced(Task):
            def run(self, data):
                return 1


@pytest.mark.parametrize("tag", ["a\nb", "tab\there", "bell\x07"])
def test_a_tag_with_control_characters_is_rejected(tag):
    with pytest.raises(TaskDefinitionError, match="folder name"):
        source(tag)


def test_bad_execution_settings_name_the_task_not_the_function():
    with pytest.raises(TaskDefinitionError, match=r"task Fetch: retries"):

        @task("Fetch", receives_input=False, retries=-1)
        def fetch_it():
            return 1


# -- tags and names the file system and hashing can hold ---------------------------------------


@pytest.mark.parametrize(
    "make, parent",
    [
        (lambda: simpletask(simpletask_without_input()), "simpletask_without_input"),
        (lambda: simpletask(simpletask_without_input), "simpletask_without_input"),
        (lambda: Hello(Start()), "Start"),
        (lambda: Hello(Start), "Start"),
    ],
    ids=["function task", "function task class", "class task", "class"],
)
def test_a_task_given_where_the_tag_goes_shows_how_to_connect_it(make, parent):
    with pytest.raises(WiringError) as raised:
        make()
    message = str(raised.value)
    assert "tag" in message
    child = "simpletask" if "simpletask(" in message else "Hello"
    assert f"{child}()({parent}())" in message


@pytest.mark.parametrize("tag", [[1], {"a": 1}, object(), b"bytes", 1j], ids=repr)
def test_a_tag_that_is_neither_text_nor_a_number_is_refused_at_creation(tag):
    with pytest.raises(TaskDefinitionError, match="a tag is a string or a number"):
        simpletask(tag)


def test_a_boolean_tag_is_refused_pointing_at_reload():
    with pytest.raises(TaskDefinitionError, match="reload=True"):
        simpletask(True)


@pytest.mark.parametrize("tag, name", [(3, "simple-task(3)"), (2.5, "simple-task(2.5)")])
def test_a_numeric_tag_is_converted_to_text(tag, name):
    created = simpletask(tag)
    assert created.name == name and created.tag == name[12:-1]


@pytest.mark.parametrize("tag", ["x" * 300, "\U0001f600" * 70], ids=["300 characters", "70 emoji"])
def test_a_name_longer_than_a_folder_name_may_be_is_refused_at_creation(tag):
    with pytest.raises(TaskDefinitionError, match="255 bytes") as raised:
        simpletask(tag)
    assert "simple-task(" in str(raised.value)


def test_the_longest_name_a_folder_holds_is_accepted_and_runs(tmp_path):
    from pyperunner import Pipeline, Runner

    tag = "\u00e9" + "x" * (255 - len("Source()") - 2)  # 'é' takes 2 bytes in UTF-8
    assert len(source(tag).name.encode()) == 255
    runner = Runner(tmp_path / "data", tmp_path / "log", executor="inline", progress=False)
    assert runner.run(Pipeline("long", [source(tag)]))[f"Source({tag})"] == 1


def test_a_tag_that_is_not_text_is_refused_at_creation_not_when_hashing():
    with pytest.raises(TaskDefinitionError, match="not text"):
        simpletask("photo-\udcff.jpg")


def test_task_error_is_the_base_of_definition_and_wiring_errors():
    from pyperunner import TaskError

    assert issubclass(TaskDefinitionError, TaskError)
    assert issubclass(WiringError, TaskError)
    with pytest.raises(TaskError):
        Undecorated()


def test_a_classs_signature_is_worked_out_once_and_again_for_a_new_run(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Creating many tasks of a class reads its function's signature once; a ``run`` replaced
    on the class (a notebook cell run again) is read afresh, with its new parameters."""
    import inspect

    class Scaled(Task):
        @run
        def run(self, factor=1):
            return factor

    read: list[object] = []
    real = inspect.signature
    monkeypatch.setattr(inspect, "signature", lambda f: read.append(f) or real(f))

    tasks = [Scaled(str(k), factor=k) for k in range(50)]
    assert len(read) == 1 and tasks[7].params == {"factor": 7}

    @run
    def rerun(self, factor=1, offset=0):
        return factor + offset

    Scaled.run = rerun
    assert Scaled("again", offset=2).params == {"factor": 1, "offset": 2}
    assert len(read) == 2
    code = Scaled.code_fingerprint()  # what is cached is not the task's code
    del Scaled._signature_of
    Task._code_cache.pop(Scaled, None)
    assert Scaled.code_fingerprint() == code
