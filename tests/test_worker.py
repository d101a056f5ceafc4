"""Tests for the process executor's worker (``executors/worker.py``) piece by piece: the jobs a
worker marks taken in memory it shares with the runner, the messages on its pipe, the hold it
passes behind its report, and what a reused worker puts back between jobs. Whole workers run
in real runs in ``test_execution.py``, ``test_pool.py`` and ``test_faults.py``.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os
import pickle
import signal
import threading
from pathlib import Path

from pyperunner import task
from pyperunner.executors.base import Job, Outcome
from pyperunner.executors.worker import (
    JobByName,
    Known,
    NoMoreJobs,
    Report,
    _CleanState,
    _next_job,
    receive_hold,
    receive_report,
    send_hold,
)

MIB = 2**20


@task("Quiet")
def quiet(data, i):
    return i


def known_jobs() -> dict[str, Job]:
    return {t.name: Job(t, "key", (), {}) for t in (quiet("a", i=1), quiet("b", i=2))}


# --------------------------------------------------------------------------- the jobs it takes


def test_a_worker_marks_the_attempt_it_took_where_the_runner_sees_it():
    """What tells the runner, once a worker died, whether it had taken its job: memory shared
    with the workers forked after ``start``, by job and attempt."""
    jobs = known_jobs()
    known = Known(jobs)
    first = jobs["Quiet(a)"]
    later = dataclasses.replace(first, attempt=3)
    assert not known.taken(first) and not known.taken(later)
    pid = os.fork()
    if pid == 0:  # a worker takes the third attempt at the first job
        os._exit(0 if known.take(first.name, 3) == later else 1)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
    assert known.taken(later) and not known.taken(first)
    assert not known.taken(jobs["Quiet(b)"])


def test_a_worker_takes_a_job_by_name_and_stops_when_told_or_when_the_runner_is_gone():
    jobs = known_jobs()
    known = Known(jobs)
    ours, theirs = multiprocessing.Pipe()
    ours.send_bytes(pickle.dumps(JobByName("Quiet(b)", 2)))
    ours.send_bytes(pickle.dumps(NoMoreJobs()))
    job = _next_job(theirs, known)
    assert job == dataclasses.replace(jobs["Quiet(b)"], attempt=2) and known.taken(job)
    assert _next_job(theirs, known) is None
    ours.close()
    assert _next_job(theirs, known) is None


# --------------------------------------------------------------------------- what it sends


def test_the_runner_logs_what_a_worker_sent_up_to_its_report(caplog):
    ours, theirs = multiprocessing.Pipe()
    assert receive_report(ours) is None  # nothing sent yet: the job runs
    record = logging.makeLogRecord({"name": "Quiet(a)", "levelno": 20, "levelname": "INFO"})
    record.msg = "a line the task printed"
    outcome = Outcome("Quiet(a)", 1.0, 2.0)
    for message in (record, Report(outcome, more=True)):
        theirs.send_bytes(pickle.dumps(message))
    with caplog.at_level(logging.INFO):
        report = receive_report(ours)
    assert report == Report(outcome, more=True, held=False)
    assert [r.getMessage() for r in caplog.records] == ["a line the task printed"]


def test_a_hold_passes_behind_the_report_as_the_same_open_file(tmp_path: Path):
    ours, theirs = multiprocessing.Pipe()
    path = tmp_path / "result"
    path.write_text("held")
    fd = os.open(path, os.O_RDONLY)
    try:
        send_hold(theirs, fd)
        hold = receive_hold(ours)
        assert hold is not None and hold.fd != fd
        assert os.path.sameopenfile(hold.fd, fd)
        hold.close()
    finally:
        os.close(fd)
    theirs.close()  # a worker that died before it passed its hold
    assert receive_hold(ours) is None


# --------------------------------------------------------------------------- between jobs


def test_a_reused_worker_puts_back_what_a_task_changed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PYPERUNNER_WORKER_TEST", raising=False)
    (tmp_path / "elsewhere").mkdir()
    clean = _CleanState(max_growth=2**30, output_thread=0)
    handler, mask = signal.getsignal(signal.SIGUSR1), os.umask(0o022)
    os.umask(mask)
    os.chdir(tmp_path / "elsewhere")
    os.environ["PYPERUNNER_WORKER_TEST"] = "left by the task"
    os.umask(0o077)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    assert clean.restore()
    assert Path.cwd() == tmp_path and "PYPERUNNER_WORKER_TEST" not in os.environ
    assert os.umask(mask) == mask
    assert signal.getsignal(signal.SIGUSR1) is handler


def test_a_worker_retires_while_a_thread_its_task_started_runs():
    clean = _CleanState(max_growth=2**30, output_thread=0)
    stop = threading.Event()
    lingering = threading.Thread(target=stop.wait)
    lingering.start()
    try:
        assert not clean.restore()
    finally:
        stop.set()
        lingering.join()
    assert clean.restore()


def test_a_worker_retires_once_its_task_grew_it_by_more_than_allowed():
    clean = _CleanState(max_growth=32 * MIB, output_thread=0)
    kept = b"\x01" * (64 * MIB)  # written, so resident
    assert not clean.restore()
    del kept
