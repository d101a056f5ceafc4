"""Where and how a run ran, as its ``pipeline.yaml`` records it: host, user, platform, Python,
command line, working folder, pyperunner's version, the git state of the script's folder and the
installed packages. Reading it starts no Python import and at most two ``git`` commands."""

from __future__ import annotations

import functools
import getpass
import os
import platform
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

from ._version import __version__


def describe() -> dict[str, Any]:
    """The environment of this process, as a run records it."""
    return {
        "host": socket.gethostname(),
        "user": user(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "argv": list(sys.argv),
        "cwd": os.getcwd(),
        "pyperunner": __version__,
        "git": git_state(script_folder()),
        "packages": packages(),
    }


def user() -> str | None:
    """The login name, or None where there is none (a container's uid without a passwd entry)."""
    try:
        return getpass.getuser()
    except Exception:
        return None


def script_folder() -> Path:
    """The folder of the script being run (``__main__``), else the working folder."""
    main = sys.modules.get("__main__")
    where = Path(getattr(main, "__file__", None) or os.getcwd()).absolute()
    return where if where.is_dir() else where.parent


def git_state(folder: Path) -> dict[str, Any] | None:
    """The commit checked out in ``folder``'s git work tree and whether it has changes; None
    outside a work tree or without git."""
    try:
        commit = subprocess.run(
            ["git", "-C", str(folder), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
        )
        if commit.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "-C", str(folder), "status", "--porcelain"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


@functools.cache
def packages() -> dict[str, str]:
    """Installed distributions and their versions, read from the ``*.dist-info`` folder names.

    Much faster than parsing every distribution's metadata; cached, as installs do not change
    under a running interpreter in any way a run should record twice.
    """
    found: dict[str, str] = {}
    for entry in sys.path:
        try:
            names = os.listdir(entry or ".")
        except OSError:
            continue
        for name in names:
            if name.endswith(".dist-info"):
                project, _, version = name[: -len(".dist-info")].rpartition("-")
                found.setdefault(project.replace("_", "-"), version)
    return dict(sorted(found.items(), key=lambda item: item[0].lower()))
