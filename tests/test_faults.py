"""Fault-injection tests: real processes, real signals and real files against the engine.

Dead workers (SIGKILL, ``os._exit``, segfault), interrupts of the runner (SIGINT, SIGTERM) and
resuming afterwards, SIGKILL of the runner at many instants during a run that writes large
outputs, damaged cache entries and leftovers of interrupted writes, concurrent runners on one
``data_path`` and locks left by dead processes. Most tests run a user script in a fresh Python
process that leads its own session, so every process it starts can be found (and killed in the
end) through ``/proc``; waits block on events (pipes, fifos, pidfds, process exit) with bounded
timeouts.
"""

from __future__ import annotations

import contextlib
import ctypes
import faulthandler
import hashlib
import itertools
import json
import os
import random
import re
import select
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import joblib
import pytest
import yaml
from click.testing import CliRunner
from conftest import parent_of, record_call

from pyperunner import Pipeline, PipelineResult, Runner, Status, Task, run
from pyperunner.cli import main as cli_main
from pyperunner.store import Store, StoreError

TESTS_DIR = Path(__file__).resolve().parent
WAIT = 60.0
"""Upper bound of every wait on a process or a pipe, so a broken engine fails instead of hanging."""


WAITING = re.compile(r"\bwaiting\b.*\b(lock|another run)\b", re.IGNORECASE)
"""What a run logs when it blocks on an entry another process is computing."""

_counter = itertools.count()


# --------------------------------------------------------------------------- tasks
# Module-level tasks are imported by the scripts too, so the test process knows their keys.


class Echo(Task):
    """Records its execution and returns its tag."""

    @run
    def run(self, data):
        record_call(self.name)
        return self.tag


class Die(Task):
    """Writes the time to ``folder/<name>.died`` and then kills its own worker as ``how`` says."""

    @run
    def run(self, data, how, folder):
        record_call(self.name)
        Path(folder, f"{self.name}.died").write_text(repr(time.time()))
        if how == "sigkill-leaving-a-child":  # the child holds every inherited descriptor,
            ready, said = os.pipe()  # and outlives the worker: a session of its own
            if os.fork() == 0:
                os.setsid()
                Path(folder, f"{self.name}.child").write_text(str(os.getpid()))
                os.write(said, b"!")
                time.sleep(WAIT)
                os._exit(0)
            os.read(ready, 1)
            os.kill(os.getpid(), signal.SIGKILL)
        if how == "sigkill":
            os.kill(os.getpid(), signal.SIGKILL)
        elif how == "exit7":
            os._exit(7)
        elif how == "segfault":
            faulthandler.disable()  # pytest's, inherited: no "Fatal Python error" dump
            ctypes.string_at(0)
        time.sleep(5)  # a signal may take a moment to land; the worker never gets here
        raise AssertionError(f"{self.name} survived {how}")


def blob_value(seed: int, size: int, parents: list[dict[str, Any]]) -> dict[str, Any]:
    """What a ``Blob`` computes: seeded random bytes and the digests of its inputs."""
    return {
        "seed": seed,
        "bytes": random.Random(seed).randbytes(size),
        "parents": [hashlib.sha256(parent["bytes"]).hexdigest() for parent in parents],
    }


class Blob(Task):
    """Returns ``size`` deterministic random bytes (incompressible, so writing takes time)."""

    @run
    def run(self, data, seed, size):
        record_call(self.name)
        return blob_value(seed, size, list(data))


BLOB_SIZE = 2_000_000
BLOB_WIRING = {  # name: (seed, parents)
    "Blob(a)": (1, []),
    "Blob(b)": (2, ["Blob(a)"]),
    "Blob(c)": (3, ["Blob(a)"]),
    "Blob(d)": (4, ["Blob(b)", "Blob(c)"]),
    "Blob(e)": (5, []),
    "Blob(f)": (6, ["Blob(e)"]),
}


def blob_pipeline(size: int = BLOB_SIZE) -> Pipeline:
    """Two branches of tasks with large outputs: a -> (b, c) -> d and e -> f."""
    made: dict[str, Task] = {}
    for name, (seed, parents) in BLOB_WIRING.items():
        blob = Blob(name[len("Blob(") : -1], seed=seed, size=size)
        if parents:
            blob([made[p] for p in parents])
        made[name] = blob
    return Pipeline("blobs", [made["Blob(a)"], made["Blob(e)"]])


def small_blob_pipeline() -> Pipeline:
    return blob_pipeline(size=200_000)


def expected_blobs(size: int = BLOB_SIZE) -> dict[str, dict[str, Any]]:
    """What every task of ``blob_pipeline(size)`` must have stored."""
    values: dict[str, dict[str, Any]] = {}
    for name, (seed, parents) in BLOB_WIRING.items():
        values[name] = blob_value(seed, size, [values[p] for p in parents])
    return values


def single_echo_pipeline() -> Pipeline:
    return Pipeline("locked", [Echo("locked")])


# --------------------------------------------------------------------------- processes


def write_script(folder: Path, name: str, code: str) -> Path:
    """Write a user script into ``folder``; ``@TESTS@`` stands for the tests folder."""
    path = folder / name
    path.write_text(textwrap.dedent(code).lstrip().replace("@TESTS@", repr(str(TESTS_DIR))))
    return path


class LineReader:
    """Reads lines from a file descriptor with a deadline, optionally giving up when a process
    ends (watched through a pidfd)."""

    def __init__(self, fd: int, watch: int | None = None) -> None:
        self.fd = fd
        self.watch = None if watch is None else os.pidfd_open(watch)
        self.buffer = b""

    def read_line(self, timeout: float = WAIT) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line within {timeout} s (got {self.buffer!r})")
            watched = [self.fd] if self.watch is None else [self.fd, self.watch]
            ready, _, _ = select.select(watched, [], [], left)
            if self.fd in ready:
                try:
                    chunk = os.read(self.fd, 65536)
                except BlockingIOError:
                    continue
                if not chunk:
                    raise AssertionError(f"end of stream before a full line ({self.buffer!r})")
                self.buffer += chunk
            elif ready:  # the watched process ended without writing a line
                raise AssertionError(f"process ended before writing a line ({self.buffer!r})")
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()

    def close(self) -> None:
        if self.watch is not None:
            os.close(self.watch)
            self.watch = None


class Script:
    """A user script running in a fresh Python process that leads a session of its own.

    Its stdout is a pipe the test reads marker lines from; its stderr goes to a file.
    """

    def __init__(
        self,
        folder: Path,
        script: Path,
        *args: str,
        env: dict[str, str] | None = None,
        stdin: bool = False,
    ) -> None:
        self.stderr_path = folder / f"{script.stem}.{next(_counter)}.stderr"
        with open(self.stderr_path, "wb") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, str(script), *args],
                cwd=folder,
                stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=env,
                start_new_session=True,
            )
        assert self.proc.stdout is not None
        self.stdout = LineReader(self.proc.stdout.fileno(), watch=self.proc.pid)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def read_line(self, timeout: float = WAIT) -> str:
        try:
            return self.stdout.read_line(timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nstderr:\n{self.stderr()}") from None

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def wait(self, timeout: float = WAIT) -> int:
        return self.proc.wait(timeout=timeout)

    def rest_of_stdout(self, timeout: float = WAIT) -> str:
        """Everything the script printed after the lines already read, once it has exited."""
        self.wait(timeout)
        lines = []
        with contextlib.suppress(AssertionError):
            while True:
                lines.append(self.stdout.read_line(timeout=1.0))
        return "\n".join(lines)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def kill_session(self) -> None:
        """SIGKILL the script and every process of its session; close the pipes."""
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        for pid in session_members(self.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=WAIT)
        self.stdout.close()
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


@contextlib.contextmanager
def scripts() -> Any:
    """Collects started scripts and kills their sessions at the end, whatever happened."""
    started: list[Script] = []
    try:
        yield started
    finally:
        for script in started:
            script.kill_session()


def start_when_started(
    started: list[Script], tmp_path: Path, script: Path, fifo_variable: str, **env: str
) -> Script:
    """Start ``script``; return once its task has said "started" on the fifo the environment
    variable ``fifo_variable`` names (``env`` adds more variables)."""
    fifo = tmp_path / "started.fifo"
    os.mkfifo(fifo)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # open first: the task never blocks
    runner = Script(tmp_path, script, env={**os.environ, fifo_variable: str(fifo), **env})
    started.append(runner)
    channel = LineReader(reader, watch=runner.pid)
    try:
        assert channel.read_line() == "started", runner.stderr()
    finally:
        channel.close()
        os.close(reader)
    return runner


def process_state(pid: int) -> str | None:
    """The state letter of ``pid`` from /proc (``Z`` for a zombie), or None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat[stat.rindex(")") + 2 :].split()[0]


def session_members(sid: int) -> list[int]:
    """Processes of session ``sid`` that are alive (zombies do not count)."""
    members = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            members.append(int(entry))
    return members


def is_gone(pid: int) -> bool:
    """True if ``pid`` no longer runs: no such process (``os.kill(pid, 0)``), or a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return process_state(pid) in (None, "Z", "X")


def wait_gone(pid: int, timeout: float) -> bool:
    """Block until ``pid`` has ended (its pidfd becomes readable) or ``timeout`` passes."""
    if is_gone(pid):
        return True
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        select.select([fd], [], [], timeout)
    finally:
        os.close(fd)
    return is_gone(pid)


def leftovers(sid: int, grace: float = 1.0) -> list[str]:
    """Processes of session ``sid`` still alive after ``grace`` seconds, described."""
    deadline = time.monotonic() + grace
    alive = []
    for pid in session_members(sid):
        if not wait_gone(pid, max(0.0, deadline - time.monotonic())):
            with contextlib.suppress(OSError):
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                alive.append(f"{pid}: {cmdline.decode(errors='replace').strip()}")
    return alive


def run_folders(log: Path) -> list[Path]:
    return sorted(p.parent for p in log.glob("*/pipeline.yaml"))


def run_doc(run_dir: Path) -> dict[str, Any]:
    return yaml.safe_load((run_dir / "run.yaml").read_text())


def statuses_in(run_dir: Path) -> dict[str, str]:
    return {name: t["status"] for name, t in run_doc(run_dir)["tasks"].items()}


def temp_leftovers(data: Path) -> list[Path]:
    return sorted(data.rglob("*.tmp"))


def report(what: str, **figures: Any) -> None:
    """Print a measured figure (visible with ``pytest -s``)."""
    shown = ", ".join(
        f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}" for k, v in figures.items()
    )
    print(f"\n[measure] {what}: {shown}")


# --------------------------------------------------------------------------- 1. dead workers

DEATHS = {
    "sigkill": re.compile(r"SIGKILL"),
    "sigkill-leaving-a-child": re.compile(r"SIGKILL"),
    "exit7": re.compile(r"\bcode 7\b"),
    "segfault": re.compile(r"SIGSEGV"),
}


@pytest.mark.parametrize("how", list(DEATHS))
def test_dead_worker_is_failure_and_run_goes_on(tmp_path, calls, how):
    data, log = tmp_path / "data", tmp_path / "log"
    dying = Die("x", how=how, folder=str(tmp_path))
    child = Echo("child")(dying)
    Echo("grandchild")(child)
    other = Echo("other")
    Echo("other-child")(other)

    try:
        result = Runner(data, log, console=False).run(Pipeline("dead", [dying, other]))
        if how == "sigkill-leaving-a-child":  # its worker's failure did not wait for it
            assert not is_gone(int((tmp_path / "Die(x).child").read_text()))
    finally:
        with contextlib.suppress(FileNotFoundError, ProcessLookupError):
            os.kill(int((tmp_path / "Die(x).child").read_text()), signal.SIGKILL)

    assert result.statuses == {
        "Die(x)": Status.FAILURE,
        "Echo(child)": Status.CANT_RUN,
        "Echo(grandchild)": Status.CANT_RUN,
        "Echo(other)": Status.SUCCESS,
        "Echo(other-child)": Status.SUCCESS,
    }
    assert calls.counts() == {"Die(x)": 1, "Echo(other)": 1, "Echo(other-child)": 1}
    assert result["Echo(other-child)"] == "other-child"

    error = result.runs["Die(x)"].error
    assert DEATHS[how].search(error), error
    (run_dir,) = run_folders(log)
    recorded = run_doc(run_dir)["tasks"]["Die(x)"]
    assert recorded["status"] == "FAILURE"
    assert DEATHS[how].search(recorded["error"]), recorded
    log_text = (run_dir / "pipeline.log").read_text()
    failed_lines = [line for line in log_text.splitlines() if "Die(x)" in line and "ERROR" in line]
    assert any(DEATHS[how].search(line) for line in failed_lines), log_text

    died = float((tmp_path / "Die(x).died").read_text())
    to_failure = recorded["finished"] - died
    report(f"dead worker ({how}, in-process)", death_to_failure_s=to_failure)


DEAD_WORKERS_SCRIPT = """
import json
import sys

sys.path.insert(0, @TESTS@)
from test_faults import Die, Echo

from pyperunner import Pipeline, Runner

roots = []
for how in ("sigkill", "exit7", "segfault"):
    dying = Die(how, how=how, folder=sys.argv[1])
    Echo(f"after-{how}")(dying)
    roots.append(dying)
other = Echo("other")
Echo("other-child")(other)
runner = Runner(data_path="data", log_path="log", process_limit=2, console=False)
result = runner.run(Pipeline("dead-workers", [*roots, other]))
print(json.dumps({name: status.value for name, status in result.statuses.items()}))
print("run returned normally", flush=True)
"""


def test_dead_workers_in_a_runner_script_fail_their_tasks_and_the_script_ends_normally(
    tmp_path, calls
):
    script = write_script(tmp_path, "dead_workers.py", DEAD_WORKERS_SCRIPT)
    stamps = tmp_path / "stamps"
    stamps.mkdir()
    with scripts() as started:
        runner = Script(tmp_path, script, str(stamps))
        started.append(runner)
        code = runner.wait()
        output = runner.rest_of_stdout()
        assert code == 0, runner.stderr()
        assert leftovers(runner.pid) == []

    statuses = json.loads(output.splitlines()[0])
    assert output.splitlines()[1] == "run returned normally"
    assert statuses == {
        "Die(sigkill)": "FAILURE",
        "Die(exit7)": "FAILURE",
        "Die(segfault)": "FAILURE",
        "Echo(after-sigkill)": "CANT_RUN",
        "Echo(after-exit7)": "CANT_RUN",
        "Echo(after-segfault)": "CANT_RUN",
        "Echo(other)": "SUCCESS",
        "Echo(other-child)": "SUCCESS",
    }
    assert calls.counts() == {
        "Die(sigkill)": 1,
        "Die(exit7)": 1,
        "Die(segfault)": 1,
        "Echo(other)": 1,
        "Echo(other-child)": 1,
    }
    (run_dir,) = run_folders(tmp_path / "log")
    tasks = run_doc(run_dir)["tasks"]
    log_text = (run_dir / "pipeline.log").read_text()
    for how in ("sigkill", "exit7", "segfault"):
        name, pattern = f"Die({how})", DEATHS[how]
        assert pattern.search(tasks[name]["error"]), tasks[name]
        assert any(pattern.search(line) for line in log_text.splitlines() if name in line), log_text
        died = float((stamps / f"{name}.died").read_text())
        to_failure = tasks[name]["finished"] - died
        report(f"dead worker ({how}, runner script)", death_to_failure_s=to_failure)


# --------------------------------------------------------------------------- 2. interrupts

INTERRUPT_SCRIPT = """
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, @TESTS@)
from conftest import record_call

from pyperunner import Pipeline, Runner, task

signal.signal(signal.SIGHUP, signal.SIG_DFL)  # as on a terminal, even if the tests run nohup
if os.environ.get("FAULTS_NO_PIDFDS"):  # as on an old kernel: no fork server, no pidfds
    del os.pidfd_open


@task("Alpha", receives_input=False)
def alpha():
    record_call("Alpha()")
    return "alpha"


@task("Long", receives_input=False)
def long_running():
    record_call("Long()")
    grandchild = subprocess.Popen(
        ["sleep", "60"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    Path("pids.txt").write_text(f"{os.getpid()} {grandchild.pid}")
    if os.environ.get("FAULTS_IGNORE_SIGTERM"):  # so that stopping it takes the grace period
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    fifo = os.environ.get("FAULTS_STARTED_FIFO")
    if fifo:
        with open(fifo, "w") as channel:
            channel.write("started\\n")
    time.sleep(float(os.environ.get("FAULTS_LONG_SECONDS", "30")))
    return "long"


@task("After")
def after(data):
    record_call("After()")
    return data[0] + " then after"


first = alpha()
slow = long_running()
after()(slow)
# one task at a time: Alpha() (first in name order) has finished when Long() starts
runner = Runner(
    data_path="data",
    log_path="log",
    process_limit=1,
    console=False,
    executor=os.environ.get("FAULTS_EXECUTOR", "process"),
)
result = runner.run(Pipeline("interrupt", [first, slow]))
print(result["After()"], flush=True)
"""


@pytest.mark.parametrize("executor", ["process", "pool", "thread", "inline"])
@pytest.mark.parametrize(
    ("signum", "returncode"),
    [
        (signal.SIGINT, -signal.SIGINT),
        (signal.SIGTERM, 128 + signal.SIGTERM),
        (signal.SIGHUP, 128 + signal.SIGHUP),  # the terminal closed
    ],
    ids=["SIGINT", "SIGTERM", "SIGHUP"],
)
def test_interrupted_runner_stops_workers_and_children_records_and_resumes(
    tmp_path, calls, signum, returncode, executor
):
    script = write_script(tmp_path, "interrupt.py", INTERRUPT_SCRIPT)
    with scripts() as started:
        runner = start_when_started(
            started, tmp_path, script, "FAULTS_STARTED_FIFO", FAULTS_EXECUTOR=executor
        )
        worker, grandchild = map(int, (tmp_path / "pids.txt").read_text().split())
        assert not is_gone(worker) and not is_gone(grandchild)

        signalled = time.monotonic()
        os.kill(runner.pid, signum)
        code = runner.wait()
        to_exit = time.monotonic() - signalled
        report(f"runner exit after {signum.name}", signal_to_exit_s=to_exit)
        assert code == returncode, runner.stderr()
        assert wait_gone(worker, 0.5), process_state(worker)
        assert wait_gone(grandchild, 0.5), process_state(grandchild)
        assert leftovers(runner.pid) == []

    (run_dir,) = run_folders(tmp_path / "log")
    interrupted = run_doc(run_dir)["tasks"]
    assert interrupted["Alpha()"]["status"] == "SUCCESS"
    assert interrupted["Long()"]["status"] == "INTERRUPTED"
    assert interrupted["After()"]["status"] == "NOT_STARTED"
    assert signum.name in (run_dir / "pipeline.log").read_text()
    assert calls.counts() == {"Alpha()": 1, "Long()": 1}

    # the same script again, with the long task made short (not a task parameter: same keys)
    calls.reset()
    env = {k: v for k, v in os.environ.items() if k != "FAULTS_STARTED_FIFO"}
    env["FAULTS_LONG_SECONDS"], env["FAULTS_EXECUTOR"] = "0.2", executor
    with scripts() as started:
        again = Script(tmp_path, script, env=env)
        started.append(again)
        assert again.wait() == 0, again.stderr()
        assert again.rest_of_stdout() == "long then after"
        assert leftovers(again.pid) == []
    assert calls.counts() == {"Long()": 1, "After()": 1}
    resumed = [d for d in run_folders(tmp_path / "log") if d != run_dir]
    assert len(resumed) == 1
    assert statuses_in(resumed[0]) == {
        "Alpha()": "CACHED",
        "Long()": "SUCCESS",
        "After()": "SUCCESS",
    }
    grandchild_again = int((tmp_path / "pids.txt").read_text().split()[1])
    assert wait_gone(grandchild_again, 0.5)  # a task's processes end with the task


def test_a_second_signal_while_stopping_still_records_the_run(tmp_path, calls):
    script = write_script(tmp_path, "interrupt.py", INTERRUPT_SCRIPT)
    with scripts() as started:
        runner = start_when_started(
            started, tmp_path, script, "FAULTS_STARTED_FIFO", FAULTS_IGNORE_SIGTERM="1"
        )
        _, grandchild = map(int, (tmp_path / "pids.txt").read_text().split())
        os.kill(runner.pid, signal.SIGINT)
        assert wait_gone(grandchild, WAIT)  # SIGTERM reached the worker's group: the grace began
        os.kill(runner.pid, signal.SIGTERM)
        os.kill(runner.pid, signal.SIGINT)
        assert runner.wait() == -signal.SIGINT, runner.stderr()
        assert leftovers(runner.pid) == []
    (run_dir,) = run_folders(tmp_path / "log")
    assert run_doc(run_dir)["tasks"]["Long()"]["status"] == "INTERRUPTED"
    assert "_Signalled" not in runner.stderr()


def test_a_run_that_is_still_going_is_shown_as_going_with_its_running_task(tmp_path, calls):
    script = write_script(tmp_path, "interrupt.py", INTERRUPT_SCRIPT)
    with scripts() as started:
        runner = start_when_started(started, tmp_path, script, "FAULTS_STARTED_FIFO")
        (run_dir,) = run_folders(tmp_path / "log")
        assert PipelineResult.from_file(run_dir).statuses == {
            "Alpha()": Status.SUCCESS,
            "Long()": Status.RUNNING,
            "After()": Status.NOT_STARTED,
        }
        shown = CliRunner().invoke(cli_main, ["show", str(run_dir)])
        assert "still going" in shown.output and "Long() [RUNNING]" in shown.output
        listed = CliRunner().invoke(cli_main, ["runs", str(tmp_path / "log")])
        assert "still going" in listed.output
        os.kill(runner.pid, signal.SIGINT)
        assert runner.wait() == -signal.SIGINT
    assert PipelineResult.from_file(run_dir).statuses["Long()"] is Status.INTERRUPTED
    assert not (run_dir / ".running").exists()


POOL_SCRIPT = """
import multiprocessing
import os
import sys
import time

from pyperunner import Pipeline, Runner, task


@task("Pooled", receives_input=False)
def pooled():
    with multiprocessing.get_context("fork").Pool(2) as pool:
        with open(os.environ["FAULTS_STARTED_FIFO"], "w") as channel:
            channel.write("started\\n")
        return pool.map(time.sleep, [30, 30])


executor = os.environ["FAULTS_EXECUTOR"]
Runner("data", "log", executor=executor, console=False).run(Pipeline("pooled", [pooled()]))
"""


@pytest.mark.parametrize("executor", ["thread", "inline"])
def test_a_signal_ends_a_run_whose_in_process_task_uses_a_multiprocessing_pool(tmp_path, executor):
    script = write_script(tmp_path, "pooled.py", POOL_SCRIPT)
    with scripts() as started:
        runner = start_when_started(
            started, tmp_path, script, "FAULTS_STARTED_FIFO", FAULTS_EXECUTOR=executor
        )
        os.kill(runner.pid, signal.SIGTERM)
        assert runner.wait() == 128 + signal.SIGTERM, runner.stderr()  # not stuck at its exit
        assert leftovers(runner.pid) == []
    (run_dir,) = run_folders(tmp_path / "log")
    assert run_doc(run_dir)["tasks"]["Pooled()"]["status"] == "INTERRUPTED"


@pytest.mark.parametrize("pidfds", [True, False], ids=["pidfds", "no-pidfds"])
def test_workers_and_their_children_end_when_the_runner_is_killed(tmp_path, calls, pidfds):
    """With pidfds, the fork server and each worker watch the runner's; without, a worker
    watches the pipe ``multiprocessing`` gave it from the runner, its parent."""
    script = write_script(tmp_path, "interrupt.py", INTERRUPT_SCRIPT)
    env = {} if pidfds else {"FAULTS_NO_PIDFDS": "1"}
    with scripts() as started:
        runner = start_when_started(started, tmp_path, script, "FAULTS_STARTED_FIFO", **env)
        worker, grandchild = map(int, (tmp_path / "pids.txt").read_text().split())
        server = parent_of(worker)  # the fork server that forked it, if there is one
        assert (server != runner.pid and parent_of(server) == runner.pid) is pidfds
        killed = time.monotonic()
        os.kill(runner.pid, signal.SIGKILL)
        assert runner.wait() == -signal.SIGKILL
        for pid in {worker, grandchild, server} - {runner.pid}:
            assert wait_gone(pid, 2.0), process_state(pid)
        report("workers gone after runner SIGKILL", seconds=time.monotonic() - killed)
    (run_dir,) = run_folders(tmp_path / "log")
    assert not (run_dir / "run.yaml").exists()  # the runner had no chance to record the run
    recovered = PipelineResult.from_file(run_dir)  # so the store and the log tell what it did
    assert recovered.statuses == {
        "Alpha()": Status.SUCCESS,
        "Long()": Status.INTERRUPTED,
        "After()": Status.NOT_STARTED,
    }
    assert recovered["Alpha()"] == "alpha"
    shown = CliRunner().invoke(cli_main, ["show", str(run_dir)])
    assert "Long() [INTERRUPTED]" in shown.output and "ended without recording" in shown.output


# --------------------------------------------------------------------------- 3. crash consistency

RUN_FACTORY_SCRIPT = """
import logging
import sys

sys.path.insert(0, @TESTS@)
import test_faults

from pyperunner import Runner

factory, data_path, log_path = sys.argv[1:4]
echo = sys.argv[4:] == ["echo-log"]  # the run's log lines on stdout too, for the test to read
console = logging.StreamHandler(sys.stdout) if echo else False
pipeline = getattr(test_faults, factory)()
runner = Runner(data_path=data_path, log_path=log_path, process_limit=2, console=console)
print("ready", flush=True)
runner.run(pipeline)
print("finished", flush=True)
"""

KILL_ITERATIONS = 10


def trusted_results_are_valid(data: Path, expected: dict[str, Any]) -> list[str]:
    """Check every result the store would trust now; return the names of those present."""
    store = Store(data)
    keys = blob_pipeline().keys()
    trusted = []
    for name, value in expected.items():
        if store.has(name, keys[name]):
            loaded = joblib.load(store.result_path(name, keys[name]))
            assert loaded == value, f"{name}: the store trusts a wrong result"
            trusted.append(name)
    return trusted


def complete_and_check(data: Path, log: Path, expected: dict[str, Any]) -> None:
    """Run the pipeline to completion in this process; every result must load and be right."""
    result = Runner(data, log, process_limit=2, console=False).run(blob_pipeline())
    assert result.ok, result.statuses
    for name, value in expected.items():
        assert joblib.load(result.path(name)) == value, name
    assert temp_leftovers(data) == []


def test_sigkill_of_runner_at_any_instant_never_leaves_a_result_a_later_run_trusts(tmp_path, calls):
    script = write_script(tmp_path, "blobs.py", RUN_FACTORY_SCRIPT)
    expected = expected_blobs()
    log = tmp_path / "log"

    with scripts() as started:  # an uninterrupted run tells when a run writes its results
        full = Script(tmp_path, script, "blob_pipeline", str(tmp_path / "data-full"), str(log))
        started.append(full)
        assert full.read_line() == "ready", full.stderr()
        began = time.time()
        assert full.wait() == 0, full.stderr()
        duration = time.time() - began
    last_write = max(p.stat().st_mtime for p in (tmp_path / "data-full").rglob("result.dump.gz"))
    writing = min(duration, max(0.2, last_write - began))
    complete_and_check(tmp_path / "data-full", tmp_path / "log-complete", expected)

    killed_mid_run = orphans = torn_writes = 0
    for i in range(KILL_ITERATIONS):
        # spread over the phase that writes results, and a little past it
        delay = 1.2 * writing * (i + 0.5) / KILL_ITERATIONS
        data = tmp_path / f"data-{i}"
        with scripts() as started:
            victim = Script(tmp_path, script, "blob_pipeline", str(data), str(log))
            started.append(victim)
            assert victim.read_line() == "ready", victim.stderr()
            time.sleep(delay)  # the instant of the crash, not a wait for something
            if victim.proc.poll() is None:  # else the run ended before this instant
                killed_mid_run += 1
                os.kill(victim.pid, signal.SIGKILL)
            if i % 2 == 0:  # the whole machine dies: workers too, at the same instant
                victim.kill_session()
            else:  # only the runner dies: its workers live on and finish their tasks
                orphans = max(orphans, len(session_members(victim.pid)))
            victim.wait()
            torn_writes += bool(temp_leftovers(data))
            trusted = trusted_results_are_valid(data, expected)
            report(f"SIGKILL at {delay:.2f} s", trusted_before_rerun=len(trusted))
            complete_and_check(data, tmp_path / "log-complete", expected)
    report(
        "runner SIGKILL",
        run_duration_s=duration,
        results_written_within_s=writing,
        killed_mid_run=killed_mid_run,
        iterations_leaving_temp_files=torn_writes,
        most_workers_outliving_the_runner=orphans,
    )
    assert killed_mid_run >= KILL_ITERATIONS // 3


class _StallWhilePickled:
    """While ``fifo`` exists, pickling it says so on the fifo and blocks: the result file is
    half written. Without the fifo it pickles as a plain string."""

    def __init__(self, fifo: str) -> None:
        self.fifo = fifo

    def __reduce__(self) -> Any:
        if os.path.exists(self.fifo):
            with open(self.fifo, "w") as signal_to_test:
                signal_to_test.write("writing\n")
            time.sleep(WAIT)
        return (str, ("written",))


class HalfWritten(Task):
    """Returns a large blob followed by an object whose pickling may stall (see above)."""

    @run
    def run(self, data, fifo):
        record_call(self.name)
        return [random.Random(0).randbytes(BLOB_SIZE), _StallWhilePickled(fifo)]


def torn_write_pipeline(fifo: str) -> Pipeline:
    return Pipeline("torn", [Echo("after")(HalfWritten("x", fifo=fifo))])


TORN_WRITE_SCRIPT = """
import sys

sys.path.insert(0, @TESTS@)
import test_faults

from pyperunner import Runner

fifo, data_path, log_path = sys.argv[1:4]
runner = Runner(data_path=data_path, log_path=log_path, console=False)
print("ready", flush=True)
runner.run(test_faults.torn_write_pipeline(fifo))
"""


@pytest.mark.parametrize("who", ["machine", "runner"])
def test_sigkill_in_the_middle_of_writing_a_result_leaves_nothing_trusted(tmp_path, calls, who):
    data, log, fifo = tmp_path / "data", tmp_path / "log", tmp_path / "writing.fifo"
    os.mkfifo(fifo)
    script = write_script(tmp_path, "torn.py", TORN_WRITE_SCRIPT)
    pipeline = torn_write_pipeline(str(fifo))
    key = pipeline.keys()["HalfWritten(x)"]
    store = Store(data)
    with scripts() as started:
        victim = Script(tmp_path, script, str(fifo), str(data), str(log))
        started.append(victim)
        assert victim.read_line() == "ready", victim.stderr()
        with open(fifo) as writing:  # blocks until the worker is inside the write
            assert writing.readline() == "writing\n"
        torn = temp_leftovers(data)
        assert torn and torn[0].stat().st_size > 0, "the result should be half written now"
        os.kill(victim.pid, signal.SIGKILL)
        if who == "machine":
            victim.kill_session()
        victim.wait()
        for pid in session_members(victim.pid):  # the workers end with the runner
            assert wait_gone(pid, WAIT), f"process {pid} outlived the runner"
        assert not store.has("HalfWritten(x)", key)
        assert not store.result_path("HalfWritten(x)", key).exists()
    fifo.unlink()
    calls.reset()

    result = Runner(data, log, console=False).run(pipeline)

    assert result.ok and calls.counts() == {"HalfWritten(x)": 1, "Echo(after)": 1}
    assert temp_leftovers(data) == []
    assert result["HalfWritten(x)"][1] == "written"


def damage_result(path: Path, how: str) -> None:
    content = path.read_bytes()
    path.write_bytes(content[: len(content) // 2] if how == "truncated" else b"")


@pytest.mark.parametrize("how", ["truncated", "emptied"])
def test_damaged_cache_entry_is_reported_naming_it_and_recomputed(tmp_path, calls, how):
    data, log = tmp_path / "data", tmp_path / "log"
    runner = Runner(data, log, console=False)
    first = runner.run(small_blob_pipeline())
    damaged = "Blob(b)"
    path = first.path(damaged)
    key = path.parent.name
    damage_result(path, how)
    calls.reset()

    second = runner.run(small_blob_pipeline())

    # Blob(d) may reuse its stored result: Blob(b) computes the same value under the same key
    assert calls.counts()["Blob(b)"] == 1
    assert set(calls.counts()) <= {"Blob(b)", "Blob(d)"}
    assert second.statuses["Blob(b)"] is Status.SUCCESS
    assert second.statuses["Blob(a)"] is Status.CACHED
    assert second.ok
    expected = expected_blobs(size=200_000)
    assert joblib.load(path) == expected[damaged]
    assert second[damaged] == expected[damaged]
    assert runner.run_dir is not None
    warnings = [
        line
        for line in (runner.run_dir / "pipeline.log").read_text().splitlines()
        if "WARNING" in line and damaged in line
    ]
    assert warnings, "no warning names the damaged entry"
    assert any(key in line for line in warnings), warnings


def test_damaged_entry_is_recomputed_by_a_runner_script(tmp_path, calls):
    script = write_script(tmp_path, "blobs.py", RUN_FACTORY_SCRIPT)
    data, log = tmp_path / "data", tmp_path / "log"
    Runner(data, log, console=False).run(small_blob_pipeline())
    key = small_blob_pipeline().keys()["Blob(f)"]
    damage_result(Store(data).result_path("Blob(f)", key), "truncated")
    calls.reset()
    with scripts() as started:
        again = Script(tmp_path, script, "small_blob_pipeline", str(data), str(log))
        started.append(again)
        assert again.wait() == 0, again.stderr()
    assert calls.counts() == {"Blob(f)": 1}
    assert (
        joblib.load(Store(data).result_path("Blob(f)", key)) == expected_blobs(200_000)["Blob(f)"]
    )
    newest = max(run_folders(log), key=lambda d: d.stat().st_mtime)
    warning = [
        line
        for line in (newest / "pipeline.log").read_text().splitlines()
        if "WARNING" in line and "Blob(f)" in line
    ]
    assert warning and key in warning[0], warning


def flip_a_byte(path: Path) -> bytes:
    """Change one bit in the middle of a file, keeping its size; return the new content."""
    content = bytearray(path.read_bytes())
    content[len(content) // 2] ^= 0x10
    path.write_bytes(bytes(content))
    return bytes(content)


def test_a_cached_input_changed_in_place_is_caught_before_it_is_read_and_recomputed(
    tmp_path, calls
):
    data, log = tmp_path / "data", tmp_path / "log"
    runner = Runner(data, log, console=False)
    first = runner.run(small_blob_pipeline())
    flipped = flip_a_byte(first.path("Blob(b)"))  # same size: only its checksum can tell
    Store(data).delete("Blob(d)", first.path("Blob(d)").parent.name)  # d runs, reading b
    calls.reset()

    looked = runner.plan(small_blob_pipeline())  # a plan only looked at changes nothing
    assert "stored result is damaged" in looked.why["Blob(b)"] and "CRC-32" in looked.why["Blob(b)"]
    assert first.path("Blob(b)").read_bytes() == flipped
    assert not (first.path("Blob(b)").parent / "result.dump.gz.damaged").exists()

    second = runner.run(small_blob_pipeline())

    assert second.ok and calls.counts() == {"Blob(b)": 1, "Blob(d)": 1}
    expected = expected_blobs(size=200_000)
    assert second["Blob(b)"] == expected["Blob(b)"] and second["Blob(d)"] == expected["Blob(d)"]
    assert (first.path("Blob(b)").parent / "result.dump.gz.damaged").read_bytes() == flipped
    assert runner.run_dir is not None
    text = (runner.run_dir / "pipeline.log").read_text()
    assert "Cached result of Blob(b) is damaged" in text and "CRC-32" in text


def test_a_stored_result_reused_below_a_recomputed_task_is_checked_first(tmp_path, calls):
    """Blob(a) is damaged, so b, c and d are planned to run; b finds its own entry stored under
    the same key and would reuse it, but its bytes changed in place: it is computed again, so d
    (whose entry is gone) reads good data and the run succeeds."""
    data, log = tmp_path / "data", tmp_path / "log"
    runner = Runner(data, log, console=False)
    first = runner.run(small_blob_pipeline())
    damage_result(first.path("Blob(a)"), "truncated")
    flipped = flip_a_byte(first.path("Blob(b)"))
    Store(data).delete("Blob(d)", first.path("Blob(d)").parent.name)  # d runs, reading b
    calls.reset()

    second = runner.run(small_blob_pipeline())

    assert second.ok, {n: r.error for n, r in second.runs.items() if r.error}
    assert calls.counts()["Blob(a)"] == 1 and calls.counts()["Blob(b)"] == 1
    expected = expected_blobs(size=200_000)
    assert second["Blob(b)"] == expected["Blob(b)"] and second["Blob(d)"] == expected["Blob(d)"]
    assert (first.path("Blob(b)").parent / "result.dump.gz.damaged").read_bytes() == flipped
    assert runner.run_dir is not None
    warnings = [
        line
        for line in (runner.run_dir / "pipeline.log").read_text().splitlines()
        if "WARNING" in line and "Blob(b)" in line
    ]
    assert any("CRC-32" in line for line in warnings), warnings


def test_a_result_changed_in_place_fails_to_load_by_name_and_is_then_recomputed(tmp_path, calls):
    data, log = tmp_path / "data", tmp_path / "log"
    runner = Runner(data, log, console=False)
    flip_a_byte(runner.run(small_blob_pipeline()).path("Blob(f)"))
    calls.reset()
    cached = runner.run(small_blob_pipeline())  # nothing runs, so nothing is read or checked
    assert calls.counts() == {}
    with pytest.raises(StoreError, match=r"Blob\(f\).*damaged.*CRC-32.*computes it again"):
        cached["Blob(f)"]
    why = runner.plan(small_blob_pipeline()).why["Blob(f)"]
    assert why.startswith("stored result is damaged (it was moved aside to") and ".damaged" in why
    again = runner.run(small_blob_pipeline())
    assert calls.counts() == {"Blob(f)": 1}
    assert again.runs["Blob(f)"].reason == why
    assert again["Blob(f)"] == expected_blobs(size=200_000)["Blob(f)"]


@pytest.mark.parametrize("stray", [".result.dump.gz.k3j_9xq2.tmp", ".params.yaml.w8e7r6t5.tmp"])
def test_stray_temp_file_in_cached_entry_is_removed_by_next_run(tmp_path, calls, stray):
    data, log = tmp_path / "data", tmp_path / "log"
    runner = Runner(data, log, console=False)
    first = runner.run(small_blob_pipeline())
    entry = first.path("Blob(c)").parent
    (entry / stray).write_bytes(os.urandom(50_000))
    calls.reset()

    second = runner.run(small_blob_pipeline())

    assert calls.counts() == {}
    assert set(second.statuses.values()) == {Status.CACHED}
    assert not (entry / stray).exists()
    assert temp_leftovers(data) == []
    assert second["Blob(c)"] == expected_blobs(200_000)["Blob(c)"]


def test_leftover_of_interrupted_write_in_incomplete_entry_is_removed_on_recompute(tmp_path, calls):
    data, log = tmp_path / "data", tmp_path / "log"
    runner = Runner(data, log, console=False)
    first = runner.run(small_blob_pipeline())
    path = first.path("Blob(e)")
    half = path.read_bytes()[:1000]
    path.unlink()  # as if the runner died before the rename: only the temporary file is left
    (path.parent / ".result.dump.gz.a1b2c3d4.tmp").write_bytes(half)
    calls.reset()

    second = runner.run(small_blob_pipeline())

    assert calls.counts()["Blob(e)"] == 1
    assert set(calls.counts()) <= {"Blob(e)", "Blob(f)"}
    assert second.statuses["Blob(e)"] is Status.SUCCESS
    assert second.ok
    assert temp_leftovers(data) == []
    assert joblib.load(path) == expected_blobs(200_000)["Blob(e)"]


# --------------------------------------------------------------------------- 4. concurrent runs

CONCURRENT_SCRIPT = """
import json
import sys
import time

sys.path.insert(0, @TESTS@)
from conftest import record_call

from pyperunner import Pipeline, Runner, Task, run


class Slow(Task):
    \"\"\"Takes a while, records its execution and adds its value to its inputs.\"\"\"

    @run
    def run(self, data, value):
        record_call(self.name)
        time.sleep(0.3)
        return value + sum(data)


a = Slow("a", value=1)
b = Slow("b", value=10)(a)
c = Slow("c", value=100)(a)
Slow("d", value=1000)([b, c])
e = Slow("e", value=5)
runner = Runner(data_path=sys.argv[1], log_path=sys.argv[2], process_limit=2, console=False)
pipeline = Pipeline("together", [a, e])
print("ready", flush=True)
sys.stdin.readline()  # the start barrier: every runner starts when the test says go
result = runner.run(pipeline)
print(json.dumps({"run_dir": str(runner.run_dir), "results": {n: result[n] for n in result}}))
"""

SLOW_RESULTS = {
    "Slow(a)": 1,
    "Slow(b)": 11,
    "Slow(c)": 101,
    "Slow(d)": 1112,
    "Slow(e)": 5,
}


@pytest.mark.parametrize(
    ("count", "shared_log"),
    [(2, True), (2, False), (3, True)],
    ids=["two-runners-one-log-path", "two-runners-own-log-paths", "three-runners-one-log-path"],
)
def test_concurrent_runners_on_one_data_path_compute_each_entry_once(
    tmp_path, calls, count, shared_log
):
    script = write_script(tmp_path, "together.py", CONCURRENT_SCRIPT)
    data = tmp_path / "data"
    logs = [tmp_path / ("log" if shared_log else f"log-{i}") for i in range(count)]
    with scripts() as started:
        for log in logs:
            started.append(Script(tmp_path, script, str(data), str(log), stdin=True))
        for runner in started:
            assert runner.read_line() == "ready", runner.stderr()
        for runner in started:
            runner.send("go\n")
        codes = [runner.wait() for runner in started]
        outputs = [runner.rest_of_stdout() for runner in started]
        assert codes == [0] * count, [r.stderr() for r in started]
        for runner in started:
            assert leftovers(runner.pid) == []

    docs = [json.loads(output.splitlines()[-1]) for output in outputs]
    assert all(doc["results"] == SLOW_RESULTS for doc in docs), docs
    assert calls.counts() == dict.fromkeys(SLOW_RESULTS, 1)
    run_dirs = [Path(doc["run_dir"]) for doc in docs]
    assert len(set(run_dirs)) == count
    assert all((d / "run.yaml").is_file() for d in run_dirs)

    per_run = [run_doc(d)["tasks"] for d in run_dirs]
    waits = []
    for name in SLOW_RESULTS:
        seen = sorted(tasks[name]["status"] for tasks in per_run)
        assert seen == ["CACHED"] * (count - 1) + ["SUCCESS"], (name, seen)
        for tasks in per_run:
            record = tasks[name]
            if record["status"] == "CACHED" and record.get("started") is not None:
                waits.append(record["finished"] - record["started"])
    logs_text = [(d / "pipeline.log").read_text() for d in run_dirs]
    waited = sum(len(WAITING.findall(text)) for text in logs_text)
    report(
        f"{count} concurrent runners",
        waiting_lines=waited,
        longest_wait_s=max(waits, default=0.0),
        waits=[round(w, 3) for w in sorted(waits)],
    )
    assert waited >= 1, logs_text
    assert sum(bool(WAITING.search(text)) for text in logs_text) >= count - 1, logs_text


LOCK_HOLDER_SCRIPT = """
import os
import signal
import sys

from pyperunner.store import Store

data_path, name, key = sys.argv[1:4]
held = Store(data_path).lock(name, key)  # keep a reference: collecting it would release the lock
held.__enter__()
print("locked", flush=True)
if sys.stdin.readline() == "die\\n":
    os.kill(os.getpid(), signal.SIGKILL)
sys.stdin.readline()
"""


def lock_is_held(data: Path, name: str, key: str) -> bool:
    import fcntl

    fd = os.open(Store(data).entry(name, key) / ".lock", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_lock_left_by_a_dead_process_does_not_block_the_next_run(tmp_path, calls):
    holder_script = write_script(tmp_path, "holder.py", LOCK_HOLDER_SCRIPT)
    runner_script = write_script(tmp_path, "locked.py", RUN_FACTORY_SCRIPT)
    data, log = tmp_path / "data", tmp_path / "log"
    name, key = "Echo(locked)", single_echo_pipeline().keys()["Echo(locked)"]
    with scripts() as started:
        holder = Script(tmp_path, holder_script, str(data), name, key, stdin=True)
        started.append(holder)
        assert holder.read_line() == "locked", holder.stderr()
        assert lock_is_held(data, name, key)
        holder.send("die\n")  # it SIGKILLs itself holding the lock
        assert holder.wait() == -signal.SIGKILL
        assert (Store(data).entry(name, key) / ".lock").exists()

        runner = Script(tmp_path, runner_script, "single_echo_pipeline", str(data), str(log))
        started.append(runner)
        assert runner.read_line() == "ready", runner.stderr()
        began = time.monotonic()
        assert runner.wait(timeout=WAIT) == 0, runner.stderr()
        took = time.monotonic() - began
    report("run after a dead lock holder", run_s=took)
    assert calls.counts() == {name: 1}
    assert joblib.load(Store(data).result_path(name, key)) == "locked"


def test_run_waiting_on_a_lock_proceeds_when_the_holder_is_killed(tmp_path, calls):
    holder_script = write_script(tmp_path, "holder.py", LOCK_HOLDER_SCRIPT)
    runner_script = write_script(tmp_path, "locked.py", RUN_FACTORY_SCRIPT)
    data, log = tmp_path / "data", tmp_path / "log"
    name, key = "Echo(locked)", single_echo_pipeline().keys()["Echo(locked)"]
    with scripts() as started:
        holder = Script(tmp_path, holder_script, str(data), name, key, stdin=True)
        started.append(holder)
        assert holder.read_line() == "locked", holder.stderr()
        assert lock_is_held(data, name, key)

        runner = Script(
            tmp_path, runner_script, "single_echo_pipeline", str(data), str(log), "echo-log"
        )
        started.append(runner)
        assert runner.read_line() == "ready", runner.stderr()
        while not WAITING.search(runner.read_line()):  # the worker's line: it blocks on the lock
            pass
        assert calls.counts() == {}

        os.kill(holder.pid, signal.SIGKILL)
        killed = time.monotonic()
        assert runner.wait(timeout=WAIT) == 0, runner.stderr()
        took = time.monotonic() - killed
    report("run waiting on a lock, holder SIGKILLed", kill_to_exit_s=took)
    assert calls.counts() == {name: 1}
    assert joblib.load(Store(data).result_path(name, key)) == "locked"
