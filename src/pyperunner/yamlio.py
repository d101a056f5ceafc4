"""YAML in and out for every file pyperunner writes: safe types only, libyaml when available.

Documents of plain data (dicts with string keys, lists, strings, numbers, booleans, None), which
is what pyperunner writes, are emitted here directly in PyYAML's block style, about ten times
faster than PyYAML's representer (a run writes one ``params.yaml`` per task); anything else goes
through PyYAML. Strings are written plain only where YAML cannot read them as anything else.

Reading is PyYAML's safe loader, which refuses aliases: pyperunner never writes them, and a few
nested ones (a "billion laughs" file) expand into more data than any memory holds. What this
module writes is read first by a reader of its own, which takes the same values from it some
ten times faster (the ``pipeline.yaml`` of a 20,000-task run in well under a second, not ten
seconds) and leaves everything else to PyYAML: a line it does not know, a scalar that YAML
could read in another way, characters YAML does not allow.
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
    try:
        return _fast_load(text if isinstance(text, str) else text.decode())
    except (_NotOurs, UnicodeDecodeError):
        return yaml.load(text, Loader=_Loader)


def read(path: Path) -> Any:
    """:func:`load` the file at ``path``; errors name the file (``OSError`` if unreadable)."""
    with open(path, "rb") as handle:
        return load(handle.read())


def _block(value: Any, indent: str, lines: list[str]) -> None:
    """Append the lines of a document or nested collection, each ending with a newline."""
    if isinstance(value, dict) and value:
        deeper = indent + "  "
        for key, item in value.items():
            if type(key) is not str:
                raise _NotPlain
            _entry(f"{indent}{_string(key)}:", item, deeper, indent, lines)
    elif isinstance(value, list) and value:
        deeper = indent + "  "
        for item in value:
            _entry(f"{indent}-", item, deeper, None, lines)
    else:
        lines.append(f"{indent}{_inline(value)}\n")


def _entry(head: str, item: Any, deeper: str, key_indent: str | None, lines: list[str]) -> None:
    """``head`` (``key:``, with ``key_indent``, or ``-``) followed by ``item``: on the same line if
    it is a scalar or empty, else below it (a list under a key is not indented further, as PyYAML
    writes it)."""
    if isinstance(item, dict) and item:
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
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if type(value) is int:
        return str(value)
    if type(value) is float:
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        text = repr(value)
        return text.replace("e", ".0e", 1) if "." not in text else text  # YAML 1.1 needs the dot
    if type(value) is str:
        return _string(value)
    raise _NotPlain


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
    return _NON_PRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", quoted)


_REMEMBERED_LENGTH = 200
_remembered = functools.lru_cache(maxsize=4096)(_quoted)
"""Keys and task names come back in every document a run writes: each is worked out once."""


# -- reading what dump writes ------------------------------------------------------------------


class _NotOurs(Exception):
    """Not a document as :func:`dump` writes it: PyYAML reads it."""


_KEY = r"[A-Za-z][A-Za-z0-9_.()\-/]*"
_LINE = re.compile(
    rf"^( *)(?:({_KEY}: [^\n]+(?:\n\1{_KEY}: [^\n]+)*)$"
    rf'|(?:(- )|(-)$)?(?:({_KEY}|"(?:[^"\\\n]|\\.)*"):(?: (.+))?$|(.+))?$)',
    re.MULTILINE,
)
"""A line of a block-style document, or lines ``key: value`` of one indent one after the other
(their keys plain): the indent, then those lines, or ``- `` (or a lone ``-``) followed by
``key: value``, ``key:`` (its value is the block below) or a value."""
_PAIR = re.compile(rf"^ *({_KEY}): (.+)$", re.MULTILINE)
_ASCII_TEXT = bytes(range(0x20, 0x7F)) + b"\n"
_SURROGATE_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u[dD][89a-fA-F]")
"""An escaped surrogate (after an odd number of backslashes): JSON pairs them, YAML does not."""
_NUMBER = re.compile(r"-?(?:(0|[1-9][0-9]*)|[0-9]+\.[0-9]*(?:e[-+][0-9]+)?)")
"""The numbers dump writes (``repr``, ``e`` with a sign and a dot before it): read as YAML 1.1
reads them."""
_WORDS = {
    "null": None,
    "true": True,
    "false": False,
    ".nan": math.nan,
    ".inf": math.inf,
    "-.inf": -math.inf,
}
_decode_string = json.JSONDecoder().raw_decode  # a JSON string means the same in YAML


def _fast_load(text: str) -> Any:
    """Read a document of plain data in the block style :func:`dump` writes, as PyYAML would;
    raise ``_NotOurs`` at anything else."""
    if not _plain_text(text):
        raise _NotOurs
    tokens = _LINE.findall(text)
    lines = len(tokens) + sum(token[1].count("\n") for token in tokens if token[1])
    if lines != text.count("\n") + 1:
        raise _NotOurs  # a line matched nothing
    tokens.pop()  # what follows the last line break
    first = tokens[0]
    if first[0] or not (first[1] or first[2] or first[3] or first[4]):
        raise _NotOurs  # indented, or a lone value: not a mapping or list
    known, names = _Values(), _Keys()
    in_list = bool(first[2] or first[3])
    here: Any = [] if in_list else {}
    root, indent, around = here, 0, []
    waiting = None  # (container, key or None for a list item, indent) of a value below
    for spaces, run, dash, lone, key, value, scalar in tokens:
        at, item = len(spaces), bool(dash or lone)
        if waiting is not None:  # a block as the value of a key or item above
            holder, name, above = waiting
            waiting = None
            if not (at > above or (at == above and item and name is not None)):
                raise _NotOurs
            around.append((here, indent, in_list))
            here, indent, in_list = ([] if item else {}), at, item
            if name is None:
                holder.append(here)
            else:
                holder[name] = here
        elif at != indent or item != in_list:  # blocks end: deeper ones, a list under a key
            while at < indent or (at == indent and in_list and not item):
                if not around:
                    raise _NotOurs
                here, indent, in_list = around.pop()
            if at != indent or item != in_list:
                raise _NotOurs
        if run:
            for written, text_value in _PAIR.findall(run):
                here[names[written]] = known[text_value]
        elif lone:
            waiting = (here, None, at)
        elif not key:
            if not (dash and scalar):
                raise _NotOurs
            here.append(known[scalar])
        else:
            target = here
            if dash:  # a mapping that starts on its dash's line
                target = {}
                here.append(target)
                around.append((here, indent, in_list))
                here, indent, in_list = target, at + 2, False
            if value:
                target[names[key]] = known[value]
            else:
                waiting = (target, names[key], indent)
    if waiting is not None:
        raise _NotOurs
    return root


def _plain_text(text: str) -> bool:
    """Whether ``text`` ends with a line break and holds no character that YAML does not allow
    or reads as a line break, no tab and no escaped surrogate."""
    if text[-1:] != "\n" or (r"\u" in text and _SURROGATE_ESCAPE.search(text)):
        return False
    if text.isascii():
        return not text.encode().translate(None, _ASCII_TEXT)
    return _NON_PRINTABLE.search(text) is None and "\t" not in text and "\r" not in text


class _Values(dict[str, Any]):
    """Scalar as written -> its value, worked out the first time; ``{}`` and ``[]`` new each
    time."""

    def __missing__(self, text: str) -> Any:
        if text == "{}" or text == "[]":
            return {} if text == "{}" else []
        value = self[text] = _read_scalar(text)
        return value


class _Keys(dict[str, str]):
    """Key as written -> the key, worked out the first time."""

    def __missing__(self, written: str) -> str:
        key = self[written] = _read_scalar(written) if written[0] == '"' else _read_plain(written)
        return key  # type: ignore[no-any-return]


def _read_scalar(text: str) -> Any:
    first = text[0]
    if first == '"':
        if text.count('"') == 2 and text[-1] == '"' and "\\" not in text:
            return text[1:-1]  # nothing escaped: the text between the quotes
        try:
            value, end = _decode_string(text)
        except ValueError:  # an escape JSON does not know (YAML knows more)
            raise _NotOurs from None
        if end == len(text):
            return value
    elif first.isalpha() and _PLAIN.fullmatch(text):
        return _WORDS[text] if text in _WORDS else _read_plain(text)
    elif text in _WORDS:
        return _WORDS[text]
    elif (number := _NUMBER.fullmatch(text)) is not None and len(text) <= 4000:
        return int(text) if number.group(1) is not None else float(text)
    raise _NotOurs


def _read_plain(text: str) -> str:
    """A plain string, unless YAML reads it as a boolean or null."""
    if text.lower() in _RESERVED:
        raise _NotOurs
    return text
