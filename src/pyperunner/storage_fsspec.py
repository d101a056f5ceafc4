"""A store on any fsspec filesystem (``s3://``, ``gcs://``, ``memory://``, ...), and the choice
of a store's backend (:func:`files_for`: this one for a URL, ``storage.LocalFiles`` for a path).

:class:`FsspecFiles` serves the same methods as ``storage.LocalFiles``, importing ``fsspec`` only
when a store is made on a URL. Where the filesystem renames atomically, a file is still renamed
into place; on object stores, which cannot rename but write every object whole, each file is
written whole, ``params.yaml`` first. Such stores have no locks: see ``docs/storage.md``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import pickle
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from .files import TMP_SUFFIX
from .storage import Hold, LocalFiles, Staged

STALE_AFTER = 24 * 3600.0
"""Seconds after which a temporary file on a store without locks counts as a leftover: no lock
tells whether its writer still runs, so only temporaries that old are removed."""
FSSPEC_HINT = 'pip install "pyperunner[fsspec]"'
LOCAL_PROTOCOLS = ("file://", "local://")
"""URLs that name a local path and so take the local code path."""


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
