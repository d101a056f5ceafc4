"""Code fingerprints: what a task's code is, ignoring comments, docstrings and layout.

A task's fingerprint covers its own source, normalized through ``ast`` so that a comment, a
docstring or a reformatting keeps the cache while a change of logic invalidates it, and also the
functions and classes of the user's own code that the task refers to, directly or through other
such code (``helper(x)``, ``helpers.clean(x)``). Library code (the standard library,
site-packages, pyperunner itself) is left out: upgrading a library is the environment's concern,
recorded in each run's ``pipeline.yaml``. Where no source exists (``exec``), the bytecode is used.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import os
import site
import sys
import sysconfig
import textwrap
import types
from collections.abc import Iterator, Sequence
from typing import Any

from . import keys


def fingerprint(roots: Sequence[Any]) -> str:
    """Digest of the code of ``roots`` and of all user code they refer to, transitively."""
    found: dict[str, str] = {}
    seen: set[int] = {id(root) for root in roots}
    for root in roots:
        _collect(root, found, seen)
    parts = [code_text(root) for root in roots]
    parts += [f"{name}={text}" for name, text in sorted(found.items())]
    return keys.digest("\x1f".join(parts))


def code_text(obj: Any) -> str:
    """Return ``obj``'s code with comments, docstrings, decorators and formatting normalized away.

    Falls back to the compiled bytecode where the source is not available (e.g. ``exec``).
    """
    tree = _parse(obj)
    if tree is None:
        return _bytecode_text(obj)
    for node in ast.walk(tree):
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


def _parse(obj: Any) -> ast.Module | None:
    try:
        return ast.parse(textwrap.dedent(inspect.getsource(obj)))
    except (OSError, TypeError, SyntaxError):
        return None


def _collect(obj: Any, found: dict[str, str], seen: set[int]) -> None:
    """Add the user functions and classes ``obj`` refers to (and theirs) to ``found``."""
    namespace = _namespace(obj)
    for dotted in _referenced_names(obj):
        target = _resolve(dotted, namespace)
        if target is None or id(target) in seen or not _is_user_code(target):
            continue
        seen.add(id(target))
        found[f"{target.__module__}:{target.__qualname__}"] = code_text(target)
        _collect(target, found, seen)


def _namespace(obj: Any) -> dict[str, Any]:
    if isinstance(obj, types.FunctionType):
        return obj.__globals__
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    return vars(module) if module is not None else {}


def _referenced_names(obj: Any) -> Iterator[str]:
    """Dotted names read in ``obj``'s code: ``helper``, ``helpers.clean``."""
    tree = _parse(obj)
    if tree is None:
        code = getattr(obj, "__code__", None)
        yield from _code_names(code) if code is not None else ()
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            yield node.id
        elif isinstance(node, ast.Attribute):
            parts = [node.attr]
            value = node.value
            while isinstance(value, ast.Attribute):
                parts.append(value.attr)
                value = value.value
            if isinstance(value, ast.Name):
                yield ".".join([value.id, *reversed(parts)])


def _code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_names(const)


def _resolve(dotted: str, namespace: dict[str, Any]) -> Any:
    """The function or class a dotted name means, following modules only."""
    first, *rest = dotted.split(".")
    target = namespace.get(first)
    for part in rest:
        if not isinstance(target, types.ModuleType):
            break
        target = getattr(target, part, None)
    if isinstance(target, (types.FunctionType, type)):
        return target
    return None


def _is_user_code(obj: Any) -> bool:
    from .task import Task

    if isinstance(obj, type) and issubclass(obj, Task):
        return False  # a task's code is tracked in its own key
    if str(getattr(obj, "__module__", "")).partition(".")[0] in sys.stdlib_module_names:
        return False
    try:
        path = inspect.getsourcefile(obj) or inspect.getfile(obj)
    except (TypeError, OSError):
        return False  # built-in
    if path.startswith("<"):
        return not path.startswith("<frozen")  # exec or a notebook cell: the user's code
    real = os.path.realpath(path)
    return not real.startswith(_library_prefixes())


@functools.cache
def _library_prefixes() -> tuple[str, ...]:
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(site.getsitepackages())
    paths.add(site.getusersitepackages())
    paths.add(os.path.dirname(os.path.abspath(__file__)))
    return tuple(os.path.realpath(p) + os.sep for p in paths if p)


def _bytecode_text(obj: Any) -> str:
    codes: list[types.CodeType] = []
    if isinstance(obj, type):
        for value in vars(obj).values():
            func = getattr(value, "__func__", value)
            if isinstance(func, types.FunctionType):
                codes.append(func.__code__)
    elif isinstance(obj, types.FunctionType):
        codes.append(obj.__code__)
    return "|".join(_code_object_digest(code) for code in codes)


def _code_object_digest(code: types.CodeType) -> str:
    h = hashlib.sha256(code.co_code)
    for const in code.co_consts:
        text = _code_object_digest(const) if isinstance(const, types.CodeType) else repr(const)
        h.update(text.encode())
    h.update(repr(code.co_names).encode())
    return h.hexdigest()
