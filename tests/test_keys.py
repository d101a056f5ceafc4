"""Task keys: Merkle hashing, canonical parameter encoding, code fingerprints and their cost.

Tasks are real tasks; code-fingerprint tests write task modules into ``tmp_path`` and import them,
so source edits are real source edits. Each variant of one test is loaded under the same module
name (the module is part of a task's identity), one after the other, and its key is taken before
the next variant replaces it in ``sys.modules``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import importlib.util
import itertools
import json
import math
import os
import re
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any, NamedTuple

import numpy as np
import pytest
import yaml

from pyperunner import Inputs, Task, UnhashableParameterError, keys, run, task

HEX32 = re.compile(r"[0-9a-f]{32}")

# -- tasks and parameter types used throughout ------------------------------------------------


@task("P", receives_input=False)
def param_task(value):
    return value


@task("Two", receives_input=False)
def two_params(a=1, b=2):
    return a, b


@task("Root", receives_input=False)
def root(n=0):
    return n


@task("Node")
def node(data, n=0):
    return n


def raw_fn(data, n=0):
    return n


class Alpha(Task):
    @run
    def run(self, data, n=0):
        return n


class Beta(Task):
    @run
    def run(self, data, n=0):
        return n


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


@dataclasses.dataclass(frozen=True)
class Point:
    x: Any
    y: Any


@dataclasses.dataclass
class Point3:
    x: Any
    y: Any


class Pair(NamedTuple):
    left: Any
    right: Any


@dataclasses.dataclass
class Config:
    path: Path
    when: dt.date
    color: Color
    point: Point
    sizes: tuple = (1, 2)


def key_of(value: Any) -> str:
    return param_task(value=value).hash()


# -- the key itself ----------------------------------------------------------------------------


def test_hash_is_32_hex_characters():
    assert HEX32.fullmatch(node().hash())
    assert HEX32.fullmatch(Alpha(n=3).hash())


def test_hash_is_stable_across_two_constructions():
    assert node(tag="a", n=1).hash() == node(tag="a", n=1).hash()
    assert Alpha("x", n=1).hash() == Alpha("x", n=1).hash()


def test_hash_of_a_chain_is_stable_across_two_constructions():
    def build() -> Task:
        return node(tag="c", n=3)(node(tag="b", n=2)(root(n=1)))

    assert build().hash() == build().hash()


def test_hash_is_stable_when_called_twice():
    created = node(tag="c")(root())
    assert created.hash() == created.hash()


def test_hash_changes_with_tag():
    assert node(tag="a").hash() != node(tag="b").hash()
    assert node().hash() != node(tag="a").hash()


def test_hash_changes_with_each_parameter():
    base = two_params(a=1, b=2).hash()
    assert two_params(a=5, b=2).hash() != base
    assert two_params(a=1, b=5).hash() != base
    assert two_params(a=2, b=1).hash() != base


def test_hash_changes_with_class():
    assert Alpha(tag="t", n=1).hash() != Beta(tag="t", n=1).hash()


def test_hash_changes_with_task_name_of_the_same_function():
    first = task("NameA")(raw_fn)
    second = task("NameB")(raw_fn)
    assert first(tag="t").hash() != second(tag="t").hash()


def test_hash_changes_when_a_parent_is_connected():
    alone = node(tag="c")
    connected = node(tag="c")(root())
    assert alone.hash() != connected.hash()


def test_hash_changes_with_upstream_parameter():
    child_1 = node(tag="c")(root(n=1))
    child_2 = node(tag="c")(root(n=2))
    assert child_1.hash() != child_2.hash()


def test_hash_changes_with_parameter_two_levels_upstream():
    def build(n: int) -> Task:
        return node(tag="leaf")(node(tag="mid")(root(n=n)))

    assert build(1).hash() != build(2).hash()


def test_hash_of_parent_is_unaffected_by_its_children():
    parent = root(n=1)
    before = parent.hash()
    node(tag="child")(parent)
    assert parent.hash() == before


def test_hash_changes_with_parent_order():
    a1, b1 = root(tag="a"), root(tag="b")
    a2, b2 = root(tag="a"), root(tag="b")
    assert node(tag="c")([a1, b1]).hash() != node(tag="c")([b2, a2]).hash()


def test_hash_is_unchanged_by_reload():
    assert node(tag="a", n=1).hash() == node(tag="a", n=1, reload=True).hash()


def test_hash_is_unchanged_by_reload_upstream():
    plain = node(tag="c")(root(n=1))
    reloaded = node(tag="c")(root(n=1, reload=True))
    assert plain.hash() == reloaded.hash()


def test_task_hash_equals_merkle_keys_over_the_graph():
    top = root(n=1)
    left, right = node(tag="l")(top), node(tag="r")(top)
    bottom = node(tag="b")([left, right])
    computed = keys.merkle_keys([bottom], lambda t: t.parents, Task.own_digest)
    assert set(computed) == {top, left, right, bottom}
    for created in (top, left, right, bottom):
        assert computed[created] == created.hash()


def test_merkle_keys_on_plain_nodes_covers_upstream_and_detects_cycles():
    parents = {"c": ["a", "b"], "b": ["a"], "a": []}
    computed = keys.merkle_keys(["c"], parents.__getitem__, lambda n: keys.digest(n))
    assert set(computed) == {"a", "b", "c"}
    assert computed["a"] == keys.merkle(keys.digest("a"), [])
    assert computed["b"] == keys.merkle(keys.digest("b"), [computed["a"]])
    assert computed["c"] == keys.merkle(keys.digest("c"), [computed["a"], computed["b"]])
    cyclic = {"x": ["y"], "y": ["x"]}
    with pytest.raises(ValueError, match="cycle"):
        keys.merkle_keys(["x"], cyclic.__getitem__, keys.digest)


# -- canonical parameter encoding: keys --------------------------------------------------------

WORDS = [f"word-{i}" for i in range(60)]

EQUAL_VALUES = {
    "dict order": ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    "nested dict order": ({"o": {"x": 1, "y": [1, 2]}}, {"o": {"y": [1, 2], "x": 1}}),
    "non-string-key dict order": ({1: "a", 2: "b", (3,): "c"}, {(3,): "c", 2: "b", 1: "a"}),
    "set order": (set(WORDS), set(reversed(WORDS))),
    "frozenset order": (frozenset(WORDS), frozenset(reversed(WORDS))),
    "mixed set order": ({1, "a", (2, 3)}, {(2, 3), "a", 1}),
    "path": (Path("data/x.csv"), Path("data") / "x.csv"),
    "date": (dt.date(2021, 1, 23), dt.date.fromisoformat("2021-01-23")),
    "datetime": (dt.datetime(2021, 1, 23, 17, 23, 18), dt.datetime(2021, 1, 23, 17, 23, 18)),
    "timedelta": (dt.timedelta(hours=1), dt.timedelta(minutes=60)),
    "enum": (Color.RED, Color("red")),
    "dataclass": (Point(1, (2, 3)), Point(1, (2, 3))),
    "numpy array": (np.arange(5), np.array([0, 1, 2, 3, 4])),
    "numpy 2d array": (np.ones((2, 3)), np.ones((2, 3))),
    "complex (joblib fallback)": (complex(1, 2), complex(1, 2)),
}

DIFFERENT_VALUES = {
    "int vs float": (1, 1.0),
    "int vs bool": (1, True),
    "int vs str": (1, "1"),
    "float vs bool": (1.0, True),
    "float vs str": (1.0, "1"),
    "bool vs str": (True, "1"),
    "zero vs false": (0, False),
    "false vs none": (False, None),
    "none vs string none": (None, "None"),
    "list vs tuple": ([1, 2], (1, 2)),
    "list vs set": ([1, 2], {1, 2}),
    "set vs frozenset": ({1, 2}, frozenset({1, 2})),
    "list order": ([1, 2], [2, 1]),
    "tuple order": ((1, 2), (2, 1)),
    "set contents": ({1, 2}, {1, 3}),
    "str vs list of str": ("a", ["a"]),
    "dict values": ({"a": 1}, {"a": 2}),
    "dict extra key": ({"a": 1}, {"a": 1, "b": None}),
    "int keys vs str keys": ({1: "a"}, {"1": "a"}),
    "nan vs inf": (float("nan"), float("inf")),
    "inf vs -inf": (float("inf"), float("-inf")),
    "path vs str": (Path("a"), "a"),
    "path values": (Path("a/b"), Path("a/c")),
    "pure path vs path": (PurePosixPath("a"), Path("a")),
    "date values": (dt.date(2021, 1, 1), dt.date(2021, 1, 2)),
    "date vs datetime": (dt.date(2021, 1, 1), dt.datetime(2021, 1, 1)),
    "date vs iso string": (dt.date(2021, 1, 1), "2021-01-01"),
    "naive vs aware datetime": (
        dt.datetime(2021, 1, 1, 12),
        dt.datetime(2021, 1, 1, 12, tzinfo=dt.timezone.utc),
    ),
    "enum members": (Color.RED, Color.BLUE),
    "enum vs value": (Color.RED, "red"),
    "enum vs name": (Color.RED, "RED"),
    "dataclass values": (Point(1, 2), Point(2, 1)),
    "dataclass types": (Point(1, 2), Point3(1, 2)),
    "dataclass vs dict": (Point(1, 2), {"x": 1, "y": 2}),
    "numpy values": (np.array([1, 2, 3]), np.array([1, 2, 4])),
    "numpy dtype": (np.array([1, 2, 3], dtype=np.int64), np.array([1, 2, 3], dtype=np.float64)),
    "numpy shape": (np.arange(4).reshape(2, 2), np.arange(4)),
    "numpy vs list": (np.array([1, 2, 3]), [1, 2, 3]),
}


@pytest.mark.parametrize(("left", "right"), EQUAL_VALUES.values(), ids=EQUAL_VALUES.keys())
def test_equal_parameter_values_give_equal_keys(left, right):
    assert key_of(left) == key_of(right)
    assert keys.params_digest({"v": left}) == keys.params_digest({"v": right})


@pytest.mark.parametrize(("left", "right"), DIFFERENT_VALUES.values(), ids=DIFFERENT_VALUES.keys())
def test_different_parameter_values_give_different_keys(left, right):
    assert key_of(left) != key_of(right)


def test_one_float_true_and_string_one_all_give_different_keys():
    assert len({key_of(v) for v in (1, 1.0, True, "1")}) == 4


def test_parameter_order_does_not_matter_for_params_digest():
    assert keys.params_digest({"a": 1, "b": 2}) == keys.params_digest({"b": 2, "a": 1})


def test_parameter_names_matter_for_params_digest():
    assert keys.params_digest({"a": 1, "b": 2}) != keys.params_digest({"a": 2, "b": 1})


def test_nested_canonical_values_in_a_dataclass_give_equal_keys():
    def make(words: list[str]) -> Config:
        return Config(
            path=Path("in") / "data.csv",
            when=dt.date(2021, 1, 23),
            color=Color.BLUE,
            point=Point(set(words), {"b": 2, "a": 1}),
        )

    assert key_of(make(WORDS)) == key_of(make(list(reversed(WORDS))))


def test_non_contiguous_numpy_view_and_its_copy_give_equal_keys():
    base = np.arange(10)
    view = base[::2]
    assert np.array_equal(view, view.copy())
    assert key_of(view) == key_of(view.copy())


def test_int_enum_member_and_plain_int_give_different_keys():
    assert Level.HIGH == 2
    assert key_of(Level.HIGH) != key_of(2)


# -- canonical parameter encoding: round trip --------------------------------------------------

ROUND_TRIP_VALUES = {
    "none": None,
    "bool": True,
    "int": 7,
    "float": 1.5,
    "inf": float("inf"),
    "str": "text",
    "list": [1, "a", [2.5, None]],
    "tuple": (1, "a", (2, 3)),
    "set": {1, 2, "x"},
    "frozenset": frozenset({"a", "b"}),
    "dict": {"a": {"b": (1, 2)}, "c": [1]},
    "non-string-key dict": {1: "a", (2, 3): "b", None: "c"},
    "dict with bang key": {"!tuple": [1, 2]},
    "path": Path("data") / "x.csv",
    "pure posix path": PurePosixPath("/tmp/a"),
    "pure windows path": PureWindowsPath(r"C:\data\x.csv"),
    "date": dt.date(2021, 1, 23),
    "datetime": dt.datetime(2021, 1, 23, 17, 23, 18, 123456),
    "aware datetime": dt.datetime(2021, 1, 23, 17, 23, tzinfo=dt.timezone(dt.timedelta(hours=2))),
    "time": dt.time(17, 23, 18),
    "timedelta": dt.timedelta(days=1, seconds=3, microseconds=5),
    "enum": Color.BLUE,
    "dataclass": Point(1, (2, 3)),
    "nested dataclass": Config(Path("p"), dt.date(2020, 2, 29), Color.RED, Point([1], {"k": 2})),
    "complex": complex(1, 2),
    "named tuple": Pair(1, (2, "x")),
    "numpy int": np.int64(7),
    "numpy bool": np.bool_(True),
    "numpy float32": np.float32(0.25),
}


def assert_same_value(restored: Any, original: Any) -> None:
    assert type(restored) is type(original)
    assert restored == original


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES.values(), ids=ROUND_TRIP_VALUES.keys())
def test_encode_decode_round_trip(value):
    assert_same_value(keys.decode(keys.encode(value, for_key=False)), value)


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES.values(), ids=ROUND_TRIP_VALUES.keys())
def test_encoding_is_plain_json_and_yaml_and_survives_both(value):
    encoded = keys.encode(value, for_key=False)
    assert_same_value(keys.decode(json.loads(json.dumps(encoded))), value)
    assert_same_value(keys.decode(yaml.safe_load(yaml.safe_dump(encoded))), value)


def test_nan_round_trips():
    restored = keys.decode(json.loads(json.dumps(keys.encode(float("nan"), for_key=False))))
    assert isinstance(restored, float)
    assert math.isnan(restored)


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6).reshape(2, 3),
        np.array([1.5, float("nan")], dtype=np.float32),
        np.array(["a", "bc"]),
        np.zeros((0, 3)),
    ],
    ids=["int 2d", "float32 with nan", "strings", "empty"],
)
def test_numpy_array_round_trips_without_a_pickle(array):
    encoded = keys.encode(array, for_key=False)
    assert "!pickle" not in json.dumps(encoded)
    restored = keys.decode(yaml.safe_load(yaml.safe_dump(encoded)))
    assert isinstance(restored, np.ndarray)
    assert restored.dtype == array.dtype
    assert restored.shape == array.shape
    assert np.array_equal(restored, array, equal_nan=array.dtype.kind == "f")


def test_numpy_array_inside_a_dict_round_trips():
    value = {"weights": np.arange(3), "name": "w"}
    restored = keys.decode(keys.encode(value, for_key=False))
    assert restored["name"] == "w"
    assert np.array_equal(restored["weights"], value["weights"])


class Mode(str, enum.Enum):
    FAST = "fast"


class Label(str):
    pass


@pytest.mark.parametrize(
    "value",
    [Level.HIGH, Mode.FAST, np.float64(1.5), Label("x")],
    ids=["int enum", "str enum", "numpy float64", "str subclass"],
)
def test_encoding_of_builtin_subclasses_is_yaml_safe(value):
    encoded = keys.encode(value, for_key=False)
    assert keys.decode(yaml.safe_load(yaml.safe_dump(encoded))) == value


@pytest.mark.parametrize("enum_member", [Level.HIGH, Mode.FAST], ids=["int enum", "str enum"])
def test_mixin_enum_round_trips_as_the_enum_member(enum_member):
    encoded = keys.encode(enum_member, for_key=False)
    assert keys.decode(json.loads(json.dumps(encoded))) is enum_member


def test_decode_rejects_an_unknown_tag():
    with pytest.raises(ValueError, match="!future"):
        keys.decode({"!future": 1})


@pytest.mark.parametrize("value", ROUND_TRIP_VALUES.values(), ids=ROUND_TRIP_VALUES.keys())
def test_plain_values_are_encoded_without_pickles(value):
    assert "!pickle" not in json.dumps(keys.encode(value, for_key=False))


class Opaque:
    def __init__(self, n):
        self.n = n

    def __eq__(self, other):
        return isinstance(other, Opaque) and other.n == self.n


def test_a_pickled_value_is_refused_unless_trusted():
    encoded = keys.encode([Opaque(3)], for_key=False)
    with pytest.raises(keys.UntrustedPickleError, match="Opaque"):
        keys.decode(encoded)
    assert keys.decode(encoded, trust_pickles=True) == [Opaque(3)]


@pytest.mark.parametrize(
    "encoded, claim",
    [
        ({"!dataclass": "os:system", "fields": {"command": "touch pwned"}}, "not a dataclass"),
        ({"!namedtuple": "os:system", "fields": {"command": "touch pwned"}}, "named tuple"),
        ({"!enum": "os:system", "name": "touch pwned"}, "not an Enum"),
        ({"!enum": "subprocess:Popen", "name": "x"}, "not an Enum"),
        ({"!path": "touch pwned", "type": "os"}, "not a pathlib"),
        ({"!datetime": "sys", "value": "x"}, "not one of"),
        ({"!ndarray": "O", "shape": [1], "data": ""}, "not plain"),
    ],
    ids=["dataclass", "namedtuple", "enum", "enum class", "path", "datetime", "object array"],
)
def test_decoding_builds_only_what_the_tag_claims(encoded, claim, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=claim):
        keys.decode(encoded)
    assert list(tmp_path.iterdir()) == []


def test_decoding_never_imports_a_module(tmp_path, monkeypatch):
    (tmp_path / "sideeffect.py").write_text(
        "import pathlib\npathlib.Path('imported').touch()\n"
        "import dataclasses\n@dataclasses.dataclass\nclass D:\n    x: int = 0\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="not imported"):
        keys.decode({"!dataclass": "sideeffect:D", "fields": {}})
    assert "sideeffect" not in sys.modules
    assert not (tmp_path / "imported").exists()


# -- unhashable parameters ---------------------------------------------------------------------


def numbers():
    yield 1


@pytest.mark.parametrize(
    "value",
    [numbers(), threading.Lock(), {"nested": [threading.Lock()]}],
    ids=["generator", "lock", "nested lock"],
)
def test_unhashable_parameter_fails_at_creation_naming_the_parameter(value):
    with pytest.raises(UnhashableParameterError) as excinfo:
        param_task(tag="t", value=value)
    message = str(excinfo.value)
    assert "value" in message
    assert "P(t)" in message


def test_unhashable_parameter_error_is_a_type_error():
    assert issubclass(UnhashableParameterError, TypeError)
    with pytest.raises(TypeError):
        two_params(a=1, b=threading.Lock())


def test_unhashable_parameter_error_names_the_offending_parameter_among_several():
    with pytest.raises(UnhashableParameterError, match="'b'"):
        two_params(a=1, b=threading.Lock())


# -- code fingerprint --------------------------------------------------------------------------

_module_numbers = itertools.count()

Loader = Callable[[str], Any]


@pytest.fixture
def load_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Loader:
    """Write ``source`` to a fresh file and import it; every call of one test reuses one name."""
    module_name = f"pyperunner_fp_tasks_{next(_module_numbers)}"
    variants = itertools.count()

    def load(source: str) -> Any:
        folder = tmp_path / f"variant_{next(variants)}"
        folder.mkdir()
        path = folder / f"{module_name}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        monkeypatch.setitem(sys.modules, module_name, module)
        spec.loader.exec_module(module)
        return module

    return load


def fingerprint_and_key(load: Loader, source: str, attr: str, **params: Any) -> tuple[str, str]:
    """Import ``source`` and return the code fingerprint and key of ``attr(**params)``."""
    cls = getattr(load(source), attr)
    created = cls(**params)
    return cls.code_fingerprint(), created.hash()


FUNC_BASE = '''
from pyperunner import task


@task("Inc")
def inc(data, x=1):
    """Add one."""
    total = x + 1
    return total
'''

FUNC_COMMENTED = '''
from pyperunner import task

# a task that adds one
@task("Inc")
def inc(data, x=1):  # data comes from upstream
    """Add one."""
    # compute the total
    total = x + 1  # the sum
    return total
'''

FUNC_DOCSTRING_EDITED = '''
from pyperunner import task


@task("Inc")
def inc(data, x=1):
    """Add one to x, ignoring the data; a much longer explanation follows.

    It spans several lines.
    """
    total = x + 1
    return total
'''

FUNC_NO_DOCSTRING = """
from pyperunner import task


@task("Inc")
def inc(data, x=1):
    total = x + 1
    return total
"""

FUNC_REFORMATTED = '''
from pyperunner import task




@task( "Inc" )
def inc(
    data,
    x = 1,
):
    """Add one."""


    total = (
        x
        +   1
    )

    return total
'''

FUNC_LOGIC_EDITED = '''
from pyperunner import task


@task("Inc")
def inc(data, x=1):
    """Add one."""
    total = x + 2
    return total
'''


@pytest.mark.parametrize(
    "variant",
    [FUNC_COMMENTED, FUNC_DOCSTRING_EDITED, FUNC_NO_DOCSTRING, FUNC_REFORMATTED],
    ids=["comment", "docstring", "docstring removed", "reformatted"],
)
def test_function_task_cosmetic_edit_keeps_fingerprint_and_key(load_source, variant):
    base = fingerprint_and_key(load_source, FUNC_BASE, "inc")
    edited = fingerprint_and_key(load_source, variant, "inc")
    assert HEX32.fullmatch(base[0])
    assert edited == base


def test_function_task_logic_edit_changes_fingerprint_and_key(load_source):
    base = fingerprint_and_key(load_source, FUNC_BASE, "inc")
    edited = fingerprint_and_key(load_source, FUNC_LOGIC_EDITED, "inc")
    assert edited[0] != base[0]
    assert edited[1] != base[1]


def test_function_task_identical_reload_keeps_key(load_source):
    assert fingerprint_and_key(load_source, FUNC_BASE, "inc") == fingerprint_and_key(
        load_source, FUNC_BASE, "inc"
    )


def test_function_task_logic_edit_changes_downstream_key(load_source):
    def downstream_key(source: str) -> str:
        module = load_source(source)
        upstream = module.inc(tag="up")
        return node(tag="down")(upstream).hash()

    assert downstream_key(FUNC_BASE) != downstream_key(FUNC_LOGIC_EDITED)


def versioned(source: str, version: str) -> str:
    return source.replace('@task("Inc")', f'@task("Inc", version="{version}")')


def test_function_task_version_pins_the_code_part(load_source):
    base = fingerprint_and_key(load_source, versioned(FUNC_BASE, "1"), "inc")
    edited = fingerprint_and_key(load_source, versioned(FUNC_LOGIC_EDITED, "1"), "inc")
    assert edited == base


def test_function_task_different_version_changes_key(load_source):
    first = fingerprint_and_key(load_source, versioned(FUNC_BASE, "1"), "inc")
    second = fingerprint_and_key(load_source, versioned(FUNC_BASE, "2"), "inc")
    assert second[0] != first[0]
    assert second[1] != first[1]


CLASS_BASE = '''
from pyperunner import Task, run


class Inc(Task):
    """Adds a step to x."""

    def helper(self, x):
        return x + 1

    @run
    def run(self, data, x=1):
        """Run it."""
        return self.helper(x)
'''

CLASS_COSMETIC = '''
from pyperunner import Task, run

# the class


class Inc( Task ):
    """Adds a step to x, documented differently."""


    def helper(self,
               x):
        # one more
        return x+1   # trailing comment

    @run
    def run(self, data, x = 1):
        return self.helper(
            x
        )
'''

CLASS_RUN_EDITED = CLASS_BASE.replace("return self.helper(x)", "return self.helper(x) * 2")
CLASS_HELPER_EDITED = CLASS_BASE.replace("return x + 1", "return x + 2")


def test_class_task_cosmetic_edit_keeps_fingerprint_and_key(load_source):
    base = fingerprint_and_key(load_source, CLASS_BASE, "Inc")
    edited = fingerprint_and_key(load_source, CLASS_COSMETIC, "Inc")
    assert HEX32.fullmatch(base[0])
    assert edited == base


def test_class_task_run_logic_edit_changes_fingerprint_and_key(load_source):
    base = fingerprint_and_key(load_source, CLASS_BASE, "Inc")
    edited = fingerprint_and_key(load_source, CLASS_RUN_EDITED, "Inc")
    assert edited[0] != base[0]
    assert edited[1] != base[1]


def test_class_task_helper_method_edit_changes_fingerprint_and_key(load_source):
    base = fingerprint_and_key(load_source, CLASS_BASE, "Inc")
    edited = fingerprint_and_key(load_source, CLASS_HELPER_EDITED, "Inc")
    assert edited[0] != base[0]
    assert edited[1] != base[1]


def class_versioned(source: str, version: str) -> str:
    return source.replace(
        '    """Adds a step to x."""\n',
        f'    """Adds a step to x."""\n\n    version = "{version}"\n',
    )


def test_class_task_version_attribute_pins_the_code_part(load_source):
    pinned = class_versioned(CLASS_BASE, "1")
    assert 'version = "1"' in pinned
    base = fingerprint_and_key(load_source, pinned, "Inc")
    edited = fingerprint_and_key(load_source, class_versioned(CLASS_HELPER_EDITED, "1"), "Inc")
    assert edited == base


def test_class_task_different_version_attribute_changes_key(load_source):
    first = fingerprint_and_key(load_source, class_versioned(CLASS_BASE, "1"), "Inc")
    second = fingerprint_and_key(load_source, class_versioned(CLASS_BASE, "2"), "Inc")
    assert second[0] != first[0]
    assert second[1] != first[1]


def test_task_decorator_version_on_class_pins_the_code_part(load_source):
    def named(source: str) -> str:
        source = source.replace(
            "from pyperunner import Task, run", "from pyperunner import Task, run, task"
        )
        return source.replace("class Inc(Task):", '@task("Inc", version="7")\nclass Inc(Task):')

    base = fingerprint_and_key(load_source, named(CLASS_BASE), "Inc")
    edited = fingerprint_and_key(load_source, named(CLASS_HELPER_EDITED), "Inc")
    assert edited == base


SUBCLASS_BASE = """
from pyperunner import Task, run


class WaitTask(Task):
    @run
    def run(self, data, wait, **kwargs):
        return wait * 1


class LoadData(WaitTask):
    pass
"""

SUBCLASS_BASE_EDITED = SUBCLASS_BASE.replace("return wait * 1", "return wait * 2")


def test_subclass_key_includes_base_class_code(load_source):
    base = fingerprint_and_key(load_source, SUBCLASS_BASE, "LoadData", tag="csv", wait=1)
    edited = fingerprint_and_key(load_source, SUBCLASS_BASE_EDITED, "LoadData", tag="csv", wait=1)
    assert edited[0] != base[0]
    assert edited[1] != base[1]


def test_subclass_fingerprint_differs_from_its_base(load_source):
    module = load_source(SUBCLASS_BASE)
    assert module.LoadData.code_fingerprint() != module.WaitTask.code_fingerprint()


EXEC_FUNC = """
from pyperunner import task


@task("ExecInc")
def inc(data, x=1):
    return x + 1
"""

EXEC_CLASS = """
from pyperunner import Task, run


class ExecInc(Task):
    @run
    def run(self, data, x=1):
        return x + 1
"""


def exec_task(source: str, attr: str) -> Any:
    """Define a task through ``exec`` (no source file) under a module name nobody imports."""
    namespace: dict[str, Any] = {"__name__": "pyperunner_exec_only_module"}
    exec(compile(source, "<pyperunner-test-exec>", "exec"), namespace)
    return namespace[attr]


@pytest.mark.parametrize(("source", "attr"), [(EXEC_FUNC, "inc"), (EXEC_CLASS, "ExecInc")])
def test_task_defined_by_exec_has_a_stable_fingerprint(source, attr):
    first = exec_task(source, attr)
    second = exec_task(source, attr)
    assert first is not second
    assert HEX32.fullmatch(first.code_fingerprint())
    assert first.code_fingerprint() == second.code_fingerprint()
    assert first().hash() == second().hash()


@pytest.mark.parametrize(("source", "attr"), [(EXEC_FUNC, "inc"), (EXEC_CLASS, "ExecInc")])
def test_task_defined_by_exec_logic_edit_changes_fingerprint(source, attr):
    original = exec_task(source, attr)
    edited = exec_task(source.replace("x + 1", "x + 2"), attr)
    assert original.code_fingerprint() != edited.code_fingerprint()
    assert original().hash() != edited().hash()


def test_task_defined_by_exec_runs():
    created = exec_task(EXEC_FUNC, "inc")(x=4)
    assert created.execute(Inputs()) == 5


# -- cost --------------------------------------------------------------------------------------


def build_ladder(depth: int) -> list[Task]:
    """Two tasks per layer; each task below the first layer depends on both tasks above it."""
    layer = [root(tag="0-a"), root(tag="0-b")]
    tasks = list(layer)
    for level in range(1, depth):
        layer = [node(tag=f"{level}-{side}", n=level)(list(layer)) for side in "ab"]
        tasks.extend(layer)
    return tasks


def test_pipeline_keys_fingerprint_each_task_class_once_and_match_each_tasks_hash(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pipeline's keys take each class's code fingerprint once, not once per task (a check
    that the code is unchanged costs as much as a key), and are the keys each task has alone."""
    from pyperunner import Pipeline

    tasks = build_ladder(50)
    classes = {type(t) for t in tasks}
    asked: list[type] = []
    real = Task.code_fingerprint.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        Task, "code_fingerprint", classmethod(lambda cls: asked.append(cls) or real(cls))
    )

    by_name = Pipeline("ladder", [t for t in tasks if not t.parents]).keys()

    assert sorted(asked, key=str) == sorted(classes, key=str)
    assert by_name == {t.name: t.hash() for t in tasks}


def test_ladder_of_depth_200_hashes_each_task_once(monkeypatch):
    """Linear time, proven by counting: every task's own digest is computed exactly once, where
    a naive recursion over a two-wide ladder would take 2^200 steps."""
    tasks = build_ladder(200)
    last = tasks[-1]
    assert len(last.parents) == 2
    computed: list[Task] = []
    real = Task.own_digest
    monkeypatch.setattr(Task, "own_digest", lambda task: computed.append(task) or real(task))

    key = last.hash()
    assert HEX32.fullmatch(key)
    upstream = len(list(last.ancestors())) + 1  # all but the other task of the last layer
    assert len(computed) == upstream == len({id(t) for t in computed}) == len(tasks) - 1

    computed.clear()
    by_task = keys.merkle_keys(tasks, lambda t: t.parents, Task.own_digest)
    assert len(computed) == len(tasks)
    assert len(set(by_task.values())) == len(tasks)
    assert by_task[last] == key


def test_deep_chain_hashes_without_recursion_error():
    current = root()
    for level in range(3000):
        current = node(tag=str(level))(current)
    assert HEX32.fullmatch(current.hash())
    computed = keys.merkle_keys([current], lambda t: t.parents, Task.own_digest)
    assert len(computed) == 3001


def test_execution_settings_as_class_attributes_are_not_part_of_the_key(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))

    def make(module: str, settings: str) -> type:
        (tmp_path / f"{module}.py").write_text(
            "from pyperunner import Task, run\n"
            "class Fetch(Task):\n"
            f"{settings}"
            "    @run\n"
            "    def run(self, data):\n"
            "        return 1\n"
        )
        return importlib.import_module(module).Fetch

    plain = make("plain_fetch", "")
    tuned = make("tuned_fetch", "    retries = 3\n    retry_delay: float = 2.0\n    timeout = 60\n")
    other = make("other_fetch", "    factor = 2\n")
    assert plain.code_fingerprint() == tuned.code_fingerprint()
    assert other.code_fingerprint() != plain.code_fingerprint()


def test_long_durations_keep_their_microseconds():
    long = dt.timedelta(days=10**6)
    assert keys.encode(long, for_key=True) != keys.encode(
        long + dt.timedelta(microseconds=1), for_key=True
    )
    for value in (long + dt.timedelta(microseconds=1), dt.timedelta(seconds=-1.5)):
        assert keys.decode(keys.encode(value, for_key=False)) == value
    assert keys.decode({"!datetime": "timedelta", "value": "1.5"}) == dt.timedelta(seconds=1.5)


def test_frozensets_in_named_tuples_and_objects_key_alike_in_every_process(tmp_path):
    code = (
        "from collections import namedtuple\n"
        "from pyperunner import keys\n"
        "class Holder:\n"
        "    def __init__(self): self.names = frozenset('abcdefgh')\n"
        "NT = namedtuple('NT', 'names')\n"
        "print(keys.digest(repr(keys.encode([NT(frozenset('abcdefgh')), Holder()], for_key=True))))"
    )
    found = set()
    for seed in ("1", "2", "3"):
        done = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
            cwd=tmp_path,
        )
        found.add(done.stdout)
    assert len(found) == 1, found
