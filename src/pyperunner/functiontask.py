"""``@task``: a task class made from a function, or a name given to a ``Task`` subclass.

A decorated function becomes a subclass of :class:`FunctionTask` whose ``run`` calls it, with
the function's module, name and docstring, so that it is keyed, saved and found again like a
class written by hand.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from .task import (
    NAMED_MARK,
    RESERVED_PARAMETERS,
    Task,
    TaskDefinitionError,
    check_execution_settings,
    check_returns,
    run,
)


class FunctionTask(Task):
    """Base of the classes ``@task`` makes from functions; the function is ``func``."""

    func: ClassVar[Callable[..., Any]]

    @classmethod
    def _work_function(cls) -> Callable[..., Any]:
        return cls.func

    @classmethod
    def _code_roots(cls) -> list[Any]:
        return [cls.func]

    @run
    def run(self, *args: Any, **kwargs: Any) -> Any:
        """Call the decorated function (``data`` and parameters as keywords)."""
        return type(self).func(*args, **kwargs)


def task(
    name: str | None = None,
    receives_input: bool = True,
    *,
    version: str | None = None,
    retries: int | None = None,
    retry_delay: float | None = None,
    timeout: float | None = None,
) -> Callable[[Any], Any]:
    """Make a task from a function, or name a ``Task`` subclass: ``@task("Name")``.

    The function must take ``data`` unless ``receives_input=False``. ``version`` pins the code part
    of the key (edit the function without invalidating the cache, or bump it to force one).
    ``retries``, ``retry_delay`` and ``timeout`` (seconds) control execution, not the key.
    """
    if callable(name):
        raise TypeError(
            'Invalid decorator use: write @task("Name") with the task\'s name, not a bare @task'
        )
    if not isinstance(name, str) or not name:
        raise TypeError(
            f'@task needs the task\'s name as a non-empty string, got {name!r}: write @task("Name")'
        )

    given = {"version": version, "retries": retries, "retry_delay": retry_delay}
    settings = {k: v for k, v in given.items() if v is not None}
    if timeout is not None:
        settings["timeout"] = timeout

    def decorate(obj: Any) -> Any:
        if isinstance(obj, type) and issubclass(obj, Task):
            if obj.__dict__.get(NAMED_MARK):  # @task twice: one of the names would be lost
                raise TaskDefinitionError(
                    f"@task({name!r}) decorates {obj.__qualname__}, which @task already named "
                    f"{obj.task_name!r}: use one @task"
                )
            obj.task_name = name
            setattr(obj, NAMED_MARK, True)
            for attribute, value in settings.items():
                setattr(obj, attribute, value)
            check_execution_settings(name, obj.retries, obj.retry_delay, obj.timeout)
            return obj
        if not inspect.isfunction(obj):
            raise TypeError(f"@task({name!r}) decorates a function or a Task subclass")
        return _function_task(obj, name, receives_input, settings)

    return decorate


def _function_task(
    func: types.FunctionType, name: str, receives_input: bool, settings: Mapping[str, Any]
) -> type[FunctionTask]:
    check_returns(func, f"Task {name!r} ({func.__qualname__})")
    params = inspect.signature(func).parameters
    if receives_input and "data" not in params:
        raise AttributeError(
            'To receive input data, the function must accept the named parameter "data" '
            f"(task {name!r}, {func.__qualname__}); add it, or use "
            f"@task({name!r}, receives_input=False) for a task at the start of a pipeline"
        )
    if not receives_input and "data" in params:
        raise TaskDefinitionError(
            f"Task {name!r} ({func.__qualname__}) has receives_input=False but takes `data`; "
            "remove one of the two"
        )
    for reserved in RESERVED_PARAMETERS:
        if reserved in params:
            raise TaskDefinitionError(
                f"Task {name!r}: parameter name {reserved!r} is reserved by pyperunner; rename it"
            )
    namespace = {
        "func": staticmethod(func),
        "task_name": name,
        NAMED_MARK: True,
        **settings,
        "__module__": func.__module__,
        "__qualname__": func.__qualname__,
        "__doc__": func.__doc__,
    }
    return type(func.__name__, (FunctionTask,), namespace)
