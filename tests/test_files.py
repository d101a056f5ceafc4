"""Local files written whole or not at all (``pyperunner.files``)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pyperunner import files


def test_write_atomic_replaces_a_file_whole_and_leaves_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("old")
    files.write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert os.listdir(tmp_path) == ["doc.yaml"]


def test_a_write_that_fails_keeps_the_old_file_and_no_temporary(tmp_path, monkeypatch) -> None:
    path = tmp_path / "doc.yaml"
    path.write_text("old")

    def disk_full(fd: int, data: object) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full)
    with pytest.raises(OSError, match=f"cannot write {path}: No space left"):
        files.write_atomic(path, b"new")
    monkeypatch.undo()
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["doc.yaml"]


def test_a_folder_in_the_way_of_a_file_is_moved_aside(tmp_path: Path) -> None:
    path = tmp_path / "doc.yaml"
    (path / "inside").mkdir(parents=True)
    files.write_atomic(path, b"new")
    assert path.read_bytes() == b"new"
    assert (tmp_path / f"doc.yaml{files.DAMAGED_SUFFIX}" / "inside").is_dir()


def test_make_folder_makes_parents_and_moves_a_file_in_its_place_aside(tmp_path: Path) -> None:
    files.make_folder(tmp_path / "a" / "b")
    assert (tmp_path / "a" / "b").is_dir()
    files.make_folder(tmp_path / "a" / "b")  # there already: nothing to do
    (tmp_path / "c").write_text("a file")
    files.make_folder(tmp_path / "c")
    assert (tmp_path / "c").is_dir()
    assert (tmp_path / f"c{files.DAMAGED_SUFFIX}").read_text() == "a file"


def test_temporary_files_are_hidden_beside_the_file_and_unique(tmp_path: Path) -> None:
    made = [files.temporary_file(tmp_path, "x") for _ in range(2)]
    for fd, _ in made:
        os.close(fd)
    names = [Path(tmp).name for _, tmp in made]
    assert len(set(names)) == 2
    assert all(n.startswith(".x.") and n.endswith(files.TMP_SUFFIX) for n in names)
