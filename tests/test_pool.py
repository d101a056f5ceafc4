"""Tests for the ``"pool"`` executor on real runs: long-lived forked workers that run many tasks
in turn (``ProcessExecutor(max_tasks_per_child=None)``, ``pyperunner.executors.process``).

Between tasks a pool worker ends every process the task left running (it is a child subreaper,
so orphans come back to it), puts back its working folder and ``os.environ``, and retires if the
task left threads running, grew its memory past ``max_memory_growth`` or after
``max_tasks_per_child`` tasks. Tasks report their worker's pid and what they see of the tasks
before them, so every claim is checked from inside the next task, with real processes, files and
signals; waits block on events (pidfds, fifos, process exit) and are bounded.
"""

from __future__ import annotations

import collections
import itertools
import logging
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from conftest import double_fork_sleeper, parent_of, record_call
from test_faults import (
    leftovers,
    process_state,
    run_doc,
    run_folders,
    scripts,
    start_when_started,
    wait_gone,
    write_script,
)

from pyperunner import Pipeline, Runner, Sequential, Status, Task, run, task
from pyperunner.executors import ProcessExecutor, make_executor

VAR = "PYPERUNNER_POOL_TEST_VAR"
NEW_VAR = "PYPERUNNER_POOL_TEST_NEW_VAR"
MIB = 2**20
TIMEOUT = 0.5
LINGER = 1.0
"""Seconds a non-daemon thread left by a task keeps running before it ends by itself."""

FOREVER = threading.Event()  # never set: a thread waiting on it runs as long as its process
KEPT: list[bytes] = []  # memory a task keeps: a global of the worker process that ran it


# --------------------------------------------------------------------------- what tasks do


def start_sleeper(folder: Path, name: str) -> dict[str, int]:
    """Start ``sleep 60`` as a child and leave it running; its pid goes to ``<name>.left``."""
    child = subprocess.Popen(["sleep", "60"])
    (folder / f"{name}.left").write_text(str(child.pid))
    return {"child": child.pid, "child_sid": os.getsid(child.pid)}


def start_daemon(folder: Path, name: str) -> dict[str, int]:
    """Double-fork ``sleep`` into a session of its own, the way daemons detach; the middle
    process exits at once, so the sleeper is an orphan. Its pid goes to ``<name>.left``."""
    grandchild = double_fork_sleeper()
    (folder / f"{name}.left").write_text(str(grandchild))
    return {"child": grandchild, "child_sid": os.getsid(grandchild)}


def linger_then_mark(folder: Path) -> None:
    """What a lingering thread does: wait ``LINGER`` s, then say it ended."""
    threading.Event().wait(LINGER)
    (folder / "thread-ended").write_text("ended")


def act(what: str, folder: Path, name: str, mib: int) -> dict[str, int]:
    """Do what a probe task ``name`` is told to; return what the test should know of it."""
    if what == "popen":
        return start_sleeper(folder, name)
    if what == "daemon":
        return start_daemon(folder, name)
    if what in ("mess", "mess-and-raise"):
        os.chdir(folder / "elsewhere")
        os.environ[VAR] = "changed by the task"
        os.environ[NEW_VAR] = "added by the task"
        start_sleeper(folder, name)
        if what == "mess-and-raise":
            raise RuntimeError("mess-marker")
    elif what == "daemon-thread":
        threading.Thread(target=FOREVER.wait, name="left-daemon", daemon=True).start()
    elif what == "joined-thread":
        thread = threading.Thread(target=lambda: None)
        thread.start()
        thread.join()
    elif what == "lingering-thread":
        threading.Thread(target=linger_then_mark, args=(folder,), name="left-running").start()
    elif what == "keep":
        KEPT.append(b"\x01" * (mib * MIB))  # written, so resident
    elif what == "allocate-and-free":
        block = b"\x01" * (mib * MIB)
        del block
    elif what == "stop-server":  # it stops answering, but does not die
        os.kill(os.getppid(), signal.SIGSTOP)
    elif what == "kill-server":  # the fork server that forked this worker
        server = os.getppid()
        os.kill(server, signal.SIGKILL)
        wait_gone(server, 10.0)
    elif what == "exit7":
        os._exit(7)
    elif what == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif what == "print":
        print(f"print-marker of {name}")
        thread = threading.Thread(target=print, args=(f"thread-marker of {name}",))
        thread.start()
        thread.join()
        subprocess.run(["echo", f"child-marker of {name}"], check=True)
        os.write(2, f"fd2-marker of {name}\n".encode())
    elif what in ("siblings", "next-sibling", "kill-siblings"):
        before = {int(pid) for pid in (folder / "before").read_text().split()}
        deadline = time.monotonic() + (0 if what == "siblings" else 10.0)
        # the fork server forks a next worker while this task runs; no event tells when
        while not (siblings := set(children_of(os.getppid())) - before - {os.getpid()}) - {
            int(ran.read_text())
            for ran in folder.glob("*.pid")  # workers that ran a task
        }:
            if time.monotonic() > deadline:
                break
            time.sleep(0.005)
        if what == "kill-siblings":
            for pid in siblings:
                os.kill(pid, signal.SIGKILL)
        return {"siblings": sorted(siblings)}
    else:
        assert what == "none", what
    return {}


def children_of(pid: int) -> list[int]:
    """The child processes of ``pid`` (Linux ``/proc``)."""
    found = []
    for thread in Path(f"/proc/{pid}/task").iterdir():
        found.extend(int(child) for child in (thread / "children").read_text().split())
    return found


class Probe(Task):
    """Reports its worker (pid, parent, folder, environment, processes left by earlier tasks),
    then does what ``what`` says. Its pid is also written to ``<folder>/<name>.pid``."""

    @run
    def run(self, data, what="none", folder="", mib=0):
        record_call(self.name)
        here = Path(folder)
        (here / f"{self.name}.pid").write_text(str(os.getpid()))
        seen = {
            "pid": os.getpid(),
            "ppid": os.getppid(),
            "grandparent": parent_of(os.getppid()),
            "cwd": os.getcwd(),
            "var": os.environ.get(VAR),
            "new_var": os.environ.get(NEW_VAR),
            "left": {p.name: process_state(int(p.read_text())) for p in here.glob("*.left")},
            "threads": threading.active_count(),
            "thread_ended": (here / "thread-ended").exists(),
        }
        return {**seen, **act(what, here, self.name, mib)}


def probes(folder: Path, *whats: str, mib: int = 0) -> list[Probe]:
    """A chain of probes ``Probe(1-<what>) -> Probe(2-<what>) -> ...``: with one worker, each
    runs right after the one before, in the same worker unless that one retired."""
    chain = [
        Probe(f"{i}-{what}", what=what, folder=str(folder), mib=mib)
        for i, what in enumerate(whats, start=1)
    ]
    for parent, child in itertools.pairwise(chain):
        child(parent)
    return chain


def independent_probes(folder: Path, *whats: str) -> list[Probe]:
    """Probes ``Probe(1-<what>)``, ``Probe(2-<what>)``, ... without links: with one worker they
    run one at a time in name order, and a failing one stops none of the others."""
    return [Probe(f"{i}-{what}", what=what, folder=str(folder)) for i, what in enumerate(whats, 1)]


def run_chain(tmp_path: Path, *whats: str, executor="pool", mib: int = 0) -> list[dict]:
    """Run ``probes(...)`` on one worker; return what each probe reported, in order."""
    chain = probes(tmp_path, *whats, mib=mib)
    result = make_runner(tmp_path, executor, process_limit=1).run(Pipeline("chain", [chain[0]]))
    assert result.ok, result.failed
    return [result[probe.name] for probe in chain]


def make_runner(tmp_path: Path, executor, **kwargs) -> Runner:
    return Runner(tmp_path / "data", tmp_path / "log", executor=executor, console=False, **kwargs)


def pid_of(folder: Path, name: str) -> int:
    return int((folder / f"{name}.pid").read_text())


def log_text(runner: Runner) -> str:
    assert runner.run_dir is not None
    return (runner.run_dir / "pipeline.log").read_text()


@pytest.fixture(autouse=True)
def _in_tmp_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run from ``tmp_path`` (tasks change folders relative to it), with ``VAR`` set."""
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(VAR, "original")
    monkeypatch.delenv(NEW_VAR, raising=False)


# --------------------------------------------------------------------------- reuse


def test_pool_is_a_process_executor_reusing_its_workers():
    pool, process = make_executor("pool"), make_executor("process")
    assert isinstance(pool, ProcessExecutor) and isinstance(process, ProcessExecutor)
    assert pool.max_tasks_per_child is None and process.max_tasks_per_child == 1
    assert pool.max_memory_growth == process.max_memory_growth == 256 * MIB
    with pytest.raises(ValueError, match="max_tasks_per_child"):
        ProcessExecutor(max_tasks_per_child=0)


def test_pool_runs_tasks_in_fewer_worker_processes_than_tasks_never_in_the_runner(tmp_path):
    roots = [Probe(str(i), folder=str(tmp_path)) for i in range(8)]
    result = make_runner(tmp_path, "pool", process_limit=2).run(Pipeline("reuse", roots))
    assert result.ok, result.failed
    seen = [result[root.name] for root in roots]
    pids = {s["pid"] for s in seen}
    assert len(pids) <= 2, pids
    assert os.getpid() not in pids
    assert {s["grandparent"] for s in seen} == {os.getpid()}  # forked by the runner's fork server
    assert all(wait_gone(pid, 5.0) for pid in pids), "a worker outlived the run"


def test_process_executor_gives_every_task_a_process_of_its_own(tmp_path):
    roots = [Probe(str(i), folder=str(tmp_path)) for i in range(6)]
    result = make_runner(tmp_path, "process", process_limit=2).run(Pipeline("fresh", roots))
    assert result.ok, result.failed
    pids = [result[root.name]["pid"] for root in roots]
    assert len(set(pids)) == len(pids), pids
    assert os.getpid() not in pids


def test_process_workers_are_forked_ahead_while_the_task_before_runs(tmp_path):
    (tmp_path / "before").write_text(" ".join(map(str, children_of(os.getpid()))))
    chain = probes(tmp_path, "next-sibling", "next-sibling", "siblings")
    result = make_runner(tmp_path, "process", process_limit=2).run(Pipeline("ahead", [chain[0]]))
    assert result.ok, result.failed
    seen = [result[probe.name] for probe in chain]
    pids = [s["pid"] for s in seen]
    assert len(set(pids)) == 3, pids  # still a fresh process for every task
    assert pids[1] in seen[0]["siblings"] and pids[2] in seen[1]["siblings"], seen
    assert all(wait_gone(pid, 5.0) for pid in pids + seen[2]["siblings"]), "a worker outlived it"


def test_process_workers_come_from_a_fork_server_that_ends_with_the_run(tmp_path):
    chain = probes(tmp_path, "none", "none", "none", "none")
    result = make_runner(tmp_path, "process", process_limit=2).run(Pipeline("served", [chain[0]]))
    assert result.ok, result.failed
    seen = [result[probe.name] for probe in chain]
    assert len({s["pid"] for s in seen}) == 4  # still a fresh process for every task
    (server,) = {s["ppid"] for s in seen}  # one copy of the runner forked them all
    assert server != os.getpid() and {s["grandparent"] for s in seen} == {os.getpid()}
    assert wait_gone(server, 5.0), "the fork server outlived the run"


def test_a_dead_fork_server_loses_nothing(tmp_path):
    chain = probes(tmp_path, "kill-server", *["none"] * 5)
    runner = make_runner(tmp_path, "process", process_limit=2)
    result = runner.run(Pipeline("unserved", [chain[0]]))
    assert result.ok, result.failed  # its workers live on; later ones the runner forks
    assert result[chain[-1].name]["ppid"] == os.getpid()
    assert "worker process" not in log_text(runner)


@pytest.mark.parametrize("executor", ["process", "pool"])
def test_a_fork_server_that_stops_answering_is_killed_and_the_run_goes_on(
    tmp_path, executor, monkeypatch
):
    from pyperunner.executors import forkserver

    monkeypatch.setattr(forkserver, "_ANSWER", 0.5)  # seconds; 10 in use
    chain = probes(tmp_path, "stop-server", *["none"] * 4)
    runner = make_runner(tmp_path, executor, process_limit=2)
    result = runner.run(Pipeline("unanswered", [chain[0]]))
    assert result.ok, result.failed
    server = result[chain[0].name]["ppid"]
    assert wait_gone(server, 5.0), "the stopped fork server was left"
    if executor == "process":  # (a pool's worker forked before may take the last task)
        assert result[chain[-1].name]["ppid"] == os.getpid()  # forked by the runner itself
    assert "Traceback" not in log_text(runner)


@pytest.mark.parametrize("executor", ["process", "pool"])
def test_without_pidfds_the_runner_forks_and_watches_every_worker_itself(
    tmp_path, without_pidfds, executor
):
    """An old kernel has no ``pidfd_open`` and a seccomp filter may refuse it: then there is no
    fork server, every worker is the runner's own fork, watched through its sentinel, and a
    worker's death is still its task's failure. The workers inherit the patched ``os``."""
    chain = probes(tmp_path, "none", "none", "exit7")
    result = make_runner(tmp_path, executor, process_limit=2).run(Pipeline("bare", [chain[0]]))
    assert result.statuses == {
        "Probe(1-none)": Status.SUCCESS,
        "Probe(2-none)": Status.SUCCESS,
        "Probe(3-exit7)": Status.FAILURE,
    }
    assert "code 7" in (result.runs["Probe(3-exit7)"].error or "")
    assert {result[probe.name]["ppid"] for probe in chain[:2]} == {os.getpid()}
    assert all(wait_gone(pid_of(tmp_path, probe.name), 5.0) for probe in chain)


@pytest.mark.parametrize("executor", ["process", "pool"])
def test_workers_forked_ahead_dying_before_their_task_lose_nothing(tmp_path, executor):
    (tmp_path / "before").write_text(" ".join(map(str, children_of(os.getpid()))))
    chain = probes(tmp_path, "kill-siblings", "none", "none")
    runner = make_runner(tmp_path, executor, process_limit=2)
    result = runner.run(Pipeline("spares", [chain[0]]))
    assert result.ok, result.failed
    killed = result[chain[0].name]["siblings"]
    assert killed, "no worker was waiting for the next task"
    assert not {result[p.name]["pid"] for p in chain[1:]} & set(killed)
    assert "worker process" not in log_text(runner)


def test_a_job_the_executor_was_not_told_of_runs_in_a_worker_forked_for_it(tmp_path):
    from pyperunner.executors.base import Job
    from pyperunner.store import Store

    store = Store(tmp_path / "data")
    probe = Probe("unannounced", folder=str(tmp_path))
    executor = ProcessExecutor()
    executor.start(store, 2)
    try:
        executor.submit(Job(probe, "key", (), {}))
        (outcome,) = executor.wait(30.0)
    finally:
        executor.shutdown()
    assert outcome.ok, outcome.error
    assert store.load(probe.name, "key")["ppid"] == os.getpid()


def test_tasks_defined_inside_a_function_travel_to_a_running_worker(tmp_path):
    offset = 100

    @task("Inner", receives_input=False)
    def inner(value):
        return (os.getpid(), value + offset)

    @task("InnerChild")
    def inner_child(data, factor):
        return (os.getpid(), data[0][1] * factor)

    class InnerClass(Task):
        @run
        def run(self, data):
            return (os.getpid(), data[0][1] + 1)

    first = inner("a", value=1)
    InnerClass("c")(inner_child("b", factor=2)(first))
    result = make_runner(tmp_path, "pool", process_limit=1).run(Pipeline("closures", [first]))
    assert result.ok, result.failed
    (pid, value), (pid_b, value_b), (pid_c, value_c) = (
        result[name] for name in ("Inner(a)", "InnerChild(b)", "InnerClass(c)")
    )
    assert (value, value_b, value_c) == (101, 202, 203)
    assert pid == pid_b == pid_c  # the later two were sent to the worker by name, not forked


def test_task_holding_an_unpicklable_object_does_not_crash_the_run(tmp_path):
    lock = threading.Lock()

    @task("Locked", receives_input=False)
    def locked(n):
        with lock:
            return n

    first, second = locked("1", n=1), locked("2", n=2)
    result = make_runner(tmp_path, "pool", process_limit=1).run(Pipeline("lock", [first, second]))
    assert result.statuses["Locked(1)"] is Status.SUCCESS
    run_ = result.runs["Locked(2)"]
    assert run_.status is Status.SUCCESS or "pickle" in (run_.error or ""), run_


# --------------------------------------------------------------------------- clean state


@pytest.mark.parametrize("how", ["popen", "daemon"], ids=["child", "setsid-double-fork"])
def test_processes_a_task_leaves_running_are_gone_before_the_next_task(tmp_path, how):
    first, leaver, after = run_chain(tmp_path, "none", how, "none")
    assert first["pid"] == leaver["pid"] == after["pid"]
    if how == "daemon":  # out of the worker's session and group: no group kill reaches it
        assert leaver["child_sid"] != os.getsid(0)  # the worker is in the runner's session
    assert after["left"] == {f"Probe(2-{how}).left": None}, "not killed and reaped in time"
    assert wait_gone(leaver["child"], 5.0)


@pytest.mark.parametrize("what", ["mess", "mess-and-raise"], ids=["returns", "raises"])
def test_working_folder_and_environment_are_restored_for_the_next_task(tmp_path, what):
    # independent roots, run one at a time in name order: a failure stops nothing
    roots = independent_probes(tmp_path, "none", what, "none")
    result = make_runner(tmp_path, "pool", process_limit=1).run(Pipeline("mess", roots))
    before, after = result["Probe(1-none)"], result["Probe(3-none)"]
    if what == "mess-and-raise":
        assert result.statuses[f"Probe(2-{what})"] is Status.FAILURE
        assert "mess-marker" in result.runs[f"Probe(2-{what})"].error
    assert before["cwd"] == str(tmp_path) and before["var"] == "original"
    assert after["pid"] == before["pid"] == pid_of(tmp_path, f"Probe(2-{what})")
    assert after["cwd"] == str(tmp_path)
    assert after["var"] == "original"
    assert after["new_var"] is None
    assert after["left"] == {f"Probe(2-{what}).left": None}
    assert os.getcwd() == str(tmp_path) and os.environ[VAR] == "original"


@pytest.mark.parametrize("max_tasks", [1, 2], ids=["process", "max_tasks_per_child=2"])
def test_a_daemon_left_by_the_last_task_of_a_worker_ends_with_it(tmp_path, max_tasks):
    executor = ProcessExecutor(max_tasks_per_child=max_tasks)
    seen = run_chain(tmp_path, *["none"] * (max_tasks - 1), "daemon", "none", executor=executor)
    leaver, after = seen[-2], seen[-1]
    try:
        assert after["pid"] != leaver["pid"]  # the worker retired after the daemon's task
        left = after["left"][f"Probe({max_tasks}-daemon).left"]
        assert left in (None, "Z"), "the detached sleeper outlived the worker of its task"
    finally:
        if process_state(leaver["child"]) is not None:
            os.kill(leaver["child"], signal.SIGKILL)


# --------------------------------------------------------------------------- retiring


def test_a_thread_the_task_starts_and_joins_does_not_retire_the_worker(tmp_path):
    first, joined, after = run_chain(tmp_path, "none", "joined-thread", "none")
    assert first["pid"] == joined["pid"] == after["pid"]
    assert after["threads"] == first["threads"]


def test_a_daemon_thread_left_running_retires_the_worker(tmp_path):
    first, leaver, after = run_chain(tmp_path, "none", "daemon-thread", "none")
    assert first["pid"] == leaver["pid"] != after["pid"]
    assert wait_gone(leaver["pid"], 5.0)


def test_a_non_daemon_thread_left_running_retires_the_worker_without_waiting_for_it(tmp_path):
    # the thread ends by itself after LINGER s, so the bug costs LINGER s, not a hang
    first, leaver, after = run_chain(tmp_path, "none", "lingering-thread", "none")
    assert first["pid"] == leaver["pid"] != after["pid"]
    assert not after["thread_ended"], "the run waited for the task's thread"


def test_memory_a_task_keeps_beyond_the_default_limit_retires_the_worker(tmp_path):
    first, keeper, after = run_chain(tmp_path, "none", "keep", "none", mib=256 + 32)
    assert first["pid"] == keeper["pid"] != after["pid"]


def test_memory_growth_limit_is_a_setting_and_memory_given_back_does_not_count(tmp_path):
    executor = ProcessExecutor(max_tasks_per_child=None, max_memory_growth=48 * MIB)
    chain = probes(tmp_path, "none", "allocate-and-free", "none", "keep", "none", mib=64)
    result = make_runner(tmp_path, executor, process_limit=1).run(Pipeline("mem", [chain[0]]))
    assert result.ok, result.failed
    pids = [result[probe.name]["pid"] for probe in chain]
    assert len(set(pids[:4])) == 1, pids  # 64 MiB used and freed: no growth left behind
    assert pids[4] != pids[3], pids  # 64 MiB kept: past the 48 MiB allowed


def test_max_tasks_per_child_caps_the_tasks_of_each_worker(tmp_path):
    roots = [Probe(str(i), folder=str(tmp_path)) for i in range(6)]
    executor = ProcessExecutor(max_tasks_per_child=2)
    result = make_runner(tmp_path, executor, process_limit=1).run(Pipeline("cap", roots))
    assert result.ok, result.failed
    per_worker = collections.Counter(result[root.name]["pid"] for root in roots)
    assert sorted(per_worker.values()) == [2, 2, 2], per_worker


# --------------------------------------------------------------------------- dead workers


def test_a_task_killing_its_reused_worker_fails_naming_how_and_later_tasks_run(tmp_path):
    roots = independent_probes(tmp_path, "none", "exit7", "none", "sigkill", "none")
    Probe("2-exit7-child", folder=str(tmp_path))(roots[1])
    runner = make_runner(tmp_path, "pool", process_limit=1)
    result = runner.run(Pipeline("deaths", roots))  # roots run one at a time, in name order
    assert result.statuses == {
        "Probe(1-none)": Status.SUCCESS,
        "Probe(2-exit7)": Status.FAILURE,
        "Probe(2-exit7-child)": Status.CANT_RUN,
        "Probe(3-none)": Status.SUCCESS,
        "Probe(4-sigkill)": Status.FAILURE,
        "Probe(5-none)": Status.SUCCESS,
    }
    assert "code 7" in result.runs["Probe(2-exit7)"].error
    assert "SIGKILL" in result.runs["Probe(4-sigkill)"].error
    pids = {name: pid_of(tmp_path, name) for name in result.statuses if "child" not in name}
    # each death hit a worker that had run a task before, and the next task got a new one
    assert pids["Probe(1-none)"] == pids["Probe(2-exit7)"] != pids["Probe(3-none)"]
    assert pids["Probe(3-none)"] == pids["Probe(4-sigkill)"] != pids["Probe(5-none)"]
    assert all(wait_gone(pid, 5.0) for pid in pids.values())
    assert "SIGKILL" in log_text(runner) and "code 7" in log_text(runner)


@task("DiesIdleOnce", receives_input=False, retries=1, retry_delay=1.0)
def dies_idle_once(folder):
    """Attempt 1 writes its worker's pid (the test kills that worker while it is idle: the
    retry waits 1 s) and fails; attempt 2 reports what became of it."""
    first = Path(folder, "first-attempt.pid")
    if not first.exists():
        first.write_text(str(os.getpid()))
        raise RuntimeError("first attempt fails")
    earlier = int(first.read_text())
    return {"pid": os.getpid(), "earlier": earlier, "earlier_state": process_state(earlier)}


class Retrying(logging.Handler):
    """Sets ``seen`` once the runner logs that a task is retried: it has its report then, and
    the worker that sent it waits for a job."""

    def __init__(self) -> None:
        super().__init__()
        self.seen = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "retrying in" in record.getMessage():
            self.seen.set()


def test_a_worker_dying_while_idle_loses_nothing(tmp_path):
    retrying = Retrying()

    def kill_the_worker_once_idle() -> None:
        if retrying.seen.wait(10.0):
            os.kill(int((tmp_path / "first-attempt.pid").read_text()), signal.SIGKILL)

    killer = threading.Thread(target=kill_the_worker_once_idle, daemon=True)
    killer.start()
    runner = make_runner(tmp_path, "pool", process_limit=1)
    logging.getLogger().addHandler(retrying)
    try:
        result = runner.run(Pipeline("idle-death", [dies_idle_once(folder=str(tmp_path))]))
    finally:
        logging.getLogger().removeHandler(retrying)
    killer.join(timeout=5)
    assert retrying.seen.is_set()
    assert result.statuses == {"DiesIdleOnce()": Status.SUCCESS}
    assert result.runs["DiesIdleOnce()"].attempts == 2
    seen = result["DiesIdleOnce()"]
    assert seen["pid"] != seen["earlier"]
    assert seen["earlier_state"] in (None, "Z"), "the first worker was still alive"
    text = log_text(runner)
    assert "first attempt fails" in text
    assert "SIGKILL" not in text and "worker process" not in text, text


@task("LeavesState", receives_input=False)
def leaves_state(limit):
    """Changes what a process carries from task to task: a timer, a handler, the umask, and
    (if ``limit``) its limit of open files."""
    import resource

    signal.setitimer(signal.ITIMER_REAL, 0.5)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    os.umask(0o077)
    if limit:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (64, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        )
    return os.getpid()


@task("FindsState")
def finds_state(data, seconds):
    import resource

    time.sleep(seconds)  # past the timer the task before set
    mask = os.umask(0o022)
    os.umask(mask)
    return {
        "pid": os.getpid(),
        "nofile": resource.getrlimit(resource.RLIMIT_NOFILE)[0],
        "usr1": signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL,
        "umask": mask,
    }


@pytest.mark.parametrize("limit", [False, True])
def test_a_reused_worker_does_not_carry_a_task_s_process_state_into_the_next(tmp_path, limit):
    import resource

    mask = os.umask(0o022)
    os.umask(mask)
    first = leaves_state(limit=limit)
    finds_state(seconds=0.8)(first)
    result = make_runner(tmp_path, "pool", process_limit=1).run(Pipeline("state", [first]))
    assert result.ok, result.statuses
    found = result["FindsState()"]
    assert found["usr1"] and found["umask"] == mask
    assert found["nofile"] == resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    # put back in the same worker; a lowered limit cannot be raised back: a new worker
    assert (found["pid"] == result["LeavesState()"]) is not limit


# --------------------------------------------------------------------------- timeouts, retries


@task("Sleepy", receives_input=False, timeout=TIMEOUT)
def sleepy(folder):
    record_call("Sleepy()")
    Path(folder, "Sleepy().pid").write_text(str(os.getpid()))
    start_sleeper(Path(folder), "Sleepy()")
    time.sleep(10)
    return "never"


def test_timed_out_task_fails_its_worker_is_killed_and_the_next_task_runs(tmp_path, calls):
    before = Probe("1-before", folder=str(tmp_path))
    after = Probe("3-after", folder=str(tmp_path))(before)
    # one worker: Probe(1-before), then Sleepy() (a root), then Probe(3-after) (its child)
    result = make_runner(tmp_path, "pool", process_limit=1).run(
        Pipeline("timeout", [before, sleepy(folder=str(tmp_path))])
    )
    assert calls.order() == ["Probe(1-before)", "Sleepy()", "Probe(3-after)"]
    assert result.statuses == {
        "Probe(1-before)": Status.SUCCESS,
        "Sleepy()": Status.FAILURE,
        "Probe(3-after)": Status.SUCCESS,
    }
    assert "timed out after 0.5 s" in result.runs["Sleepy()"].error
    worker = pid_of(tmp_path, "Sleepy()")
    assert worker == result["Probe(1-before)"]["pid"]  # a reused worker was killed ...
    assert result[after.name]["pid"] != worker  # ... and a new one ran the next task
    assert wait_gone(worker, 5.0)
    sleeper = int((tmp_path / "Sleepy().left").read_text())
    assert wait_gone(sleeper, 5.0), "the timed-out task's child survived"


@task("Flaky", receives_input=False, retries=2)
def flaky(folder, how):
    """Fails its first two attempts by raising or by killing its worker; records the pids."""
    attempts = Path(folder, "attempts")
    with attempts.open("a") as handle:
        handle.write(f"{os.getpid()}\n")
    count = len(attempts.read_text().splitlines())
    if count <= 2:
        if how == "exit":
            os._exit(3)
        raise RuntimeError(f"flaky-marker: attempt {count} fails")
    return count


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_retries_run_on_the_pool(tmp_path, how):
    runner = make_runner(tmp_path, "pool", process_limit=1)
    result = runner.run(Pipeline("retries", [flaky(folder=str(tmp_path), how=how)]))
    assert result.statuses == {"Flaky()": Status.SUCCESS}
    assert result.runs["Flaky()"].attempts == 3
    assert result["Flaky()"] == 3
    pids = [int(line) for line in (tmp_path / "attempts").read_text().splitlines()]
    if how == "raise":  # a task that raises leaves its worker as good as new
        assert len(set(pids)) == 1, pids
    else:
        assert len(set(pids)) == 3, pids
        assert sum("code 3" in line for line in log_text(runner).splitlines()) >= 2


# --------------------------------------------------------------------------- same as inline


class Add(Task):
    """Records its execution and adds ``value`` to the sum of its inputs."""

    @run
    def run(self, data, value):
        record_call(self.name)
        return value + sum(data)


def diamond(b_value: int = 10, reload_c: bool = False) -> Pipeline:
    """a -> (b, c) -> d, and e alone."""
    a = Add("a", value=1)
    b = Add("b", value=b_value)(a)
    c = Add("c", value=100, reload=reload_c)(a)
    Add("d", value=1000)([b, c])
    return Pipeline("diamond", [a, Add("e", value=5)])


RUNS = {  # what each run changes, in turn, on one data path
    "first": ({}, False),
    "again": ({}, False),
    "changed-b": ({"b_value": 20}, False),
    "reload-c": ({"b_value": 20, "reload_c": True}, False),
    "force": ({"b_value": 20}, True),
}


def test_caching_rules_and_results_are_those_of_the_inline_executor(tmp_path, calls):
    seen: dict[str, list] = {}
    for executor in ("pool", "inline"):
        runner = Runner(
            tmp_path / executor / "data",
            tmp_path / executor / "log",
            executor=executor,
            process_limit=2,
            console=False,
        )
        seen[executor] = []
        for changes, force in RUNS.values():
            calls.reset()
            result = runner.run(diamond(**changes), force_reload=force)
            statuses = {name: status.value for name, status in result.statuses.items()}
            seen[executor].append((statuses, dict(result), sorted(calls.order())))
    assert seen["pool"] == seen["inline"]
    executed = dict(zip(RUNS, (calls_ for _, _, calls_ in seen["pool"]), strict=True))
    everything = ["Add(a)", "Add(b)", "Add(c)", "Add(d)", "Add(e)"]
    assert executed == {
        "first": everything,
        "again": [],
        "changed-b": ["Add(b)", "Add(d)"],
        "reload-c": ["Add(c)", "Add(d)"],
        "force": everything,
    }
    assert seen["pool"][-1][1] == {
        "Add(a)": 1,
        "Add(b)": 21,
        "Add(c)": 101,
        "Add(d)": 1122,
        "Add(e)": 5,
    }


# --------------------------------------------------------------------------- output


SOURCES = [("print", "INFO"), ("thread", "INFO"), ("child", "INFO"), ("fd2", "WARNING")]
"""Where a probe's output comes from, and the level it is logged at (fd 2: WARNING)."""


def test_output_of_tasks_threads_and_children_is_logged_under_each_task(tmp_path):
    runner = make_runner(tmp_path, "pool", process_limit=1)
    chain = probes(tmp_path, "print", "print")
    result = runner.run(Pipeline("output", [chain[0]]))
    assert result.ok, result.failed
    assert result["Probe(1-print)"]["pid"] == result["Probe(2-print)"]["pid"]
    lines = log_text(runner).splitlines()
    for probe in chain:
        for source, level in SOURCES:
            marker = f"{source}-marker of {probe.name}"
            found = [line for line in lines if line.endswith(marker)]
            assert len(found) == 1, (marker, lines)
            fields = found[0].split()
            assert fields[2:5] == [level, "Worker-1", probe.name], found[0]


# --------------------------------------------------------------------------- interrupts

INTERRUPT_SCRIPT = """
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, @TESTS@)
from conftest import record_call

from pyperunner import Pipeline, Runner, task


@task("Quick", receives_input=False)
def quick():
    record_call("Quick")
    return os.getpid()


@task("Long")
def long_running(data):
    record_call("Long()")
    sleeper = subprocess.Popen(["sleep", "60"])
    Path("pids.txt").write_text(" ".join(map(str, [os.getpid(), sleeper.pid, *data])))
    with open(os.environ["POOL_STARTED_FIFO"], "w") as channel:
        channel.write("started\\n")
    time.sleep(30)
    return "long"


@task("After")
def after(data):
    record_call("After()")
    return "after"


a, b = quick("a"), quick("b")
after()(long_running()([a, b]))
# two workers, both idle when Long() starts on one of them (by name, not by fork)
runner = Runner(data_path="data", log_path="log", executor="pool", process_limit=2, console=False)
runner.run(Pipeline("interrupt", [a, b]))
"""


def test_sigint_to_a_runner_script_ends_every_worker_and_records_interrupted(tmp_path, calls):
    script = write_script(tmp_path, "interrupt.py", INTERRUPT_SCRIPT)
    with scripts() as started:
        runner = start_when_started(started, tmp_path, script, "POOL_STARTED_FIFO")
        worker, sleeper, *quick = map(int, (tmp_path / "pids.txt").read_text().split())
        assert len(set(quick)) == 2 and worker in quick  # Long() reused a worker
        assert all(process_state(pid) not in (None, "Z") for pid in [*quick, sleeper])

        os.kill(runner.pid, signal.SIGINT)
        assert runner.wait() == -signal.SIGINT, runner.stderr()
        for pid in [*quick, sleeper]:
            assert wait_gone(pid, 0.5), (pid, process_state(pid))
        assert leftovers(runner.pid) == []

    (run_dir,) = run_folders(tmp_path / "log")
    tasks = run_doc(run_dir)["tasks"]
    assert {name: t["status"] for name, t in tasks.items()} == {
        "Quick(a)": "SUCCESS",
        "Quick(b)": "SUCCESS",
        "Long()": "INTERRUPTED",
        "After()": "NOT_STARTED",
    }
    assert "SIGINT" in (run_dir / "pipeline.log").read_text()
    assert calls.counts() == {"Quick": 2, "Long()": 1}


@task("StartAt", receives_input=False)
def start_at(i):
    return i


@task("Quiet")
def quiet(data, i):
    return i


@pytest.mark.parametrize("executor", ["process", "pool"])
def test_a_run_that_goes_well_writes_nothing_to_stderr(tmp_path, capfd, executor):
    """Workers exit while the runner ends the run; nothing of it (the fork server's end, a
    worker's exit) shows as a traceback on the terminal."""
    for attempt in range(3):
        tasks = [start_at(f"{attempt}", i=0)] + [quiet(f"{attempt}-{i}", i=i) for i in range(30)]
        runner = Runner(tmp_path / "data", tmp_path / "log", executor=executor, console=False)
        assert runner.run(Sequential("quiet", tasks)).ok
    assert capfd.readouterr().err == ""
