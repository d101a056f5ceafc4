"""A pipeline's tasks rebuilt from the document ``Pipeline.to_dict`` writes (``pipeline.yaml``).

The document is treated as hostile: every entry is checked before it is used, a task's class is
found by module and qualified name (importing its module, and running no other code), a
parameter stored as a pickle is refused unless the caller trusts the file, and every rebuilt
task's key is compared with the saved one, saying why they differ.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from . import keys
from .task import Task, TaskDefinitionError, local_task_class


class PipelineError(ValueError):
    """A pipeline cannot be built, saved or loaded as asked."""


class KeyMismatchError(PipelineError):
    """A task rebuilt from a file has a different key than the one saved with it."""


def rebuilt_tasks(doc: Any, trust_pickles: bool) -> tuple[str, dict[str, Task]]:
    """The pipeline's name and its tasks by name, wired to their parents, from ``doc`` (what
    ``Pipeline.to_dict`` returns); a bad document is a ``PipelineError`` saying what to fix."""
    if not isinstance(doc, Mapping):
        raise PipelineError(
            f"the pipeline must be a mapping with 'name' and 'tasks', not a {type(doc).__name__}"
        )
    pipeline_name, specs = doc.get("name"), doc.get("tasks")
    if not isinstance(pipeline_name, str) or not pipeline_name:
        raise PipelineError("the pipeline has no 'name': it must be a non-empty string")
    if not isinstance(specs, Mapping):
        raise PipelineError(
            f"the 'tasks' of pipeline {pipeline_name!r} must map each task name to its entry "
            f"(as Pipeline.to_file writes them), not be a {type(specs).__name__}"
        )
    problem = cut_short(specs)
    if problem is not None:
        raise PipelineError(
            f"{problem}; save the pipeline again with Pipeline.to_file (or remove every "
            "'key' to load it without checks)"
        )
    built = {name: _build_task(name, spec, trust_pickles) for name, spec in specs.items()}
    for name, rebuilt in built.items():
        if rebuilt.name != name:
            raise PipelineError(
                f"task entry {name!r} rebuilds as the task {rebuilt.name} (from its class and "
                f"its tag {rebuilt.tag!r}): rename the entry to {rebuilt.name!r} or give it "
                "the tag its name has"
            )
    for name, spec in specs.items():
        parents = spec.get("parents") or []
        missing = [p for p in parents if p not in built]
        if missing:
            raise PipelineError(f"task {name!r} names unknown parent(s) {missing}")
        try:
            if parents:
                built[name]([built[p] for p in parents])
        except (TaskDefinitionError, ValueError) as exc:  # a WiringError
            raise PipelineError(f"task {name!r}: cannot connect its parents: {exc}") from exc
    return pipeline_name, built


def cut_short(specs: Mapping[str, Any]) -> str | None:
    """What shows that the task entries of a pipeline file were cut short, or None: ``to_file``
    writes a key for every task, so an entry without one beside entries with one."""
    entries = {name: spec for name, spec in specs.items() if isinstance(spec, Mapping)}
    keyed = [name for name, spec in entries.items() if "key" in spec]
    unkeyed = [name for name, spec in entries.items() if "key" not in spec]
    if keyed and unkeyed:
        return (
            f"task {unkeyed[0]!r} has no 'key' but {keyed[0]!r} has one: the file looks cut "
            "short or edited by hand"
        )
    return None


def _build_task(name: str, spec: Any, trust_pickles: bool) -> Task:
    """Rebuild one task from its entry in a pipeline file; a bad entry is a ``PipelineError``."""
    if not isinstance(spec, Mapping):
        raise PipelineError(
            f"task entry {name!r} is a {type(spec).__name__}, not a mapping of module, class, "
            "tag, params and parents; fix it or save the pipeline again with Pipeline.to_file"
        )
    module_name, qualname = spec.get("module"), spec.get("class")
    params, parents = spec.get("params") or {}, spec.get("parents") or []
    checks = [
        (isinstance(name, str), "its name is not a string"),
        (
            isinstance(module_name, str) and isinstance(qualname, str),
            "it needs a 'module' and a 'class' naming the task's class",
        ),
        (isinstance(params, Mapping), "its 'params' is not a mapping"),
        (isinstance(spec.get("reload", False), bool), "its 'reload' is not true or false"),
        (
            isinstance(parents, list) and all(isinstance(p, str) for p in parents),
            "its 'parents' is not a list of task names",
        ),
    ]
    problems = [problem for ok, problem in checks if not ok]
    if problems:
        raise PipelineError(
            f"task entry {name!r}: {problems[0]}; fix it or save the pipeline again with "
            "Pipeline.to_file"
        )
    saved = f"{module_name}.{qualname}"

    def not_found(why: Exception) -> PipelineError:
        """The error for a task class the file names but this process cannot find."""
        if module_name == "__main__":
            hint = (
                "it was saved from a script run as __main__, which only that script can load: "
                "define the task in a module, import it from the script, and save the pipeline "
                "again"
            )
        elif "<locals>" in qualname:
            hint = (
                "it is defined inside a function, so only the process that defined it can load "
                "it: define the task at the top level of a module, and save the pipeline again"
            )
        else:
            hint = "import or define the task under the same module and name before loading"
            if hasattr(importlib.import_module("__main__"), qualname.partition(".")[0]):
                hint += f" (__main__ defines a {qualname} too, but the file names {module_name})"
        return PipelineError(f"task {name!r}: cannot find {saved} ({why}); {hint}")

    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as exc:
        if isinstance(exc, ModuleNotFoundError) and f"{module_name}.".startswith(f"{exc.name}."):
            raise not_found(exc) from exc
        raise PipelineError(
            f"task {name!r}: importing its module {module_name} failed with "
            f"{type(exc).__name__}: {exc}; fix the module, then load the pipeline again"
        ) from exc
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        obj = local_task_class(module_name, qualname)
        if obj is None:
            raise not_found(exc) from exc
    if not (isinstance(obj, type) and issubclass(obj, Task)):
        raise PipelineError(f"task {name!r}: {saved} is not a task")
    decoded = {param: _parameter(name, param, v, trust_pickles) for param, v in params.items()}
    try:
        return obj(spec.get("tag", ""), reload=spec.get("reload", False), **decoded)
    except Exception as exc:  # the task's own code (its __init__) may raise anything
        raise PipelineError(
            f"task {name!r}: cannot rebuild {saved} from its entry: {type(exc).__name__}: {exc}"
        ) from exc


def _parameter(task_name: str, param: str, value: Any, trust_pickles: bool) -> Any:
    """Parameter ``param`` of task ``task_name`` as a pipeline file encodes it, rebuilt."""
    try:
        return keys.decode(value, trust_pickles=trust_pickles)
    except keys.UntrustedPickleError as exc:
        raise PipelineError(
            f"task {task_name!r}: parameter {param!r} holds a pickled {exc}, and loading a "
            "pickle can run any code, so it was refused; if you trust whoever wrote the file, "
            "load it with Pipeline.from_file(path, trust_pickles=True) (on the command line: "
            "--trust-pickles)"
        ) from None
    except Exception as exc:  # a damaged or hostile entry: say which parameter
        raise PipelineError(
            f"task {task_name!r}: parameter {param!r} cannot be rebuilt from the file: "
            f"{type(exc).__name__}: {exc}"
        ) from exc


def check_keys(
    actual: Mapping[str, str], tasks: Mapping[str, Task], specs: Mapping[str, Any]
) -> None:
    """Raise ``KeyMismatchError`` saying why a rebuilt task's key (``actual``, by name) differs
    from the one ``specs`` saved."""
    for name, spec in specs.items():
        if name not in actual:
            raise KeyMismatchError(f"task {name!r} from the file is not in the rebuilt pipeline")
        if "key" not in spec or actual[name] == spec["key"]:
            continue
        t = tasks[name]
        saved = f"{spec['module']}.{spec['class']}"
        now = f"{type(t).__module__}.{type(t).__qualname__}"
        reasons = []
        if saved != now:
            reasons.append(
                f"the file saved it as {saved}, but {saved} is now {now} (a task is known by the "
                "module and class it was saved from: define it under that module and name again, "
                "or save the pipeline again from where the task is defined now)"
            )
        if spec.get("params_digest") != keys.params_digest(t.params):
            reasons.append("its parameters differ")
        if saved == now and spec.get("code") != t.code_fingerprint():
            reasons.append("its code changed since the file was written")
        if any(actual[p.name] != specs.get(p.name, {}).get("key") for p in t.parents):
            reasons.append("an upstream task's key differs")
        why = " and ".join(reasons) or (
            "the saved key was edited, or this pyperunner computes keys otherwise"
        )
        raise KeyMismatchError(
            f"task {name!r}: key {actual[name]} differs from the saved {spec['key']} because {why}"
        )
