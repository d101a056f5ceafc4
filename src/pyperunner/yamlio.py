"""YAML in and out for every file pyperunner writes: safe types only, libyaml when available."""

from __future__ import annotations

from typing import Any

import yaml

YAMLError = yaml.YAMLError

_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def dump(doc: Any) -> str:
    """Serialize ``doc`` (plain types only) as block-style YAML, keys in insertion order."""
    return yaml.dump(doc, Dumper=_Dumper, sort_keys=False, default_flow_style=False)


def load(text: str) -> Any:
    """Parse YAML with the safe loader (never constructs arbitrary objects)."""
    return yaml.load(text, Loader=_Loader)
