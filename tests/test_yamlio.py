"""Tests for ``pyperunner.yamlio``: what the fast emitter writes, PyYAML reads back exactly."""

from __future__ import annotations

import json
import math
from typing import Any

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from pyperunner import yamlio

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


flow_values = st.dictionaries(
    st.text(max_size=8),
    st.none() | st.booleans() | st.integers() | st.text() | st.lists(st.integers() | st.text()),
    max_size=5,
)


@settings(max_examples=200)
@given(flow_values)
def test_a_flow_mapping_is_one_line_of_json_that_yaml_reads_alike(value: dict[str, Any]) -> None:
    written = yamlio.dump({"preview": yamlio.Flow(value), "after": 1})
    line = written.splitlines()[0].removeprefix("preview: ")
    assert json.loads(line) == value
    assert yaml.safe_load(written) == {"preview": value, "after": 1}
