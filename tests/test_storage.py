"""The storage backends (``pyperunner.storage``), through the ``Store`` that uses them: a local
folder (``LocalFiles``: atomic writes, holds, permissions, what is in the way moved aside), and
fsspec URLs (``FsspecFiles``) on real fsspec filesystems.

The store's contract on ``memory://`` (an object store's behaviour: whole writes, no renames, no
locks), runs of a pipeline on it, and runs whose workers are other processes (forked by the process
executor, or Dask workers) on a filesystem that is shared between processes but is not the local
code path: :class:`SharedFolderFileSystem`, local files under a protocol of its own, rooted at a
folder the environment names, as a network filesystem would be. Local paths and ``file://`` URLs
keep the local code path and never import fsspec.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from unittest import mock

import fsspec
import joblib
import numpy as np
import pytest
import yaml
from fsspec.implementations.dirfs import DirFileSystem
from fsspec.implementations.local import LocalFileSystem
from fsspec.implementations.memory import MemoryFileSystem

from pyperunner import Pipeline, Runner, Status, Task, run, task
from pyperunner.storage_fsspec import FSSPEC_HINT, STALE_AFTER
from pyperunner.store import Checked, EntryState, ResultNotStorableError, Store, StoreError

NAME = "Evaluate(both)"
KEY = "197f82a6dbc9799406a35bef412cd7f4"
OTHER_KEY = "0123456789abcdef0123456789abcdef"
RECORD: dict[str, Any] = {"task": NAME, "params": {"wait": 1}, "parents": {"Load(csv)": "ab" * 16}}
SHARED_ROOT_ENV = "PYPERUNNER_TEST_SHARED_FS_ROOT"


# --------------------------------------------------------------------------- filesystems


class SharedFolderFileSystem(DirFileSystem):
    """Local files under ``$PYPERUNNER_TEST_SHARED_FS_ROOT``, reached as ``pyperunner-shared://``.

    Every process of this machine sees the same files, so it stands in for a network
    filesystem; the store reaches it through fsspec, not through its local code path. Worker
    processes make it again from the environment (fork, Dask's spawned workers), so the root
    must be set before they start.
    """

    protocol = "pyperunner-shared"
    cachable = False  # the root comes from the environment: read it on every instantiation

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(path=os.environ[SHARED_ROOT_ENV], fs=LocalFileSystem(), **kwargs)


class RecordingMemoryFileSystem(MemoryFileSystem):
    """``memory://`` that records which objects are written, in order, and can fail uploads."""

    protocol = "pyperunner-recording"
    writes: ClassVar[list[str]] = []
    fail_uploads: ClassVar[bool] = False

    @classmethod
    def _strip_protocol(cls, path: Any) -> str:
        if isinstance(path, str):
            path = path.removeprefix(f"{cls.protocol}://")
        return super()._strip_protocol(path)

    def pipe_file(self, path: str, value: bytes, *args: Any, **kwargs: Any) -> None:
        self.writes.append(path)
        super().pipe_file(path, value, *args, **kwargs)

    def put_file(self, lpath: str, rpath: str, *args: Any, **kwargs: Any) -> None:
        if self.fail_uploads:
            raise ConnectionError("connection reset by peer")
        self.writes.append(rpath)
        super().put_file(lpath, rpath, *args, **kwargs)


for _fs in (SharedFolderFileSystem, RecordingMemoryFileSystem):
    fsspec.register_implementation(_fs.protocol, _fs, clobber=True)


@pytest.fixture(scope="module")
def shared_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The folder ``pyperunner-shared://`` names, set for this process and every worker."""
    root = tmp_path_factory.mktemp("shared-fs")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(SHARED_ROOT_ENV, str(root))
        yield root


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A fresh folder on ``memory://``, removed afterwards (the memory filesystem is global)."""
    folder = f"pyperunner-test-{uuid.uuid4().hex[:12]}"
    yield f"memory://{folder}/data"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{folder}"):
        fs.rm(f"/{folder}", recursive=True)


@pytest.fixture
def recording() -> Iterator[str]:
    RecordingMemoryFileSystem.writes.clear()
    RecordingMemoryFileSystem.fail_uploads = False
    yield f"{RecordingMemoryFileSystem.protocol}://rec-{uuid.uuid4().hex[:12]}"
    RecordingMemoryFileSystem.fail_uploads = False


def memory() -> MemoryFileSystem:
    return fsspec.filesystem("memory")


def mem_path(url: str) -> str:
    """The memory filesystem's path of a ``memory://`` URL."""
    return "/" + url.removeprefix("memory://")


def all_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def leftover_temporaries(root: Path) -> list[Path]:
    expected = {"result.dump.gz", "params.yaml"}
    return [p for p in all_files(root) if p.name not in expected]


def plain(value: Any) -> Any:
    """``value`` with numpy arrays as lists, so results compare with ``==``."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


# --------------------------------------------------------------------------- a local folder


class DiskFullError(OSError):
    """Stands in for a write that dies halfway."""


def test_save_leaves_no_temporary_files(tmp_path: Path) -> None:
    store = Store(tmp_path)

    store.save(NAME, KEY, {"a": 1}, RECORD)
    store.save(NAME, KEY, {"a": 2}, RECORD)
    store.save("Other(x)", KEY, [0] * 100, {})

    assert leftover_temporaries(tmp_path) == []


def test_result_is_written_to_a_temporary_in_the_same_folder_then_renamed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    renames: list[tuple[Path, Path]] = []
    real_replace = os.replace

    def spy(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        renames.append((Path(src), Path(dst)))
        real_replace(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", spy)
    Store(tmp_path).save(NAME, KEY, [1, 2, 3], RECORD)

    final = tmp_path / NAME / KEY / "result.dump.gz"
    into_result = [(src, dst) for src, dst in renames if dst == final]
    assert len(into_result) == 1
    src, dst = into_result[0]
    assert src.parent == dst.parent
    assert src != dst


def test_a_write_that_fails_halfway_keeps_the_previous_result_intact(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)
    store.save(NAME, KEY, "old", RECORD)
    real_dump = joblib.dump

    def dies_halfway(value: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
        target.write(b"\x1f\x8b partial gzip data")
        raise DiskFullError("no space left on device")

    monkeypatch.setattr(joblib, "dump", dies_halfway)
    with pytest.raises(OSError, match="no space left"):
        store.save(NAME, KEY, np.arange(3), RECORD)  # an array: written by joblib
    monkeypatch.setattr(joblib, "dump", real_dump)

    assert store.has(NAME, KEY)
    assert store.load(NAME, KEY) == "old"
    assert leftover_temporaries(tmp_path) == []


def test_a_write_that_fails_halfway_leaves_no_entry_that_counts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(tmp_path)

    def dies_halfway(value: Any, target: Any, *args: Any, **kwargs: Any) -> Any:
        target.write(b"\x1f\x8b partial gzip data")
        raise DiskFullError("no space left on device")

    monkeypatch.setattr(joblib, "dump", dies_halfway)
    with pytest.raises(OSError):
        store.save(NAME, KEY, np.arange(3), RECORD)

    assert not store.has(NAME, KEY)
    assert not (tmp_path / NAME / KEY / "result.dump.gz").exists()
    assert leftover_temporaries(tmp_path) == []


def test_an_entry_held_for_reading_is_not_deleted_until_released(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save(NAME, KEY, "value", RECORD)
    held = store.hold(NAME, KEY)
    assert held is not None
    with held:
        assert not store.delete(NAME, KEY)
        assert store.load(NAME, KEY) == "value"
    assert store.delete(NAME, KEY)
    assert not store.entry(NAME, KEY).exists()


def test_holding_a_missing_entry_says_so(tmp_path: Path) -> None:
    assert Store(tmp_path).hold(NAME, KEY) is None


def test_stored_files_are_readable_by_others_as_the_umask_allows(tmp_path: Path) -> None:
    store = Store(tmp_path)
    store.save(NAME, KEY, "value", RECORD)
    mask = os.umask(0o022)
    os.umask(mask)
    for name in ("result.dump.gz", "params.yaml"):
        mode = (store.entry(NAME, KEY) / name).stat().st_mode & 0o777
        assert mode == 0o666 & ~mask, oct(mode)


def test_a_folder_in_place_of_the_result_or_record_is_moved_aside_by_the_next_save(tmp_path):
    store = Store(tmp_path)
    store.save(NAME, KEY, [1, 2], RECORD)
    for name in ("result.dump.gz", "params.yaml"):
        path = store.entry(NAME, KEY) / name
        path.unlink()
        path.mkdir()
        (path / "inside").write_text("kept")
        assert not store.has(NAME, KEY)
        store.save(NAME, KEY, [3, 4], RECORD)
        assert store.load(NAME, KEY) == [3, 4]
        assert (path.parent / f"{name}.damaged" / "inside").read_text() == "kept"


def test_a_file_in_place_of_the_entry_folder_is_moved_aside_by_the_next_save(tmp_path):
    store = Store(tmp_path)
    folder = store.entry(NAME, KEY)
    folder.parent.mkdir(parents=True)
    folder.write_text("not a folder")
    assert not store.has(NAME, KEY)
    with store.lock(NAME, KEY):
        store.save(NAME, KEY, [5], RECORD)
    assert store.load(NAME, KEY) == [5]
    assert folder.with_name(f"{KEY}.damaged").read_text() == "not a folder"


# --------------------------------------------------------------------------- store contract


def test_a_memory_url_stores_under_that_url_in_the_same_layout(memory_url: str) -> None:
    store = Store(memory_url)

    size = store.save(NAME, KEY, {"rows": [1, 2, 3]}, RECORD)

    assert store.root == memory_url
    assert store.entry(NAME, KEY) == f"{memory_url}/{NAME}/{KEY}"
    assert store.result_path(NAME, KEY) == f"{memory_url}/{NAME}/{KEY}/result.dump.gz"
    entry = f"{mem_path(memory_url)}/{NAME}/{KEY}"
    assert sorted(memory().find(mem_path(memory_url))) == [
        f"{entry}/params.yaml",
        f"{entry}/result.dump.gz",
    ]
    assert memory().info(f"{entry}/result.dump.gz")["size"] == size


def test_save_has_load_record_and_check(memory_url: str) -> None:
    store = Store(memory_url)
    assert not store.has(NAME, KEY)
    assert store.check(NAME, KEY) == Checked(EntryState.MISSING)

    size = store.save(NAME, KEY, {"rows": [1, 2, 3], "nested": (1.5, None)}, RECORD)

    assert store.has(NAME, KEY)
    assert store.check(NAME, KEY) == Checked(EntryState.OK, size=size)
    assert store.load(NAME, KEY) == {"rows": [1, 2, 3], "nested": (1.5, None)}
    result = {"file": "result.dump.gz", "bytes": size, "format": "pickle"}
    assert store.record(NAME, KEY) == {**RECORD, "result": {**result, "crc32": mock.ANY}}


def test_none_is_a_stored_result(memory_url: str) -> None:
    store = Store(memory_url)
    store.save(NAME, KEY, None, RECORD)
    assert store.has(NAME, KEY)
    assert store.load(NAME, KEY) is None


def test_arrays_are_stored_with_joblib_and_load_whole_not_memory_mapped(
    memory_url: str, tmp_path: Path
) -> None:
    store = Store(memory_url)
    array = np.arange(1_000_000, dtype=np.int64)

    store.save(NAME, KEY, {"x": array}, RECORD)
    loaded = store.load(NAME, KEY)["x"]

    assert store.record(NAME, KEY)["result"]["format"] == "joblib"
    assert type(loaded) is np.ndarray
    assert np.array_equal(loaded, array)
    downloaded = tmp_path / "result.dump.gz"  # the manual's way to read a result, once local
    memory().get_file(mem_path(store.result_path(NAME, KEY)), str(downloaded))
    assert np.array_equal(joblib.load(downloaded)["x"], array)


def test_compressed_results_load(memory_url: str) -> None:
    store = Store(memory_url, compress=("gzip", 3))
    store.save(NAME, KEY, np.zeros(1000), RECORD)
    assert np.array_equal(store.load(NAME, KEY), np.zeros(1000))
    assert memory().cat_file(mem_path(store.result_path(NAME, KEY)))[:2] == b"\x1f\x8b"


def test_overwriting_an_entry_replaces_value_and_record(memory_url: str) -> None:
    store = Store(memory_url)
    store.save(NAME, KEY, "old", RECORD)

    store.save(NAME, KEY, "a newer and longer value", {**RECORD, "params": {"wait": 2}})

    assert store.has(NAME, KEY)
    assert store.load(NAME, KEY) == "a newer and longer value"
    assert store.record(NAME, KEY)["params"] == {"wait": 2}


@pytest.mark.parametrize(
    "damage",
    ["truncated", "garbage", "no record", "record of another size"],
)
def test_a_damaged_entry_is_reported_and_not_trusted(memory_url: str, damage: str) -> None:
    store = Store(memory_url)
    store.save(NAME, KEY, list(range(1000)), RECORD)
    result = mem_path(store.result_path(NAME, KEY))
    params = f"{mem_path(store.entry(NAME, KEY))}/params.yaml"
    if damage == "truncated":
        memory().pipe_file(result, memory().cat_file(result)[:100])
    elif damage == "garbage":
        memory().pipe_file(result, b"this is not a pickle at all")
    elif damage == "no record":
        memory().rm_file(params)
    else:
        memory().pipe_file(params, memory().cat_file(params).replace(b"bytes: ", b"bytes: 9"))

    checked = store.check(NAME, KEY)

    assert checked.state is EntryState.DAMAGED
    assert memory_url in checked.problem
    assert not store.has(NAME, KEY)


def test_loading_a_broken_result_raises_store_error_with_url_and_fix(memory_url: str) -> None:
    store = Store(memory_url)
    with pytest.raises(StoreError, match=r"Evaluate\(both\)"):
        store.load(NAME, KEY)
    store.save(NAME, KEY, "value", RECORD)
    memory().pipe_file(mem_path(store.result_path(NAME, KEY)), b"garbage")

    with pytest.raises(StoreError) as info:
        store.load(NAME, KEY)

    assert store.result_path(NAME, KEY) in str(info.value)
    assert "next run computes it again" in str(info.value)


def test_an_unpicklable_value_is_not_storable_and_leaves_nothing(memory_url: str) -> None:
    store = Store(memory_url)
    leftovers_before = set(os.listdir(tempfile.gettempdir()))

    with pytest.raises(ResultNotStorableError, match=r"Evaluate\(both\)"):
        store.save(NAME, KEY, {"bad": lambda: 1}, RECORD)

    assert not store.has(NAME, KEY)
    assert not memory().exists(mem_path(store.result_path(NAME, KEY)))
    assert set(os.listdir(tempfile.gettempdir())) <= leftovers_before


def test_entries_size_delete_on_memory(memory_url: str) -> None:
    store = Store(memory_url)
    assert list(store.entries()) == []
    store.save("Load(csv)", KEY, "csv", {})
    store.save("Load(csv)", OTHER_KEY, "csv-2", {})
    store.save(NAME, KEY, list(range(100)), RECORD)

    assert list(store.entries()) == [(NAME, KEY), ("Load(csv)", OTHER_KEY), ("Load(csv)", KEY)]
    entry = mem_path(store.entry(NAME, KEY))
    assert store.size(NAME, KEY) == sum(memory().du(entry, total=False).values())
    assert store.size(NAME, KEY) > store.check(NAME, KEY).size  # params.yaml counts too

    held = store.hold(NAME, KEY)
    assert held is not None and held.fd is None  # nothing to hold on fsspec
    assert store.delete(NAME, KEY)
    assert not store.has(NAME, KEY)
    assert list(store.entries()) == [("Load(csv)", OTHER_KEY), ("Load(csv)", KEY)]
    assert store.delete(NAME, KEY)  # already gone
    assert store.delete("Load(csv)", KEY)
    assert list(store.entries()) == [("Load(csv)", OTHER_KEY)]
    assert store.load("Load(csv)", OTHER_KEY) == "csv-2"


def test_latest_record_is_the_most_recent_complete_result(memory_url: str) -> None:
    store = Store(memory_url)
    assert store.latest_record(NAME) is None
    store.save(NAME, OTHER_KEY, 1, {"params": {"wait": 1}})
    time.sleep(0.01)
    store.save(NAME, KEY, 2, {"params": {"wait": 2}})
    memory().mkdir(f"{mem_path(store.entry(NAME, 'c' * 32))}")  # a folder without result

    assert store.latest_record(NAME)["params"] == {"wait": 2}
    assert store.latest_record(NAME, except_key=KEY)["params"] == {"wait": 1}
    assert store.latest_record("Other(x)") is None


def test_lock_holds_nothing_and_never_waits(memory_url: str) -> None:
    store = Store(memory_url)
    waited: list[bool] = []
    with (
        store.lock(NAME, KEY, on_wait=lambda: waited.append(True)),
        store.lock(NAME, KEY, on_wait=lambda: waited.append(True)),  # a second runner
    ):
        store.save(NAME, KEY, "value", RECORD)
    assert waited == []
    assert store.clean(NAME, KEY) == []
    assert store.sweep(NAME, KEY) == []
    store.sync()  # nothing to do, and no error


def test_memory_is_process_local_and_other_filesystems_are_not(
    memory_url: str, shared_root: Path, tmp_path: Path
) -> None:
    assert Store(memory_url).process_local
    assert Store(f"dir::{memory_url}").process_local
    assert Store(f"async_wrapper::{memory_url}").process_local
    assert not Store(f"{SharedFolderFileSystem.protocol}://x").process_local
    assert not Store(tmp_path).process_local
    assert not Store(f"file://{tmp_path}").process_local


def test_the_root_of_a_filesystem_is_a_store_whose_paths_stay_urls() -> None:
    store = Store("memory://")
    store.save(NAME, KEY, [1, 2], RECORD)
    try:
        path = str(store.result_path(NAME, KEY))
        assert path.startswith("memory://") and path.endswith(f"{NAME}/{KEY}/result.dump.gz")
        with fsspec.open(path) as handle:
            assert joblib.load(handle) == [1, 2]
        assert Store(str(store.root)).load(NAME, KEY) == [1, 2]
    finally:
        memory().rm(f"/{NAME}", recursive=True)


def test_a_dir_url_stores_in_the_folder_it_names(tmp_path: Path) -> None:
    Store(f"dir::file://{tmp_path}/cache").save(NAME, KEY, [1, 2], RECORD)
    assert Store(tmp_path / "cache").load(NAME, KEY) == [1, 2]  # not under cache/<tmp_path>/


def test_a_filesystem_without_renames_whose_folders_must_exist_gets_them(tmp_path: Path) -> None:
    store = Store(f"simplecache::file://{tmp_path}/cache")  # no auto_mkdir underneath
    store.save(NAME, KEY, {"v": 1}, RECORD)
    assert Store(tmp_path / "cache").load(NAME, KEY) == {"v": 1}
    assert store.record(NAME, KEY)["task"] == NAME


def test_a_store_pickles_with_its_filesystem(memory_url: str, shared_root: Path) -> None:
    for url in (memory_url, f"{SharedFolderFileSystem.protocol}://pickled/data"):
        store = Store(url)
        store.save(NAME, KEY, {"a": 1}, RECORD)

        copy = pickle.loads(pickle.dumps(store))

        assert copy.root == store.root
        assert copy.load(NAME, KEY) == {"a": 1}
    assert (shared_root / "pickled" / "data" / NAME / KEY / "result.dump.gz").is_file()


def test_object_store_writes_params_yaml_first_then_the_result_object(recording: str) -> None:
    store = Store(recording)

    store.save(NAME, KEY, {"a": 1}, RECORD)

    entry = f"/{recording.removeprefix(RecordingMemoryFileSystem.protocol + '://')}/{NAME}/{KEY}"
    assert RecordingMemoryFileSystem.writes == [f"{entry}/params.yaml", f"{entry}/result.dump.gz"]
    assert not [p for p in memory().find(entry) if p.endswith(".tmp")]  # no renames: no temps
    assert store.load(NAME, KEY) == {"a": 1}


def test_an_upload_that_fails_leaves_no_result_that_counts(recording: str) -> None:
    store = Store(recording)
    store.save(NAME, KEY, "old", RECORD)
    RecordingMemoryFileSystem.fail_uploads = True
    leftovers_before = set(os.listdir(tempfile.gettempdir()))

    with pytest.raises(ConnectionError):
        store.save(NAME, KEY, "a new value of another size", RECORD)

    # params.yaml names the new size, the old object has the old one: not trusted, recomputed
    assert store.check(NAME, KEY).state is EntryState.DAMAGED
    assert set(os.listdir(tempfile.gettempdir())) <= leftovers_before
    with pytest.raises(ConnectionError):
        store.save("Fresh()", KEY, "never uploaded", RECORD)
    assert store.check("Fresh()", KEY).state is EntryState.MISSING


# --------------------------------------------------------------------------- renaming filesystems


def test_where_the_filesystem_renames_a_result_is_renamed_into_place(shared_root: Path) -> None:
    store = Store(f"{SharedFolderFileSystem.protocol}://renames/data")

    store.save(NAME, KEY, {"a": 1}, RECORD)
    store.save(NAME, KEY, {"a": 2}, RECORD)

    entry = shared_root / "renames" / "data" / NAME / KEY
    assert all_files(shared_root / "renames") == [entry / "params.yaml", entry / "result.dump.gz"]
    assert joblib.load(entry / "result.dump.gz") == {"a": 2}
    assert store.has(NAME, KEY)


def test_only_stale_temporaries_are_leftovers_on_a_store_without_locks(shared_root: Path) -> None:
    store = Store(f"{SharedFolderFileSystem.protocol}://leftovers/data")
    store.save(NAME, KEY, "value", RECORD)
    entry = shared_root / "leftovers" / "data" / NAME / KEY
    now = int(time.time())
    stale = entry / f".result.dump.gz.{now - int(STALE_AFTER) - 60}-0123456789ab.tmp"
    fresh = entry / f".result.dump.gz.{now}-ba9876543210.tmp"  # another runner writing it now
    for temporary in (stale, fresh):
        temporary.write_bytes(b"partial")

    removed = store.sweep(NAME, KEY)

    assert removed == [f"{store.entry(NAME, KEY)}/{stale.name}"]
    assert not stale.exists()
    assert fresh.exists()
    assert store.load(NAME, KEY) == "value"


def test_delete_on_a_renaming_filesystem_removes_the_folders(shared_root: Path) -> None:
    store = Store(f"{SharedFolderFileSystem.protocol}://deletes/data")
    store.save(NAME, KEY, "one", RECORD)
    store.save(NAME, OTHER_KEY, "two", RECORD)

    assert store.delete(NAME, KEY)
    assert sorted(os.listdir(shared_root / "deletes" / "data" / NAME)) == [OTHER_KEY]
    assert store.delete(NAME, OTHER_KEY)

    assert list(store.entries()) == []
    assert os.listdir(shared_root / "deletes" / "data") == []


# --------------------------------------------------------------------------- local code path


def test_local_paths_and_file_urls_never_import_fsspec(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from pyperunner.store import Store

        for root in [{str(tmp_path / "a")!r}, Path({str(tmp_path / "b")!r}),
                     "file://{tmp_path / "c"}", "local://{tmp_path / "d"}"]:
            store = Store(root)
            assert isinstance(store.root, Path), store.root
            with store.lock("T()", "k"):
                store.save("T()", "k", [1, 2], {{}})
            assert store.load("T()", "k") == [1, 2]
            assert list(store.entries()) == [("T()", "k")]
            with store.hold("T()", "k") as held:
                assert held.fd is not None
            store.sync()
        assert "fsspec" not in sys.modules, "fsspec imported"
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    for folder in "abcd":  # the local code path: a lock file beside the result
        assert (tmp_path / folder / "T()" / "k" / ".lock").exists()


def test_a_file_url_is_the_local_store_at_that_path(tmp_path: Path) -> None:
    store = Store(f"file://{tmp_path}")
    assert store.root == tmp_path
    store.save(NAME, KEY, "value", RECORD)
    assert Store(tmp_path).load(NAME, KEY) == "value"


def test_without_fsspec_a_url_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "fsspec.core", None)  # as if fsspec were not installed

    with pytest.raises(ImportError) as info:
        Store("s3://bucket/cache")

    assert FSSPEC_HINT in str(info.value)
    assert Store(tmp_path).root == tmp_path  # local paths do not need it


def test_storage_options_reach_the_filesystem_and_are_refused_for_paths(
    tmp_path: Path, shared_root: Path
) -> None:
    store = Store("memory://opts", storage_options={"skip_instance_cache": True})
    assert store.root == "memory://opts"
    with pytest.raises(ValueError, match="storage_options"):
        Store(tmp_path, storage_options={"anon": True})


# --------------------------------------------------------------------------- pipelines


@task("Numbers", receives_input=False)
def numbers(count):
    return list(range(count))


class Scale(Task):
    """Multiplies its input, as a numpy array (stored with joblib)."""

    @run
    def run(self, data, factor):
        return np.asarray(data[0], dtype=np.int64) * factor


class Total(Task):
    """Sums its input (a plain pickle)."""

    @run
    def run(self, data):
        return {"sum": int(data[0].sum()), "first": [int(x) for x in data[0][:3]]}


class Join(Task):
    """Joins two parents."""

    @run
    def run(self, data):
        return [plain(item) for item in data]


def numbers_pipeline(factor: int = 2) -> Pipeline:
    source = numbers(count=10)
    scaled = Scale("double", factor=factor)(source)
    Join()([Total()(scaled), source])
    return Pipeline("numbers", [source])


EXPECTED = {
    "Numbers()": list(range(10)),
    "Scale(double)": [2 * i for i in range(10)],
    "Total()": {"sum": 90, "first": [0, 2, 4]},
    "Join()": [{"sum": 90, "first": [0, 2, 4]}, list(range(10))],
}


def values(result: Any) -> dict[str, Any]:
    return {name: plain(result[name]) for name in result}


@pytest.mark.parametrize("executor", ["inline", "thread"])
def test_a_pipeline_on_memory_is_cached_and_reruns_what_changed(
    memory_url: str, tmp_path: Path, executor: str
) -> None:
    runner = Runner(memory_url, tmp_path / "log", executor=executor, console=False)

    first = runner.run(numbers_pipeline())
    second = runner.run(numbers_pipeline())
    changed = runner.run(numbers_pipeline(factor=3))

    assert set(first.statuses.values()) == {Status.SUCCESS}
    assert values(first) == EXPECTED
    assert set(second.statuses.values()) == {Status.CACHED}
    assert values(second) == EXPECTED
    assert changed.statuses == {
        "Join()": Status.SUCCESS,
        "Numbers()": Status.CACHED,
        "Scale(double)": Status.SUCCESS,
        "Total()": Status.SUCCESS,
    }
    assert values(changed)["Total()"] == {"sum": 135, "first": [0, 3, 6]}
    assert runner.data_path == memory_url
    assert all(isinstance(run.output_bytes, int) for run in second.runs.values())
    assert not (tmp_path / "memory:").exists()


def test_a_damaged_result_on_memory_is_computed_again(memory_url: str, tmp_path: Path) -> None:
    runner = Runner(memory_url, tmp_path / "log", executor="inline", console=False)
    first = runner.run(numbers_pipeline())
    memory().pipe_file(mem_path(first.path("Scale(double)")), b"damaged")

    again = runner.run(numbers_pipeline())

    assert again.statuses["Scale(double)"] is Status.SUCCESS
    assert again.statuses["Numbers()"] is Status.CACHED
    assert values(again) == EXPECTED


def run_on_local_path(folder: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Values and result files of the pipeline run on a local path, to compare with."""
    result = Runner(folder / "data", folder / "log", executor="inline", console=False).run(
        numbers_pipeline()
    )
    files = {name: Path(result.path(name)).read_bytes() for name in result}
    return values(result), files


def assert_same_as_local(result: Any, shared_root: Path, where: str, local: Path) -> None:
    """The run's values and result files equal a local run's; the files are where the shared
    filesystem puts them, written by fsspec (no lock files of the local code path)."""
    local_values, local_files = run_on_local_path(local)
    assert values(result) == local_values == EXPECTED
    for name in result:
        key = result.task_keys[name]
        entry = shared_root / where / "data" / name / key
        url = f"{SharedFolderFileSystem.protocol}://{where}/data/{name}/{key}/result.dump.gz"
        assert result.path(name) == url
        assert sorted(p.name for p in entry.iterdir()) == ["params.yaml", "result.dump.gz"]
        assert (entry / "result.dump.gz").read_bytes() == local_files[name]
        params = yaml.safe_load((entry / "params.yaml").read_text())
        assert params["result"]["bytes"] == len(local_files[name])
    assert not [p for p in (shared_root / where).rglob("*") if p.name == ".lock"]


def test_process_workers_share_a_store_on_another_filesystem(
    shared_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    where = f"process-{uuid.uuid4().hex[:8]}"
    runner = Runner(f"{SharedFolderFileSystem.protocol}://{where}/data", "log", console=False)

    first = runner.run(numbers_pipeline())
    second = runner.run(numbers_pipeline())

    assert set(first.statuses.values()) == {Status.SUCCESS}, first.failed
    assert set(second.statuses.values()) == {Status.CACHED}
    assert sorted(os.listdir(tmp_path)) == ["log"]  # nothing on a local path named like the URL
    assert_same_as_local(first, shared_root, where, tmp_path / "local")


@pytest.mark.filterwarnings("ignore:Port .* is already in use:UserWarning")
def test_dask_workers_share_a_store_on_another_filesystem(
    shared_root: Path, tmp_path: Path
) -> None:
    distributed = pytest.importorskip("distributed")
    from pyperunner import DaskExecutor

    where = f"dask-{uuid.uuid4().hex[:8]}"
    url = f"{SharedFolderFileSystem.protocol}://{where}/data"
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster, set_as_default=False) as client,
    ):
        runner = Runner(url, tmp_path / "log", executor=DaskExecutor(client), console=False)
        first = runner.run(numbers_pipeline())
        changed = runner.run(numbers_pipeline(factor=3))
        worker_pids = set(client.run(os.getpid).values())

    assert set(first.statuses.values()) == {Status.SUCCESS}, first.failed
    assert changed.statuses["Numbers()"] is Status.CACHED
    assert changed.statuses["Scale(double)"] is Status.SUCCESS
    assert len(worker_pids) == 2 and os.getpid() not in worker_pids
    assert_same_as_local(first, shared_root, where, tmp_path / "local")


@pytest.mark.parametrize("executor", ["process", "pool"])
def test_a_store_inside_one_process_is_refused_for_executors_of_other_processes(executor):
    with pytest.raises(ValueError, match=r"inside one process.*executor='thread' or 'inline'"):
        Runner(f"memory://refused-{executor}", "log-never-written", executor=executor)
