"""How a result's bytes are written and read: plain pickle or joblib's format, compressed or
not, summed with a CRC-32 as they are written and checked as they are read.

:mod:`pyperunner.store` decides where a result goes and what its record says; this module only
turns a value into bytes on a handle and back.
"""

from __future__ import annotations

import errno
import importlib.util
import io
import pickle
import sys
import warnings
import zlib
from typing import Any

from .storage import Location

CHECKSUM_LIMIT = 64 * 2**20
"""Results up to this many bytes get a CRC-32 when written, checked whenever they are loaded, so
a byte changed in place is caught; larger ones are checked by size only (memory-mapped arrays
above all: checking them would read every byte at every load, and cost a third of the write)."""
PICKLE, JOBLIB = "pickle", "joblib"
"""Result formats: plain pickle (no numpy arrays inside), or joblib's, whose arrays can be
memory-mapped; ``joblib.load`` reads both."""
DEFAULT_COMPRESS: Any = 0
"""No compression by default, chosen by measurement: on numeric arrays gzip costs 30 to 90 times
the write time for at most a third less disk, and it rules out memory-mapping (see
``benchmarks/README.md``). Pass ``compress=("gzip", 3)`` (any ``joblib.dump`` value) to trade time
for disk, e.g. for large pure-Python results."""


COMPRESSORS = ("zlib", "gzip", "bz2", "lzma", "xz", "lz4")
"""The compression methods ``joblib.dump`` knows (lz4 needs the ``lz4`` package)."""


def checked_compress(compress: Any) -> Any:
    """``compress`` as ``joblib.dump`` takes it, None meaning none; any other value is refused
    now, not by every task once it has done its work."""
    if compress is None or compress is False:
        return 0
    if compress is True or (type(compress) is int and 0 <= compress <= 9):
        return compress
    method, level = (
        compress if isinstance(compress, tuple) and len(compress) == 2 else (compress, None)
    )
    if method in COMPRESSORS and (level is None or (type(level) is int and 0 <= level <= 9)):
        if method == "lz4" and importlib.util.find_spec("lz4") is None:
            raise ValueError(f"compress={compress!r} needs the lz4 package: pip install lz4")
        return compress
    raise ValueError(
        f"compress={compress!r} is not a compression joblib.dump knows: use 0 (none, the "
        f"default), a zlib level 1-9, True, a method ({', '.join(COMPRESSORS)}) or a "
        "(method, level) pair such as ('gzip', 3)"
    )


class _HasArrays(Exception):
    pass


class _PlainPickler(pickle.Pickler):
    """A pickler that gives up at the first numpy array, which joblib stores better, and
    notes whether the value holds instances of classes that are not built in (``custom``):
    only those may pickle yet fail to unpickle."""

    def __init__(self, handle: Any, arrays: tuple[type, ...]) -> None:
        super().__init__(handle, protocol=pickle.HIGHEST_PROTOCOL)
        self.arrays = arrays
        self.custom = False

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) in self.arrays:
            raise _HasArrays
        if not self.custom and type(obj).__module__ != "builtins":
            self.custom = True
        return NotImplemented


def _joblib_arrays(numpy: Any) -> tuple[type, ...]:
    """The array types joblib stores as they are: subclasses (``numpy.matrix``) it loads back
    as plain arrays, so those are pickled whole instead."""
    return (numpy.ndarray, numpy.memmap)


def formats_to_try(value: Any, compress: Any) -> tuple[str, ...]:
    """Plain pickle where it may do (10 to 20 times faster than joblib on Python objects, both
    ways), joblib where the value holds numpy arrays (memory-mapped on load) or is compressed."""
    numpy = sys.modules.get("numpy")  # without numpy imported, no value holds an array
    if compress or (numpy is not None and type(value) in _joblib_arrays(numpy)):
        return (JOBLIB,)
    return (PICKLE, JOBLIB)


def dump(kind: str, value: Any, handle: Any, compress: Any) -> bool | None:
    """Write ``value`` to ``handle`` in format ``kind``; None if a plain pickle met an array,
    else whether the plain pickle holds instances of classes that are not built in."""
    if kind == JOBLIB:
        import joblib

        joblib.dump(value, handle, compress=compress)
        return False
    numpy = sys.modules.get("numpy")
    pickler = _PlainPickler(handle, () if numpy is None else _joblib_arrays(numpy))
    try:
        pickler.dump(value)
    except _HasArrays:
        return None
    return pickler.custom


class Summed:
    """A file being written that sums (CRC-32) what goes through it, up to CHECKSUM_LIMIT
    bytes, and (if ``keep``) keeps a copy of it; ``crc`` is None once more was written."""

    def __init__(self, handle: Any, keep: bool) -> None:
        self.handle = handle
        self.crc: int | None = 0
        self.size = 0
        self.written: list[bytes] | None = [] if keep else None  # a copy, up to the limit

    def write(self, data: Any) -> int:
        if self.crc is not None:
            self.size += memoryview(data).nbytes
            self.crc = zlib.crc32(data, self.crc) if self.size <= CHECKSUM_LIMIT else None
            if self.crc is not None and self.written is not None:
                self.written.append(bytes(data))
            else:
                self.written = None
        return self.handle.write(data)

    def __getattr__(self, name: str) -> Any:  # tell, flush, ...: the file's own
        return getattr(self.handle, name)


class _Summing:
    """A file being read that sums (CRC-32) what is read from it."""

    def __init__(self, handle: Any) -> None:
        self.handle = handle
        self.crc = 0

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        self.crc = zlib.crc32(data, self.crc)
        return data

    def readline(self) -> bytes:
        data = self.handle.readline()
        self.crc = zlib.crc32(data, self.crc)
        return data

    def readinto(self, buffer: Any) -> int:
        n = self.handle.readinto(buffer)
        self.crc = zlib.crc32(memoryview(buffer)[:n], self.crc)
        return n

    def rest(self) -> bytes:
        """What is left of the file (nothing, unless bytes were added after the value)."""
        return self.handle.read()


class DamagedResult(ValueError):
    """A result's bytes are not those written: another size, or another CRC-32."""


class ChecksumMismatch(DamagedResult):
    pass


def check_sum(data: Any, crc: int | None, start: int = 0) -> None:
    """Raise if ``data`` (after bytes whose CRC-32 is ``start``) does not have the CRC-32
    recorded when it was written (if one was)."""
    if crc is not None and zlib.crc32(data, start) != crc:
        raise ChecksumMismatch("its bytes changed since it was written (CRC-32 mismatch)")


def load(files: Any, path: Location, kind: str, crc: int | None) -> Any:
    """Read a result in format ``kind``, checking its CRC-32 if it has one; numpy arrays of a
    local file are memory-mapped."""
    local = files.local_path(path)
    if local is None:  # from fsspec: the whole object at once
        data = files.read(path)
        check_sum(data, crc)
        return pickle.loads(data) if kind == PICKLE else _joblib_load(io.BytesIO(data))
    if kind == PICKLE:  # unpickled as it is read, so a large result is not in memory twice
        with open(local, "rb") as raw:
            handle = _Summing(raw)
            try:
                value = pickle.load(handle)  # type: ignore[arg-type]
            except Exception:  # changed bytes are told as such, not as what they led to
                check_sum(handle.rest(), crc, handle.crc)
                raise
            check_sum(handle.rest(), crc, handle.crc)
        return value
    if crc is not None:
        check_sum(files.read(path), crc)
    return _joblib_load(local)


def _joblib_load(source: Any) -> Any:
    """``joblib.load``, memory-mapping the arrays of a file; a result of more arrays than this
    process may map (one file descriptor each) is read into memory instead."""
    import joblib

    if isinstance(source, io.BytesIO):
        return joblib.load(source)
    try:
        with warnings.catch_warnings():  # compressed results are simply read in full
            warnings.filterwarnings("ignore", message=".*mmap_mode.*", category=UserWarning)
            return joblib.load(source, mmap_mode="c")
    except OSError as exc:
        if exc.errno not in (errno.EMFILE, errno.ENFILE, errno.ENOMEM):
            raise
    return joblib.load(source)  # outside the except: the maps made so far are closed by now
