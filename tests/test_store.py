"""Tests for ``pyperunner.store.Store``: layout, atomic writes, complete entries only, errors."""

from __future__ import annotations

import os
import pickle
import threading
import warnings
import zlib
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pytest
import yaml

from pyperunner import resultfile, yamlio
from pyperunner.store import ResultNotStorableError, Store, StoreError

NAME = "Evaluate(both)"
KEY = "197f82a6dbc9799406a35bef412cd7f4"
RECORD: dict[str, Any] = {
    "task": NAME,
    "params": {"wait": 1, "method": "l2", "weights": [0.5, 0.25]},
    "parents": {
        "ProcessData(normalize-l2)": "0123456789abcdef0123456789abcdef",
        "AugmentData(augment)": "fedcba9876543210fedcba9876543210",
    },
}


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def leftover_temporaries(root: Path) -> list[Path]:
    expected = {"result.dump.gz", "params.yaml"}
    return [p for p in all_files(root) if p.name not in expected]


def unstorable_generator() -> Any:
    return (i for i in range(3))


# -- save, has, load ------------------------------------------------------------------------------


def test_save_then_has_and_load_return_the_value(tmp_path: Path) -> None:
    store = Store(tmp_path)
    value = {"rows": [1, 2, 3], "name": "csv", "nested": {"x": (1.5, None)}}

    assert not store.has(NAME, KEY)
    store.save(NAME, KEY, value, RECORD)

    assert store.has(NAME, KEY)
    assert store.load(NAME, KEY) == value


def test_entries_are_per_name_and_key(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save("Load(csv)", "a" * 32, "csv", {})
    store.save("Load(csv)", "b" * 32, "csv-2", {})
    store.save("Load(database)", "a" * 32, "db", {})

    assert store.load("Load(csv)", "a" * 32) == "csv"
    assert store.load("Load(csv)", "b" * 32) == "csv-2"
    assert store.load("Load(database)", "a" * 32) == "db"
    assert not store.has("Load(database)", "b" * 32)
    assert not store.has("Other(csv)", "a" * 32)


def test_layout_is_name_then_key_with_result_and_params_files(tmp_path: Path) -> None:
    store = Store(tmp_path)

    store.save(NAME, KEY, [1, 2, 3], RECORD)

    entry = tmp_path / NAME / KEY
    assert all_files(tmp_path) == [entry / "params.yaml", entry / "result.dump.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [NAME]
    assert store.result_path(NAME, KEY) == entry / "result.dump.gz"


def test_result_file_loads_with_joblib_load(tmp_path: Path) -> None:
    store = Store(tmp_path)
    value = {"answer": 42, "items": ["a", "b"]}

    store.save(NAME, KEY, value, RECORD)

    assert joblib.load(tmp_path / NAME / KEY / "result.dump.gz") == value


def test_params_yaml_holds_the_record_given(tmp_path: Path) -> None:
    store = Store(tmp_path)

    store.save(NAME, KEY, "value", RECORD)

    on_disk = yaml.safe_load((tmp_path / NAME / KEY / "params.yaml").read_text())
    stored = (tmp_path / NAME / KEY / "result.dump.gz").read_bytes()
    result = {"file": "result.dump.gz", "bytes": len(stored), "format": "pickle"}
    assert on_disk == {**RECORD, "result": {**result, "crc32": zlib.crc32(stored)}}
    assert store.record(NAME, KEY) == on_disk


def test_save_returns_the_size_of_the_result_file(tmp_path: Path) -> None:
    store = Store(tmp_path)

    size = store.save(NAME, KEY, list(range(1000)), RECORD)

    assert size == (tmp_path / NAME / KEY / "result.dump.gz").stat().st_size


def test_relative_root_is_resolved_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = Store("data")
    monkeypatch.chdir(tmp_path.parent)

    store.save(NAME, KEY, 1, {})

    assert (tmp_path / "data" / NAME / KEY / "result.dump.gz").is_file()


# -- overwriting ----------------------------------------------------------------------------------


def test_overwriting_an_entry_replaces_the_value(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save(NAME, KEY, "old", RECORD)

    store.save(NAME, KEY, "new", {**RECORD, "params": {"wait": 2}})

    assert store.load(NAME, KEY) == "new"
    assert store.record(NAME, KEY)["params"] == {"wait": 2}
    assert leftover_temporaries(tmp_path) == []


# -- values that cannot be stored ------------------------------------------------------------------


@pytest.mark.parametrize(
    "make_value",
    [
        pytest.param(lambda: lambda x: x, id="lambda"),
        pytest.param(unstorable_generator, id="generator"),
        pytest.param(threading.Lock, id="lock"),
    ],
)
def test_unpicklable_value_raises_result_not_storable_naming_task_and_type(
    tmp_path: Path, make_value: Any
) -> None:
    store = Store(tmp_path)
    value = make_value()

    with pytest.raises(ResultNotStorableError) as info:
        store.save(NAME, KEY, value, RECORD)

    message = str(info.value)
    assert NAME in message
    assert type(value).__qualname__ in message
    assert isinstance(info.value, StoreError)
    assert not (tmp_path / NAME / KEY / "result.dump.gz").exists()
    assert not store.has(NAME, KEY)
    assert leftover_temporaries(tmp_path) == []


def test_unpicklable_value_nested_in_a_container_is_not_storable(tmp_path: Path) -> None:
    store = Store(tmp_path)

    with pytest.raises(ResultNotStorableError, match=r"Load\(csv\)"):
        store.save("Load(csv)", KEY, {"ok": [1, 2], "bad": threading.Lock()}, {})

    assert not store.has("Load(csv)", KEY)
    assert leftover_temporaries(tmp_path) == []


# -- incomplete entries ---------------------------------------------------------------------------


def test_entry_with_only_params_yaml_is_not_cached(tmp_path: Path) -> None:
    store = Store(tmp_path)
    entry = tmp_path / NAME / KEY
    entry.mkdir(parents=True)
    (entry / "params.yaml").write_text(yaml.safe_dump(RECORD))

    assert not store.has(NAME, KEY)
    with pytest.raises(StoreError):
        store.load(NAME, KEY)


def test_entry_with_only_a_stray_temporary_file_is_not_cached(tmp_path: Path) -> None:
    store = Store(tmp_path)
    entry = tmp_path / NAME / KEY
    entry.mkdir(parents=True)
    (entry / "params.yaml").write_text(yaml.safe_dump(RECORD))
    joblib.dump("complete but never renamed", entry / ".result.dump.gz.abc123.tmp", compress=3)

    assert not store.has(NAME, KEY)


def test_empty_entry_folder_is_not_cached(tmp_path: Path) -> None:
    (tmp_path / NAME / KEY).mkdir(parents=True)

    assert not Store(tmp_path).has(NAME, KEY)


def test_save_over_an_incomplete_entry_completes_it(tmp_path: Path) -> None:
    store = Store(tmp_path)
    entry = tmp_path / NAME / KEY
    entry.mkdir(parents=True)
    (entry / "params.yaml").write_text("stale: true\n")

    store.save(NAME, KEY, "value", RECORD)

    assert store.has(NAME, KEY)
    assert store.load(NAME, KEY) == "value"
    assert {k: v for k, v in store.record(NAME, KEY).items() if k != "result"} == RECORD


# -- reading broken entries -----------------------------------------------------------------------


def test_load_of_a_missing_entry_raises_store_error_naming_task(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=r"Evaluate\(both\)"):
        Store(tmp_path).load(NAME, KEY)


def test_load_of_a_garbage_result_raises_store_error_with_path_and_fix(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save(NAME, KEY, "value", RECORD)
    path = tmp_path / NAME / KEY / "result.dump.gz"
    path.write_bytes(b"this is not a joblib dump at all")

    with pytest.raises(StoreError) as info:
        store.load(NAME, KEY)

    message = str(info.value)
    assert str(path) in message
    assert "moved aside" in message and "next run computes it again" in message


def test_load_of_a_truncated_result_raises_store_error_with_path_and_fix(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save(NAME, KEY, np.arange(200_000, dtype=np.float64), RECORD)
    path = tmp_path / NAME / KEY / "result.dump.gz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    with pytest.raises(StoreError) as info:
        store.load(NAME, KEY)

    message = str(info.value)
    assert str(path) in message
    assert f"{len(data) // 2} bytes, {len(data)} were written" in message  # what is wrong
    assert "moved aside" in message and "next run computes it again" in message


# -- data -----------------------------------------------------------------------------------------


def test_large_numpy_array_round_trips(tmp_path: Path) -> None:
    store = Store(tmp_path)
    array = np.random.default_rng(0).standard_normal((1000, 1000))  # 8 MB

    store.save(NAME, KEY, array, RECORD)
    loaded = store.load(NAME, KEY)

    assert isinstance(loaded, np.ndarray)
    assert loaded.dtype == array.dtype
    assert loaded.shape == array.shape
    np.testing.assert_array_equal(loaded, array)


def test_none_is_a_stored_result_not_a_missing_one(tmp_path: Path) -> None:
    store = Store(tmp_path)

    store.save(NAME, KEY, None, RECORD)

    assert store.has(NAME, KEY)
    assert store.load(NAME, KEY) is None


def test_large_arrays_load_memory_mapped_copy_on_write(tmp_path: Path) -> None:
    store = Store(tmp_path)
    array = np.arange(5_000_000, dtype=np.int64)
    store.save(NAME, KEY, {"x": array}, RECORD)
    loaded = store.load(NAME, KEY)["x"]
    assert isinstance(loaded, np.memmap)
    loaded[0] = -1  # writable, but only this copy changes
    assert store.load(NAME, KEY)["x"][0] == 0
    assert np.array_equal(store.load(NAME, KEY)["x"], array)


def test_compressed_results_still_load(tmp_path: Path) -> None:
    store = Store(tmp_path, compress=("gzip", 3))
    store.save(NAME, KEY, np.zeros(1000), RECORD)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.array_equal(store.load(NAME, KEY), np.zeros(1000))
    assert (tmp_path / NAME / KEY / "result.dump.gz").read_bytes()[:2] == b"\x1f\x8b"


def test_a_damaged_entry_without_its_record_is_not_trusted(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save(NAME, KEY, "value", RECORD)
    (store.entry(NAME, KEY) / "params.yaml").unlink()
    assert not store.has(NAME, KEY)


def test_plain_values_are_plain_pickles_and_arrays_are_memory_mapped(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save("Plain()", KEY, {"rows": [1, 2]}, RECORD)
    store.save("Arrays()", KEY, {"rows": np.arange(1000)}, RECORD)
    assert store.record("Plain()", KEY)["result"]["format"] == "pickle"
    assert store.record("Arrays()", KEY)["result"]["format"] == "joblib"
    with open(store.result_path("Plain()", KEY), "rb") as plain:
        assert pickle.load(plain) == {"rows": [1, 2]}
    for name in ("Plain()", "Arrays()"):  # the manual's way to read a result works for both
        assert joblib.load(store.result_path(name, KEY)).keys() == {"rows"}
    assert isinstance(store.load("Arrays()", KEY)["rows"], np.memmap)


def test_an_entry_written_before_formats_were_recorded_still_loads(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save(NAME, KEY, np.arange(5), RECORD)
    params = store.entry(NAME, KEY) / "params.yaml"
    params.write_text(params.read_text().replace("  format: joblib\n", ""))
    assert store.has(NAME, KEY)
    assert list(store.load(NAME, KEY)) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize("value", [{"rows": [1, 2, 3] * 100}, {"rows": np.arange(300)}])
def test_a_result_damaged_in_place_is_moved_aside_when_it_fails_to_load(tmp_path, value):
    store = Store(tmp_path)
    store.save(NAME, KEY, value, RECORD)
    path = store.result_path(NAME, KEY)
    damaged = bytearray(path.read_bytes())
    damaged[len(damaged) // 3 : len(damaged) // 3 + 40] = b"\xff" * 40  # same size, other bytes
    damaged[:2] = b"\x00\x00"
    path.write_bytes(bytes(damaged))
    assert store.has(NAME, KEY)  # the size still matches: only reading can tell
    with pytest.raises(StoreError, match=r"damaged.*moved aside.*computes it again"):
        store.load(NAME, KEY)
    assert not store.has(NAME, KEY)
    assert (path.parent / "result.dump.gz.damaged").read_bytes() == bytes(damaged)


class Fussy:
    """Loads only while ``FUSSY_REFUSES`` is unset: its ``__setstate__`` raises otherwise, as
    code that changed since the result was stored may."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __setstate__(self, state: dict) -> None:
        if os.environ.get("FUSSY_REFUSES"):
            raise ValueError("this version cannot read it")
        self.__dict__.update(state)


def test_intact_bytes_whose_own_code_fails_to_load_are_left_in_place_not_called_damaged(
    tmp_path, monkeypatch
):
    store = Store(tmp_path)
    store.save(NAME, KEY, {"value": Fussy(3)}, RECORD)
    stored = store.result_path(NAME, KEY).read_bytes()
    monkeypatch.setenv("FUSSY_REFUSES", "1")
    with pytest.raises(StoreError) as refused:
        store.load(NAME, KEY)
    message = str(refused.value)
    assert "cannot be loaded" in message and "this version cannot read it" in message
    assert "damaged" not in message and "moved aside" not in message
    assert store.has(NAME, KEY) and store.damaged_copy(NAME, KEY) is None
    assert store.result_path(NAME, KEY).read_bytes() == stored
    monkeypatch.delenv("FUSSY_REFUSES")
    assert store.load(NAME, KEY)["value"].n == 3


@pytest.mark.parametrize(
    "value", [{"scores": [0.25, 0.5, 0.75]}, np.linspace(0.0, 1.0, 64), {"w": np.ones(16)}]
)
def test_a_byte_changed_in_place_that_still_loads_is_caught_by_the_checksum(tmp_path, value):
    store = Store(tmp_path)
    store.save(NAME, KEY, value, RECORD)
    path = store.result_path(NAME, KEY)
    flipped = bytearray(path.read_bytes())
    flipped[-20] ^= 0x01  # inside the last number: the value still unpickles, but is wrong
    path.write_bytes(bytes(flipped))
    with pytest.raises(StoreError, match=r"damaged.*CRC-32.*moved aside"):
        store.load(NAME, KEY)
    assert (path.parent / "result.dump.gz.damaged").read_bytes() == bytes(flipped)
    assert not store.has(NAME, KEY)


def test_results_above_the_checksum_limit_are_checked_by_size_only(tmp_path, monkeypatch):
    monkeypatch.setattr(resultfile, "CHECKSUM_LIMIT", 1000)
    store = Store(tmp_path)
    store.save("Small(a)", KEY, np.zeros(100, dtype=np.uint8), RECORD)
    store.save("Large(a)", KEY, np.zeros(2000, dtype=np.uint8), RECORD)
    assert "crc32" in store.record("Small(a)", KEY)["result"]
    assert "crc32" not in store.record("Large(a)", KEY)["result"]
    assert store.load("Large(a)", KEY).sum() == 0


def test_a_value_whose_pickling_fails_in_any_way_is_not_storable(tmp_path):
    class Refuses:
        def __reduce__(self):
            raise ValueError("not today")

    with pytest.raises(ResultNotStorableError, match=r"task .*Refuses.*not today"):
        Store(tmp_path).save(NAME, KEY, Refuses(), RECORD)


@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_array_subclasses_come_back_as_they_were(tmp_path: Path) -> None:
    store = Store(tmp_path)
    matrix = np.matrix([[1, 2], [3, 4]])
    masked = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    store.save(NAME, KEY, {"matrix": matrix, "masked": masked}, RECORD)
    store.save(NAME, "c" * 32, matrix, RECORD)
    loaded = store.load(NAME, KEY)
    alone = store.load(NAME, "c" * 32)
    for value in (loaded["matrix"], alone):
        assert type(value) is np.matrix
        assert (value * value == np.matrix([[7, 10], [15, 22]])).all()  # a matrix product
    assert type(loaded["masked"]) is np.ma.MaskedArray
    assert loaded["masked"].mask.tolist() == [False, True, False]
    assert joblib.load(store.result_path(NAME, "c" * 32)).tolist() == [[1, 2], [3, 4]]


# -- odd values and odd entries -------------------------------------------------------------------


@pytest.mark.parametrize("compress", [10, -1, 3.5, "bogus", ("gzip", 99), ("nope", 3), ("gzip",)])
def test_an_unknown_compression_is_refused_when_the_store_is_made(tmp_path, compress):
    with pytest.raises(ValueError, match=r"compress=.* is not a compression.*\('gzip', 3\)"):
        Store(tmp_path, compress=compress)


@pytest.mark.parametrize("compress", [None, False, 0])
def test_no_compression_by_none_false_or_zero_keeps_arrays_memory_mapped(tmp_path, compress):
    store = Store(tmp_path, compress=compress)
    store.save(NAME, KEY, {"w": np.arange(1000)}, RECORD)
    assert isinstance(store.load(NAME, KEY)["w"], np.memmap)


def test_a_result_of_more_arrays_than_open_files_allowed_still_loads(tmp_path: Path) -> None:
    import resource

    store = Store(tmp_path)
    store.save(NAME, KEY, [np.full(4, i) for i in range(600)], RECORD)  # one map per array
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        loaded = store.load(NAME, KEY)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert [int(a[0]) for a in loaded] == list(range(600))


def test_a_large_plain_result_is_not_held_twice_while_it_loads(tmp_path: Path) -> None:
    import tracemalloc

    store = Store(tmp_path)
    store.save(NAME, KEY, {"blob": b"x" * 32 * 2**20}, RECORD)
    tracemalloc.start()
    try:
        assert len(store.load(NAME, KEY)["blob"]) == 32 * 2**20
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 40 * 2**20, peak  # the value, not the file's bytes as well


def test_a_changed_class_name_in_a_plain_result_is_damage_not_missing_code(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save(NAME, KEY, {"when": threading.Lock}, RECORD)  # pickled by module and name
    path = store.result_path(NAME, KEY)
    path.write_bytes(path.read_bytes().replace(b"allocate_lock", b"bllocate_lock"))
    with pytest.raises(StoreError, match=r"damaged.*CRC-32.*moved aside"):
        store.load(NAME, KEY)


def test_the_preview_kept_in_a_record_is_read_back_alone(tmp_path: Path) -> None:
    store = Store(tmp_path)
    shown = {"type": "str", "text": 'two\nlines: "quoted"\nresult:\n', "length": 3}
    store.save(NAME, KEY, "abc", {**RECORD, "preview": yamlio.Flow(shown)})  # as workers do
    assert store.check(NAME, KEY).preview == shown == store.record(NAME, KEY)["preview"]
    store.save(NAME, "b" * 32, "abc", RECORD)  # made before previews
    assert store.check(NAME, "b" * 32).preview is None
    assert store.check(NAME, "c" * 32).preview is None  # nothing stored
