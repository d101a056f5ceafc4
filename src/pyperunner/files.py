"""Local files written whole or not at all: the one way pyperunner writes a local file.

A file appears by the atomic rename of a complete temporary file beside it, so a reader sees the
old file or the new one, never a part; what stands in a file's or folder's way is moved aside
(``<name>.damaged``), not deleted. Used by the store's local backend (``storage.py``), the run
folder's writer and ``Pipeline.to_file``; it knows nothing of what the files hold.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
from pathlib import Path

TMP_SUFFIX = ".tmp"
DAMAGED_SUFFIX = ".damaged"
"""What is not trusted is renamed with this suffix: kept to look at, but no longer used."""

_UNIQUE = itertools.count()


def temporary_file(folder: Path, name: str) -> tuple[int, str]:
    """A new temporary file in ``folder`` for ``name``, with the modes a plain new file gets
    (``open`` applies the umask; not ``mkstemp``'s 0600: a shared store is read by others)."""
    while True:
        tmp = f"{folder}/.{name}.{os.getpid()}-{next(_UNIQUE)}{TMP_SUFFIX}"
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666), tmp
        except FileExistsError:  # left by an earlier process with this pid
            continue


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``path`` through a temporary file renamed over it: readers see the old file or the
    new one, never a part (a crash leaves only the temporary file)."""
    fd, tmp = temporary_file(path.parent, path.name)
    try:
        try:
            rest = memoryview(data)
            while rest:
                rest = rest[os.write(fd, rest) :]
        finally:
            os.close(fd)
        replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.filename is not None:
            raise
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror}") from exc  # full disk
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def replace(tmp: str, path: Path) -> None:
    """Rename ``tmp`` over ``path``; a folder in the file's place is moved aside first."""
    try:
        os.replace(tmp, path)
    except IsADirectoryError:
        move_aside(path)
        os.replace(tmp, path)


def make_folder(folder: Path) -> None:
    """Make ``folder`` (and its parents) if missing; a file in its place is moved aside."""
    try:
        os.mkdir(folder)  # one call where only the folder itself is new or it exists
        return
    except FileNotFoundError:
        os.makedirs(folder.parent, exist_ok=True)
    except FileExistsError:
        if os.path.isdir(folder):
            return
        move_aside(folder)
    try:
        os.mkdir(folder)
    except FileExistsError:  # made meanwhile by another run
        if not os.path.isdir(folder):
            raise


def move_aside(path: Path) -> None:
    """Rename what is at ``path`` to ``<path>.damaged`` (replacing an earlier one): kept to look
    at, but out of the store's way."""
    aside = path.with_name(path.name + DAMAGED_SUFFIX)
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside)
    else:
        aside.unlink(missing_ok=True)
    os.replace(path, aside)
    logging.getLogger().warning("Moved %s aside to %s: it was in the way of the store", path, aside)
