"""Tests that ``pyperunner gc --delete`` never deletes what a running pipeline will read: the
entry locks of ``pyperunner.storage`` against gc deleting the entry under a run that locks it.

Each window is forced where it opens, with events and patched steps, not by luck.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path
from typing import Any

from pyperunner import storage
from pyperunner.store import Store

NAME, KEY = "Task()", "0123456789abcdef0123456789abcdef"


# --------------------------------------------------------------------------- entry locks


def test_locking_an_entry_whose_folder_gc_just_removed_makes_it_again(tmp_path, monkeypatch):
    """gc removes the entry folder between its making and the opening of its lock file."""
    store, made = Store(tmp_path), []
    make_folder = storage._make_folder

    def made_then_removed(folder: Path) -> None:
        make_folder(folder)
        if not made:
            made.append(folder)
            folder.rmdir()  # gc, in between

    monkeypatch.setattr(storage, "_make_folder", made_then_removed)
    with store.lock(NAME, KEY):
        assert (Path(store.entry(NAME, KEY)) / storage.LOCK_FILE).is_file()
        with storage.LocalFiles.try_lock(Path(store.entry(NAME, KEY))) as other:
            assert not other
    assert made == [Path(store.entry(NAME, KEY))]


def test_a_run_waiting_for_a_lock_while_gc_deletes_the_entry_locks_a_folder_gc_leaves(
    tmp_path, monkeypatch
):
    """A run waits for an entry's lock while gc holds it to delete the entry. Once gc is done,
    the run holds a lock in a folder that exists, which a third process cannot take."""
    store = Store(tmp_path)
    store.save(NAME, KEY, "garbage", {})
    folder = Path(store.entry(NAME, KEY))
    gc_locked, run_waits, run_locked, gc_done = (threading.Event() for _ in range(4))
    unlink, rmtree = storage._unlink_unless_read, shutil.rmtree

    def unlink_once_the_run_waits(path: Path) -> bool:
        gc_locked.set()
        assert run_waits.wait(10)
        return unlink(path)

    def rmtree_once_the_run_locked(path: Any, *args: Any, **kwargs: Any) -> None:
        if Path(path) == folder:  # where gc removed the folder after letting go of the lock
            run_locked.wait(10)
        rmtree(path, *args, **kwargs)

    monkeypatch.setattr(storage, "_unlink_unless_read", unlink_once_the_run_waits)
    monkeypatch.setattr(shutil, "rmtree", rmtree_once_the_run_locked)
    deleted: list[bool] = []

    def gc() -> None:
        deleted.append(Store(tmp_path).delete(NAME, KEY))
        gc_done.set()

    collector = threading.Thread(target=gc)
    collector.start()
    assert gc_locked.wait(10)
    with Store(tmp_path).lock(NAME, KEY, on_wait=run_waits.set):
        run_locked.set()
        assert gc_done.wait(10)
        assert (folder / storage.LOCK_FILE).is_file()
        with storage.LocalFiles.try_lock(folder) as other:
            assert not other
    collector.join()
    assert deleted == [True]
