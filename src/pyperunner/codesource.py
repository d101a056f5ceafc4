"""Reading code for its fingerprint: a function's source and syntax tree, the names it reads
and imports, whether a file is the user's or a library's, and bytecode where there is no source.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import site
import symtable
import sys
import sysconfig
import textwrap
import types
from collections.abc import Iterator, Mapping
from typing import Any

Place = tuple[Mapping[str, Any], str, Any]  # where a name is looked up, and its module if known


def source(obj: Any) -> str | None:
    """Dedented source of ``obj``; a function's own, even where it wraps another."""
    try:
        code = obj.__code__ if isinstance(obj, types.FunctionType) else obj
        return textwrap.dedent(inspect.getsource(code))
    except (OSError, TypeError):
        return None


def parse(source: str | None) -> ast.Module | None:
    try:
        return ast.parse(source) if source is not None else None
    except SyntaxError:
        return None


def global_names(source: str) -> set[str] | None:
    """Names read as globals in any scope of ``source`` (not parameters or local variables)."""
    try:
        tables = [symtable.symtable(source, "<fingerprint>", "exec")]
    except SyntaxError:
        return None
    names: set[str] = set()
    while tables:
        table = tables.pop()
        tables.extend(table.get_children())
        names.update(s.get_name() for s in table.get_symbols() if s.is_global())
    return names


def namespace(obj: Any) -> dict[str, Any]:
    if isinstance(obj, types.FunctionType):
        return obj.__globals__
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    return vars(module) if module is not None else {}


def local_imports(tree: ast.Module, namespace: dict[str, Any]) -> dict[str, Place]:
    """Where each name imported inside the code is looked up."""
    local: dict[str, Place] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                user_module(alias.name)
                top = alias.name.partition(".")[0]
                local[alias.asname or top] = (
                    sys.modules,
                    alias.name if alias.asname else top,
                    None,
                )
        elif isinstance(node, ast.ImportFrom):
            try:
                name = importlib.util.resolve_name(
                    "." * node.level + (node.module or ""), namespace.get("__package__")
                )
            except (ImportError, ValueError):
                continue
            module = user_module(name)
            for alias in node.names:
                if module is None:
                    local[alias.asname or alias.name] = (sys.modules, name, None)
                    continue
                if alias.name not in vars(module):
                    user_module(f"{name}.{alias.name}")  # a submodule
                local[alias.asname or alias.name] = (vars(module), alias.name, module)
    return local


def user_module(name: str) -> types.ModuleType | None:
    """Module ``name`` if imported already, or imported now if it is the user's; else None."""
    module = sys.modules.get(name)
    if module is None:
        try:
            spec = importlib.util.find_spec(name.partition(".")[0])
            if spec is not None and spec.origin and is_user_path(spec.origin):
                module = importlib.import_module(name)
        except Exception:
            return None
    return module


def referenced_names(obj: Any, tree: ast.Module | None) -> Iterator[str]:
    """Dotted names read in ``obj``'s code: ``helper``, ``helpers.clean``."""
    if tree is None:
        code = getattr(obj, "__code__", None)
        yield from code_names(code) if code is not None else ()
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


def code_names(code: types.CodeType) -> Iterator[str]:
    yield from code.co_names
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from code_names(const)


def is_user_path(path: str) -> bool:
    if path.startswith("<"):
        return not path.startswith("<frozen")  # exec or a notebook cell: the user's code
    return not os.path.realpath(path).startswith(library_prefixes())


@functools.cache
def library_prefixes() -> tuple[str, ...]:
    paths = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths.update(site.getsitepackages())
    paths.add(site.getusersitepackages())
    paths.add(os.path.dirname(os.path.abspath(__file__)))
    return tuple(os.path.realpath(p) + os.sep for p in paths if p)


def bytecode_text(obj: Any) -> str:
    codes: list[types.CodeType] = []
    if isinstance(obj, type):
        for value in vars(obj).values():
            func = getattr(value, "__func__", value)
            if isinstance(func, types.FunctionType):
                codes.append(func.__code__)
    elif isinstance(obj, types.FunctionType):
        codes.append(obj.__code__)
    return "|".join(code_object_digest(code) for code in codes)


def code_object_digest(code: types.CodeType) -> str:
    h = hashlib.sha256(code.co_code)
    for const in code.co_consts:
        text = code_object_digest(const) if isinstance(const, types.CodeType) else repr(const)
        h.update(text.encode())
    h.update(repr(code.co_names).encode())
    return h.hexdigest()
