"""The live progress view: what it shows, and plain log lines when there is no terminal."""

from __future__ import annotations

import io
import logging
import os
import pty
import select
import signal
import sys
import time

import pytest
from rich.console import Console

from pyperunner import Pipeline, Runner, task
from pyperunner.report.progress import LiveProgress
from pyperunner.status import Status, TaskRun


@task("Ok", receives_input=False)
def ok():
    return 1


@task("Bad", receives_input=False)
def bad():
    raise ValueError("broken on purpose")


def terminal() -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=True, width=100, color_system=None), out


def test_view_shows_counts_bar_running_tasks_and_failures():
    console, _ = terminal()
    view = LiveProgress("demo", console=console)
    view.plan(["A()", "B()", "C()"], ["D()"])
    view.update("A()", TaskRun(Status.RUNNING))
    view.update("B()", TaskRun(Status.RUNNING))
    view.update("B()", TaskRun(Status.FAILURE, error="ValueError: boom"))
    view.update("C()", TaskRun(Status.CANT_RUN))
    with console.capture() as capture:
        console.print(view.render())
    text = capture.get()
    assert "1 RUNNING" in text and "1 FAILURE" in text and "1 CACHED" in text
    assert "1 CANT_RUN" in text
    assert "2/3 tasks to run" in text
    assert "▶ A()" in text and "▶ B()" not in text
    assert "✗ B(): ValueError: boom" in text


def test_the_view_says_how_many_failures_it_leaves_out():
    console, _ = terminal()
    view = LiveProgress("demo", console=console)
    names = [f"T({i})" for i in range(8)]
    view.plan(names, [])
    for name in names:
        view.update(name, TaskRun(Status.FAILURE, error=f"ValueError: {name}"))
    with console.capture() as capture:
        console.print(view.render())
    text = capture.get()
    assert "3 more failure(s) before these" in text
    assert "✗ T(7)" in text and "✗ T(2): " not in text


def test_runner_shows_the_live_view_when_asked(tmp_path, capsys):
    pipeline = Pipeline("live", [ok("x"), bad("y")])
    Runner(tmp_path / "d", tmp_path / "l", executor="inline", progress=True).run(pipeline)
    err = capsys.readouterr().err
    assert "tasks to run" in err
    assert "broken on purpose" in err  # failures show up on the console
    assert "Starting Ok(x)" not in err  # per-task info lines stay in the log file only
    (run_dir,) = (tmp_path / "l").glob("live_*")
    assert f"Stored pipeline parameters in {run_dir / 'pipeline.yaml'}" in err  # where it went
    assert "Plan:" not in err
    assert "Starting Ok(x)" in (run_dir / "pipeline.log").read_text()


def test_without_a_terminal_the_console_gets_plain_log_lines(tmp_path, capsys):
    pipeline = Pipeline("plain", [ok("x")])
    Runner(tmp_path / "d", tmp_path / "l", executor="inline").run(pipeline)
    err = capsys.readouterr().err
    assert "Starting Ok(x)" in err
    assert "tasks to run" not in err
    assert "\x1b[" not in err


@task("Says", receives_input=False)
def says():
    print("said once")
    return 1


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_a_script_logging_to_the_terminal_itself_sees_each_line_once(tmp_path, capsys, executor):
    """``logging.basicConfig()`` in the script: the run's lines are not on the terminal twice,
    once in each format, and the script's handler has every other line as before."""
    theirs = logging.StreamHandler(sys.stderr)
    theirs.setFormatter(logging.Formatter("theirs: %(message)s"))
    root = logging.getLogger()
    root.addHandler(theirs)
    try:
        logging.warning("before the run")
        Runner(tmp_path / "d", tmp_path / "l", executor=executor).run(Pipeline("p", [says()]))
        logging.warning("after the run")
    finally:
        root.removeHandler(theirs)
    err = capsys.readouterr().err
    assert err.count("Starting Says()") == 1
    assert err.count("said once") == 1
    assert "theirs: before the run" in err and "theirs: after the run" in err
    assert "theirs: Starting" not in err


def test_progress_false_and_console_false_keep_the_console_quiet(tmp_path, capsys):
    pipeline = Pipeline("quiet", [ok("x")])
    Runner(tmp_path / "d", tmp_path / "l", executor="inline", progress=False).run(pipeline)
    assert "tasks to run" not in capsys.readouterr().err
    Runner(tmp_path / "d", tmp_path / "l", executor="inline", console=False).run(pipeline)
    assert capsys.readouterr().err == ""


@task("After", receives_input=True)
def after(data):
    return data


def test_with_the_live_view_a_failure_is_told_once_not_with_every_log_line(tmp_path, capsys):
    pipeline = Pipeline("once", [after("z")(bad("y")), ok("x")])
    Runner(tmp_path / "d", tmp_path / "l", executor="inline", progress=True).run(pipeline)
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "broken on purpose" in line]
    assert lines == ["  ✗ Bad(y): ValueError: broken on purpose"], err  # the view's, only
    assert "Traceback" not in err  # the traceback is in the log file and in run.yaml
    assert "can't run" not in err
    log = next((tmp_path / "l").glob("once_*/pipeline.log")).read_text()
    assert "Traceback" in log and "can't run" in log


ON_A_TERMINAL = """
import sys
import threading
from pyperunner import Pipeline, Runner, task


@task("Chatty", receives_input=False)
def chatty():
    print("marker: a print of the task")
    threading.Thread(target=print, args=("marker: a thread of the task",)).start()
    sys.stderr.write("marker: to stderr\\n")
    return 1


@task("Broken", receives_input=False)
def broken():
    raise ValueError("marker: broken on purpose")


runner = Runner("data", "log", executor=sys.argv[1])
runner.run(Pipeline("tty", [chatty(), broken()]))
print("marker: run returned", flush=True)
"""


def on_a_terminal(folder, script: str, *args: str, answers=()) -> tuple[str, bool]:
    """Run ``script`` in ``folder`` on a pseudo-terminal; return what it wrote there and whether
    it ended within 60 s. ``answers`` are (prompt, reply) pairs: each reply is typed once its
    prompt has appeared."""
    path = folder / "script.py"
    path.write_text(script)
    pid, master = pty.fork()
    if pid == 0:  # the child: a script on a terminal, as a user runs it
        os.chdir(folder)
        os.execv(sys.executable, [sys.executable, str(path), *args])
    output, closed, pending = b"", False, list(answers)
    deadline = time.monotonic() + 60
    try:
        while not closed and select.select([master], [], [], deadline - time.monotonic())[0]:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                chunk = b""
            output += chunk
            closed = not chunk
            while pending and pending[0][0] in output:
                os.write(master, pending.pop(0)[1])
    finally:
        if not closed:  # still writing, or silent, after 60 s: it hangs
            os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(master)
    return output.decode(errors="replace"), closed


@pytest.mark.parametrize("executor", ["process", "thread", "inline"])
def test_on_a_real_terminal_the_live_view_ends_and_the_run_returns(tmp_path, executor):
    text, ended = on_a_terminal(tmp_path, ON_A_TERMINAL, executor)
    assert ended, f"the run did not return in 60 s:\n{text[-2000:]}"
    assert "marker: run returned" in text
    assert "tasks to run" in text  # the live view was up
    assert "Pipeline finished with failures" in text
    log = next((tmp_path / "log").glob("tty_*/pipeline.log")).read_text()
    assert "marker: a print of the task" in log and "marker: to stderr" in log


DEBUGGED = """
from pyperunner import Pipeline, Runner, task


@task("Debugged", receives_input=False)
def debugged():
    value = 41
    print("marker: printed once")
    breakpoint()
    return value + 1


result = Runner("data", "log", executor="inline", progress=False).run(Pipeline("pdb", [debugged()]))
print("marker: result", result["Debugged()"])
"""


def test_pdb_works_in_an_inline_task_on_a_terminal(tmp_path):
    answers = [(b"(Pdb) ", b"p value * 2\n"), (b"82", b"c\n")]
    text, ended = on_a_terminal(tmp_path, DEBUGGED, answers=answers)
    assert ended, f"the run did not return in 60 s:\n{text[-2000:]}"
    assert "(Pdb) " in text and "82" in text  # the prompt showed, and pdb answered
    assert "marker: result 42" in text
    assert text.count("marker: printed once") == 1  # on the terminal as printed, not twice
    log = next((tmp_path / "log").glob("pdb_*/pipeline.log")).read_text()
    assert "marker: printed once" in log  # and in the log all the same


PRINTS_INLINE = """
from pyperunner import Pipeline, Runner, task


@task("Prints", receives_input=False)
def prints():
    for i in range(3):
        print(f"marker: value 4{i}")
    return 1


Runner("data", "log", executor="inline").run(Pipeline("prints", [prints()]))
"""


def test_an_inline_task_s_prints_show_under_the_live_view_as_printed(tmp_path):
    text, ended = on_a_terminal(tmp_path, PRINTS_INLINE)
    assert ended, text[-2000:]
    assert "tasks to run" in text  # the live view was up
    for i in range(3):  # neither recoloured (the digits) nor followed by an empty line
        assert f"marker: value 4{i}\r\n" in text, text
        assert f"marker: value 4{i}\r\n\r\n" not in text, text
