"""Code tracking beyond the task itself: the user's helper functions a task calls count too."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from pyperunner import fingerprint

HELPERS = """
def scale(x):
    return x * {factor}


def clean(x):
    # strips and scales
    return scale(x) + {offset}
"""

TASKS = """
import json
import helpers
from helpers import clean
from pyperunner import Task, run, task


@task("Direct")
def direct(data):
    return clean(1)


@task("ViaModule")
def via_module(data):
    return helpers.scale(2)


@task("LibraryOnly")
def library_only(data):
    return json.dumps([1])


class Klass(Task):
    @run
    def run(self, data):
        return clean(3)
"""


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factor: int, offset: int, comment: str):
    """Write helpers.py and tasks.py into tmp_path and import them afresh."""
    (tmp_path / "helpers.py").write_text(
        f"# {comment}\n" + textwrap.dedent(HELPERS.format(factor=factor, offset=offset))
    )
    (tmp_path / "tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("helpers", "tasks"):
        sys.modules.pop(name, None)
    importlib.invalidate_caches()
    tasks = importlib.import_module("tasks")
    return {
        name: getattr(tasks, name)().code_fingerprint()
        for name in ("direct", "via_module", "library_only", "Klass")
    }


@pytest.fixture
def variants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def make(factor: int = 2, offset: int = 1, comment: str = "v1"):
        folder = tmp_path / f"{factor}-{offset}-{comment}"
        folder.mkdir()
        return load(folder, monkeypatch, factor, offset, comment)

    yield make
    for name in ("helpers", "tasks"):
        sys.modules.pop(name, None)


def test_editing_a_helper_changes_the_tasks_that_call_it(variants):
    before = variants(offset=1)
    after = variants(offset=5)  # clean() changed; scale() did not
    assert after["direct"] != before["direct"]
    assert after["Klass"] != before["Klass"]
    assert after["via_module"] == before["via_module"]
    assert after["library_only"] == before["library_only"]


def test_a_helper_called_through_another_helper_counts(variants):
    before = variants(factor=2)
    after = variants(factor=3)  # scale() changed: clean() calls it, helpers.scale is called
    assert after["direct"] != before["direct"]
    assert after["via_module"] != before["via_module"]
    assert after["Klass"] != before["Klass"]
    assert after["library_only"] == before["library_only"]


def test_comments_in_helpers_do_not_count(variants):
    assert variants(comment="first") == variants(comment="second")


def test_library_code_is_not_user_code():
    import json
    import os.path

    import joblib

    assert not fingerprint._is_user_code(json.dumps)
    assert not fingerprint._is_user_code(os.path.join)
    assert not fingerprint._is_user_code(joblib.dump)
    assert not fingerprint._is_user_code(len)
    assert fingerprint._is_user_code(test_library_code_is_not_user_code)


def test_recursive_helpers_terminate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "rec.py").write_text(
        textwrap.dedent(
            """
            from pyperunner import task

            def ping(n):
                return pong(n - 1) if n else 0

            def pong(n):
                return ping(n - 1) if n else 1

            @task("Rec", receives_input=False)
            def rec():
                return ping(3)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("rec", None)
    try:
        rec = importlib.import_module("rec")
        assert len(rec.rec().code_fingerprint()) == 32
    finally:
        sys.modules.pop("rec", None)


# -- same-process edits, constants, lazy imports, decorators ------------------------------------

MODULE_NAMES = ("hmod", "decos", "tmod")


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Write modules (name -> source) into a fresh folder of tmp_path; import and return one."""
    count = iter(range(1000))

    def make(main: str = "tmod", **sources: str):
        folder = tmp_path / f"v{next(count)}"
        folder.mkdir()
        for name, source in sources.items():
            (folder / f"{name}.py").write_text(textwrap.dedent(source))
        monkeypatch.syspath_prepend(str(folder))
        for name in MODULE_NAMES:
            sys.modules.pop(name, None)
        importlib.invalidate_caches()
        return importlib.import_module(main)

    yield make
    for name in MODULE_NAMES:
        sys.modules.pop(name, None)


NOTEBOOK = """
from pyperunner import task

FACTOR = 2


def helper(x):
    return x + 1


@task("UsesHelper", receives_input=False)
def uses_helper():
    return helper(1)


def scaled(x):
    return x * FACTOR


@task("UsesConstant", receives_input=False)
def uses_constant():
    return FACTOR


@task("UsesConstantViaHelper", receives_input=False)
def via_helper():
    return scaled(1)


@task("ShadowsConstant")
def shadows(data, FACTOR=1):
    return [FACTOR for _ in data]
"""


def test_redefining_a_helper_in_the_same_process_changes_the_fingerprint(modules):
    tmod = modules(tmod=NOTEBOOK)
    first = tmod.uses_helper.code_fingerprint()
    exec("def helper(x):\n    return x + 2\n", vars(tmod))  # re-running a notebook cell
    second = tmod.uses_helper.code_fingerprint()
    assert second != first
    exec("def helper(x):\n    return x + 2\n", vars(tmod))  # the same code again
    assert tmod.uses_helper.code_fingerprint() == second
    tmod.helper.__code__ = (lambda x: x + 3).__code__
    assert tmod.uses_helper.code_fingerprint() not in (first, second)


def test_a_cached_fingerprint_is_checked_not_recomputed(modules, monkeypatch):
    tmod = modules(tmod=NOTEBOOK)
    tmod.uses_helper.code_fingerprint()
    calls = []
    compute = fingerprint.compute
    monkeypatch.setattr(fingerprint, "compute", lambda *args: calls.append(1) or compute(*args))
    for _ in range(100):
        tmod.uses_helper.code_fingerprint()
    assert calls == []
    tmod.FACTOR = 5  # a name uses_helper does not read
    tmod.uses_helper.code_fingerprint()
    assert calls == []
    tmod.helper = lambda x: x
    tmod.uses_helper.code_fingerprint()
    assert calls == [1]


def test_editing_a_global_constant_changes_the_tasks_that_read_it(modules):
    tmod = modules(tmod=NOTEBOOK)
    names = ("uses_constant", "via_helper", "shadows", "uses_helper")
    before = {name: getattr(tmod, name).code_fingerprint() for name in names}
    tmod.FACTOR = 3
    after = {name: getattr(tmod, name).code_fingerprint() for name in names}
    assert after["uses_constant"] != before["uses_constant"]
    assert after["via_helper"] != before["via_helper"]
    assert after["shadows"] == before["shadows"]  # a parameter of the same name
    assert after["uses_helper"] == before["uses_helper"]


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (None, False),
        (1, True),
        (1, 1.0),
        (0.1, 0.2),
        (1j, 2j),
        ("a", b"a"),
        ((1, 2), [1, 2]),
        ([1, [2]], [1, [3]]),
        ({"a": 1}, {"a": 2}),
        ({1, "x"}, frozenset({1, "x"})),
        ({1: (None, b"x")}, {1: (None, b"y")}),
    ],
)
def test_plain_data_constants_count(modules, old, new):
    tmod = modules(tmod=NOTEBOOK)
    tmod.FACTOR = old
    before = tmod.uses_constant.code_fingerprint()
    tmod.FACTOR = new
    assert tmod.uses_constant.code_fingerprint() != before


def test_a_constant_changed_in_place_counts(modules):
    tmod = modules(tmod=NOTEBOOK)
    tmod.FACTOR = {"weights": [1, 2]}
    before = tmod.uses_constant.code_fingerprint()
    tmod.FACTOR["weights"].append(3)
    assert tmod.uses_constant.code_fingerprint() != before


def test_data_text_is_canonical_and_bounded():
    assert fingerprint.data_text({3, "b", 1, (2,)}) == fingerprint.data_text({(2,), 1, "b", 3})
    assert fingerprint.data_text({"b": 1, 2: 2}) == fingerprint.data_text({2: 2, "b": 1})
    assert fingerprint.data_text([1]) != fingerprint.data_text((1,))
    assert fingerprint.data_text(list(range(1000))) is not None
    assert fingerprint.data_text(list(range(10**6))) is None  # too large: not hashed
    assert fingerprint.data_text("x" * 10**8) is None
    assert fingerprint.data_text(10**100_000) is None
    cyclic: list = []
    cyclic.append(cyclic)
    assert fingerprint.data_text(cyclic) is None
    for other in (object(), sys, len, fingerprint.data_text, Path, [object()], True.__class__):
        assert fingerprint.data_text(other) is None


def test_a_huge_constant_is_not_encoded_again_on_every_call(modules, monkeypatch):
    tmod = modules(tmod=NOTEBOOK)
    tmod.FACTOR = list(range(10**7))
    tmod.uses_constant.code_fingerprint()
    encoded: list[object] = []
    real = fingerprint._encode
    monkeypatch.setattr(
        fingerprint, "_encode", lambda value, *a: encoded.append(value) or real(value, *a)
    )
    for _ in range(100):
        tmod.uses_constant.code_fingerprint()
    assert encoded == []


LAZY_TASKS = """
from pyperunner import task


@task("FromImport")
def from_import(data):
    from hmod import lazy_helper
    return lazy_helper(data)


@task("ModuleImport")
def module_import(data):
    import hmod as h
    return h.other(data) + h.LIMIT


@task("LibraryImport")
def library_import(data):
    import json
    import numpy as np
    return json.dumps(data) + str(np.sum(data))
"""

LAZY_HELPERS = """
LIMIT = {limit}


def lazy_helper(x):
    return x + {add}


def other(x):
    return lazy_helper(x) * 2
"""


def test_helpers_imported_inside_the_task_count(modules):
    def load(add: int, limit: int) -> dict[str, str]:
        tmod = modules(tmod=LAZY_TASKS, hmod=LAZY_HELPERS.format(add=add, limit=limit))
        assert "hmod" not in sys.modules  # imported for the fingerprint
        return {n: getattr(tmod, n).code_fingerprint() for n in ("from_import", "module_import")}

    base = load(add=1, limit=10)
    assert "hmod" in sys.modules
    edited = load(add=2, limit=10)
    assert edited["from_import"] != base["from_import"]
    assert edited["module_import"] != base["module_import"]
    limit = load(add=1, limit=11)
    assert limit["from_import"] == base["from_import"]
    assert limit["module_import"] != base["module_import"]


def test_library_code_does_not_count(modules):
    tmod = modules(tmod=LAZY_TASKS, hmod=LAZY_HELPERS.format(add=1, limit=1))
    walk = fingerprint._Walk(set())
    walk.collect(tmod.library_import.func)
    assert walk.found == {}
    walk.collect(tmod.module_import.func)
    assert set(walk.found) == {"hmod:lazy_helper", "hmod:other", "hmod.LIMIT"}


DECORATED_TASKS = """
import functools

from decos import traced
from hmod import cached, plain_cache, traced_helper
from pyperunner import task


@task("LruCache")
def lru(data):
    return cached(data)


@task("Cache")
def cache(data):
    return plain_cache(data)


@task("Traced")
def traced_task(data):
    return traced_helper(data)


@task("TracedTask")
@traced
def traced_itself(data):
    return data + {task_add}
"""

DECOS = """
import functools


def traced(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return func(*args, **kwargs)

    return wrapper
"""

DECORATED_HELPERS = """
import functools

from decos import traced


@functools.lru_cache(maxsize=None)
def cached(x):
    return x + {lru}


@functools.cache
def plain_cache(x):
    return x * {cache}


@traced
def traced_helper(x):
    return x - {traced}
"""


def test_decorated_helpers_count_through_wrapped(modules):
    names = ("lru", "cache", "traced_task", "traced_itself")

    def load(lru=1, cache=1, traced=1, task_add=1) -> dict[str, str]:
        tmod = modules(
            tmod=DECORATED_TASKS.replace("{task_add}", str(task_add)),
            decos=DECOS,
            hmod=DECORATED_HELPERS.format(lru=lru, cache=cache, traced=traced),
        )
        return {name: getattr(tmod, name).code_fingerprint() for name in names}

    base = load()
    for edit, changed in [("lru", "lru"), ("cache", "cache"), ("traced", "traced_task")]:
        after = load(**{edit: 2})
        assert {n for n in names if after[n] != base[n]} == {changed}
    assert {n for n, fp in load(task_add=2).items() if fp != base[n]} == {"traced_itself"}


def test_cycles_through_wrappers_and_imports_terminate(modules):
    tmod = modules(
        tmod="""
        from pyperunner import task


        def ping(n):
            from tmod import pong
            return pong(n - 1) if n else 0


        def pong(n):
            import tmod
            return tmod.ping(n - 1) if n else 1


        @task("Cycle", receives_input=False)
        def cycle():
            return ping(3) + pong(2)
        """
    )
    tmod.ping.__wrapped__ = tmod.ping
    tmod.pong.__wrapped__ = tmod.ping
    assert len(tmod.cycle.code_fingerprint()) == 32


INDIRECT_HELPERS = """
import functools


def plain_deco(func):
    def inner(*args):  # no functools.wraps: the helper is only in the closure
        return func(*args)

    return inner


@plain_deco
def decorated(x):
    return x + {decorated}


def op_add(x):
    return x + {table}


OPS = {{"add": op_add}}


def base(x, y):
    return x * y + {partial}


scaled = functools.partial(base, y={partial_arg})


class Cleaner:
    def __init__(self, by):
        self.by = by

    def __call__(self, x):
        return x - self.by * {instance}


CLEANER = Cleaner({instance_arg})
"""

INDIRECT_TASKS = """
import hmod
from pyperunner import task


@task("Decorated", receives_input=False)
def decorated():
    return hmod.decorated(1)


@task("Table", receives_input=False)
def table():
    return hmod.OPS["add"](1)


@task("Partial", receives_input=False)
def partial():
    return hmod.scaled(1)


@task("Instance", receives_input=False)
def instance():
    return hmod.CLEANER(1)
"""


def test_helpers_reached_through_closures_tables_partials_and_instances_count(modules):
    names = ("decorated", "table", "partial", "instance")
    defaults = dict(decorated=1, table=1, partial=1, partial_arg=2, instance=1, instance_arg=3)

    def load(**edit: int) -> dict[str, str]:
        source = INDIRECT_HELPERS.format(**{**defaults, **edit})
        tmod = modules(tmod=INDIRECT_TASKS, hmod=source)
        return {name: getattr(tmod, name).code_fingerprint() for name in names}

    base = load()
    assert load() == base
    for edit, changed in [
        ("decorated", "decorated"),
        ("table", "table"),
        ("partial", "partial"),
        ("partial_arg", "partial"),
        ("instance", "instance"),
        ("instance_arg", "instance"),
    ]:
        after = load(**{edit: 7})
        assert {n for n in names if after[n] != base[n]} == {changed}, edit


# -- what closures, constants of parameter kinds and user objects hold ----------------------------

CLOSURES = """
import dataclasses
import datetime
import functools
from collections import namedtuple
from pathlib import Path

import numpy as np

from pyperunner import task


def scale(factor, wraps):
    def decorate(fn):
        def wrapper(x):
            return factor * fn(x)

        return functools.wraps(fn)(wrapper) if wraps else wrapper

    return decorate


@scale(1, wraps=True)
def wrapped(x):
    return x


@scale(1, wraps=False)
def unwrapped(x):
    return x


def make(k):
    def add(x):
        return x + k

    return add


ADD = make(1)
WHERE = Path("/v1")
WHEN = datetime.date(2020, 1, 1)
WEIGHTS = np.array([1, 2])
Pair = namedtuple("Pair", "a b")
PAIR = Pair(1, 2)


class Scaler:
    def __init__(self, factor, extra):
        self.factor, self.extra = factor, extra

    def __call__(self, x):
        return self.factor * x


SCALER = Scaler(2, np.ones(2))


@task("UsesWrapped", receives_input=False)
def uses_wrapped():
    return wrapped(1)


@task("UsesUnwrapped", receives_input=False)
def uses_unwrapped():
    return unwrapped(1)


@task("UsesFactory", receives_input=False)
def uses_factory():
    return ADD(1)


@task("UsesConstants", receives_input=False)
def uses_constants():
    return str(WHERE), WHEN, int(WEIGHTS.sum()), PAIR.a


@task("UsesScaler", receives_input=False)
def uses_scaler():
    return SCALER(1)
"""


@pytest.mark.parametrize(
    ("task_name", "old", "new"),
    [
        ("uses_wrapped", "@scale(1, wraps=True)", "@scale(3, wraps=True)"),
        ("uses_unwrapped", "@scale(1, wraps=False)", "@scale(3, wraps=False)"),
        ("uses_factory", "ADD = make(1)", "ADD = make(2)"),
        ("uses_constants", 'Path("/v1")', 'Path("/v2")'),
        ("uses_constants", "date(2020, 1, 1)", "date(2021, 1, 1)"),
        ("uses_constants", "np.array([1, 2])", "np.array([1, 3])"),
        ("uses_constants", "PAIR = Pair(1, 2)", "PAIR = Pair(2, 2)"),
        ("uses_scaler", "Scaler(2, np.ones(2))", "Scaler(5, np.ones(2))"),
    ],
)
def test_data_in_closures_and_constants_of_parameter_kinds_count(modules, task_name, old, new):
    before = getattr(modules(tmod=CLOSURES), task_name).code_fingerprint()
    again = getattr(modules(tmod=CLOSURES), task_name).code_fingerprint()
    edited = getattr(modules(tmod=CLOSURES.replace(old, new)), task_name).code_fingerprint()
    assert again == before
    assert edited != before


def test_a_user_object_changed_in_place_in_the_same_process_counts(modules):
    tmod = modules(tmod=CLOSURES)
    before = tmod.uses_scaler.code_fingerprint()
    tmod.SCALER.factor = 3  # as a notebook cell would
    assert tmod.uses_scaler.code_fingerprint() != before


CLASS_ATTRIBUTES = """
from pyperunner import Task, run


class Table:
    @classmethod
    def rate(cls):
        return cls.RATE


Table.RATE = 1


class Src(Task):
    @run
    def run(self):
        return self.K * Table.rate()


Src.K = 1
"""


@pytest.mark.parametrize("edit", [("Src.K = 1", "Src.K = 2"), ("Table.RATE = 1", "Table.RATE = 3")])
def test_a_class_attribute_assigned_after_the_class_body_counts(modules, edit):
    before = modules(tmod=CLASS_ATTRIBUTES).Src.code_fingerprint()
    again = modules(tmod=CLASS_ATTRIBUTES).Src
    again.receives_input()  # pyperunner caches the answer on the class: not the task's code
    from pyperunner import Task

    Task._code_cache.pop(again, None)  # computed anew, with the cached answer on the class
    assert again.code_fingerprint() == before
    assert modules(tmod=CLASS_ATTRIBUTES.replace(*edit)).Src.code_fingerprint() != before
