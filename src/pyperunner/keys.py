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
import inspect
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


_KEY_JSON = json.JSONEncoder(sort_keys=True, separators=(",", ":")).encode
"""Encoded parameters as hashed: one encoder for all (``json.dumps`` with options makes one a
call)."""


def _qualified(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


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
    if isinstance(value, tuple):  # a named tuple: by its fields, as a dataclass
        fields = {name: encode(getattr(value, name), for_key=for_key) for name in value._fields}
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
    if not for_key and type(value) is complex:
        return {"!complex": repr(value)}
    if not for_key and _plain_numpy(value):
        return _encode_array(value)
    return _encode_opaque(value, for_key=for_key)


def _encode_array(array: Any) -> dict[str, Any]:
    """A numpy array or scalar (shape None) as its dtype, shape and raw bytes: rebuilt without
    unpickling anything."""
    raw = base64.b64encode(array.tobytes()).decode("ascii")
    shape = list(array.shape) if _is_numpy_array(array) else None
    return {"!ndarray": array.dtype.str, "shape": shape, "data": raw}


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


def _plain_numpy(value: Any) -> bool:
    """A numpy array (not a subclass) or numpy scalar of numbers, text or times: no objects,
    no record fields."""
    numpy = sys.modules.get("numpy")
    if numpy is None or not (type(value) is numpy.ndarray or isinstance(value, numpy.generic)):
        return False
    return value.dtype.fields is None and not value.dtype.hasobject


class UntrustedPickleError(ValueError):
    """A pipeline file holds a pickled parameter, and the caller did not say to trust it."""


def decode(value: Any, *, trust_pickles: bool = False) -> Any:
    """Invert :func:`encode` (``for_key=False``): rebuild the original parameter value.

    Only what each tag claims is built: a ``!dataclass`` must name a dataclass, an ``!enum`` an
    enum, and so on, whose module is imported already (by the task that takes the value). A
    ``!pickle`` can run any code when loaded, so it is refused unless ``trust_pickles``.
    """
    if isinstance(value, list):
        return [decode(v, trust_pickles=trust_pickles) for v in value]
    if not isinstance(value, dict):
        return value
    tags = [k for k in value if isinstance(k, str) and k.startswith("!")]
    if not tags:
        return {k: decode(v, trust_pickles=trust_pickles) for k, v in value.items()}
    tag, payload = tags[0], value[tags[0]]

    def inner(item: Any) -> Any:
        return decode(item, trust_pickles=trust_pickles)

    if tag == "!float":
        return float(_expect(tag, payload, str))
    if tag == "!complex":
        return complex(_expect(tag, payload, str))
    if tag in _COLLECTIONS:
        return _COLLECTIONS[tag](inner(v) for v in _expect(tag, payload, list))
    if tag == "!dict":
        return {inner(k): inner(v) for k, v in _expect(tag, payload, list)}
    if tag == "!path":
        kind = _class_of(tag, f"pathlib:{value.get('type')}", lambda c: issubclass(c, PurePath))
        return kind(_expect(tag, payload, str))
    if tag == "!datetime":
        if _expect(tag, payload, str) not in _DATETIMES:
            raise ValueError(f"{tag} names {payload!r}, not one of {sorted(_DATETIMES)}")
        return _decode_datetime(payload, _expect(tag, value.get("value"), str))
    if tag == "!enum":
        kind = _class_of(tag, payload, lambda c: issubclass(c, enum.Enum))
        return kind[_expect(tag, value.get("name"), str)]
    if tag in ("!dataclass", "!namedtuple"):
        claim = dataclasses.is_dataclass if tag == "!dataclass" else _is_named_tuple
        kind = _class_of(tag, payload, claim)
        return kind(**{k: inner(v) for k, v in _expect(tag, value.get("fields"), dict).items()})
    if tag == "!ndarray":
        return _decode_array(payload, value.get("shape"), value.get("data"))
    if tag == "!pickle":
        if not trust_pickles:
            raise UntrustedPickleError(str(payload).replace(":", "."))
        import cloudpickle

        return cloudpickle.loads(base64.b64decode(_expect(tag, value.get("data"), str)))
    raise ValueError(f"cannot decode a parameter tagged {tag!r} (written by a newer pyperunner?)")


_COLLECTIONS: dict[str, Callable[[Iterable[Any]], Any]] = {
    "!tuple": tuple,
    "!set": set,
    "!frozenset": frozenset,
}
_DATETIMES = frozenset({"datetime", "date", "time", "timedelta"})
_CLAIMS = {
    "!path": "a pathlib path class",
    "!enum": "an Enum class",
    "!dataclass": "a dataclass",
    "!namedtuple": "a named tuple class",
}


def _expect(tag: str, payload: Any, kind: type) -> Any:
    """``payload`` if it is a ``kind``; a ``ValueError`` naming the tag otherwise."""
    if not isinstance(payload, kind):
        raise ValueError(f"{tag} holds a {type(payload).__name__}, not a {kind.__name__}")
    return payload


def _is_named_tuple(cls: type) -> bool:
    return issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple)


def _class_of(tag: str, qualified: Any, claim: Callable[[type], bool]) -> type:
    """The class ``module:qualname`` names, from a module imported already, if it is what the
    tag claims (checked before anything is called): decoding never imports nor runs code."""
    module_name, _, qualname = _expect(tag, qualified, str).partition(":")
    module = sys.modules.get(module_name)
    if module is None:
        raise ValueError(
            f"{tag} names {qualified}, but module {module_name!r} is not imported; import it "
            "before loading (the CLI: --import)"
        )
    found: Any = module
    for part in qualname.split("."):  # static lookups: no module __getattr__, no descriptors
        found = inspect.getattr_static(found, part, None)
    if not (isinstance(found, type) and claim(found)):
        raise ValueError(f"{tag} names {qualified}, which is not {_CLAIMS[tag]}")
    return found


def _decode_array(dtype: Any, shape: Any, data: Any) -> Any:
    """A numpy array from :func:`_encode_array`'s parts; no object arrays, so no pickles."""
    import numpy

    kind = numpy.dtype(_expect("!ndarray", dtype, str))
    if kind.hasobject or kind.fields is not None:
        raise ValueError(f"!ndarray has the dtype {dtype!r}, which is not plain numbers or text")
    raw = numpy.frombuffer(base64.b64decode(_expect("!ndarray", data, str)), dtype=kind)
    if shape is None:  # a scalar
        return raw[0]
    if not (isinstance(shape, list) and all(type(n) is int and n >= 0 for n in shape)):
        raise ValueError(f"!ndarray has the shape {shape!r}, not a list of sizes")
    return raw.reshape(shape).copy()


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
    return digest(_KEY_JSON(encoded))


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
