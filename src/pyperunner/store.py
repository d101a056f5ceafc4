"""The result store: one folder per task and key, ``<root>/<Name(tag)>/<key>/``.

Each entry holds ``result.dump.gz`` (the task's output, readable with ``joblib.load``) and
``params.yaml`` (what produced it: the task's parameters, its parents' keys and the result's size).
An entry counts only once ``result.dump.gz`` exists with the size its record names. This module is
the only code that knows the layout.

Where the files live is the business of one of two small backends behind :class:`Store`.
A local path (or a ``file://`` / ``local://`` URL) goes to :class:`_LocalFiles`: os-level I/O, a
result only ever appears by an atomic rename of a complete temporary file in the same folder,
entries are computed under OS file locks, numpy arrays load memory-mapped, and files are not
fsynced one by one (that cost 3 ms per task): :meth:`Store.sync` puts everything on disk once at
the end of a run, and a result a power cut damaged before that is caught by its size. Any other URL
(``s3://``, ``gcs://``, ``memory://``, ...) goes to :class:`_FsspecFiles`, through ``fsspec``,
imported only then: where the filesystem renames atomically a result is still renamed into place;
on object stores, which cannot rename but write every object whole, ``params.yaml`` (with the
result's size) is written first and the result object after it, so a result that does not match
its record is never trusted. Such stores have no locks: see ``docs/storage.md``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import enum
import functools
import io
import os
import pickle
import re
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from . import yamlio

RESULT_FILE = "result.dump.gz"
PARAMS_FILE = "params.yaml"
LOCK_FILE = ".lock"
LOCK_MODE = 0o644
"""Permissions of a new lock file."""
TMP_SUFFIX = ".tmp"
DAMAGED_SUFFIX = ".damaged"
"""A result that failed to unpickle is renamed with this suffix: kept, but no longer trusted."""
STALE_AFTER = 24 * 3600.0
"""Seconds after which a temporary file on a store without locks counts as a leftover: no lock
tells whether its writer still runs, so only temporaries that old are removed."""
LOCAL_PROTOCOLS = ("file://", "local://")
"""URLs that name a local path and so take the local code path."""
FSSPEC_HINT = 'pip install "pyperunner[fsspec]"'
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

Location = Path | str
"""Where a file or folder of the store is: a ``Path`` for a local store, a URL string otherwise."""


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
    """The cache of task outputs under ``root``: a local path or an fsspec URL.

    ``storage_options`` go to the fsspec filesystem of a URL (credentials, endpoint, ...);
    fsspec's own configuration and environment variables apply as well.
    """

    def __init__(
        self,
        root: str | os.PathLike[str],
        compress: Any = DEFAULT_COMPRESS,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        self._files = _files_for(root, storage_options)
        self.root: Location = self._files.root
        self.compress = compress

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    @property
    def process_local(self) -> bool:
        """True if the stored data lives in this process only (``memory://``): no worker
        process sees what another one writes, so only the inline and thread executors fit."""
        return self._files.process_local

    def preload(self) -> None:
        """Import what storing and loading need, so processes forked afterwards inherit it.

        joblib is needed only for numpy arrays, so only where numpy is loaded already.
        """
        if "numpy" in sys.modules:
            import joblib  # noqa: F401

    def entry(self, name: str, key: str) -> Location:
        """The folder of one task's result for one key."""
        return self._files.public(self._files.at(name, key))

    def result_path(self, name: str, key: str) -> Location:
        """The path of the result file, as users load it with ``joblib.load``."""
        return self._files.public(self._files.at(name, key, RESULT_FILE))

    def has(self, name: str, key: str) -> bool:
        """True if a complete, undamaged result for ``name`` under ``key`` is stored."""
        return self.check(name, key)[0] is EntryState.OK

    def check(self, name: str, key: str) -> tuple[EntryState, str]:
        """Tell whether an entry is there and intact (by the size recorded when it was written).

        Returns the state and, for a damaged entry, what is wrong with it.
        """
        files = self._files
        path = files.at(name, key, RESULT_FILE)
        try:
            size = files.size(path)
        except FileNotFoundError:
            return EntryState.MISSING, ""
        expected = self.result_size(name, key)
        if expected is None:
            params = files.public(files.at(name, key, PARAMS_FILE))
            return EntryState.DAMAGED, f"{params} is missing or unreadable"
        if size != expected:
            return (
                EntryState.DAMAGED,
                f"{files.public(path)} has {size} bytes, {expected} were written",
            )
        return EntryState.OK, ""

    def result_size(self, name: str, key: str) -> int | None:
        """The result size params.yaml records; None if the record is missing or unreadable."""
        return self._result_info(name, key)[0]

    def _result_info(self, name: str, key: str) -> tuple[int | None, str]:
        """(size, format) of the result as params.yaml records them; size None if unreadable."""
        try:
            text = self._files.read(self._files.at(name, key, PARAMS_FILE))
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

    def lock(
        self, name: str, key: str, on_wait: Callable[[], None] | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the entry's cross-process lock; ``on_wait`` is called once if another holds it.

        On a local store the lock is an OS file lock, so a process that dies releases it. A
        store on fsspec has no locks: this holds nothing (see ``docs/storage.md``).
        """
        return self._files.lock(self._files.at(name, key), on_wait)

    def clean(self, name: str, key: str) -> list[Location]:
        """Remove leftovers of interrupted writes in an entry; call it holding the entry's lock.

        On a store without locks only temporaries older than :data:`STALE_AFTER` count.
        """
        removed = []
        for leftover in self._files.leftovers(self._files.at(name, key)):
            self._files.remove(leftover)
            removed.append(self._files.public(leftover))
        return removed

    def leftovers(self, name: str, key: str) -> list[Location]:
        """The temporary files interrupted writes left in an entry (none are removed)."""
        return [self._files.public(p) for p in self._files.leftovers(self._files.at(name, key))]

    def sweep(self, name: str, key: str) -> list[Location]:
        """Remove leftovers of interrupted writes in an entry if no one is writing it now."""
        folder = self._files.at(name, key)
        if not self._files.leftovers(folder):
            return []
        with self._files.try_lock(folder) as locked:
            return self.clean(name, key) if locked else []

    def save(self, name: str, key: str, value: Any, record: Mapping[str, Any]) -> int:
        """Store ``value`` and its ``record`` (params.yaml); return the bytes written.

        The result is written to a temporary file, its size recorded in params.yaml, and only
        then published (renamed into place, or uploaded): that is when the entry starts to count.
        """
        for kind in _formats_to_try(value, self.compress):
            size = self._save_as(kind, name, key, value, record)
            if size is not None:
                break
        assert size is not None, "joblib writes any value"
        return size

    def _save_as(
        self, kind: str, name: str, key: str, value: Any, record: Mapping[str, Any]
    ) -> int | None:
        """Store ``value`` in format ``kind``; None if a plain pickle met a numpy array."""
        files = self._files
        staged = files.stage(files.at(name, key), RESULT_FILE)
        try:
            with staged.handle as handle:
                try:
                    written = _dump(kind, value, handle, self.compress)
                except OSError:
                    raise  # the disk, not the value: a full disk says so itself
                except Exception as exc:  # PicklingError, TypeError, RecursionError, ...
                    raise ResultNotStorableError(
                        f"task {name} returned a value of type {type(value).__qualname__} that "
                        f"cannot be stored ({exc}); return picklable data instead"
                    ) from exc
                size = handle.tell()
            if not written:  # a new file for joblib: ext4 flushes a truncated one on close
                staged.discard()
                return None
            result = {"file": RESULT_FILE, "bytes": size, "format": kind}
            full_record = {**record, "result": result}
            files.write(files.at(name, key, PARAMS_FILE), yamlio.dump(full_record).encode())
            staged.publish()
        except BaseException:
            staged.discard()
            raise
        return size

    def sync(self) -> None:
        """Put every result written so far on disk (one ``syncfs`` for a local store)."""
        self._files.sync()

    def load(self, name: str, key: str) -> Any:
        """Load the stored output of ``name`` under ``key``.

        On a local store numpy arrays in uncompressed results are memory-mapped copy-on-write:
        pages are read when used and shared with the page cache, and writing to them changes
        only this copy. From fsspec the whole result is read at once.
        """
        files = self._files
        path = files.at(name, key, RESULT_FILE)
        if not files.is_file(path):
            raise StoreError(
                f"no stored result for task {name} with key {key} at {files.public(path)}"
            )
        try:
            return files.load(path, self._result_info(name, key)[1])
        except (ImportError, AttributeError, TypeError, OSError, MemoryError) as exc:
            raise StoreError(  # the code or the machine changed, not the bytes
                f"the stored result of task {name} at {files.public(path)} cannot be read "
                f"({type(exc).__name__}: {exc}); make the classes it holds importable again, "
                "or run with force_reload=True to compute it again"
            ) from exc
        except Exception as exc:  # the bytes are damaged: keep them, but never trust them
            files.remove(self._damaged(name, key))
            files.move(path, self._damaged(name, key))
            raise StoreError(
                f"the stored result of task {name} at {files.public(path)} is damaged "
                f"({type(exc).__name__}: {exc}); it was moved aside to "
                f"{files.public(self._damaged(name, key))}, so the next run computes it again"
            ) from exc

    def _damaged(self, name: str, key: str) -> Location:
        return self._files.at(name, key, RESULT_FILE + DAMAGED_SUFFIX)

    def entries(self) -> Iterator[tuple[str, str]]:
        """Every (task name, key) that has a folder in the store, complete or not."""
        files = self._files
        for name in files.folders(files.at()):
            for key in files.folders(files.at(name)):
                yield name, key

    def size(self, name: str, key: str) -> int:
        """Bytes an entry takes on disk."""
        return self._files.tree_size(self._files.at(name, key))

    def delete(self, name: str, key: str) -> bool:
        """Delete an entry unless a run computes it or may still read it; True if gone.

        The entry first stops counting (its result is removed), then its folder goes, so a
        reader never sees a half-deleted entry as cached. Only a local store can tell that a
        run reads the entry (see :meth:`reading`).
        """
        return self._files.delete(self._files.at(name, key), RESULT_FILE)

    def reading(self, name: str, key: str) -> contextlib.AbstractContextManager[bool]:
        """Keep :meth:`delete` (``pyperunner gc``) off a result while a run may still read it.

        On a local store this holds a shared lock on the result file and yields False if there
        is no result to hold; a store on fsspec holds nothing and yields True.
        """
        return self._files.reading(self._files.at(name, key, RESULT_FILE))

    def latest_record(self, name: str, except_key: str | None = None) -> dict[str, Any] | None:
        """The record of the most recently stored complete result of ``name``, if any."""
        candidates = self._files.stored(self._files.at(name), RESULT_FILE)
        for _, key in sorted(candidates, reverse=True):
            if key == except_key:
                continue
            with contextlib.suppress(OSError, ValueError, yamlio.YAMLError):
                record = self.record(name, key)
                if isinstance(record, dict):
                    return record
        return None

    def record(self, name: str, key: str) -> dict[str, Any]:
        """The ``params.yaml`` record stored beside a result."""
        return yamlio.load(self._files.read(self._files.at(name, key, PARAMS_FILE)).decode())


# -- backends -------------------------------------------------------------------------------------


@dataclasses.dataclass
class _Staged:
    """A file being written: ``handle`` to write it, then ``publish`` it or ``discard`` it."""

    handle: IO[bytes]
    publish: Callable[[], None]
    discard: Callable[[], None]


def _files_for(
    root: str | os.PathLike[str], storage_options: Mapping[str, Any] | None
) -> _LocalFiles | _FsspecFiles:
    """The backend for ``root``: local for a path or a ``file://`` URL, fsspec otherwise."""
    if isinstance(root, str):
        for prefix in LOCAL_PROTOCOLS:
            if root.startswith(prefix):
                root = root[len(prefix) :] or "."
                break
        else:
            if "://" in root:
                return _FsspecFiles.from_url(root, storage_options or {})
    if storage_options:
        raise ValueError(f"storage_options apply to fsspec URLs only, not to the path {root!r}")
    return _LocalFiles(Path(root).absolute())


class _LocalFiles:
    """A store on a local (or locally mounted) filesystem: os calls, renames, file locks, mmap.

    Locations are ``Path`` objects, the same ones users see.
    """

    process_local = False

    def __init__(self, root: Path) -> None:
        self.root = root

    def at(self, *parts: str) -> Path:
        return self.root.joinpath(*parts)

    @staticmethod
    def public(location: Path) -> Path:
        return location

    @staticmethod
    def size(path: Path) -> int:
        return path.stat().st_size

    @staticmethod
    def is_file(path: Path) -> bool:
        return path.is_file()

    @staticmethod
    def read(path: Path) -> bytes:
        return path.read_bytes()

    @staticmethod
    def write(path: Path, data: bytes) -> None:
        _write_atomic(path, data)

    @staticmethod
    def stage(folder: Path, name: str) -> _Staged:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = _temporary_file(folder, name)
        return _Staged(
            os.fdopen(fd, "wb"),
            publish=lambda: os.replace(tmp, folder / name),
            discard=lambda: Path(tmp).unlink(missing_ok=True),
        )

    @staticmethod
    def load(path: Path, kind: str) -> Any:
        if kind == PICKLE:
            with open(path, "rb") as handle:
                return pickle.load(handle)
        import joblib

        with warnings.catch_warnings():  # compressed results are simply read in full
            warnings.filterwarnings("ignore", message=".*mmap_mode.*", category=UserWarning)
            return joblib.load(path, mmap_mode="c")

    @staticmethod
    def remove(path: Path) -> None:
        path.unlink(missing_ok=True)

    @staticmethod
    def move(source: Path, target: Path) -> None:
        os.replace(source, target)

    @staticmethod
    def leftovers(folder: Path) -> list[Path]:
        try:
            with os.scandir(folder) as found:
                return [
                    Path(item.path)
                    for item in found
                    if item.name.startswith(".") and item.name.endswith(TMP_SUFFIX)
                ]
        except FileNotFoundError:
            return []

    @staticmethod
    def folders(folder: Path) -> list[str]:
        try:
            with os.scandir(folder) as found:
                return sorted(item.name for item in found if item.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []

    @staticmethod
    def stored(folder: Path, name: str) -> list[tuple[float, str]]:
        """(modification time, key) of every ``<folder>/<key>/<name>`` file."""
        found = []
        for path in folder.glob(f"*/{name}"):
            with contextlib.suppress(OSError):
                found.append((path.stat().st_mtime, path.parent.name))
        return found

    @staticmethod
    def tree_size(folder: Path) -> int:
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())

    @staticmethod
    @contextlib.contextmanager
    def lock(folder: Path, on_wait: Callable[[], None] | None) -> Iterator[None]:
        folder.mkdir(parents=True, exist_ok=True)
        with _flock(folder / LOCK_FILE, wait=True, on_wait=on_wait):
            yield

    @staticmethod
    @contextlib.contextmanager
    def try_lock(folder: Path) -> Iterator[bool]:
        """Hold the entry's lock if no one else does; yield whether it is held."""
        if not folder.is_dir():
            yield False
            return
        with _flock(folder / LOCK_FILE, wait=False) as held:
            yield held

    def delete(self, folder: Path, result: str) -> bool:
        if not folder.is_dir():
            return True
        with self.try_lock(folder) as locked:
            if not locked or not _unlink_unless_read(folder / result):
                return False
            for item in folder.iterdir():
                if item.name != LOCK_FILE:
                    shutil.rmtree(item) if item.is_dir() else item.unlink()
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # only if no other key of this task is left
        return True

    @staticmethod
    @contextlib.contextmanager
    def reading(path: Path) -> Iterator[bool]:
        import fcntl

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

    def sync(self) -> None:
        if not self.root.is_dir():
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            _syncfs(fd)
        finally:
            os.close(fd)


class _FsspecFiles:
    """A store on an fsspec filesystem: whole-object reads and writes, no locks, no mmap.

    Locations are the filesystem's own paths (protocol stripped); users see URLs under the
    ``root`` URL. Results are renamed into place only where the filesystem renames atomically
    (local files under another protocol); elsewhere each file is written whole, params.yaml first.
    The filesystem object is made anew in a forked process, which must not use its parent's
    connections or event loop, and it pickles (to Dask workers) as fsspec pickles filesystems.
    """

    def __init__(self, fs: Any, path: str, url: str) -> None:
        self._fs = fs
        self._pid = os.getpid()
        self.path = path.rstrip("/")
        self.root = url.rstrip("/")
        self.renames = _renames_atomically(fs)
        self.process_local = _in_memory(fs)

    @classmethod
    def from_url(cls, url: str, storage_options: Mapping[str, Any]) -> _FsspecFiles:
        try:
            from fsspec.core import url_to_fs
        except ImportError as exc:
            raise ImportError(f"a data_path like {url!r} needs fsspec: {FSSPEC_HINT}") from exc
        fs, path = url_to_fs(url, **storage_options)
        return cls(fs, path, url)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        del state["_pid"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._pid = os.getpid()

    @property
    def fs(self) -> Any:
        """The filesystem, made anew after a fork."""
        if self._pid != os.getpid():
            self._fs = pickle.loads(pickle.dumps(self._fs))
            self._pid = os.getpid()
        return self._fs

    def at(self, *parts: str) -> str:
        return "/".join((self.path, *parts)) if self.path else "/".join(parts)

    def public(self, location: str) -> str:
        relative = location[len(self.path) :].lstrip("/")
        return f"{self.root}/{relative}" if relative else self.root

    def _info(self, path: str) -> dict[str, Any]:
        fs = self.fs
        fs.invalidate_cache(path)  # other processes change the store: no cached listings
        return fs.info(path)

    def size(self, path: str) -> int:
        info = self._info(path)
        if info.get("type") != "file":
            raise FileNotFoundError(path)
        return int(info["size"])

    def is_file(self, path: str) -> bool:
        try:
            self.size(path)
        except FileNotFoundError:
            return False
        return True

    def read(self, path: str) -> bytes:
        return bytes(self.fs.cat_file(path))

    def write(self, path: str, data: bytes) -> None:
        if self.renames:
            staged = self.stage(path.rpartition("/")[0], path.rpartition("/")[2])
            try:
                with staged.handle as handle:
                    handle.write(data)
                staged.publish()
            except BaseException:
                staged.discard()
                raise
        else:  # one PUT: the object appears whole or not at all
            self.fs.pipe_file(path, data)

    def stage(self, folder: str, name: str) -> _Staged:
        fs, final = self.fs, f"{folder}/{name}"
        if self.renames:
            fs.makedirs(folder, exist_ok=True)
            tmp = f"{folder}/{_temporary_name(name)}"
            return _Staged(
                fs.open(tmp, "wb"),
                publish=lambda: fs.mv(tmp, final),
                discard=lambda: self.remove(tmp),
            )
        fd, local = tempfile.mkstemp(prefix=f".pyperunner-{name}.", suffix=TMP_SUFFIX)

        def upload() -> None:
            fs.put_file(local, final)
            os.unlink(local)

        def discard() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(local)

        return _Staged(os.fdopen(fd, "wb"), publish=upload, discard=discard)

    def load(self, path: str, kind: str) -> Any:
        data = self.fs.cat_file(path)  # one read: never parts of two versions of the object
        if kind == PICKLE:
            return pickle.loads(data)
        import joblib

        return joblib.load(io.BytesIO(data))

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.rm_file(path)

    def move(self, source: str, target: str) -> None:
        self.fs.mv(source, target)

    def _listing(self, folder: str) -> list[dict[str, Any]]:
        fs = self.fs
        fs.invalidate_cache(folder)
        try:
            return list(fs.ls(folder, detail=True))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def leftovers(self, folder: str) -> list[str]:
        if not self.renames:
            return []  # nothing but whole objects is ever written there
        stale_before = time.time() - STALE_AFTER
        return [
            item["name"]
            for item in self._listing(folder)
            if item.get("type") == "file" and _stale(_base(item["name"]), stale_before)
        ]

    def folders(self, folder: str) -> list[str]:
        return sorted(
            _base(item["name"]) for item in self._listing(folder) if item["type"] == "directory"
        )

    def stored(self, folder: str, name: str) -> list[tuple[float, str]]:
        fs = self.fs
        fs.invalidate_cache(folder)
        try:
            found = fs.find(folder, detail=True)
        except FileNotFoundError:
            return []
        prefix = folder.rstrip("/") + "/"
        stored = []
        for path, info in found.items():
            key, _, file = path[len(prefix) :].partition("/")
            if path.startswith(prefix) and file == name:
                stored.append((_modified(info), key))
        return stored

    def tree_size(self, folder: str) -> int:
        fs = self.fs
        fs.invalidate_cache(folder)
        try:
            found = fs.find(folder, detail=True)
        except FileNotFoundError:
            return 0
        return sum(int(info.get("size") or 0) for info in found.values())

    @staticmethod
    @contextlib.contextmanager
    def lock(folder: str, on_wait: Callable[[], None] | None) -> Iterator[None]:
        yield  # no lock: two runners may compute one entry at once, each writing it whole

    @staticmethod
    @contextlib.contextmanager
    def try_lock(folder: str) -> Iterator[bool]:
        yield True

    @staticmethod
    @contextlib.contextmanager
    def reading(path: str) -> Iterator[bool]:
        yield True  # nothing to hold: gc on such a store may delete what a run still reads

    def delete(self, folder: str, result: str) -> bool:
        fs = self.fs
        self.remove(f"{folder}/{result}")  # the entry stops counting first
        fs.invalidate_cache(folder)
        with contextlib.suppress(FileNotFoundError):
            fs.rm(folder, recursive=True)
        parent = folder.rpartition("/")[0]
        if self.renames or self.process_local:  # object stores have no empty folders to remove
            with contextlib.suppress(OSError):
                if not self._listing(parent):
                    fs.rmdir(parent)  # only if no other key of this task is left
        return True

    def sync(self) -> None:
        pass  # every file is complete when its write returns; durability is the filesystem's


def _renames_atomically(fs: Any) -> bool:
    """True for filesystems whose ``mv`` of a file is an atomic rename: local files, also
    under another protocol or below a ``DirFileSystem``."""
    from fsspec.implementations.dirfs import DirFileSystem
    from fsspec.implementations.local import LocalFileSystem

    while isinstance(fs, DirFileSystem):
        fs = fs.fs
    return isinstance(fs, LocalFileSystem)


def _in_memory(fs: Any) -> bool:
    """True for an in-memory filesystem, also below wrappers (``dir::``, caches)."""
    from fsspec import AbstractFileSystem
    from fsspec.implementations.memory import MemoryFileSystem

    while isinstance(getattr(fs, "fs", None), AbstractFileSystem):
        fs = fs.fs
    return isinstance(fs, MemoryFileSystem)


def _temporary_name(name: str) -> str:
    """A temporary's name in the entry folder, with its creation time for :func:`_stale`."""
    return f".{name}.{int(time.time())}-{uuid.uuid4().hex[:12]}{TMP_SUFFIX}"


def _stale(name: str, before: float) -> bool:
    """True for a temporary created before ``before`` (or one of unknown age)."""
    if not (name.startswith(".") and name.endswith(TMP_SUFFIX)):
        return False
    stamp = name[: -len(TMP_SUFFIX)].rpartition(".")[2].partition("-")[0]
    return not stamp.isdigit() or int(stamp) < before


def _base(path: str) -> str:
    return path.rstrip("/").rpartition("/")[2]


def _modified(info: Mapping[str, Any]) -> float:
    """When a file was last written, from an fsspec ``info`` dict; its keys differ by filesystem."""
    for field in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(field)
        if isinstance(value, str):
            with contextlib.suppress(ValueError):
                value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        if isinstance(value, dt.datetime):
            return value.timestamp()
        if isinstance(value, (int, float)):
            return float(value)
    return 0.0


# -- formats and local helpers --------------------------------------------------------------------


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


def _formats_to_try(value: Any, compress: Any) -> tuple[str, ...]:
    """Plain pickle where it may do (10 to 20 times faster than joblib on Python objects, both
    ways), joblib where the value holds numpy arrays (memory-mapped on load) or is compressed."""
    numpy = sys.modules.get("numpy")  # without numpy imported, no value holds an array
    if compress or (numpy is not None and isinstance(value, numpy.ndarray)):
        return (JOBLIB,)
    return (PICKLE, JOBLIB)


def _dump(kind: str, value: Any, handle: Any, compress: Any) -> bool:
    """Write ``value`` to ``handle`` in format ``kind``; False if a plain pickle met an array."""
    if kind == JOBLIB:
        import joblib

        joblib.dump(value, handle, compress=compress)
        return True
    numpy = sys.modules.get("numpy")
    try:
        if numpy is None:
            pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
        else:
            _PlainPickler(handle, numpy.ndarray).dump(value)
    except _HasArrays:
        return False
    return True


@contextlib.contextmanager
def _flock(path: Path, wait: bool, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on ``path`` (made if missing); yield whether it is held.

    The operating system drops the lock when its holder dies, so a dead run never blocks. A lock
    won on a file that was deleted meanwhile (``gc``) is no lock: the file is opened again.
    """
    import fcntl

    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if not wait:
                    yield False
                    return
                if on_wait is not None:
                    on_wait()
                    on_wait = None
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(os.fstat(fd), current):
                yield True
                return
        finally:
            os.close(fd)
        path.parent.mkdir(parents=True, exist_ok=True)


def _unlink_unless_read(path: Path) -> bool:
    """Remove a result file unless a run holds it (see :meth:`Store.reading`); True if gone."""
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


def _syncfs(fd: int) -> None:
    """Flush the filesystem holding ``fd`` (Linux ``syncfs``); elsewhere flush all of them."""
    import ctypes

    try:
        if ctypes.CDLL(None).syncfs(fd) == 0:
            return
    except (OSError, AttributeError):
        pass
    os.sync()


@functools.cache
def _file_mode() -> int:
    """The mode of a new file as ``open`` would make it: 0o666 less this process's umask."""
    mask = os.umask(0o022)
    os.umask(mask)
    return 0o666 & ~mask


def _temporary_file(folder: Path, name: str) -> tuple[int, str]:
    """A new temporary file in ``folder`` for ``name``, readable as a plain file would be (not
    ``mkstemp``'s 0600: a shared store is read by other users too)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=TMP_SUFFIX, dir=folder)
    os.fchmod(fd, _file_mode())
    return fd, tmp


def _write_atomic(path: Path, data: bytes) -> None:
    fd, tmp = _temporary_file(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
