"""Imports point one way (``docs/architecture.md``): every module of ``src/pyperunner`` sits in a
layer and imports only from its own layer or those below, and no modules import each other in a
circle, not even through an import inside a function. Read from the source with ``ast``, so an
import that runs only sometimes (lazily, or under ``TYPE_CHECKING``) counts too."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import pyperunner

SOURCE = Path(pyperunner.__file__).parent

LAYERS: list[tuple[str, set[str]]] = [
    (
        "base",
        {
            "_version",
            "keys",
            "yamlio",
            "files",
            "text",
            "display",
            "output",
            "logs",
            "preview",
            "codesource",
            "fingerprint",
            "dag",
        },
    ),
    ("model", {"task", "functiontask", "pipelinefile", "graph", "status"}),
    ("store", {"storage", "storage_fsspec", "resultfile", "store"}),
    ("planning", {"plan", "holds", "journal", "runfolder"}),
    ("execution", {"executors", "scheduler"}),
    ("runner", {"observers", "runwriter", "results", "environment", "garbage", "runner"}),
    ("reporting", {"report", "ui"}),
    ("interface", {"", "cli"}),
]
"""Layers from the bottom up, each by its modules' names under ``pyperunner`` ("" is the package
itself); a package (``executors``, ``report``, ``ui``) puts all its modules in its layer."""


def _modules() -> dict[str, Path]:
    """Every module's dotted name under ``pyperunner`` ("" for the package) and its file."""
    found = {}
    for path in SOURCE.rglob("*.py"):
        parts = list(path.relative_to(SOURCE).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The modules of pyperunner that ``name`` imports anywhere in its source."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").partition(".")[0] == "pyperunner":
                module = node.module.partition(".")[2] if node.module else ""
            else:
                continue
            for alias in node.names:  # `from . import x` imports the module x
                submodule = f"{module}.{alias.name}".lstrip(".")
                found.add(submodule if submodule in MODULES else module)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.partition(".")[0] == "pyperunner":
                    found.add(alias.name.partition(".")[2])
    return found - {name}


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


def _dotted(name: str) -> str:
    return f"pyperunner.{name}".rstrip(".")


def _layer(name: str) -> int:
    top = name.partition(".")[0]
    for index, (_, members) in enumerate(LAYERS):
        if top in members:
            return index
    raise AssertionError(f"module {_dotted(name)} has no layer: add it to LAYERS in {__file__}")


def test_the_layers_know_every_module_and_see_its_imports():
    assert len(MODULES) > 40
    assert {"runner", "graph", "report.wiring", "executors"} <= set(MODULES)
    assert "observers" in IMPORTS["runner"] and "report.wiring" in IMPORTS[""]
    assert "report.notebook" in IMPORTS["report.wiring"]  # an import inside a function counts
    for name in MODULES:
        _layer(name)


@pytest.mark.parametrize("name", sorted(MODULES))
def test_a_module_imports_only_from_its_layer_and_below(name):
    upward = {
        f"{_dotted(imported)} ({LAYERS[_layer(imported)][0]})"
        for imported in IMPORTS[name]
        if _layer(imported) > _layer(name)
    }
    assert not upward, (
        f"{_dotted(name)} ({LAYERS[_layer(name)][0]}) reaches up to {sorted(upward)}: move the "
        "responsibility down, or have the higher layer register it (see report/wiring.py)"
    )


def test_no_modules_import_each_other_in_a_circle():
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycle = [*path[path.index(name) :], name]
            raise AssertionError("import cycle: " + " -> ".join(map(_dotted, cycle)))
        if name in done:
            return
        for imported in sorted(IMPORTS[name]):
            visit(imported, [*path, name])
        done.add(name)

    for name in sorted(MODULES):
        visit(name, [])


def test_the_check_finds_a_cycle_and_an_upward_import():
    """The checks above would fail on what they look for (so they cannot pass vacuously)."""
    saved = dict(IMPORTS)
    try:
        IMPORTS["keys"] = IMPORTS["keys"] | {"task"}
        with pytest.raises(AssertionError, match=r"import cycle: .*keys"):
            test_no_modules_import_each_other_in_a_circle()
        with pytest.raises(AssertionError, match="reaches up to"):
            test_a_module_imports_only_from_its_layer_and_below("keys")
    finally:
        IMPORTS.clear()
        IMPORTS.update(saved)


def test_importing_the_package_plugs_in_the_reporting_layer_without_importing_the_drawings():
    """``import pyperunner`` registers the views and drawings but imports none of the modules
    that draw, nor Dask; the executors the guide constructs are exported."""
    code = (
        "import sys, pyperunner\n"
        "from pyperunner import observers\n"
        "print(len(observers.FACTORIES), sorted(m for m in sys.modules if m.startswith("
        "('pyperunner.report.', 'dask', 'distributed', 'rich', 'PIL', 'networkx'))))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split(" ", 1) == [
        "2",
        "['pyperunner.report.observers', 'pyperunner.report.wiring']\n",
    ]
    for name in ("ProcessExecutor", "ThreadExecutor", "InlineExecutor", "DaskExecutor"):
        assert name in pyperunner.__all__ and getattr(pyperunner, name).__name__ == name
