"""Code fingerprints: what a task's code is, ignoring comments, docstrings and layout.

A task's fingerprint covers its own source, normalized through ``ast`` so that a comment, a
docstring or a reformatting keeps the cache while a change of logic invalidates it, and what of
the user's own code it reads, directly or through other such code: functions and classes
(``helper(x)``, ``helpers.clean(x)``, also imported inside a function body, through
``__wrapped__`` under ``functools.cache`` or a ``functools.wraps`` decorator, and through the
closure of any other decorator, with the data closures hold), global constants of plain data
(``FACTOR = 2``; scalars and their tuples, lists, dicts and sets, each up to ~100 kB, and values
of parameter kinds: paths, dates, enums, named tuples, dataclasses, small numpy arrays), and the
user code such globals hold: tables of
functions (``OPS["add"](x)``), ``functools.partial`` objects and instances of user classes
(``CLEANER(x)``), with their data. Library code (the standard library, site-packages,
pyperunner itself) is left out: upgrading a library is the environment's concern, recorded in
each run's ``pipeline.yaml``.
Where no source exists (``exec``), the bytecode is used. :func:`compute` also returns the global
names it read as :class:`Binding` objects, so that :func:`unchanged` can cheaply validate a
cached fingerprint after a notebook cell or ``exec`` rebinds one of them.
"""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
import enum
import functools
import inspect
import json
import sys
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import PurePath
from typing import Any, NamedTuple

from . import codesource, keys

DATA_LIMIT = 100_000  # characters of encoding above which a global constant is not hashed
_MISSING: Any = object()
_SCALARS = frozenset({type(None), bool, int, float, complex, str, bytes})
_DATA = _SCALARS | {tuple, list, dict, set, frozenset}


class _NotData(Exception):
    """A value that is not plain data, or too large to hash."""


class Binding(NamedTuple):
    """A global name a fingerprint read: ``where[name]`` was ``value``."""

    where: Mapping[str, Any]
    name: str
    value: Any
    code: types.CodeType | None  # ``value.__code__`` when ``value`` is a function
    snapshot: str | None  # the encoding of a value that may change in place, else None

    def holds(self) -> bool:
        """Whether ``where[name]`` is still the same object, with the same code and data."""
        value = self.where.get(self.name, _MISSING)
        return (
            value is self.value
            and (self.code is None or value.__code__ is self.code)
            and (self.snapshot is None or data_text(value) == self.snapshot)
        )


def fingerprint(roots: Sequence[Any]) -> str:
    """Digest of the code of ``roots`` and of all user code and data they refer to."""
    return compute(roots)[0]


def compute(
    roots: Sequence[Any], settings: frozenset[str] = frozenset()
) -> tuple[str, tuple[Binding, ...]]:
    """Return :func:`fingerprint` of ``roots`` and the bindings it was computed from.

    ``settings`` are class attributes that say how a task runs, not what it computes.
    """
    walk = _Walk({id(root) for root in roots})
    for root in roots:
        walk.collect(root)
        walk.closure(root)
        walk.class_data(root, settings, root_label=True)
        walk.follow_wrapped(root)
    parts = [code_text(root, settings) for root in roots]
    parts += [f"{name}={text}" for name, text in sorted(walk.found.items())]
    return keys.digest("\x1f".join(parts)), tuple(walk.bindings.values())


def unchanged(bindings: Iterable[Binding]) -> bool:
    """Whether every name a fingerprint was computed from is still bound as it was."""
    return all(binding.holds() for binding in bindings)


class _Walk:
    """One computation: the user code and data found, the objects seen and the names read."""

    def __init__(self, seen: set[int]) -> None:
        self.found: dict[str, str] = {}
        self.seen = seen
        self.bindings: dict[tuple[int, str], Binding] = {}

    def collect(self, obj: Any) -> None:
        """Add the user code and data ``obj`` refers to (and theirs) to ``found``."""
        source = codesource.source(obj)
        tree = codesource.parse(source)
        namespace = codesource.namespace(obj)
        local = codesource.local_imports(tree, namespace) if tree is not None else {}
        global_names = codesource.global_names(source) if source is not None else None
        for dotted in codesource.referenced_names(obj, tree):
            first, *rest = dotted.split(".")
            if first not in local and global_names is not None and first not in global_names:
                continue  # a parameter or local variable
            where, name, owner = local.get(first, (namespace, first, None))
            value = self.read(where, name)
            for part in rest:
                if not isinstance(value, types.ModuleType):
                    break
                where, name, owner = vars(value), part, value
                value = self.read(where, name)
            if (callable(value) and not _holds_code(value)) or isinstance(value, types.ModuleType):
                self.follow(value)
            elif owner is None or _is_user_code(owner):
                self.add_data(where, name, value)

    def read(self, where: Mapping[str, Any], name: str) -> Any:
        """Return ``where[name]`` (or _MISSING), remembering the binding."""
        value = where.get(name, _MISSING)
        key = (id(where), name)
        if key not in self.bindings:
            code = value.__code__ if isinstance(value, types.FunctionType) else None
            self.bindings[key] = Binding(where, name, value, code, None)
        return value

    def add_data(
        self, where: Mapping[str, Any], name: str, value: Any, label: str | None = None
    ) -> None:
        """Count the global ``where[name]`` if it is plain data of bounded size, which may hold
        user code (a table of functions, a ``functools.partial``, a user class's instance): that
        code is followed."""
        try:
            text = _encode(value, [DATA_LIMIT], self.code_leaf)
        except (_NotData, RecursionError, ValueError):
            return
        self.found[label or f"{where.get('__name__')}.{name}"] = text
        if type(value) not in _SCALARS:  # may change in place: a notebook cell sets a field
            self.bindings[(id(where), name)] = Binding(where, name, value, None, text)

    def code_leaf(self, value: Any, budget: list[int]) -> str:
        """The text of user code inside a global's data, whose code is followed."""
        _spend(budget, 16)
        if isinstance(value, functools.partial):
            parts = (value.func, value.args, value.keywords)
            return "partial(" + ",".join(_encode(p, budget, self.code_leaf) for p in parts) + ")"
        if isinstance(value, (types.FunctionType, type)) and _is_user_code(value):
            self.follow(value)
            return f"code({_key(value)})"
        if _holds_code(value):  # an instance of a user class: its class, and its state
            self.follow(type(value))
            state = _encode(dict(vars(value)), budget, self.code_leaf)
            return f"{_key(type(value))}({state})"
        return _parameter_text(value, budget)

    def follow(self, target: Any) -> None:
        """Add ``target`` if it is user code, then what it refers to and what it wraps."""
        if target is _MISSING or id(target) in self.seen:
            return
        self.seen.add(id(target))
        if isinstance(target, (types.FunctionType, type)) and _is_user_code(target):
            self.found[_key(target)] = code_text(target)
            self.collect(target)
            self.closure(target)
            self.class_data(target)
        self.follow_wrapped(target)

    def class_data(
        self, target: Any, skip: frozenset[str] = frozenset(), root_label: bool = False
    ) -> None:
        """Add the data a class holds as attributes (but ``skip``), also what was assigned to
        it after its body (``Source.K = 2``), which its source does not show. A task's own
        class is labelled by its name only: its module is part of the task's identity."""
        if not isinstance(target, type):
            return
        where = vars(target)
        owner = target.__qualname__ if root_label else _key(target)
        for name, value in where.items():
            if name.startswith("__") or name in skip or hasattr(type(value), "__get__"):
                continue  # dunders, settings, and methods, properties and other descriptors
            self.add_data(where, name, value, f"{owner}.{name}")

    def closure(self, target: Any) -> None:
        """Add what a function's closure holds: the code a decorator wraps, and the data a
        decorator's or a factory's arguments left there (``@scale(2)``, ``make(2)``)."""
        for index, cell in enumerate(getattr(target, "__closure__", None) or ()):
            try:
                value = cell.cell_contents
            except ValueError:  # an empty cell
                continue
            if callable(value) and not _holds_code(value):
                self.follow(value)
                continue
            try:
                text = _encode(value, [DATA_LIMIT], self.code_leaf)
            except (_NotData, RecursionError, ValueError):
                continue
            self.found[f"{_key(target)}.<closure {index}>"] = text

    def follow_wrapped(self, target: Any) -> None:
        """Follow ``target.__wrapped__`` (``functools.wraps``, ``functools.cache``) if any."""
        if isinstance(target, type) or not callable(target):
            return
        attributes = getattr(target, "__dict__", None)
        if isinstance(attributes, dict) and "__wrapped__" in attributes:
            self.follow(self.read(attributes, "__wrapped__"))


def code_text(obj: Any, settings: frozenset[str] = frozenset()) -> str:
    """Return ``obj``'s code with comments, docstrings, decorators and formatting normalized away.

    Assignments to ``settings`` in a class body are left out too. Falls back to the compiled
    bytecode where the source is not available (e.g. ``exec``).
    """
    tree = codesource.parse(codesource.source(obj))
    if tree is None:
        return codesource.bytecode_text(obj)
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            node.body = [s for s in node.body if not _assigns_only(s, settings)] or [ast.Pass()]
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Module)):
            body = node.body
            if (
                body
                and isinstance(body[0], ast.Expr)
                and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)
            ):
                node.body = body[1:] or [ast.Pass()]
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.decorator_list = []
    return ast.dump(tree, annotate_fields=False, include_attributes=False)


def _assigns_only(statement: ast.stmt, names: frozenset[str]) -> bool:
    """True for ``name = ...`` / ``name: T = ...`` where every target is one of ``names``."""
    if isinstance(statement, ast.Assign):
        targets = statement.targets
    elif isinstance(statement, ast.AnnAssign):
        targets = [statement.target]
    else:
        return False
    return all(isinstance(t, ast.Name) and t.id in names for t in targets)


def data_text(value: Any) -> str | None:
    """Canonical text of a plain data value, or None for other values and ones over DATA_LIMIT."""
    try:
        return _encode(value, [DATA_LIMIT])
    except (_NotData, RecursionError, ValueError):
        return None


def _parameter_text(value: Any, budget: list[int]) -> str:
    """A constant of a kind tasks take as parameters (a path, a date, an enum, a named tuple, a
    dataclass, a small numpy array or scalar), as its key encoding; else _NotData."""
    kind = type(value)
    nbytes = getattr(value, "nbytes", None)
    like = (
        isinstance(value, (PurePath, dt.date, dt.time, dt.timedelta, enum.Enum))
        or (isinstance(value, tuple) and hasattr(value, "_fields"))
        or (dataclasses.is_dataclass(value) and not isinstance(value, type))
        or (kind.__module__ == "numpy" and isinstance(nbytes, int) and nbytes <= DATA_LIMIT)
    )
    if not like:
        raise _NotData
    try:
        text = json.dumps(keys.encode(value, for_key=True), sort_keys=True)
    except keys.UnhashableParameterError:
        raise _NotData from None
    _spend(budget, len(text))
    return text


def _holds_code(value: Any) -> bool:
    """A ``functools.partial`` or an instance of a user class: data around user code."""
    if isinstance(value, functools.partial):
        return True
    if isinstance(value, (type, types.ModuleType, types.FunctionType)) or type(value) in _DATA:
        return False
    return isinstance(getattr(value, "__dict__", None), dict) and _is_user_code(type(value))


def _encode(
    value: Any, budget: list[int], other: Callable[[Any, list[int]], str] | None = None
) -> str:
    """Encode ``value``, spending its length from ``budget``; raise _NotData when it runs out.

    Values that are not plain data are ``other(value, budget)``, else _NotData.
    """
    kind = type(value)
    if kind in _SCALARS:
        n = len(value) if kind in (str, bytes) else value.bit_length() // 4 if kind is int else 0
        if n > budget[0]:
            raise _NotData  # before making a huge repr
        text = repr(value)
        _spend(budget, len(text) + 1)
        return text
    if kind not in _DATA:
        if other is None:
            raise _NotData
        return other(value, budget)
    _spend(budget, 2)
    if kind is dict:
        items = (
            f"{_encode(k, budget, other)}:{_encode(v, budget, other)}" for k, v in value.items()
        )
        return "dict{" + ",".join(sorted(items)) + "}"
    texts = [_encode(item, budget, other) for item in value]
    if kind in (set, frozenset):
        texts.sort()
    return f"{kind.__name__}[{','.join(texts)}]"


def _spend(budget: list[int], amount: int) -> None:
    budget[0] -= amount
    if budget[0] < 0:
        raise _NotData


def _key(obj: Any) -> str:
    """``module:qualname``, from a function's code (``functools.wraps`` copies the names)."""
    if isinstance(obj, types.FunctionType):
        code = obj.__code__
        return f"{obj.__globals__.get('__name__')}:{getattr(code, 'co_qualname', code.co_name)}"
    return f"{obj.__module__}:{obj.__qualname__}"


_KEYED_APART: list[type] = []
"""Classes whose subclasses have code keys of their own (``Task``), so a fingerprint that reaches
one does not take in its code; ``task.py`` registers ``Task`` with :func:`keyed_apart`."""


def keyed_apart(cls: type) -> type:
    """Leave ``cls`` and its subclasses out of every fingerprint (their code is keyed apart)."""
    _KEYED_APART.append(cls)
    return cls


def _is_user_code(obj: Any) -> bool:
    if isinstance(obj, type) and issubclass(obj, tuple(_KEYED_APART)):
        return False  # a task's code is tracked in its own key
    if str(getattr(obj, "__module__", "")).partition(".")[0] in sys.stdlib_module_names:
        return False
    try:
        path = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except (TypeError, OSError):
        return False  # built-in
    return codesource.is_user_path(path)
