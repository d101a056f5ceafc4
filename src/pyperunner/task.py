"""Task definition: the ``Task`` base class, the ``@run`` decorator, and naming.

A task is one unit of work. It is created with its parameters, which are bound against the
signature of its ``run`` method (or decorated function) at once, so that a missing or unknown
parameter fails where the user wrote it, not hours later in a worker. Tasks are wired by calling
them with their parents: ``child(parent)`` or ``child([p1, p2])``. The code fingerprint lives here
too, because it is a property of the task's definition.
"""

from __future__ import annotations

import copy
import inspect
import logging
import math
import numbers
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, SupportsIndex, TypeVar, overload

from . import fingerprint, keys

RESERVED_PARAMETERS = ("tag", "reload")
EXECUTION_SETTINGS = frozenset({"retries", "retry_delay", "timeout"})
"""Class attributes that say how a task is run, not what it computes: not part of its key."""
_RUN_MARK = "__pyperunner_run__"
NAMED_MARK = "__pyperunner_named__"
"""Set on a class that ``@task`` made or named."""
_NOT_CODE = EXECUTION_SETTINGS | {"_receives_input", "_signature_of"}
"""Class attributes a task's code key leaves out: its settings, and what pyperunner caches."""

T = TypeVar("T")


class TaskError(Exception):
    """Base of the errors in defining, creating and wiring tasks."""


class TaskDefinitionError(TaskError, TypeError):
    """A task class or function is defined or instantiated wrongly."""


class WiringError(TaskError, ValueError):
    """Tasks are connected in a way a pipeline cannot run (cycle, wrong object)."""


NAME_MAX = 255
"""Bytes a file or folder name may have on the common filesystems (ext4, XFS, btrfs, APFS)."""


def check_execution_settings(name: str, retries: Any, retry_delay: Any, timeout: Any) -> None:
    if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
        raise TaskDefinitionError(
            f"task {name}: retries must be a whole number >= 0, got {retries!r}"
        )
    if not _seconds(retry_delay) or retry_delay < 0:
        raise TaskDefinitionError(
            f"task {name}: retry_delay must be a number of seconds >= 0, got {retry_delay!r}"
        )
    if timeout is not None and (not _seconds(timeout) or timeout <= 0):
        raise TaskDefinitionError(
            f"task {name}: timeout must be a number of seconds > 0, or None for no timeout, got "
            f"{timeout!r}"
        )


def _seconds(value: Any) -> bool:
    """True for a finite int or float (not a bool, NaN or infinity)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def run(func: Callable[..., T]) -> Callable[..., T]:
    """Mark a ``Task`` subclass's ``run`` method as the task's work; required on every ``run``."""
    if isinstance(func, type) or not callable(func):
        raise TaskDefinitionError(
            "@run decorates the run() method inside a Task subclass, not "
            f"{getattr(func, '__qualname__', repr(func))}: put it on the line above `def run`"
        )
    check_returns(func, f"{func.__qualname__}()")
    setattr(func, _RUN_MARK, True)
    return func


def check_returns(func: Callable[..., Any], what: str) -> None:
    """A task's output is what its function returns: coroutines and generators are not outputs."""
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        kind = "an async function"
    elif inspect.isgeneratorfunction(func):
        kind = "a generator function (it uses yield)"
    else:
        return
    raise TaskDefinitionError(
        f"{what} is {kind}; a task must return its output: compute the value and return it "
        "(e.g. return asyncio.run(...) or return list(...))"
    )


class Inputs(list):  # type: ignore[type-arg]
    """The ``data`` a task receives: one parent output per parent, in connection order.

    It is a plain list that can also be indexed by a parent's name: ``data["Load(csv)"]``.
    """

    def __init__(self, items: Iterable[tuple[str, Any]] = ()) -> None:
        pairs = list(items)
        super().__init__(value for _, value in pairs)
        self.names: list[str] = [name for name, _ in pairs]

    @overload
    def __getitem__(self, key: SupportsIndex) -> Any: ...
    @overload
    def __getitem__(self, key: slice) -> list[Any]: ...
    @overload
    def __getitem__(self, key: str) -> Any: ...

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, str):
            try:
                return super().__getitem__(self.names.index(key))
            except ValueError:
                raise KeyError(f"no parent named {key!r}; parents are {self.names}") from None
        return super().__getitem__(key)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Inputs, (list(zip(self.names, self, strict=True)),))


@fingerprint.keyed_apart
class Task:
    """Base class of all tasks; subclass it and decorate ``run`` with ``@run``.

    ``Task(tag, reload=False, **params)``: ``tag`` makes the name ``ClassName(tag)`` unique within
    a pipeline, ``reload=True`` re-runs the task even when a cached result exists, and ``params``
    are the extra arguments of ``run``. Class attributes ``task_name`` and ``version`` override
    the name shown and pin the code part of the key; ``retries``, ``retry_delay`` (seconds) and
    ``timeout`` (seconds per attempt) say how the task is run and are not part of the key.
    """

    task_name: ClassVar[str] = ""
    version: ClassVar[str | None] = None
    retries: ClassVar[int] = 0
    retry_delay: ClassVar[float] = 0.0
    timeout: ClassVar[float | None] = None
    _code_cache: ClassVar[dict[type, tuple[str, tuple[fingerprint.Binding, ...]]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "task_name" not in cls.__dict__:
            cls.task_name = cls.__name__
        if not callable(cls.__dict__.get("receives_input", Task.receives_input)):
            raise TaskDefinitionError(
                f"task class {cls.__qualname__} sets receives_input, which is @task's option: "
                "a Task subclass receives its parents' outputs if its run() takes a data "
                "parameter, so leave data out of run() instead"
            )
        check_execution_settings(cls.task_name, cls.retries, cls.retry_delay, cls.timeout)
        if "<locals>" in cls.__qualname__:
            _local_classes[(cls.__module__, cls.__qualname__)] = cls

    def __init__(self, tag: Any = "", *extra: Any, reload: bool = False, **params: Any) -> None:
        cls = type(self)
        if cls is Task:
            raise TaskDefinitionError("Task is a base class: subclass it and implement run()")
        if cls.run is Task.run:
            raise TaskDefinitionError(
                f"{cls.__qualname__} has no run(): implement the task's work as a method "
                "`def run(self, ...)` decorated with `@run`"
            )
        if not getattr(cls.run, _RUN_MARK, False):
            raise TaskDefinitionError(
                f"{cls.__qualname__}.run() is not decorated with @run: "
                "add `@run` on the line above `def run`"
            )
        self.tag = _checked_tag(cls, tag)
        self.name = f"{cls.task_name}({self.tag})"
        if extra:
            names = [
                p.name
                for p in self._signature().parameters.values()
                if p.name != "data" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            ]
            by_name = [f"{n}={v!r}" for n, v in zip(names, extra, strict=False)]
            examples = [by_name] if by_name else []
            if not by_name or (len(extra) == 1 and isinstance(extra[0], bool)):
                flag = extra[0] if isinstance(extra[0], bool) else True  # old Task(tag, reload)
                examples.insert(0, [f"reload={flag!r}"])
            shown = " or ".join(
                f"{cls.__qualname__}({', '.join([repr(self.tag), *example])})"
                for example in examples
            )
            raise TaskDefinitionError(
                f"{self.name}: only the tag may be given by position, got {len(extra)} more "
                f"argument(s) {extra!r}; pass parameters and reload by name, e.g. {shown}"
            )
        check_name(self.name, "task name")
        self.reload = bool(reload)
        self.params = self._bind(params)
        self.parents: list[Task] = []
        self.children: list[Task] = []
        self.logger = logging.getLogger(self.name)
        self._check_params_hashable()

    # -- parameters ---------------------------------------------------------------------------

    @classmethod
    def _work_function(cls) -> Callable[..., Any]:
        """The user's function whose signature defines the parameters and whose code is tracked."""
        return cls.run

    @classmethod
    def _signature(cls) -> inspect.Signature:
        """The parameters of the task's function (without ``self``), worked out once for each
        function the class has (``inspect.signature`` was half the cost of creating a task)."""
        func = cls._work_function()
        known = cls.__dict__.get("_signature_of")
        if known is not None and known[0] is func:
            return known[1]  # type: ignore[no-any-return]
        sig = inspect.signature(func)
        params = list(sig.parameters.values())
        if func is cls.run:
            params = params[1:]  # `self`
        sig = sig.replace(parameters=params)
        cls._signature_of = (func, sig)
        return sig

    @classmethod
    def receives_input(cls) -> bool:
        """True if the task's function takes ``data`` (the outputs of its parents)."""
        known = cls.__dict__.get("_receives_input")
        if known is None:
            known = "data" in cls._signature().parameters
            cls._receives_input = known  # per class: asked for every task run
        return known

    def _bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        sig = self._signature()
        free = [p for p in sig.parameters.values() if p.name != "data"]
        reserved = [p.name for p in free if p.name in RESERVED_PARAMETERS]
        if reserved:
            raise TaskDefinitionError(
                f"{self.name}: parameter name {reserved[0]!r} is reserved by pyperunner; rename it"
            )
        if any(p.kind is p.VAR_POSITIONAL for p in free):
            raise TaskDefinitionError(
                f"{self.name}: run() must not take *args; give every parameter a name"
            )
        if "data" in params:
            raise TaskDefinitionError(
                f"{self.name}: data is not a parameter: it holds the outputs of the task's "
                f"parents, given at run time; connect them instead, e.g. "
                f"{type(self).__qualname__}(...)(parent)"
            )
        accepted = {p.name for p in free if p.kind is not p.VAR_KEYWORD}
        takes_any = any(p.kind is p.VAR_KEYWORD for p in free)
        unknown = sorted(set(params) - accepted) if not takes_any else []
        if unknown:
            raise TaskDefinitionError(
                f"{self.name}: unknown parameter(s) {', '.join(map(repr, unknown))}; "
                f"the task accepts {sorted(accepted) or 'no parameters'}"
            )
        missing = [
            p.name
            for p in free
            if p.kind not in (p.VAR_KEYWORD,) and p.default is p.empty and p.name not in params
        ]
        if missing:
            raise TaskDefinitionError(
                f"{self.name}: missing parameter(s) {', '.join(map(repr, missing))}; "
                f"pass them when creating the task, e.g. {type(self).__qualname__}"
                f"({', '.join(f'{m}=...' for m in missing)})"
            )
        bound = {
            p.name: p.default
            for p in free
            if p.kind is not p.VAR_KEYWORD and p.default is not p.empty
        }
        bound.update(params)
        return bound

    def _check_params_hashable(self) -> None:
        for name, value in self.params.items():
            try:
                keys.params_digest({name: value})
            except keys.UnhashableParameterError as exc:
                raise keys.UnhashableParameterError(
                    f"{self.name}: parameter {name!r}: {exc}"
                ) from exc

    # -- identity and keys --------------------------------------------------------------------

    @classmethod
    def identity(cls) -> str:
        """``module:qualname`` of the class that rebuilds this task from a pipeline file."""
        return f"{cls.__module__}:{cls.__qualname__}"

    @classmethod
    def code_fingerprint(cls) -> str:
        """Digest of the task's code (and the user functions it calls), or of its ``version``.

        Comments, docstrings and layout do not count; see :mod:`pyperunner.fingerprint`. The
        digest is cached per class and recomputed when a name it was computed from is rebound.
        """
        if cls.version is not None:
            return keys.digest(f"version:{cls.version}")
        cached = Task._code_cache.get(cls)
        if cached is None or not fingerprint.unchanged(cached[1]):
            roots = cls._code_roots()
            cached = Task._code_cache[cls] = fingerprint.compute(roots, _NOT_CODE)
        return cached[0]

    @classmethod
    def _code_roots(cls) -> list[Any]:
        return [
            klass
            for klass in cls.__mro__
            if isinstance(klass, type) and issubclass(klass, Task) and klass is not Task
        ]

    def own_digest(self, code: str | None = None) -> str:
        """Digest of this task alone: identity, tag, parameters and code (not its parents).

        Parameters are hashed as they are now, so a list changed after creating the task
        changes the key too, as it changes what the task computes. ``code`` is the class's
        :meth:`code_fingerprint` when the caller has it already (keys of many tasks at once).
        """
        params = keys.params_digest(self.params)
        code = self.code_fingerprint() if code is None else code
        return keys.own_digest(self.identity(), self.name, params, code)

    def hash(self) -> str:
        """The task's key: its own digest combined with the keys of all upstream tasks."""
        return keys.merkle_keys([self], lambda t: t.parents, Task.own_digest)[self]

    # -- wiring -------------------------------------------------------------------------------

    def __call__(self, parents: Task | Sequence[Task]) -> Task:
        """Connect ``parents`` upstream of this task and return this task, for chaining.

        A task that takes no ``data`` may have parents too: it then runs after them, and its key
        covers theirs, without receiving their outputs (an ordering-only dependency).
        """
        items = list(parents) if isinstance(parents, (list, tuple)) else [parents]
        below: set[int] | None = None  # this task and its descendants, found once
        present = {id(p) for p in self.parents}
        listed: set[int] = set()
        for parent in items:
            require_task(parent, f"{self.name}: a parent")
            if below is None:
                below = {id(self), *(id(d) for d in self.descendants())}
            if id(parent) in below:
                raise WiringError(f"connecting {parent.name} -> {self.name} would create a cycle")
            if id(parent) in present:
                raise WiringError(f"{self.name}: {parent.name} is already connected to it")
            if id(parent) in listed:
                raise WiringError(f"{self.name}: {parent.name} is listed twice as a parent")
            listed.add(id(parent))
        for parent in items:
            self.parents.append(parent)
            parent.children.append(self)
        return self

    def detach(self) -> None:
        """Disconnect this task from all its parents and children."""
        for parent in self.parents:
            parent.children = [c for c in parent.children if c is not self]
        for child in self.children:
            child.parents = [p for p in child.parents if p is not self]
        self.parents, self.children = [], []

    def ancestors(self) -> Iterator[Task]:
        """Every task upstream of this one, each once."""
        return _walk(self.parents, lambda t: t.parents)

    def descendants(self) -> Iterator[Task]:
        """Every task downstream of this one, each once."""
        return _walk(self.children, lambda t: t.children)

    # -- execution ----------------------------------------------------------------------------

    def execute(self, data: Inputs) -> Any:
        """Run the task's work on its parents' outputs with a copy of its bound parameters: what
        the work changes in them (a list it appends to) changes neither the task nor its key."""
        params = {}
        for name, value in self.params.items():
            try:
                params[name] = copy.deepcopy(value)
            except Exception as exc:
                raise TaskDefinitionError(
                    f"{self.name}: parameter {name!r} cannot be copied ({type(exc).__name__}: "
                    f"{exc}); each run of a task gets its own copy of its parameters, so pass a "
                    "value copy.deepcopy can copy"
                ) from exc
        if self.receives_input():
            return self.run(data=data, **params)
        return self.run(**params)

    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Do the task's work; override in subclasses and decorate with ``@run``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<Task {self.name}>"


def check_name(name: str, what: str, suffix: str = "") -> None:
    """Names become folder names (followed by ``suffix``) and log columns: no path separators,
    no control characters (NUL, newline, ...), nothing that walks up, text that UTF-8 can hold,
    and no more bytes than a folder name may have."""
    bad = [c for c in name if c in "/\\" or ord(c) < 0x20 or ord(c) == 0x7F]
    if bad or name in (".", ".."):
        raise TaskDefinitionError(
            f"{what} {name!r} cannot be used as a folder name (it contains {bad[0]!r}); "
            "use letters, digits, '-', '_' or '.' instead"
            if bad
            else f"{what} {name!r} cannot be used as a folder name"
        )
    try:
        size = len(name.encode())
    except UnicodeEncodeError as exc:
        raise TaskDefinitionError(
            f"{what} {name!r} holds {name[exc.start]!r}, which is not text (a lone surrogate, as "
            "os.listdir gives for a file name that is not UTF-8); make it text first, e.g. "
            "name.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')"
        ) from None
    room = NAME_MAX - len(suffix.encode())
    if size > room:
        shown = f"{name[:40]!r}... ({len(name)} characters)" if len(name) > 40 else repr(name)
        after = f" followed by {suffix!r}" if suffix else ""
        raise TaskDefinitionError(
            f"{what} {shown} is {size} bytes long in UTF-8, but it names a folder{after}, "
            f"and a folder name holds at most {NAME_MAX} bytes: shorten it to {room} bytes"
        )


def _checked_tag(cls: type[Task], tag: Any) -> str:
    """A task's tag as text: a string, or a number (converted); None is no tag."""
    if tag is None:
        return ""
    if isinstance(tag, str):
        return tag
    if isinstance(tag, numbers.Real) and not isinstance(tag, bool):
        return str(tag)
    creator = cls.__name__
    if isinstance(tag, Task) or (isinstance(tag, type) and issubclass(tag, Task)):
        parent = tag.__name__ if isinstance(tag, type) else type(tag).__name__
        raise WiringError(
            f"{creator}() got a task where its tag goes ({tag!r}): a task is created first and "
            f"then called with its parents, e.g. {creator}()({parent}())"
        )
    hint = " (write reload=True to re-run the task)" if isinstance(tag, bool) else ""
    raise TaskDefinitionError(
        f"{creator}(): a tag is a string or a number, got {type(tag).__name__} {tag!r}{hint}"
    )


def require_task(obj: Any, where: str) -> None:
    """Raise a ``WiringError`` saying what to do unless ``obj`` is a task instance."""
    if isinstance(obj, type) and issubclass(obj, Task):
        raise WiringError(
            f"{where} must be a task, got the class {obj.__qualname__}; "
            f"create a task first: {obj.__qualname__}(...)"
        )
    if not isinstance(obj, Task):
        raise WiringError(f"{where} must be a task, got {type(obj).__qualname__}")


def _walk(start: Iterable[Task], step: Callable[[Task], Iterable[Task]]) -> Iterator[Task]:
    seen: set[int] = set()
    stack = list(start)
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(step(node))


_local_classes: weakref.WeakValueDictionary[tuple[str, str], type[Task]] = (
    weakref.WeakValueDictionary()
)
"""Task classes defined inside functions, by module and qualified name: no import finds them."""


def local_task_class(module: str, qualname: str) -> type[Task] | None:
    """The task class defined in this process under ``module`` and ``qualname`` inside a
    function (the latest one defined, while it exists), so ``Pipeline.from_file`` finds it too."""
    return _local_classes.get((module, qualname))
