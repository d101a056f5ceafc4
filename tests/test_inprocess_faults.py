"""Faults of processes a task forks while a run is on, in every executor (issue 14, point 6c).

A task's ``multiprocessing.Pool`` ends with ``Pool.terminate``: SIGTERM to each worker, then a
wait for it. A worker forked while a run is on starts with the runner's SIGTERM handler, until
pyperunner's fork hook puts the one from before the run back; a SIGTERM that came before that
(the pool's other workers had done all the work while this one was still starting, on a busy
machine) was lost, and ``Pool.__exit__`` waited for ever. Here the child is held in its fork
hooks, before pyperunner's, until the SIGTERM has come, so that every run takes that path.
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from test_faults import Script, scripts, write_script

STARTING_SCRIPT = """
import multiprocessing
import os
import signal
import sys

armed = False
ready_r, ready_w = os.pipe()


def starting() -> None:
    # In a child forked while armed, before pyperunner's fork hook: say so, wait for the
    # SIGTERM that ends the child, and have it arrive again here, where the child is starting.
    if armed:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGTERM])
        os.write(ready_w, b"!")
        signal.sigwait([signal.SIGTERM])
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        os.kill(os.getpid(), signal.SIGTERM)


os.register_at_fork(after_in_child=starting)  # before pyperunner's: it runs first in a child

from pyperunner import Pipeline, Runner, task  # noqa: E402


def nothing() -> None:
    pass


@task("Starts", receives_input=False)
def starts(how):
    global armed
    context = multiprocessing.get_context("fork")
    armed = True
    if how == "pool":
        with context.Pool(1):  # its exit terminates the pool: SIGTERM, then a wait
            armed = False
            (worker,) = multiprocessing.active_children()
            os.read(ready_r, 1)  # the worker is in its fork hooks
        return worker.exitcode
    child = context.Process(target=nothing)
    child.start()
    armed = False
    os.read(ready_r, 1)
    child.terminate()
    child.join()
    return child.exitcode


executor, how = sys.argv[1:]
result = Runner("data", "log", executor=executor, console=False).run(
    Pipeline("starting", [starts(how=how)])
)
print("exit code", result["Starts()"] if result.ok else result.failed, flush=True)
"""

WAIT = 30.0
"""Seconds the script gets to print its line: a run of one task takes well under one."""


@pytest.mark.timeout(2 * WAIT)
@pytest.mark.parametrize("how", ["pool", "process"])
# process: a worker's own SIGTERM handler ends a child that runs it too, so that one passed
# before; it stays, so that the fork hooks keep working in a worker's children
@pytest.mark.parametrize("executor", ["inline", "thread", "process"])
def test_a_sigterm_ends_a_process_a_task_forked_while_it_is_still_starting(
    tmp_path: Path, executor: str, how: str
) -> None:
    """A SIGTERM that reaches a task's child before its fork hooks are done ends it, as it does
    without pyperunner: a pool's ``with`` block ends instead of waiting for ever for a worker
    that lived on, and a ``Process.terminate`` ends the process."""
    script = write_script(tmp_path, "starting.py", STARTING_SCRIPT)
    with scripts() as started:
        run = Script(tmp_path, script, executor, how)
        started.append(run)
        try:
            line = run.read_line(WAIT)
        except AssertionError as exc:  # it hangs: the run's log tells what the child did
            raise AssertionError(f"{exc}\nthe run's log:\n{run_log(tmp_path)}") from None
        assert line == f"exit code {-signal.SIGTERM}", run_log(tmp_path)
        assert run.wait(WAIT) == 0, run.stderr()


def run_log(folder: Path) -> str:
    """The log of the run the script in ``folder`` made (pool workers write to it too)."""
    return "".join(log.read_text() for log in (folder / "log").glob("*/pipeline.log"))
