"""Code tracking beyond the task itself: the user's helper functions a task calls count too."""

from __future__ import annotations

import importlib
import sys
import textwrap
from pathlib import Path

import pytest

from pyperunner import fingerprint

HELPERS = """
def scale(x):
    return x * {factor}


def clean(x):
    # strips and scales
    return scale(x) + {offset}
"""

TASKS = """
import json
import helpers
from helpers import clean
from pyperunner import Task, run, task


@task("Direct")
def direct(data):
    return clean(1)


@task("ViaModule")
def via_module(data):
    return helpers.scale(2)


@task("LibraryOnly")
def library_only(data):
    return json.dumps([1])


class Klass(Task):
    @run
    def run(self, data):
        return clean(3)
"""


def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, factor: int, offset: int, comment: str):
    """Write helpers.py and tasks.py into tmp_path and import them afresh."""
    (tmp_path / "helpers.py").write_text(
        f"# {comment}\n" + textwrap.dedent(HELPERS.format(factor=factor, offset=offset))
    )
    (tmp_path / "tasks.py").write_text(TASKS)
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("helpers", "tasks"):
        sys.modules.pop(name, None)
    importlib.invalidate_caches()
    tasks = importlib.import_module("tasks")
    return {
        name: getattr(tasks, name)().code_fingerprint()
        for name in ("direct", "via_module", "library_only", "Klass")
    }


@pytest.fixture
def variants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    def make(factor: int = 2, offset: int = 1, comment: str = "v1"):
        folder = tmp_path / f"{factor}-{offset}-{comment}"
        folder.mkdir()
        return load(folder, monkeypatch, factor, offset, comment)

    yield make
    for name in ("helpers", "tasks"):
        sys.modules.pop(name, None)


def test_editing_a_helper_changes_the_tasks_that_call_it(variants):
    before = variants(offset=1)
    after = variants(offset=5)  # clean() changed; scale() did not
    assert after["direct"] != before["direct"]
    assert after["Klass"] != before["Klass"]
    assert after["via_module"] == before["via_module"]
    assert after["library_only"] == before["library_only"]


def test_a_helper_called_through_another_helper_counts(variants):
    before = variants(factor=2)
    after = variants(factor=3)  # scale() changed: clean() calls it, helpers.scale is called
    assert after["direct"] != before["direct"]
    assert after["via_module"] != before["via_module"]
    assert after["Klass"] != before["Klass"]
    assert after["library_only"] == before["library_only"]


def test_comments_in_helpers_do_not_count(variants):
    assert variants(comment="first") == variants(comment="second")


def test_library_code_is_not_user_code():
    import json
    import os.path

    import joblib

    assert not fingerprint._is_user_code(json.dumps)
    assert not fingerprint._is_user_code(os.path.join)
    assert not fingerprint._is_user_code(joblib.dump)
    assert not fingerprint._is_user_code(len)
    assert fingerprint._is_user_code(test_library_code_is_not_user_code)


def test_recursive_helpers_terminate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "rec.py").write_text(
        textwrap.dedent(
            """
            from pyperunner import task

            def ping(n):
                return pong(n - 1) if n else 0

            def pong(n):
                return ping(n - 1) if n else 1

            @task("Rec", receives_input=False)
            def rec():
                return ping(3)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("rec", None)
    try:
        rec = importlib.import_module("rec")
        assert len(rec.rec().code_fingerprint()) == 32
    finally:
        sys.modules.pop("rec", None)
