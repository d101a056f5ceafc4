"""Where a store's files live: the backends' shared types, and a local folder.

:class:`LocalFiles` serves a local path (or a ``file://`` / ``local://`` URL): os-level I/O, a
file only ever appears by an atomic rename of a complete temporary file in the same folder,
entries are computed under ``flock`` locks (which the OS drops when their holder dies), results a
run still reads are held under shared locks, and files are not fsynced one by one (that cost 3 ms
per task): :meth:`LocalFiles.sync` puts everything on disk once at the end of a run.
``storage_fsspec.FsspecFiles`` serves any other URL with the same methods; ``store.files_for``
picks the backend. The layout of entries is the store's business (:mod:`pyperunner.store`), not
this module's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from .files import TMP_SUFFIX, temporary_file, write_atomic
from .files import make_folder as _make_folder
from .files import replace as _replace

LOCK_FILE = ".lock"
LOCK_MODE = 0o644
"""Permissions of a new lock file."""

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
        info = os.stat(path)
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, "a folder, not a file", str(path))
        return info.st_size

    @staticmethod
    def is_file(path: Path) -> bool:
        return path.is_file()

    @staticmethod
    def read(path: Path) -> bytes:
        with open(path, "rb", buffering=0) as handle:  # one read: no buffer to fill first
            return handle.readall()

    @staticmethod
    def write(path: Path, data: bytes) -> None:
        write_atomic(path, data)

    @staticmethod
    def stage(folder: Path, name: str) -> Staged:
        try:  # the entry's lock made its folder already
            fd, tmp = temporary_file(folder, name)
        except (FileNotFoundError, NotADirectoryError):
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
