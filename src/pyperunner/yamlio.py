"""YAML in and out for every file pyperunner writes: safe types only, libyaml when available.

Documents of plain data (dicts with string keys, lists, strings, numbers, booleans, None), which
is what pyperunner writes, are emitted here directly in PyYAML's block style, about ten times
faster than PyYAML's representer (a run writes one ``params.yaml`` per task); anything else goes
through PyYAML. Strings are written plain only where YAML cannot read them as anything else.
Reading is always PyYAML's safe loader, which refuses aliases: pyperunner never writes them, and
a few nested ones (a "billion laughs" file) expand into more data than any memory holds.
"""

from __future__ import annotations

import functools
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

YAMLError = yaml.YAMLError
ReaderError = yaml.reader.ReaderError  # not text: bytes no Unicode encoding allows

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """The safe loader, refusing aliases (``*name``): a node built before is only reached again
    through one."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        if node in self.constructed_objects:
            raise yaml.constructor.ConstructorError(
                None,
                None,
                "the value anchored here (&name) is used again through an alias (*name): files "
                "pyperunner writes have none, so this one was written or edited by something "
                "else; write the values out in full",
                node.start_mark,
            )
        return super().construct_object(node, deep)


_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_.()\-/]*")
"""Strings safe to write unquoted: they start with a letter and hold no YAML punctuation."""
_RESERVED = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})
"""Plain words YAML 1.1 reads as booleans or null."""
_NON_PRINTABLE = re.compile(
    "[^\x09\x0a\x0d\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
    "\U00010000-\U0010ffff]"
)
"""Characters to escape in a quoted string: what YAML does not allow in a file (PyYAML's reader's
rule), the line breaks it would fold (NEL, LS, PS) and the byte order mark."""


class _NotPlain(Exception):
    pass


class Flow(dict):  # type: ignore[type-arg]
    """A mapping :func:`dump` writes on one line, as JSON (which is YAML's flow style), so that a
    reader can take it with ``json.loads``: plain data only, no floats (JSON writes ``1e-05``,
    which YAML 1.1 reads as a string)."""


def dump(doc: Any) -> str:
    """Serialize ``doc`` (plain types only) as block-style YAML, keys in insertion order."""
    lines: list[str] = []
    try:
        _block(doc, "", lines)
    except _NotPlain:
        return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False)
    return "".join(lines)


def load(text: str | bytes) -> Any:
    """Parse YAML with the safe loader (never constructs arbitrary objects, refuses aliases)."""
    return yaml.load(text, Loader=_Loader)


def read(path: Path) -> Any:
    """:func:`load` the file at ``path``; errors name the file (``OSError`` if unreadable)."""
    with open(path, "rb") as handle:
        return yaml.load(handle, Loader=_Loader)


def _block(value: Any, indent: str, lines: list[str]) -> None:
    """Append the lines of a document or nested collection, each ending with a newline."""
    if isinstance(value, dict) and value:
        deeper = indent + "  "
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            scalar = _SCALARS.get(type(item))
            if scalar is not None:  # most entries: no need to look further
                lines.append(f"{indent}{_string(key)}: {scalar(item)}\n")
            else:
                _entry(f"{indent}{_string(key)}:", item, deeper, indent, lines)
    elif isinstance(value, list) and value:
        deeper = indent + "  "
        for item in value:
            _entry(f"{indent}-", item, deeper, None, lines)
    else:
        lines.append(f"{indent}{_inline(value)}\n")


def _entry(head: str, item: Any, deeper: str, key_indent: str | None, lines: list[str]) -> None:
    """``head`` (``key:``, with ``key_indent``, or ``-``) followed by ``item``: on the same line if
    it is a scalar, empty or a :class:`Flow`, else below it (a list under a key is not indented
    further, as PyYAML writes it)."""
    if isinstance(item, Flow):  # what YAML does not take as it is, escaped as in _quoted
        text = _NON_PRINTABLE.sub(_escaped, json.dumps(item, ensure_ascii=False))
        lines.append(f"{head} {text}\n")
    elif isinstance(item, dict) and item:
        if key_indent is None:  # a mapping in a list starts on the dash's line
            first = len(lines)
            _block(item, deeper, lines)
            lines[first] = f"{head} {lines[first][len(deeper) :]}"
        else:
            lines.append(f"{head}\n")
            _block(item, deeper, lines)
    elif isinstance(item, list) and item:
        lines.append(f"{head}\n")
        _block(item, deeper if key_indent is None else key_indent, lines)
    else:
        lines.append(f"{head} {_inline(item)}\n")


def _inline(value: Any) -> str:
    if isinstance(value, dict) and not value:
        return "{}"
    if isinstance(value, list) and not value:
        return "[]"
    return _scalar(value)


def _scalar(value: Any) -> str:
    scalar = _SCALARS.get(type(value))
    if scalar is None:
        raise _NotPlain
    return scalar(value)


def _float(value: float) -> str:
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    text = repr(value)
    return text.replace("e", ".0e", 1) if "." not in text else text  # YAML 1.1 needs the dot


def _string(value: str) -> str:
    return _remembered(value) if len(value) <= _REMEMBERED_LENGTH else _quoted(value)


def _quoted(value: str) -> str:
    if _PLAIN.fullmatch(value) and value.lower() not in _RESERVED:
        return value
    try:
        value.encode()
    except UnicodeEncodeError:  # lone surrogates (undecodable file names): no YAML holds them
        value = value.encode(errors="backslashreplace").decode()
    quoted = json.dumps(value, ensure_ascii=False)  # JSON escapes are YAML's too
    return _NON_PRINTABLE.sub(_escaped, quoted)


def _escaped(found: re.Match[str]) -> str:
    return f"\\u{ord(found.group()):04x}"


_REMEMBERED_LENGTH = 200
_remembered = functools.lru_cache(maxsize=4096)(_quoted)
"""Keys and task names come back in every document a run writes: each is worked out once."""

_SCALARS: dict[type, Any] = {
    type(None): lambda value: "null",
    bool: lambda value: "true" if value else "false",
    int: str,
    float: _float,
    str: _string,
}
"""How each type of scalar is written (exact types: a subclass goes through PyYAML)."""
