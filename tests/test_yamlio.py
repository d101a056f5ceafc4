"""Tests for ``pyperunner.yamlio``: what the fast emitter writes, PyYAML reads back exactly, and
the fast reader reads anything as PyYAML does or leaves it to PyYAML."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import features_pipeline
from hypothesis import given, settings
from hypothesis import strategies as st

from pyperunner import PipelineResult, Runner, yamlio

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.text()
    | st.sampled_from(["yes", "No", "null", "~", "1e5", "2026-12-01", "0x1F", "a: b", "- x", ""])
)
documents = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(documents)
def test_any_plain_document_loads_back_as_it_was(doc: Any) -> None:
    assert yaml.safe_load(yamlio.dump(doc)) == doc
    assert yamlio.load(yamlio.dump(doc)) == doc


def test_a_record_reads_as_pyyaml_would_write_it() -> None:
    record = {
        "task": {"name": "Step(5)", "tag": "5", "params": {}, "ratio": 1e-05, "on": True},
        "parents": {"Step(4)": "8d6841b6df6ee48f222eec7806eb9a51"},
        "list": [1, [2, 3], {"a": None, "b": [float("inf")]}],
        "result": {"file": "result.dump.gz", "bytes": 5, "format": "pickle"},
    }
    text = yamlio.dump(record)
    assert yaml.safe_load(text) == yaml.safe_load(yaml.safe_dump(record, sort_keys=False))
    assert text.endswith("result:\n  file: result.dump.gz\n  bytes: 5\n  format: pickle\n")
    assert "name: Step(5)\n" in text and "tag: '5'" not in text and 'tag: "5"' in text


def test_nan_and_values_only_pyyaml_knows_round_trip() -> None:
    assert math.isnan(yaml.safe_load(yamlio.dump({"x": float("nan")}))["x"])
    odd = {"when": __import__("datetime").date(2026, 12, 1), 3: "int key"}
    assert yaml.safe_load(yamlio.dump(odd)) == odd


def test_long_strings_are_written_like_short_ones() -> None:
    for text in ("plain" * 100, "yes", "a: b\u0085" * 60, "x"):
        doc = {text: [text, {"k": text}]}
        assert yaml.safe_load(yamlio.dump(doc)) == doc


# --------------------------------------------------------------------------- the fast reader

NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_.()/-]{0,8}", fullmatch=True) | st.text(max_size=5)
records = st.recursive(
    scalars | st.from_regex(r"[A-Za-z][A-Za-z0-9_.()/-]{0,8}", fullmatch=True),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(NAMES, inner, max_size=4),
    max_leaves=25,
).filter(lambda doc: isinstance(doc, dict | list) and bool(doc))
"""Documents like a run's files: mostly plain keys and values."""
ODD_TEXT = [
    *("x", "Load(all)", "yes", "Yes", "y", "true", "True", "null", "Null", "~", "off", "On"),
    *("0", "-0", "01", "012", "7", "-12", "1.5", "1.", ".5", "-1.5", "1.0e+16", "1.0e-05"),
    *("1e16", "1.0e16", "1E+5", "1_000", "0x1F", "0o7", "0b1", "1:30", "2026-12-01", "+1"),
    *(".inf", "-.inf", ".Inf", "inf", "<<", "=", "a b", "-x", "e5", '""', "? k", "&k a"),
    *('"x"', '"a: b"', '"\\u00e9"', '"\\ud83d\\ude00"', '"\\x41"', '"\\/"', '"\\e"', '"a" "b"'),
    *('"unterminated', '"x" # c', "'single'", "{}", "[]", "{a: 1}", "[1, 2]", "&a x", "*a"),
    *("!!str x", "!!python/name:os.system", "x # c", "a: b", "- x", "-", " x", "|", ">"),
    *("@x", "`x", "%x", "?x", "x ", "#", "é", "x\u0085y", "x\u2028y", "x\x7fy", "\ufeffx"),
]
"""Scalars and keys YAML reads in other ways than plain strings, or not at all."""


@st.composite
def near_dumps(draw: st.DrawFn) -> str:
    """What ``dump`` writes of a document, then changed a little: a value or key replaced by
    odd text, a line indented otherwise, inserted, removed or joined by another line break."""
    lines = yamlio.dump(draw(records)).splitlines()
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.integers(0, len(lines) - 1))
        line, odd = lines[at], draw(st.sampled_from(ODD_TEXT))
        change = draw(st.sampled_from(["value", "key", "indent", "insert", "delete", "break"]))
        head, colon, _ = line.rpartition(": ")
        if change == "value":
            lines[at] = f"{head}: {odd}" if colon else f"{line[: line.find('-') + 1]} {odd}"
        elif change == "key" and colon:
            indent = len(head) - len(head.lstrip(" -"))
            lines[at] = f"{head[:indent]}{odd}: {line[len(head) + 2 :]}"
        elif change == "indent":
            lines[at] = " " * draw(st.integers(0, 3)) + line.lstrip(" ")
        elif change == "insert":
            lines.insert(at, " " * draw(st.sampled_from([0, 1, 2, 4])) + odd)
        elif change == "delete" and len(lines) > 1:
            del lines[at]
        elif change == "break":
            lines[at] += draw(st.sampled_from(["\r", "\t", " ", ":", " #"]))
    return "\n".join(lines) + draw(st.sampled_from(["\n", "\n", ""]))


@settings(max_examples=3000, deadline=None)
@given(near_dumps())
def test_the_fast_reader_reads_a_text_as_pyyaml_does_or_leaves_it_to_pyyaml(text: str) -> None:
    try:
        read = yamlio._fast_load(text)
    except yamlio._NotOurs:
        return  # PyYAML reads it
    assert yaml.load(text, Loader=yamlio._Loader) == read, text


@settings(max_examples=400, deadline=None)
@given(records | documents.filter(lambda doc: isinstance(doc, dict | list) and bool(doc)))
def test_the_fast_reader_reads_every_plain_mapping_or_list_that_dump_writes(doc: Any) -> None:
    text = yamlio.dump(doc)
    assert yamlio._fast_load(text) == yaml.safe_load(text) == doc


def test_a_run_s_files_are_read_by_the_fast_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_dir = (
        Runner(tmp_path / "data", tmp_path / "log", executor="inline", console=False)
        .run(features_pipeline())
        .run_dir
    )
    expected = PipelineResult.from_file(run_dir)

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("read with PyYAML")

    monkeypatch.setattr(yaml, "load", refuse)
    read = PipelineResult.from_file(run_dir)
    assert read.runs == expected.runs and read.task_keys == expected.task_keys
    assert yamlio.read(run_dir / "pipeline.yaml")["run"]["data_path"] == str(tmp_path / "data")
