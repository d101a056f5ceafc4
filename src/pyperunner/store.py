"""The result store: one folder per task and key, ``<root>/<Name(tag)>/<key>/``.

Each entry holds ``result.dump.gz`` (the task's output, readable with ``joblib.load``) and
``params.yaml`` (what produced it: the task's parameters, its parents' keys and the result's size
and format). An entry counts only once ``result.dump.gz`` exists with the size its record names,
and the result is published (renamed into place, or uploaded whole) only after its record is
written, so a crash never leaves a result that a later run trusts. This module is the only code
that knows the layout; how a value becomes a result file's bytes is
:mod:`pyperunner.resultfile`'s business, and where the files live (a local folder, or any fsspec
URL) :mod:`pyperunner.storage`'s.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import json
import os
import pickle
import re
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from . import resultfile, yamlio
from .files import DAMAGED_SUFFIX
from .resultfile import (
    DEFAULT_COMPRESS,
    JOBLIB,
    PICKLE,
    ChecksumMismatch,
    DamagedResult,
    checked_compress,
)
from .storage import Hold, Location
from .storage_fsspec import files_for

RESULT_FILE = "result.dump.gz"
PARAMS_FILE = "params.yaml"
_RESULT = re.compile(
    rb"\nresult:\n  file: \S+\n  bytes: (\d+)\n  format: (\w+)\n(?:  crc32: (\d+)\n)?$"
)
"""How :meth:`Store.save` ends every params.yaml; read without parsing the YAML."""
_PREVIEW = re.compile(rb"\npreview: (\{.*\})\n")
"""The preview a task's worker put in its record, on one line as JSON (:class:`yamlio.Flow`)."""


class StoreError(Exception):
    """A result cannot be written to or read from the store."""


class ResultNotStorableError(StoreError):
    """A task returned a value that cannot be pickled."""


class MissingResult(StoreError):
    """No stored result where one should be: it was deleted (``pyperunner gc``, or by hand)."""


class EntryState(enum.Enum):
    """What the store holds for one task and key."""

    MISSING = "missing"
    OK = "ok"
    DAMAGED = "damaged"


@dataclasses.dataclass(frozen=True)
class Checked:
    """What :meth:`Store.check` found of an entry: its state, what is wrong with a damaged
    one, and a complete one's result size and preview (see :mod:`pyperunner.preview`)."""

    state: EntryState
    problem: str = ""
    size: int | None = None
    preview: dict[str, Any] | None = None


def _result_info(text: bytes) -> tuple[int | None, str, int | None]:
    """(size, format, CRC-32 or None) of the result as the params.yaml ``text`` records them;
    size None if the record is unreadable."""
    found = _RESULT.search(text)
    if found is not None:
        size, kind, crc = found.groups()
        return int(size), kind.decode(), None if crc is None else int(crc)
    try:  # written by an older version, or edited by hand: parse it
        record = yamlio.load(text)
    except (ValueError, yamlio.YAMLError):
        return None, JOBLIB, None
    result = record.get("result") if isinstance(record, dict) else None
    if not isinstance(result, dict) or not isinstance(result.get("bytes"), int):
        return None, JOBLIB, None
    crc = result.get("crc32")
    return result["bytes"], str(result.get("format", JOBLIB)), crc if type(crc) is int else None


def _preview(text: bytes) -> dict[str, Any] | None:
    """The preview the params.yaml ``text`` keeps, parsed alone; None if there is none."""
    found = _PREVIEW.search(text)
    try:
        shown = None if found is None else json.loads(found.group(1))
    except ValueError:
        return None
    return shown if isinstance(shown, dict) else None


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
        self._files = files_for(root, storage_options)
        self.root: Location = self._files.root
        self.compress = checked_compress(compress)

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
        return self.check(name, key).state is EntryState.OK

    def check(self, name: str, key: str) -> Checked:
        """Tell whether an entry is there and intact (by the size recorded when it was written),
        reading its record once: a complete entry's size and preview come with the answer."""
        files = self._files
        path = files.at(name, key, RESULT_FILE)
        try:
            size = files.size(path)
        except (FileNotFoundError, NotADirectoryError):  # a file where a folder would be: none
            return Checked(EntryState.MISSING)
        except IsADirectoryError:
            return Checked(EntryState.DAMAGED, f"{files.public(path)} is a folder, not a file")
        text = self._record_text(name, key)
        expected = None if text is None else _result_info(text)[0]
        if expected is None:
            params = files.public(files.at(name, key, PARAMS_FILE))
            return Checked(EntryState.DAMAGED, f"{params} is missing or unreadable")
        if size != expected:
            problem = f"{files.public(path)} has {size} bytes, {expected} were written"
            return Checked(EntryState.DAMAGED, problem)
        assert text is not None
        return Checked(EntryState.OK, size=size, preview=_preview(text))

    def _record_text(self, name: str, key: str) -> bytes | None:
        """The bytes of an entry's params.yaml; None if it cannot be read."""
        try:
            return self._files.read(self._files.at(name, key, PARAMS_FILE))
        except OSError:
            return None

    def _recorded_result(self, name: str, key: str) -> tuple[int | None, str, int | None]:
        """(size, format, CRC-32 or None) of the result its params.yaml records (see
        :func:`_result_info`)."""
        text = self._record_text(name, key)
        return (None, JOBLIB, None) if text is None else _result_info(text)

    def lock(
        self, name: str, key: str, on_wait: Callable[[], None] | None = None
    ) -> contextlib.AbstractContextManager[None]:
        """Hold the entry's cross-process lock; ``on_wait`` is called once if another holds it.

        On a local store the lock is an OS file lock, so a process that dies releases it; should
        ``pyperunner gc`` delete the entry meanwhile, its folder and lock file are made again. A
        store on fsspec has no locks: this holds nothing (see ``docs/storage.md``).
        """
        return self._files.lock(self._files.at(name, key), on_wait)

    def clean(self, name: str, key: str) -> list[Location]:
        """Remove leftovers of interrupted writes in an entry; call it holding the entry's lock.

        On a store without locks only temporaries older than
        :data:`pyperunner.storage_fsspec.STALE_AFTER` count.
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
        for kind in resultfile.formats_to_try(value, self.compress):
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
            with staged.handle as raw:
                handle = resultfile.Summed(raw, keep=kind == PICKLE)
                try:
                    custom = resultfile.dump(kind, value, handle, self.compress)
                except OSError:
                    raise  # the disk, not the value: a full disk says so itself
                except Exception as exc:  # PicklingError, TypeError, RecursionError, ...
                    fix = (
                        "nest it less deeply, or raise sys.setrecursionlimit() in the task"
                        if isinstance(exc, RecursionError)
                        else "return picklable data instead"
                    )
                    raise ResultNotStorableError(
                        f"task {name} returned a value of type {type(value).__qualname__} that "
                        f"cannot be stored ({exc}); {fix}"
                    ) from exc
                size = handle.tell()
            if custom is None:  # a new file for joblib: ext4 flushes a truncated one on close
                staged.discard()
                return None
            if custom and handle.written is not None:
                _check_loads(name, value, b"".join(handle.written))
            result: dict[str, Any] = {"file": RESULT_FILE, "bytes": size, "format": kind}
            if handle.crc is not None:
                result["crc32"] = handle.crc
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
        """Load the stored output of ``name`` under ``key``; :class:`MissingResult` if there is
        none (also one deleted while it was being read).

        On a local store numpy arrays in uncompressed results are memory-mapped copy-on-write:
        pages are read when used and shared with the page cache, and writing to them changes
        only this copy. From fsspec the whole result is read at once.
        """
        files = self._files
        path = files.at(name, key, RESULT_FILE)

        def missing() -> MissingResult:
            return MissingResult(
                f"no stored result for task {name} with key {key} at {files.public(path)}"
            )

        size, kind, crc = self._recorded_result(name, key)
        try:
            actual = files.size(path)
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            raise missing() from None
        try:
            if size is not None and actual != size:
                raise DamagedResult(f"it has {actual} bytes, {size} were written")
            return resultfile.load(files, path, kind, crc)
        except (ImportError, AttributeError, TypeError, OSError, MemoryError) as exc:
            if isinstance(exc, FileNotFoundError) and not files.is_file(path):
                raise missing() from None  # deleted while it was being read
            raise StoreError(  # the code or the machine changed, not the bytes
                f"the stored result of task {name} at {files.public(path)} cannot be read "
                f"({type(exc).__name__}: {exc}); make the classes it holds importable again, "
                "or run with force_reload=True to compute it again"
            ) from exc
        except Exception as exc:
            if crc is not None and not isinstance(exc, DamagedResult):  # the bytes are intact
                raise StoreError(
                    f"the stored result of task {name} at {files.public(path)} cannot be "
                    f"loaded: its bytes are as written (their checksum matches), but loading "
                    f"them raised {type(exc).__name__}: {exc}; the code that rebuilds its "
                    "objects (a __setstate__ or __reduce__ of your classes) fails: fix it, or "
                    "run with force_reload=True to compute the result again"
                ) from exc
            self._set_aside(name, key)  # the bytes are damaged: keep them, never trust them
            raise StoreError(
                f"the stored result of task {name} at {files.public(path)} is damaged "
                f"({type(exc).__name__}: {exc}); it was moved aside to "
                f"{files.public(self._damaged(name, key))}, so the next run computes it again"
            ) from exc

    def verify(self, name: str, key: str, set_aside: bool = True) -> str | None:
        """Read a stored result and check it against the CRC-32 recorded with it; if the bytes
        changed, move it aside as :meth:`load` would (unless not ``set_aside``) and say what is
        wrong (None: it is fine, or it has no checksum to check)."""
        crc = self._recorded_result(name, key)[2]
        if crc is None:
            return None
        path = self._files.at(name, key, RESULT_FILE)
        try:
            resultfile.check_sum(self._files.read(path), crc)
        except OSError:
            return None  # gone: check() tells
        except ChecksumMismatch as exc:
            if set_aside:
                self._set_aside(name, key)
            return f"{self._files.public(path)}: {exc}"
        return None

    def _set_aside(self, name: str, key: str) -> None:
        """Rename a damaged result, so it no longer counts but is kept to look at."""
        damaged = self._damaged(name, key)
        self._files.remove(damaged)
        self._files.move(self._files.at(name, key, RESULT_FILE), damaged)

    def _damaged(self, name: str, key: str) -> Location:
        return self._files.at(name, key, RESULT_FILE + DAMAGED_SUFFIX)

    def damaged_copy(self, name: str, key: str) -> Location | None:
        """Where a damaged result of ``name`` under ``key`` was moved aside, if one was."""
        damaged = self._damaged(name, key)
        return self._files.public(damaged) if self._files.is_file(damaged) else None

    def entries(self) -> Iterator[tuple[str, str]]:
        """Every (task name, key) that has a folder in the store, complete or not."""
        files = self._files
        for name in files.folders(files.at()):
            for key in files.folders(files.at(name)):
                yield name, key

    def size(self, name: str, key: str) -> int:
        """Bytes an entry takes on disk; 0 if it vanished while measured (a gc, a crash)."""
        try:
            return self._files.tree_size(self._files.at(name, key))
        except OSError:
            return 0

    def delete(self, name: str, key: str) -> bool:
        """Delete an entry unless a run computes it or may still read it; True if gone.

        The entry first stops counting (its result is removed), then its folder goes, so a
        reader never sees a half-deleted entry as cached. Only a local store can tell that a
        run reads the entry (see :meth:`hold`).
        """
        return self._files.delete(self._files.at(name, key), RESULT_FILE)

    def hold(self, name: str, key: str) -> Hold | None:
        """Keep :meth:`delete` (``pyperunner gc``) off a result while a run may still read it,
        until the hold is closed; None if there is no result to hold.

        On a local store this is a shared lock on the result file; a store on fsspec holds
        nothing (and does not look whether the result is there).
        """
        return self._files.hold(self._files.at(name, key, RESULT_FILE))

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

    def stored_time(self, name: str, key: str) -> float | None:
        """When the result of ``name`` under ``key`` was stored (seconds since the epoch)."""
        for mtime, stored_key in self._files.stored(self._files.at(name), RESULT_FILE):
            if stored_key == key:
                return mtime
        return None

    def record(self, name: str, key: str) -> dict[str, Any]:
        """The ``params.yaml`` record stored beside a result."""
        return yamlio.load(self._files.read(self._files.at(name, key, PARAMS_FILE)).decode())


def _check_loads(name: str, value: Any, data: bytes) -> None:
    """Unpickle what was just written: a value that pickles but cannot be read back (an
    exception class whose ``__init__`` takes other arguments than it passes to ``Exception``,
    say) fails its task now, not every task downstream on every run."""
    try:
        pickle.loads(data)
    except Exception as exc:
        raise ResultNotStorableError(
            f"task {name} returned a value of type {type(value).__qualname__} that pickles "
            f"but cannot be read back ({type(exc).__name__}: {exc}); give its classes a "
            "__reduce__ that rebuilds them (for an exception class: pass all __init__ "
            "arguments to super().__init__), or return plain data"
        ) from exc
