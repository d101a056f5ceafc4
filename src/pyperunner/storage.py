"""Where a store's files live: a local folder, or any fsspec filesystem, behind one interface.

:class:`LocalFiles` serves a local path (or a ``file://`` / ``local://`` URL): os-level I/O, a
file only ever appears by an atomic rename of a complete temporary file in the same folder,
entries are computed under ``flock`` locks (which the OS drops when their holder dies), results a
run still reads are held under shared locks, and files are not fsynced one by one (that cost 3 ms
per task): :meth:`LocalFiles.sync` puts everything on disk once at the end of a run.
:class:`FsspecFiles` serves any other URL (``s3://``, ``gcs://``, ``memory://``, ...), importing
``fsspec`` only then: where the filesystem renames atomically a file is still renamed into place;
on object stores, which cannot rename but write every object whole, each file is written whole.
Such stores have no locks: see ``docs/storage.md``. The layout of entries is the store's business
(:mod:`pyperunner.store`), not this module's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import os
import pickle
import shutil
import stat
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from .files import TMP_SUFFIX, temporary_file, write_atomic
from .files import make_folder as _make_folder
from .files import replace as _replace

LOCK_FILE = ".lock"
LOCK_MODE = 0o644
"""Permissions of a new lock file."""
STALE_AFTER = 24 * 3600.0
"""Seconds after which a temporary file on a store without locks counts as a leftover: no lock
tells whether its writer still runs, so only temporaries that old are removed."""
LOCAL_PROTOCOLS = ("file://", "local://")
"""URLs that name a local path and so take the local code path."""
FSSPEC_HINT = 'pip install "pyperunner[fsspec]"'

Location = Path | str
"""Where a file or folder of the store is: a ``Path`` for a local store, a URL string otherwise."""


class Hold:
    """Keeps ``pyperunner gc`` off one stored result: an open file under a shared ``flock``,
    which gc respects (:func:`_unlink_unless_read`), until :meth:`close`.

    The lock belongs to the open file, not to a descriptor or a path: it follows the file across
    a rename, and it holds while any copy of the descriptor is open, one a fork inherited or one
    passed to another process over a Unix socket. ``fd`` None holds nothing (a store without
    locks)."""

    def __init__(self, fd: int | None) -> None:
        self.fd = fd

    def close(self) -> None:
        """Let go of the result (idempotent)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)

    __del__ = close  # a hold no one took over (its outcome came after its run ended) goes too

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclasses.dataclass
class Staged:
    """A file being written: ``handle`` to write it, then ``publish`` it or ``discard`` it."""

    handle: IO[bytes]
    publish: Callable[[], None]
    discard: Callable[[], None]


def files_for(
    root: str | os.PathLike[str], storage_options: Mapping[str, Any] | None
) -> LocalFiles | FsspecFiles:
    """The backend for ``root``: local for a path or a ``file://`` URL, fsspec otherwise."""
    if isinstance(root, str):
        for prefix in LOCAL_PROTOCOLS:
            if root.startswith(prefix):
                root = root[len(prefix) :] or "."
                break
        else:
            if "://" in root:
                return FsspecFiles.from_url(root, storage_options or {})
    if storage_options:
        raise ValueError(f"storage_options apply to fsspec URLs only, not to the path {root!r}")
    return LocalFiles(Path(root).absolute())


class LocalFiles:
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
        info = path.stat()
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "a folder, not a file", str(path))
        return info.st_size

    @staticmethod
    def is_file(path: Path) -> bool:
        return path.is_file()

    @staticmethod
    def read(path: Path) -> bytes:
        return path.read_bytes()

    @staticmethod
    def write(path: Path, data: bytes) -> None:
        write_atomic(path, data)

    @staticmethod
    def stage(folder: Path, name: str) -> Staged:
        _make_folder(folder)
        fd, tmp = temporary_file(folder, name)
        return Staged(
            os.fdopen(fd, "wb"),
            publish=lambda: _replace(tmp, folder / name),
            discard=lambda: Path(tmp).unlink(missing_ok=True),
        )

    @staticmethod
    def local_path(path: Path) -> Path:
        """The file itself, to read or memory-map."""
        return path

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
        try:
            with os.scandir(folder) as keys:
                for key in keys:
                    if not key.name.startswith("."):
                        with contextlib.suppress(OSError):
                            found.append((os.stat(f"{key.path}/{name}").st_mtime, key.name))
        except (FileNotFoundError, NotADirectoryError):
            pass
        return found

    @staticmethod
    def tree_size(folder: Path) -> int:
        return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())

    @staticmethod
    @contextlib.contextmanager
    def lock(folder: Path, on_wait: Callable[[], None] | None) -> Iterator[None]:
        _make_folder(folder)
        with _flock(folder / LOCK_FILE, wait=True, on_wait=on_wait):
            yield

    @staticmethod
    @contextlib.contextmanager
    def try_lock(folder: Path) -> Iterator[bool]:
        """Hold the entry's lock if no one else does; yield whether it is held (False also
        where there is no entry folder to lock)."""
        with _flock(folder / LOCK_FILE, wait=False) as held:
            yield held

    def delete(self, folder: Path, result: str) -> bool:
        """Delete an entry no one computes or holds. All of it goes under its lock, the lock
        file last, so that a run waiting for the lock finds it gone and takes a fresh one (in a
        folder it makes again), never one in a folder gc is about to remove."""
        with self.try_lock(folder) as locked:
            if not locked:
                return not folder.is_dir()  # gone already (another gc), else in use
            if not _unlink_unless_read(folder / result):
                return False
            for item in folder.iterdir():
                if item.name != LOCK_FILE:
                    shutil.rmtree(item) if item.is_dir() else item.unlink()
            (folder / LOCK_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):  # a run made a new lock file in it meanwhile
                folder.rmdir()
        with contextlib.suppress(OSError):
            folder.parent.rmdir()  # only if no other key of this task is left
        return True

    @staticmethod
    def hold(path: Path) -> Hold | None:
        """Hold the result file at ``path`` (see :class:`Hold`); None if there is none."""
        import fcntl

        while True:
            try:
                fd = os.open(path, os.O_RDONLY)
            except (FileNotFoundError, NotADirectoryError):
                return None
            try:
                fcntl.flock(fd, fcntl.LOCK_SH)
                current = os.stat(path)  # deleted or replaced while we waited for the lock?
            except FileNotFoundError:
                os.close(fd)
                return None
            except BaseException:
                os.close(fd)
                raise
            if os.path.samestat(os.fstat(fd), current):
                return Hold(fd)
            os.close(fd)  # replaced by a newer result: hold that one

    def sync(self) -> None:
        if not self.root.is_dir():
            return
        fd = os.open(self.root, os.O_RDONLY)
        try:
            _syncfs(fd)
        finally:
            os.close(fd)


class FsspecFiles:
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
        protocol, sep, rest = url.rpartition("://")
        self.root = f"{protocol}{sep}{rest.rstrip('/')}"  # "memory://" stays a URL
        self.renames = _renames_atomically(fs)
        self.process_local = _in_memory(fs)

    @classmethod
    def from_url(cls, url: str, storage_options: Mapping[str, Any]) -> FsspecFiles:
        try:
            from fsspec.core import url_to_fs
        except ImportError as exc:
            raise ImportError(f"a data_path like {url!r} needs fsspec: {FSSPEC_HINT}") from exc
        try:
            fs, path = url_to_fs(url, **storage_options)
        except (ValueError, ImportError) as exc:  # fsspec's words do not name the URL
            raise type(exc)(f"data_path {url!r} cannot be opened: {exc}") from exc
        from fsspec.implementations.dirfs import DirFileSystem

        if isinstance(fs, DirFileSystem) and path.rstrip("/") == str(fs.path).rstrip("/"):
            path = ""  # dir::URL: fsspec gives the folder the filesystem is rooted at as a path
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
            _in_folder(self.fs, path, lambda: self.fs.pipe_file(path, data))

    def stage(self, folder: str, name: str) -> Staged:
        fs, final = self.fs, f"{folder}/{name}"
        if self.renames:
            fs.makedirs(folder, exist_ok=True)
            tmp = f"{folder}/{_temporary_name(name)}"
            return Staged(
                fs.open(tmp, "wb"),
                publish=lambda: fs.mv(tmp, final),
                discard=lambda: self.remove(tmp),
            )
        fd, local = tempfile.mkstemp(prefix=f".pyperunner-{name}.", suffix=TMP_SUFFIX)

        def upload() -> None:
            _in_folder(fs, final, lambda: fs.put_file(local, final))
            os.unlink(local)

        def discard() -> None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(local)

        return Staged(os.fdopen(fd, "wb"), publish=upload, discard=discard)

    @staticmethod
    def local_path(path: str) -> None:
        """None: the object is read whole (:meth:`read`), never parts of two versions of it."""
        return None

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
    def hold(path: str) -> Hold:
        return Hold(None)  # nothing to hold: gc on such a store may delete what a run reads

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


def _in_folder(fs: Any, path: str, write: Callable[[], None]) -> None:
    """Write ``path`` with ``write``; where the filesystem has folders that must exist first
    (local files under a cache, say), make its folder and write again."""
    try:
        write()
    except FileNotFoundError:
        fs.makedirs(path.rpartition("/")[0], exist_ok=True)
        write()


def _in_memory(fs: Any) -> bool:
    """True for an in-memory filesystem, also below wrappers (``dir::``, caches, async)."""
    from fsspec import AbstractFileSystem
    from fsspec.implementations.memory import MemoryFileSystem

    while True:
        inner = [getattr(fs, a, None) for a in ("fs", "sync_fs")]
        below = [f for f in inner if isinstance(f, AbstractFileSystem) and f is not fs]
        if not below:
            return isinstance(fs, MemoryFileSystem)
        fs = below[0]


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


# -- local helpers ----------------------------------------------------------------------------


@contextlib.contextmanager
def _flock(path: Path, wait: bool, on_wait: Callable[[], None] | None = None) -> Iterator[bool]:
    """Hold an exclusive ``flock`` on the lock file ``path``; yield whether it is held.

    The operating system drops the lock when its holder dies, so a dead run never blocks. gc may
    delete the entry between any two steps: a lock won on a file deleted meanwhile is no lock,
    so the file is opened again, and a waiting caller (``wait``) makes the file and its folder
    again, while one that does not wait finds no entry to lock (False).
    """
    import fcntl

    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, LOCK_MODE)
        except (FileNotFoundError, NotADirectoryError):  # no folder (any more)
            if not wait:
                yield False
                return
            _make_folder(path.parent)
            continue
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
            if not wait:
                yield False
                return
        finally:
            os.close(fd)


def _unlink_unless_read(path: Path) -> bool:
    """Remove a result file unless a run holds it (see :class:`Hold`); True if gone."""
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
