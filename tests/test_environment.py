"""What a run records of where and how it ran (``pyperunner.environment``)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import pyperunner
from pyperunner import environment


def test_describe_names_host_python_version_and_packages():
    env = environment.describe()
    assert list(env) == [
        "host",
        "user",
        "platform",
        "python",
        "argv",
        "cwd",
        "pyperunner",
        "git",
        "packages",
    ]
    assert env["host"] and env["platform"]
    assert env["python"] == sys.version.split()[0]
    assert env["argv"] == sys.argv
    assert env["pyperunner"] == pyperunner.__version__
    assert any(name.lower() == "pyperunner" for name in env["packages"])


def test_packages_are_read_from_dist_info_folder_names(tmp_path, monkeypatch):
    for folder in ("Some_Lib-1.2.3.dist-info", "other-0.1.dist-info", "not_a_dist", "x.egg-info"):
        (tmp_path / folder).mkdir()
    environment.packages.cache_clear()
    monkeypatch.setattr(sys, "path", [str(tmp_path), str(tmp_path / "missing")])
    try:
        assert environment.packages() == {"other": "0.1", "Some-Lib": "1.2.3"}
    finally:
        environment.packages.cache_clear()


def test_user_is_none_where_the_login_name_cannot_be_found(monkeypatch):
    def no_user() -> str:
        raise KeyError("getpwuid(): uid not found")

    monkeypatch.setattr(environment.getpass, "getuser", no_user)
    assert environment.user() is None


def _git(folder: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(folder), *args], check=True, capture_output=True)


def test_git_state_is_the_commit_and_whether_the_tree_has_changes(tmp_path):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    _git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("a\n")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "a")
    state = environment.git_state(tmp_path)
    assert state is not None and len(state["commit"]) == 40 and state["dirty"] is False
    (tmp_path / "a.txt").write_text("b\n")
    assert environment.git_state(tmp_path) == {"commit": state["commit"], "dirty": True}


def test_git_state_is_none_outside_a_work_tree(tmp_path, monkeypatch):
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    assert environment.git_state(tmp_path) is None


def test_script_folder_is_the_main_scripts_or_the_working_folder(tmp_path, monkeypatch):
    script = tmp_path / "flow.py"
    script.write_text("")
    monkeypatch.setattr(sys.modules["__main__"], "__file__", str(script), raising=False)
    assert environment.script_folder() == tmp_path
    monkeypatch.delattr(sys.modules["__main__"], "__file__")
    monkeypatch.chdir(tmp_path)
    assert environment.script_folder() == tmp_path
