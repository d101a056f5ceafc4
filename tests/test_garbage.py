"""Garbage in a store (``pyperunner.garbage``): the entries no kept pipeline uses, found,
measured and deleted, never one that is locked; leftovers of interrupted writes in kept entries."""

from __future__ import annotations

from pathlib import Path

import pytest

from pyperunner import Pipeline, Task, garbage, run
from pyperunner.runfolder import RunFolderError
from pyperunner.store import Store

OTHER = ("Other(x)", "f" * 32)


class Kept(Task):
    @run
    def run(self, data):
        return 1


@pytest.fixture
def store_and_kept(tmp_path: Path) -> tuple[Store, Path, tuple[str, str]]:
    """A store with one entry a kept pipeline file uses and one no pipeline uses."""
    task = Kept("k")
    kept = Pipeline("kept", [task]).to_file(tmp_path / "kept.yml")
    store = Store(tmp_path / "data")
    store.save(task.name, task.hash(), [1] * 100, {})
    store.save(*OTHER, [2] * 100, {})
    return store, kept, (task.name, task.hash())


def test_garbage_is_what_no_kept_pipeline_uses_with_its_size(store_and_kept) -> None:
    store, kept, used_entry = store_and_kept
    used, runs = garbage.used_by([kept])
    assert used == {used_entry} and runs == 1
    found = garbage.find_garbage(store, used, runs)
    assert found.kept == [used_entry]
    assert list(found.garbage) == [OTHER]
    assert found.garbage[OTHER] == store.size(*OTHER) > 0


def test_deleting_removes_the_garbage_but_not_a_locked_entry(store_and_kept) -> None:
    store, kept, used_entry = store_and_kept
    found = garbage.find_garbage(store, *garbage.used_by([kept]))
    with store.hold(*OTHER):
        assert list(found.delete()) == [(OTHER, False)]
    assert store.has(*OTHER)
    assert list(found.delete()) == [(OTHER, True)]
    assert not store.has(*OTHER) and store.has(*used_entry)


def test_leftovers_of_interrupted_writes_in_kept_entries_are_counted_then_swept(
    store_and_kept,
) -> None:
    store, kept, used_entry = store_and_kept
    (store.entry(*used_entry) / ".result.dump.gz.123-0.tmp").write_bytes(b"partial")
    found = garbage.find_garbage(store, *garbage.used_by([kept]))
    assert found.leftovers() == 1
    assert found.sweep() == 1
    assert found.leftovers() == 0
    assert store.has(*used_entry)


def test_no_run_to_keep_is_refused_rather_than_everything_being_garbage(tmp_path: Path) -> None:
    (tmp_path / "log").mkdir()
    with pytest.raises(garbage.NothingKeptError, match="refusing to treat every entry"):
        garbage.used_by([tmp_path / "log"])


def test_an_unreadable_kept_pipeline_says_what_to_do(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text("pipeline: [not, a, pipeline]\n")
    with pytest.raises(RunFolderError, match="then run gc again"):
        garbage.used_by([broken])
