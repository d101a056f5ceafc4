"""The result store: one folder per task and key, ``<root>/<Name(tag)>/<key>/``.

Each entry holds ``result.dump.gz`` (the task's output, readable with ``joblib.load``) and
``params.yaml`` (what produced it: the task's parameters, its parents' keys and the result's size).
An entry counts only once ``result.dump.gz`` exists with the size its record names, and that file
only ever appears by an atomic rename of a complete temporary file in the same folder, so a crash
of any process never leaves a result that looks valid. Files are not fsynced one by one (that
cost 3 ms per task); :meth:`Store.sync` puts everything on disk once at the end of a run, and a
result a power cut damaged before that is caught by its size and computed again.
This module is the only code that knows the layout.
"""

from __future__ import annotations

import contextlib
import enum
import os
import pickle
import re
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from . import yamlio

RESULT_FILE = "result.dump.gz"
PARAMS_FILE = "params.yaml"
LOCK_FILE = ".lock"
LOCK_MODE = 0o644
"""Lock files are not group-writable, which also spares filelock a probe file per entry."""
TMP_SUFFIX = ".tmp"
_RESULT = re.compile(rb"\nresult:\n  file: \S+\n  bytes: (\d+)\n  format: (\w+)\n$")
"""How :meth:`Store.save` ends every params.yaml; read without parsing the YAML."""
PICKLE, JOBLIB = "pickle", "joblib"
"""Result formats: plain pickle (no numpy arrays inside), or joblib's, whose arrays can be
memory-mapped; ``joblib.load`` reads both."""
DEFAULT_COMPRESS: Any = 0
"""No compression by default, chosen by measurement: on numeric arrays gzip costs 30 to 90 times
the write time for at most a third less disk, and it rules out memory-mapping (see
``benchmarks/README.md``). Pass ``compress=("gzip", 3)`` (any ``joblib.dump`` value) to trade time
for disk, e.g. for large pure-Python results."""


class StoreError(Exception):
    """A result cannot be written to or read from the store."""


class ResultNotStorableError(StoreError):
    """A task returned a value that cannot be pickled."""


class EntryState(enum.Enum):
    """What the store holds for one task and key."""

    MISSING = "missing"
    OK = "ok"
    DAMAGED = "damaged"


class Store:
    """The on-disk cache of task outputs under ``root``."""

    def __init__(self, root: str | os.PathLike[str], compress: Any = DEFAULT_COMPRESS) -> None:
        self.root = Path(root).absolute()
        self.compress = compress

    def preload(self) -> None:
        """Import what storing and loading need, so processes forked afterwards inherit it.

        joblib is needed only for numpy arrays, so only where numpy is loaded already.
        """
        import filelock  # noqa: F401

        if "numpy" in sys.modules:
            import joblib  # noqa: F401

    def entry(self, name: str, key: str) -> Path:
        """The folder of one task's result for one key."""
        return self.root / name / key

    def result_path(self, name: str, key: str) -> Path:
        """The path of the result file, as users load it with ``joblib.load``."""
        return self.entry(name, key) / RESULT_FILE

    def has(self, name: str, key: str) -> bool:
        """True if a complete, undamaged result for ``name`` under ``key`` is stored."""
        return self.check(name, key)[0] is EntryState.OK

    def check(self, name: str, key: str) -> tuple[EntryState, str]:
        """Tell whether an entry is there and intact (by the size recorded when it was written).

        Returns the state and, for a damaged entry, what is wrong with it.
        """
        path = self.result_path(name, key)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return EntryState.MISSING, ""
        expected = self.result_size(name, key)
        if expected is None:
            return (
                EntryState.DAMAGED,
                f"{self.entry(name, key) / PARAMS_FILE} is missing or unreadable",
            )
        if size != expected:
            return EntryState.DAMAGED, f"{path} has {size} bytes, {expected} were written"
        return EntryState.OK, ""

    def result_size(self, name: str, key: str) -> int | None:
        """The result size params.yaml records; None if the record is missing or unreadable."""
        return self._result_info(name, key)[0]

    def _result_info(self, name: str, key: str) -> tuple[int | None, str]:
        """(size, format) of the result as params.yaml records them; size None if unreadable."""
        try:
            text = (self.entry(name, key) / PARAMS_FILE).read_bytes()
        except OSError:
            return None, JOBLIB
        found = _RESULT.search(text)
        if found is not None:
            return int(found.group(1)), found.group(2).decode()
        try:  # written by an older version, or edited by hand: parse it
            record = yamlio.load(text)
        except (ValueError, yamlio.YAMLError):
            return None, JOBLIB
        result = record.get("result") if isinstance(record, dict) else None
        if not isinstance(result, dict) or not isinstance(result.get("bytes"), int):
            return None, JOBLIB
        return result["bytes"], str(result.get("format", JOBLIB))

    @contextlib.contextmanager
    def lock(
        self, name: str, key: str, on_wait: Callable[[], None] | None = None
    ) -> Iterator[None]:
        """Hold the entry's cross-process lock; ``on_wait`` is called once if another holds it.

        The lock is an OS file lock, so a process that dies releases it.
        """
        from filelock import FileLock, Timeout

        folder = self.entry(name, key)
        folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(folder / LOCK_FILE, mode=LOCK_MODE)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            if on_wait is not None:
                on_wait()
            lock.acquire()
        try:
            yield
        finally:
            lock.release()

    def clean(self, name: str, key: str) -> list[Path]:
        """Remove leftovers of interrupted writes in an entry; call it holding the entry's lock."""
        removed = []
        for leftover in self._leftovers(name, key):
            leftover.unlink(missing_ok=True)
            removed.append(leftover)
        return removed

    def _leftovers(self, name: str, key: str) -> list[Path]:
        try:
            with os.scandir(self.entry(name, key)) as found:
                return [
                    Path(item.path)
                    for item in found
                    if item.name.startswith(".") and item.name.endswith(TMP_SUFFIX)
                ]
        except FileNotFoundError:
            return []

    def sweep(self, name: str, key: str) -> list[Path]:
        """Remove leftovers of interrupted writes in an entry if no one is writing it now."""
        from filelock import FileLock, Timeout

        folder = self.entry(name, key)
        if not self._leftovers(name, key):
            return []
        try:
            with FileLock(folder / LOCK_FILE, timeout=0, mode=LOCK_MODE):
                return self.clean(name, key)
        except Timeout:
            return []

    def save(self, name: str, key: str, value: Any, record: Mapping[str, Any]) -> int:
        """Store ``value`` and its ``record`` (params.yaml) atomically; return the bytes written.

        The result is written to a temporary file, its size recorded in params.yaml, and only
        then renamed into place: the rename is the moment the entry starts to count.
        """
        folder = self.entry(name, key)
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{RESULT_FILE}.", suffix=TMP_SUFFIX, dir=folder)
        try:
            with os.fdopen(fd, "wb") as handle:
                kind = _dump(value, handle, self.compress)
                size = handle.tell()
            result = {"file": RESULT_FILE, "bytes": size, "format": kind}
            full_record = {**record, "result": result}
            _write_atomic(folder / PARAMS_FILE, yamlio.dump(full_record).encode())
            os.replace(tmp, folder / RESULT_FILE)
        except BaseException as exc:
            Path(tmp).unlink(missing_ok=True)
            if isinstance(exc, (pickle.PicklingError, TypeError, AttributeError)):
                raise ResultNotStorableError(
                    f"task {name} returned a value of type {type(value).__qualname__} that cannot "
                    f"be stored ({exc}); return picklable data instead"
                ) from exc
            raise
        return size

    def sync(self) -> None:
        """Put every result written so far on disk (one ``syncfs`` for the store's filesystem)."""
        if not self.root.is_dir():
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            _syncfs(fd)
        finally:
            os.close(fd)

    def load(self, name: str, key: str) -> Any:
        """Load the stored output of ``name`` under ``key``.

        Numpy arrays in uncompressed results are memory-mapped copy-on-write: pages are read
        when used and shared with the page cache, and writing to them changes only this copy.
        """
        path = self.result_path(name, key)
        if not path.is_file():
            raise StoreError(f"no stored result for task {name} with key {key} at {path}")
        try:
            if self._result_info(name, key)[1] == PICKLE:
                with open(path, "rb") as handle:
                    return pickle.load(handle)
            import joblib

            with warnings.catch_warnings():  # compressed results are simply read in full
                warnings.filterwarnings("ignore", message=".*mmap_mode.*", category=UserWarning)
                return joblib.load(path, mmap_mode="c")
        except Exception as exc:
            raise StoreError(
                f"the stored result of task {name} at {path} cannot be read ({exc}); delete "
                "that folder or run with force_reload=True to compute it again"
            ) from exc

    def entries(self) -> Iterator[tuple[str, str]]:
        """Every (task name, key) that has a folder in the store, complete or not."""
        if not self.root.is_dir():
            return
        for task_folder in sorted(self.root.iterdir()):
            if task_folder.is_dir():
                for entry in sorted(task_folder.iterdir()):
                    if entry.is_dir():
                        yield task_folder.name, entry.name

    def size(self, name: str, key: str) -> int:
        """Bytes an entry takes on disk."""
        return sum(f.stat().st_size for f in self.entry(name, key).rglob("*") if f.is_file())

    def delete(self, name: str, key: str) -> bool:
        """Delete an entry unless a run computes it or may still read it; True if gone.

        The entry first stops counting (its result is removed under the lock), then its folder
        goes, so a reader never sees a half-deleted entry as cached.
        """
        from filelock import FileLock, Timeout

        folder = self.entry(name, key)
        if not folder.is_dir():
            return True
        try:
            with FileLock(folder / LOCK_FILE, timeout=0, mode=LOCK_MODE):
                if not self._unlink_unless_read(self.result_path(name, key)):
                    return False
                for item in folder.iterdir():
                    if item.name != LOCK_FILE:
                        shutil.rmtree(item) if item.is_dir() else item.unlink()
        except Timeout:
            return False
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # only if no other key of this task is left
        return True

    @contextlib.contextmanager
    def reading(self, name: str, key: str) -> Iterator[bool]:
        """Keep :meth:`delete` (``pyperunner gc``) off a result while a run may still read it.

        Holds a shared lock on the result file; yields False if there is no result to hold.
        """
        import fcntl

        path = self.result_path(name, key)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            yield False
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            try:  # deleted or replaced while we waited for the lock?
                same = os.path.samestat(os.fstat(fd), os.stat(path))
            except FileNotFoundError:
                same = False
            yield same
        finally:
            os.close(fd)

    @staticmethod
    def _unlink_unless_read(path: Path) -> bool:
        """Remove a result file unless a run holds it (see :meth:`reading`); True if gone."""
        import fcntl

        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        else:
            path.unlink(missing_ok=True)
            return True
        finally:
            os.close(fd)

    def latest_record(self, name: str, except_key: str | None = None) -> dict[str, Any] | None:
        """The record of the most recently stored complete result of ``name``, if any."""
        candidates = []
        for result in (self.root / name).glob(f"*/{RESULT_FILE}"):
            key = result.parent.name
            if key != except_key:
                with contextlib.suppress(OSError):
                    candidates.append((result.stat().st_mtime, key))
        for _, key in sorted(candidates, reverse=True):
            with contextlib.suppress(OSError, ValueError, yamlio.YAMLError):
                record = self.record(name, key)
                if isinstance(record, dict):
                    return record
        return None

    def record(self, name: str, key: str) -> dict[str, Any]:
        """The ``params.yaml`` record stored beside a result."""
        return yamlio.load((self.entry(name, key) / PARAMS_FILE).read_text())


class _HasArrays(Exception):
    pass


class _PlainPickler(pickle.Pickler):
    """A pickler that gives up at the first numpy array, which joblib stores better."""

    def __init__(self, handle: Any, ndarray: type) -> None:
        super().__init__(handle, protocol=pickle.HIGHEST_PROTOCOL)
        self.ndarray = ndarray

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, self.ndarray):
            raise _HasArrays
        return NotImplemented


def _dump(value: Any, handle: Any, compress: Any) -> str:
    """Write ``value`` to ``handle``; return its format.

    Plain pickle where it can (10 to 20 times faster than joblib on Python objects, both ways),
    joblib where the value holds numpy arrays (memory-mapped on load) or is to be compressed.
    """
    numpy = sys.modules.get("numpy")  # without numpy imported, no value holds an array
    if not compress:
        try:
            if numpy is None:
                pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
            else:
                _PlainPickler(handle, numpy.ndarray).dump(value)
            return PICKLE
        except _HasArrays:
            handle.seek(0)
            handle.truncate()
    import joblib

    joblib.dump(value, handle, compress=compress)
    return JOBLIB


def _syncfs(fd: int) -> None:
    """Flush the filesystem holding ``fd`` (Linux ``syncfs``); elsewhere flush all of them."""
    import ctypes

    try:
        if ctypes.CDLL(None).syncfs(fd) == 0:
            return
    except (OSError, AttributeError):
        pass
    os.sync()


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
