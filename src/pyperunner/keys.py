"""Canonical encoding of task parameters and Merkle task keys.

A task's key is a digest of its own identity (class, tag, bound parameters, code) and, in order, the
keys of its parents, so it changes whenever anything upstream changes. Parameters are first turned
into a canonical, type-tagged plain structure by :func:`encode`; the same encoding, in its
round-trip form, is what pipeline files store, so one piece of code decides what a parameter *is*.
Nothing here knows about tasks or graphs: callers pass digests and parent functions.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import enum
import functools
import hashlib
import importlib
import json
import math
import sys
from collections.abc import Callable, Hashable, Iterable, Mapping
from pathlib import PurePath
from typing import Any, TypeVar

KEY_LENGTH = 32

N = TypeVar("N", bound=Hashable)


class UnhashableParameterError(TypeError):
    """A parameter value that cannot be encoded into a task key."""


def digest(text: str | bytes) -> str:
    """Return the hex digest used for every key and fingerprint (sha256, shortened)."""
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()[:KEY_LENGTH]


def _qualified(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _resolve(qualified: str) -> Any:
    module_name, _, qualname = qualified.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def encode(value: Any, *, for_key: bool) -> Any:
    """Turn ``value`` into a plain, type-tagged structure of JSON types.

    With ``for_key`` the result identifies the value (opaque objects become their ``joblib.hash``);
    without it the result can be decoded back by :func:`decode` (opaque objects become a pickle).
    """
    if isinstance(value, enum.Enum):
        return {"!enum": _qualified(type(value)), "name": value.name}
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, str)):
        return int(value) if isinstance(value, int) else str(value)  # plain, also for subclasses
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else {"!float": repr(value)}
    if isinstance(value, list):
        return [encode(v, for_key=for_key) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"!tuple": [encode(v, for_key=for_key) for v in value]}
    if isinstance(value, tuple) and for_key:  # a named tuple: by its fields, as a dataclass
        fields = {name: encode(getattr(value, name), for_key=True) for name in value._fields}
        return {"!namedtuple": _qualified(type(value)), "fields": fields}
    if isinstance(value, (set, frozenset)):
        items = [encode(v, for_key=for_key) for v in value]
        tag = "!frozenset" if isinstance(value, frozenset) else "!set"
        return {tag: sorted(items, key=lambda item: json.dumps(item, sort_keys=True))}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("!") for k in value):
            return {k: encode(v, for_key=for_key) for k, v in value.items()}
        pairs = [[encode(k, for_key=for_key), encode(v, for_key=for_key)] for k, v in value.items()]
        return {"!dict": sorted(pairs, key=lambda pair: json.dumps(pair[0], sort_keys=True))}
    if isinstance(value, PurePath):
        return {"!path": str(value), "type": type(value).__name__}
    if isinstance(value, (dt.datetime, dt.date, dt.time, dt.timedelta)):
        return {"!datetime": type(value).__name__, "value": _datetime_text(value)}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: encode(getattr(value, f.name), for_key=for_key)
            for f in dataclasses.fields(value)
        }
        return {"!dataclass": _qualified(type(value)), "fields": fields}
    return _encode_opaque(value, for_key=for_key)


def _datetime_text(value: dt.datetime | dt.date | dt.time | dt.timedelta) -> str:
    if isinstance(value, dt.timedelta):  # exact: total_seconds() is a float, which loses µs
        return f"{value.days} {value.seconds} {value.microseconds}"
    return value.isoformat()


def _encode_opaque(value: Any, *, for_key: bool) -> Any:
    if for_key:
        if _is_numpy_array(value) and not value.flags["C_CONTIGUOUS"]:
            value = value.copy(order="C")  # equal arrays hash equal whatever their layout
        try:
            return {"!hash": _qualified(type(value)), "digest": _stable_hash(value)}
        except Exception as exc:
            raise UnhashableParameterError(
                f"a value of type {type(value).__qualname__} cannot be hashed ({exc}); "
                "pass plain data (numbers, strings, lists, dicts, dataclasses, arrays) instead"
            ) from exc
    import cloudpickle

    blob = base64.b64encode(cloudpickle.dumps(value)).decode("ascii")
    return {"!pickle": _qualified(type(value)), "data": blob}


def _stable_hash(value: Any) -> str:
    """``joblib.hash``, with frozensets in sorted order like sets: their order otherwise
    follows the process's string hash seed, so the same value would get another key in
    another process."""
    from joblib import hashing

    base = hashing.NumpyHasher if "numpy" in sys.modules else hashing.Hasher
    return _stable_hasher(base)().hash(value)


@functools.cache
def _stable_hasher(base: type) -> type:
    dispatch = dict(base.dispatch)
    dispatch[frozenset] = base.save_set
    return type(f"Stable{base.__name__}", (base,), {"dispatch": dispatch})


def _is_numpy_array(value: Any) -> bool:
    return type(value).__module__ == "numpy" and type(value).__name__ == "ndarray"


def decode(value: Any) -> Any:
    """Invert :func:`encode` (``for_key=False``): rebuild the original parameter value."""
    if isinstance(value, list):
        return [decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    tags = [k for k in value if k.startswith("!")]
    if not tags:
        return {k: decode(v) for k, v in value.items()}
    tag = tags[0]
    payload = value[tag]
    if tag == "!float":
        return float(payload)
    if tag == "!tuple":
        return tuple(decode(v) for v in payload)
    if tag == "!set":
        return {decode(v) for v in payload}
    if tag == "!frozenset":
        return frozenset(decode(v) for v in payload)
    if tag == "!dict":
        return {decode(k): decode(v) for k, v in payload}
    if tag == "!enum":
        return _resolve(payload)[value["name"]]
    if tag == "!path":
        return getattr(importlib.import_module("pathlib"), value["type"])(payload)
    if tag == "!datetime":
        return _decode_datetime(payload, value["value"])
    if tag == "!dataclass":
        return _resolve(payload)(**{k: decode(v) for k, v in value["fields"].items()})
    if tag == "!pickle":
        import cloudpickle

        return cloudpickle.loads(base64.b64decode(value["data"]))
    raise ValueError(f"cannot decode a parameter tagged {tag!r} (written by a newer pyperunner?)")


def _decode_datetime(kind: str, text: str) -> Any:
    if kind == "timedelta":
        if " " not in text:  # written before 0.1.0's exact form: seconds as a float
            return dt.timedelta(seconds=float(text))
        days, seconds, microseconds = map(int, text.split())
        return dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)
    return getattr(dt, kind).fromisoformat(text)


def params_digest(params: Mapping[str, Any]) -> str:
    """Return the digest of bound parameters, independent of their order."""
    encoded = {name: encode(value, for_key=True) for name, value in params.items()}
    return digest(json.dumps(encoded, sort_keys=True, separators=(",", ":")))


def own_digest(identity: str, tag: str, params: str, code: str) -> str:
    """Return the digest of one task on its own: what it is, its tag, parameters and code."""
    return digest("\x1f".join(("task", identity, tag, params, code)))


def merkle(own: str, parent_keys: Iterable[str]) -> str:
    """Return a task key from its own digest and its parents' keys, in connection order."""
    return digest("\x1f".join(("node", own, *parent_keys)))


def merkle_keys(
    targets: Iterable[N],
    parents_of: Callable[[N], Iterable[N]],
    own_of: Callable[[N], str],
) -> dict[N, str]:
    """Return the key of every target and of everything upstream, each computed once: O(V+E).

    Iterative post-order, so deep chains do not hit the recursion limit.
    """
    keys: dict[N, str] = {}
    for target in targets:
        stack: list[tuple[N, bool]] = [(target, False)]
        on_path: set[N] = set()
        while stack:
            node, expanded = stack.pop()
            if node in keys:
                continue
            if expanded:
                on_path.discard(node)
                keys[node] = merkle(own_of(node), (keys[p] for p in parents_of(node)))
                continue
            if node in on_path:
                raise ValueError(f"cycle through {node!r}")
            on_path.add(node)
            stack.append((node, True))
            stack.extend((p, False) for p in parents_of(node) if p not in keys)
    return keys
