"""Pipelines: the set of wired tasks a runner executes, validated, drawn and saved to YAML.

A pipeline holds the tasks added to it and everything connected to them (up- and downstream), as a
:class:`Dag` whose nodes are task names and whose edges go parent -> child. It checks what a
run relies on: unique names and no cycles. It round-trips through YAML, rebuilding tasks by
module and qualified name and verifying that every rebuilt task has the key that was saved.
"""

from __future__ import annotations

import graphlib
import heapq
import importlib
import os
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, overload

from . import display, keys, yamlio
from .files import write_atomic
from .task import Task, TaskDefinitionError, check_name, local_task_class, require_task

RUN_FOLDER_SUFFIX = "_yymmddTHHMMSS_ffffff"
"""The most a run folder's name adds to its pipeline's name: the start, to the second, and the
microseconds for a run that starts in the same second as another (``runwriter.make_folder``)."""


class PipelineError(ValueError):
    """A pipeline cannot be built, saved or loaded as asked."""


class KeyMismatchError(PipelineError):
    """A task rebuilt from a file has a different key than the one saved with it."""


class GraphLike(Protocol):
    """What planning, scheduling and the pictures need of a graph: a :class:`Dag` or a
    ``networkx.DiGraph``."""

    @property
    def nodes(self) -> Any: ...
    @property
    def edges(self) -> Any: ...
    def predecessors(self, node: Any) -> Iterator[Any]: ...
    def successors(self, node: Any) -> Iterator[Any]: ...


class Dag:
    """A directed graph of task names, edges parent -> child, each node with a dict of attributes.

    It offers the part of ``networkx.DiGraph``'s interface that planning, scheduling and the
    pictures use (``nodes[name]``, ``edges``, ``predecessors``, ``successors``), so those take
    either. A run never imports networkx: its import alone (about 0.1 s) is most of the budget of
    a fully cached run; the algorithms a run needs come from the standard library's ``graphlib``.
    """

    def __init__(self, name: str = "") -> None:
        self.name = name
        self.nodes: dict[Hashable, dict[str, Any]] = {}
        self._parents: dict[Hashable, list[Hashable]] = {}
        self._children: dict[Hashable, dict[Hashable, None]] = {}
        # topological_order's result, kept until a node or an edge is added
        self._order: list[Hashable] | None = None

    @classmethod
    def from_parents(
        cls,
        attrs: Mapping[Hashable, dict[str, Any]],
        parents: Mapping[Hashable, Iterable[Hashable]],
    ) -> Dag:
        """The graph of the nodes of ``attrs``, in its order and with those attributes, and an
        edge to each from each of its ``parents`` (nodes too): what ``add_node`` and
        ``add_edge`` build, in a fraction of their time for a graph of thousands of nodes."""
        dag = cls()
        dag.nodes = dict(attrs)
        dag._parents = {node: list(dict.fromkeys(parents.get(node, ()))) for node in dag.nodes}
        dag._children = {node: {} for node in dag.nodes}
        for node, above in dag._parents.items():
            for parent in above:
                dag._children[parent][node] = None
        return dag

    def add_node(self, node: Hashable, **attrs: Any) -> None:
        """Add ``node`` (if new) and set its attributes."""
        if node not in self.nodes:
            self.nodes[node], self._parents[node], self._children[node] = {}, [], {}
            self._order = None
        self.nodes[node].update(attrs)

    def add_edge(self, parent: Hashable, child: Hashable) -> None:
        """Add the edge ``parent -> child`` (and the nodes); a child's parents keep their order."""
        self.add_node(parent)
        self.add_node(child)
        if child not in self._children[parent]:
            self._children[parent][child] = None
            self._parents[child].append(parent)
            self._order = None

    @property
    def edges(self) -> list[tuple[Hashable, Hashable]]:
        """Every edge as ``(parent, child)``."""
        return [(p, c) for p, children in self._children.items() for c in children]

    def predecessors(self, node: Hashable) -> Iterator[Hashable]:
        """The parents of ``node``, in the order they were connected."""
        return iter(self._parents[node])

    def successors(self, node: Hashable) -> Iterator[Hashable]:
        """The children of ``node``."""
        return iter(self._children[node])

    def copy(self) -> Dag:
        """A copy whose node attributes can change without touching this graph's."""
        other = Dag(self.name)
        other.nodes = {node: dict(attrs) for node, attrs in self.nodes.items()}
        other._parents = {node: list(ps) for node, ps in self._parents.items()}
        other._children = {node: dict(cs) for node, cs in self._children.items()}
        other._order = self._order
        return other

    def __iter__(self) -> Iterator[Hashable]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def __contains__(self, node: object) -> bool:
        return node in self.nodes


def topological_order(graph: GraphLike) -> list[Any]:
    """The nodes of ``graph``, parents before children, ties broken by name (stable output).

    Raises ``ValueError`` naming a cycle if there is one. A :class:`Dag` keeps its order, so a
    run sorts its graph once, not once per use (planning, keys, YAML, each picture).
    """
    if isinstance(graph, Dag):
        if graph._order is None:
            graph._order = _sorted(graph)
        return list(graph._order)
    return _sorted(graph)


def _sorted(graph: GraphLike) -> list[Any]:
    """Kahn's algorithm, the ready nodes in a heap so that ties go by name."""
    waiting = {node: len(set(graph.predecessors(node))) for node in graph.nodes}
    ready = [node for node, count in waiting.items() if count == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        node = heapq.heappop(ready)
        order.append(node)
        for child in graph.successors(node):
            waiting[child] -= 1
            if waiting[child] == 0:
                heapq.heappush(ready, child)
    if len(order) < len(waiting):
        _raise_cycle(graph)
    return order


def _raise_cycle(graph: GraphLike) -> None:
    """Raise ``ValueError`` naming a cycle of ``graph`` (found by ``graphlib``)."""
    try:
        graphlib.TopologicalSorter({n: graph.predecessors(n) for n in graph.nodes}).prepare()
    except graphlib.CycleError as exc:
        cycle = " -> ".join(str(node) for node in exc.args[1])
        raise ValueError(f"the graph has a cycle: {cycle}") from None
    raise AssertionError("unreachable: Kahn's algorithm left nodes but graphlib finds no cycle")


def descendants(graph: GraphLike, node: Any) -> set[Any]:
    """Every node reachable from ``node`` (not ``node`` itself)."""
    found: set[Any] = set()
    stack = list(graph.successors(node))
    while stack:
        below = stack.pop()
        if below not in found:
            found.add(below)
            stack.extend(graph.successors(below))
    return found


class Pipeline:
    """A named DAG of tasks: ``Pipeline(name, [roots])``, then ``add(task)`` for more roots."""

    def __init__(self, name: str, tasks: Sequence[Task] | None = None) -> None:
        if not isinstance(name, str) or not name:
            raise PipelineError("a pipeline needs a non-empty name: Pipeline('my-pipeline')")
        try:
            check_name(name, "pipeline name", RUN_FOLDER_SUFFIX)
        except TaskDefinitionError as exc:
            raise PipelineError(str(exc)) from None
        self.name = name
        self._members: list[Task] = []
        self._member_ids: set[int] = set()
        self._seen: dict[int, Task] = {}  # tasks found connected when they were added
        self._names: dict[str, Task] = {}
        self._result: Mapping[str, Any] | None = None  # see ran()
        self._plan: Any = None  # see planned()
        for t in tasks or ():
            self.add(t)

    def add(self, task: Task) -> None:
        """Add ``task`` and every task connected to it to the pipeline.

        Only tasks not seen on an earlier ``add`` are checked, so that building a chain of n
        tasks one by one, or adding the n roots of a fan-in, costs O(n), not O(n^2);
        :meth:`graph` checks everything again.
        """
        require_task(task, f"pipeline {self.name!r}: what is added")
        if id(task) in self._member_ids:
            return
        fresh = list(_connected([task], skip=self._seen))
        added: dict[str, Task] = {}
        if any(
            self._names.get(t.name, t) is not t or added.setdefault(t.name, t) is not t
            for t in fresh
        ):
            added = self._unique_names([*self._members, task])  # raises, unless seen is stale
            fresh, self._seen, self._names = list(_connected([*self._members, task])), {}, {}
        self._seen.update((id(t), t) for t in fresh)
        self._names.update(added)
        self._members.append(task)
        self._member_ids.add(id(task))

    # -- structure ----------------------------------------------------------------------------

    def tasks(self) -> list[Task]:
        """All tasks of the pipeline in a topological order (parents before children)."""
        return _tasks_of(self.graph())

    def graph(self) -> Dag:
        """The pipeline as a DAG of task names (node attribute ``task``), checked for a run."""
        by_name = self._unique_names(self._members)
        graph = Dag.from_parents(
            {name: {"task": t} for name, t in by_name.items()},
            {name: [parent.name for parent in t.parents] for name, t in by_name.items()},
        )
        graph.name = self.name
        try:
            topological_order(graph)
        except ValueError as exc:
            raise PipelineError(f"pipeline {self.name!r}: {exc}") from None
        return graph

    def _unique_names(self, members: Iterable[Task]) -> dict[str, Task]:
        """Every task connected to ``members`` by name; two tasks with one name are an error."""
        by_name: dict[str, Task] = {}
        for t in _connected(members):
            other = by_name.setdefault(t.name, t)
            if other is not t:
                raise PipelineError(
                    f"pipeline {self.name!r}: two different tasks are named {t.name!r}; "
                    "give one of them another tag, e.g. Task('other-tag', ...)"
                )
        return by_name

    def keys(self) -> dict[str, str]:
        """Every task's key, computed once for the whole pipeline (O(V+E))."""
        return graph_keys(self.graph())

    def __contains__(self, name: object) -> bool:
        return any(t.name == name for t in self.tasks())

    def __len__(self) -> int:
        return len(self.tasks())

    # -- what a runner tells the pipeline ------------------------------------------------------

    def planned(self, plan: Any) -> None:
        """Remember a runner's ``plan.Plan`` for this pipeline (None forgets it): ``summary()``
        and the notebook's drawing then mark each task with what the plan does."""
        self._plan = plan

    @property
    def last_plan(self) -> Any:
        """The plan remembered by :meth:`planned`, or None."""
        return self._plan

    def ran(self, result: Mapping[str, Any]) -> None:
        """Remember the result of a run of this pipeline, which :meth:`results` returns."""
        self._result = result

    # -- results ------------------------------------------------------------------------------

    def results(self) -> Mapping[str, Any]:
        """The outputs of the last run of this pipeline, by task name (a ``PipelineResult``)."""
        if self._result is None:
            raise PipelineError(
                f"pipeline {self.name!r} has not run yet: call Runner(...).run(pipeline) first"
            )
        return self._result

    def __getitem__(self, name: str) -> Any:
        """The output of task ``name`` from the last run, as ``pipeline.results()[name]``."""
        return self.results()[name]

    # -- display ------------------------------------------------------------------------------

    @overload
    def summary(
        self,
        print_fn: Callable[[str], Any] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        echo: Literal[True] = True,
    ) -> None: ...
    @overload
    def summary(
        self,
        print_fn: None = None,
        *,
        labels: Mapping[str, str] | None = None,
        echo: Literal[False],
    ) -> str: ...

    def summary(
        self,
        print_fn: Callable[[str], Any] | None = None,
        *,
        labels: Mapping[str, str] | None = None,
        echo: bool = True,
    ) -> str | None:
        """Print the pipeline as a layered ASCII drawing, or send each of its lines to
        ``print_fn``; with ``echo=False`` return the text instead (printing returns nothing, so
        a REPL or notebook does not show it twice).

        After ``runner.plan(pipeline)`` each box says whether the task will run, and why.
        """
        graph = self.graph()
        if labels is None and self._plan is not None:
            labels = {name: f"{name} [cached]" for name in self._plan.cached}
            labels.update({name: f"{name} [run: {why}]" for name, why in self._plan.why.items()})
        text = display.ascii_drawing(list(graph.nodes), list(graph.edges), labels)
        if not echo:
            return text
        if print_fn is None:
            print(text)
        else:
            for line in text.splitlines():
                print_fn(line)
        return None

    # -- save and load ------------------------------------------------------------------------

    def to_dict(self, task_keys: Mapping[str, str] | None = None) -> dict[str, Any]:
        """A YAML-safe description: every task's class, tag, parameters, key and parents.

        ``task_keys`` passes keys already computed for this pipeline, to avoid computing them twice.
        """
        return self._described(self.graph(), task_keys)

    def _described(self, graph: Dag, task_keys: Mapping[str, str] | None) -> dict[str, Any]:
        """:meth:`to_dict` of ``graph``, this pipeline's :meth:`graph` (a run has it already)."""
        pipeline_keys = task_keys if task_keys is not None else graph_keys(graph)
        members = _tasks_of(graph)
        codes = code_fingerprints(members)
        tasks = {}
        for t in members:
            tasks[t.name] = {
                "task_name": type(t).task_name,
                "module": type(t).__module__,
                "class": type(t).__qualname__,
                "tag": t.tag,
                "reload": t.reload,
                "params": {k: keys.encode(v, for_key=False) for k, v in t.params.items()},
                "parents": [p.name for p in t.parents],
                "key": pipeline_keys[t.name],
                "code": codes[type(t)],
                "params_digest": keys.params_digest(t.params),
            }
        return {"name": self.name, "tasks": tasks}

    def to_file(self, fname: str | os.PathLike[str]) -> Path:
        """Write the pipeline to a YAML file and return its path."""
        path = Path(fname)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, yamlio.dump({"pipeline": self.to_dict()}).encode())
        return path

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any], trust_pickles: bool = False) -> Pipeline:
        """Rebuild a pipeline from :meth:`to_dict` output, checking every task's key.

        Parameters stored as pickles are refused unless ``trust_pickles``: loading a pickle can
        run any code, so only trust files from people you trust.
        """
        if not isinstance(doc, Mapping):
            raise PipelineError(
                "the pipeline must be a mapping with 'name' and 'tasks', not a "
                f"{type(doc).__name__}"
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
        pipeline = cls(pipeline_name)
        for t in built.values():
            if not t.parents:
                pipeline.add(t)
        _check_keys(pipeline, specs)
        return pipeline

    @classmethod
    def from_file(cls, fname: str | os.PathLike[str], trust_pickles: bool = False) -> Pipeline:
        """Load a pipeline saved by :meth:`to_file` or a run's ``pipeline.yaml``.

        Loading imports the modules that define its tasks, and runs no other code: parameters
        stored as pickles are refused unless ``trust_pickles`` (only for files you trust).
        """
        try:
            doc = yamlio.read(Path(fname))
        except yamlio.YAMLError as exc:
            problem = " ".join(str(exc).split())
            what = "a text" if isinstance(exc, yamlio.ReaderError) else "a readable YAML"
            raise PipelineError(f"{fname}: not {what} file ({problem})") from exc
        if not isinstance(doc, dict) or "pipeline" not in doc:
            raise PipelineError(f"{fname}: not a pyperunner pipeline file (no 'pipeline' section)")
        return cls.from_dict(doc["pipeline"], trust_pickles)

    def __repr__(self) -> str:
        tasks = list(_connected(self._members))  # not graph(): a repr must not raise
        roots = sum(1 for t in tasks if not t.parents)
        count = f"{len(tasks)} task{'s' * (len(tasks) != 1)}, {roots} root{'s' * (roots != 1)}"
        return f"<{type(self).__name__} {self.name!r}: {count}>"

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str] | None:
        """The DAG as SVG, and as HTML under a short header, for notebooks: like tasks drawn as
        one box where they would not fit, marked with the plan after ``runner.plan``."""
        return display.bundle(self)

    def _repr_html_(self) -> str | None:
        return display.html(self)

    def __eq__(self, other: object) -> bool:
        """Pipelines are equal when they describe the same run: name, tasks (class, tag,
        parameters, code) and wiring, as :meth:`to_dict` writes them, keys included."""
        if not isinstance(other, Pipeline):
            return NotImplemented
        return self.name == other.name and self.to_dict() == other.to_dict()

    __hash__ = None  # type: ignore[assignment]  # equal by value, and mutable by add()


class Sequential(Pipeline):
    """A pipeline of tasks in a chain: each task's output is the next task's input."""

    def __init__(self, name: str, tasks: Sequence[Task] | None = None) -> None:
        self._chain: list[Task] = []
        super().__init__(name, tasks)

    def add(self, task: Task) -> None:
        """Append ``task`` to the end of the chain, as the only child of the previous task.

        The chain owns its tasks' wiring: a task listed here is first disconnected from any
        earlier wiring, so the same task objects can be reused in a new ``Sequential``, as the
        manual's caching examples do. A rejected task leaves the chain as it was.
        """
        if isinstance(task, Task):
            if id(task) in self._member_ids:
                raise PipelineError(f"sequential {self.name!r}: {task.name} is listed twice")
            task.detach()
            if self._chain:
                task(self._chain[-1])
        try:
            super().add(task)
        except PipelineError:
            task.detach()
            raise
        self._chain.append(task)


def _tasks_of(graph: Dag) -> list[Task]:
    """The tasks of a pipeline's graph, parents before children."""
    return [graph.nodes[name]["task"] for name in topological_order(graph)]


def graph_keys(graph: Dag) -> dict[str, str]:
    """Every task's key in ``graph``, a :meth:`Pipeline.graph` (as :meth:`Pipeline.keys`)."""
    tasks = [graph.nodes[n]["task"] for n in graph]
    codes = code_fingerprints(tasks)
    by_task = keys.merkle_keys(tasks, lambda t: t.parents, lambda t: t.own_digest(codes[type(t)]))
    return {t.name: k for t, k in by_task.items()}


def code_fingerprints(tasks: Iterable[Task]) -> dict[type[Task], str]:
    """Each task class's code fingerprint, taken once per class, not once per task: code does
    not change while a pipeline is keyed or described, and checking that it has not
    (``code_fingerprint`` looks again at every name the code reads) costs more than the rest
    of a task's key."""
    return {cls: cls.code_fingerprint() for cls in {type(t) for t in tasks}}


def _connected(start: Iterable[Task], skip: Mapping[int, Task] | None = None) -> Iterator[Task]:
    """Every task connected to ``start`` (up- or downstream), not walking past ``skip``."""
    past = skip or {}
    seen: set[int] = set()
    stack = list(start)
    while stack:
        t = stack.pop()
        if id(t) in seen or id(t) in past:
            continue
        seen.add(id(t))
        yield t
        stack.extend(t.parents)
        stack.extend(t.children)


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


def _check_keys(pipeline: Pipeline, specs: Mapping[str, Any]) -> None:
    """Raise ``KeyMismatchError`` saying why a rebuilt task's key differs from the saved one."""
    actual = pipeline.keys()
    by_name = {t.name: t for t in pipeline.tasks()}
    for name, spec in specs.items():
        if name not in actual:
            raise KeyMismatchError(f"task {name!r} from the file is not in the rebuilt pipeline")
        if "key" not in spec or actual[name] == spec["key"]:
            continue
        t = by_name[name]
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
