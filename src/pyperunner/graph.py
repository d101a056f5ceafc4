"""Pipelines: the set of wired tasks a runner executes, validated, drawn and saved to YAML.

A pipeline holds the tasks added to it and everything connected to them (up- and downstream), as a
:class:`Dag` whose nodes are task names and whose edges go parent -> child. It checks what a
run relies on: unique names and no cycles. It round-trips through YAML
(:mod:`pyperunner.pipelinefile` rebuilds the tasks of a saved one, checking their keys).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, overload

from . import display, keys, yamlio
from .dag import Dag, topological_order
from .files import write_atomic
from .pipelinefile import PipelineError, check_keys, rebuilt_tasks
from .task import Task, TaskDefinitionError, check_name, require_task

RUN_FOLDER_SUFFIX = "_yymmddTHHMMSS_ffffff"
"""The most a run folder's name adds to its pipeline's name: the start, to the second, and the
microseconds for a run that starts in the same second as another (``runwriter.make_folder``)."""


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
        name, built = rebuilt_tasks(doc, trust_pickles)
        pipeline = cls(name)
        for t in built.values():
            if not t.parents:
                pipeline.add(t)
        check_keys(pipeline.keys(), built, doc["tasks"])
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
