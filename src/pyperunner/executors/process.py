"""The process executor as the runner sees it: ``process`` and ``pool`` run tasks in workers.

``process`` (the default) gives every task a fresh forked worker process, which ends with it;
``pool`` keeps workers and gives each many tasks in turn. Tasks run truly in parallel, a
crashing task cannot take the runner down, every process a task starts ends with the task (also
when it times out or is interrupted), and tasks defined anywhere (``__main__``, notebooks,
inside functions) work without pickling: a worker is a fork of the runner, holding every job.

Processes and channels of a run::

                                         runner
      ForkRequest + pipe end |  ^ Started + pidfd         JobByName |  ^ Report (+ hold's fd)
      StopServing            |  | Exited                 NoMoreJobs |  | LogRecord
                             v  |                                   v  |
                        fork server ---------- os.fork ---------->  worker ---> the task's
                        (own group)                              (own group)   processes

    socket      runner <-> fork server: SOCK_SEQPACKET, one pickled message a packet
    pipes       runner <-> each worker: a Unix socketpair (``multiprocessing.Pipe``); the
                worker's end rides along with its ForkRequest
    pidfds      the runner watches each worker's (readable once it exited); the fork server
                and every worker watch the runner's (readable once it died)
    shared mem  an mmap made at ``start``, inherited by the server and every worker (see
                :class:`.worker.Known`): the attempt of each job a worker took last

Messages (named types, pickled; matched by type)::

    from -> to        message                         when
    runner -> server  ForkRequest(payload, name)      a worker is wanted: ahead (payload None),
                      + the worker's end of its pipe  or for a job (a JobByName)
    runner -> server  StopServing()                   the run ends
    server -> runner  Started(pid) + a pidfd of it    it forked one, in the order asked
    server -> runner  Exited(pid, code)               it reaped one (read only when the runner
                                                      wants a code: a worker that died)
    runner -> worker  JobByName(name, attempt)        a job for an idle worker
    runner -> worker  NoMoreJobs()                    an idle worker is not needed
    worker -> runner  logging.LogRecord               each record the task logs, each line it
                                                      or its processes print
    worker -> runner  Report(outcome, more, held)     the job ended; if ``held``, one byte
                                                      follows, carrying the hold on the
                                                      result (its fd, SCM_RIGHTS)
    worker -> shm     the attempt, in the job's slot  it took a JobByName

A worker's life:

1. Made ahead, while other tasks run, for the jobs ``start`` was told of (up to ``workers``
   idle ones), or when a job comes and no idle worker can take it. The fork server forks it;
   the runner forks it itself (``multiprocessing``'s "fork", the job along in its memory) if
   the server is gone, if the system has no pidfds (then there is no server), or for a job
   the server does not hold (one ``start`` was not told of). It leads a process group of its
   own, adopts the orphans of its descendants (Linux), and starts one thread that turns what
   fds 1 and 2 get into log records and watches the runner.
2. It takes a job: the one it was forked with, or a JobByName it waits for on its pipe, which
   it marks taken in shared memory first. A worker that dies before that (the OOM killer, say)
   loses nothing: the runner finds no mark and gives the job to another worker. Once it took
   the job, its death is the job's FAILURE, naming the signal or exit code.
3. It runs the job (:func:`.base.execute`), ends every process the task left (orphans too),
   and sends its Report, and the hold on the result behind it.
4. A ``process`` worker then exits; a ``pool`` worker puts its state back and waits for the
   next job, or retires (see :class:`ProcessExecutor`).
5. It exits with ``os._exit``. The fork server reaps the ones it forked and kills their
   process group; the runner reaps its own forks once their pidfd is readable, then kills
   their group. No one waits for a worker's exit between tasks.

Signals:

- SIGINT (Ctrl-C), SIGTERM, SIGHUP to the runner: its handlers stop the run, and
  :meth:`ProcessExecutor.shutdown` sends SIGTERM to each busy worker's process group, SIGKILL
  to what is left of them after ``KILL_GRACE`` seconds, NoMoreJobs to idle workers and
  StopServing to the server. They are held while the runner forks, asks for a fork or takes
  the workers forked (:func:`.posix.signals_held`): an exception a handler raised in a fork
  hook would be lost, and so would a worker not yet recorded, which shutdown would not end.
  The terminal sends Ctrl-C to its foreground process group only, which the server and the
  workers left (each leads its own): only the runner gets it. The server ignores SIGINT.
- In a worker, SIGTERM (its task timed out, or the run stops) sends the line the task was
  writing, then ends it by SIGTERM; SIGINT raises ``KeyboardInterrupt`` in the task, a failure
  like any other (a worker puts back the default handler in place of the runner's).
- SIGCHLD is not used: exits are seen through pidfds, never in a signal handler.
- SIGKILL of the runner: its pidfd becomes readable. Each worker kills its own process group
  (its task and what the task started), and the server kills the groups of the workers it
  still runs and exits. Without pidfds, a worker watches the pipe ``multiprocessing`` gave it
  from the runner, which a later fork of the runner may hold open until it ends too, and the
  runner watches a worker through that process's sentinel, a pipe that a process the task
  forked also holds: a dead worker's FAILURE then waits for those processes to end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import time
from collections.abc import Mapping
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess

from ..store import Store
from .base import Executor, Job, Outcome, Running, timed_out, wait_time
from .forkserver import ForkServer, NoPidfds, Served
from .posix import (
    KILL_GRACE,
    can_adopt_orphans,
    kill_group,
    own_group,
    pidfd,
    readable,
    signals_held,
    stop_groups,
)
from .worker import (
    JobByName,
    Known,
    NoMoreJobs,
    forward_last_words,
    receive_hold,
    receive_report,
    served_worker,
    worker_main,
)

MAX_MEMORY_GROWTH = 256 * 2**20
"""Bytes a ``pool`` worker may grow by over its life before it retires (the default)."""


@dataclasses.dataclass
class _Worker:
    """A worker process, the connection to it, the job it runs (None: idle), and the job it was
    forked with (its own from the start: any other it marks taken, see :class:`.worker.Known`)."""

    process: BaseProcess | Served
    conn: Connection
    born_with: Job | None = None
    running: Running | None = None
    ended: int | None = None  # readable once the process has exited

    def __post_init__(self) -> None:
        if isinstance(self.process, Served):  # a pidfd already, opened before any reaping
            self.ended = os.dup(self.process.sentinel)
        else:  # unlike the sentinel, a pidfd is not held open by processes the task forked
            self.ended = pidfd(self.process.pid)  # type: ignore[arg-type]
            if self.ended is None:
                self.ended = self.process.sentinel

    def took(self, job: Job, known: Known) -> bool:
        """Whether this worker took ``job`` before it died."""
        return job is self.born_with or known.taken(job)

    def close(self) -> None:
        """Close the connection and the exit watch."""
        self.conn.close()
        self.close_watch()

    def close_watch(self) -> None:
        """Close the exit watch (a pidfd; the sentinel is the process object's own)."""
        if self.ended is not None and self.ended != self.process.sentinel:
            os.close(self.ended)
            self.ended = None


class ProcessExecutor(Executor):
    """Runs jobs in forked worker processes, each leading a process group of its own.

    ``max_tasks_per_child=1`` (``"process"``, the default) gives every job a fresh process;
    ``None`` (``"pool"``) keeps up to ``workers`` processes and gives each many jobs in turn,
    saving a fork and a cold start per task (several ms each): between jobs a worker ends every
    process the task started, puts back its working folder and environment, and retires if the
    task left threads running or grew its memory by more than ``max_memory_growth`` bytes.
    Workers are forked ahead, by a fork server (:mod:`.forkserver`), for the jobs ``start`` is
    told of; a job it was not told of is forked by the runner, the job in the fork's memory.
    """

    runs_elsewhere = True

    def __init__(
        self, max_tasks_per_child: int | None = 1, max_memory_growth: int = MAX_MEMORY_GROWTH
    ) -> None:
        super().__init__()
        if max_tasks_per_child is not None and max_tasks_per_child < 1:
            raise ValueError(f"max_tasks_per_child must be at least 1, got {max_tasks_per_child}")
        self.max_tasks_per_child = max_tasks_per_child
        self.max_memory_growth = max_memory_growth
        self._ctx = multiprocessing.get_context("fork")
        self._workers: dict[Connection, _Worker] = {}
        self._exiting: dict[int, _Worker] = {}  # by exit watch: workers done with their jobs
        self._known = Known({})
        self._unsent: set[str] = set()  # known jobs not submitted yet
        self._room = 0
        self._forked = 0
        self._server: ForkServer | None = None
        self._asked: dict[str, Connection] = {}  # by name: workers the server is making

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_tasks_per_child={self.max_tasks_per_child})"

    def start(self, store: Store, workers: int, jobs: Mapping[str, Job] | None = None) -> None:
        super().start(store, workers, jobs)
        store.preload()  # once here, so no forked worker pays for the imports
        can_adopt_orphans()  # looked up once here, for every worker
        self._known, self._room = Known(dict(jobs or {})), workers
        self._unsent = set(self._known.jobs)
        target = functools.partial(served_worker, store, self._known, *self._limits())
        with contextlib.suppress(NoPidfds), signals_held():  # without, the runner forks them
            self._server = ForkServer(self._ctx, target)
        self._fork_ahead()

    def submit(self, job: Job) -> None:
        assert self.store is not None
        self._unsent.discard(job.name)
        named, idle = self._named(job), self._idle()
        worker = None if named is None else self._send(named, idle)
        if worker is None:
            if named is None:  # a fork takes it along, in place of an idle worker
                self._end_idle(idle[:1])
            worker = self._fork(job, named)
        worker.running = Running.now(job)
        self._fork_ahead()

    def _send(self, named: JobByName, idle: list[_Worker]) -> _Worker | None:
        """Send job ``named`` to one of the ``idle`` workers; None if none takes it."""
        message = pickle.dumps(named)
        for worker in idle:
            try:
                worker.conn.send_bytes(message)
                return worker
            except OSError:  # it died while idle, so nothing is lost
                self._retire(worker.conn)
        return None

    def _idle(self) -> list[_Worker]:
        """The idle workers; if none is, but the fork server is making one, that one."""
        self._take_started()
        idle = [w for w in self._workers.values() if w.running is None]
        if not idle and self._asked:
            self._take_started(next(iter(self._asked)))
            idle = [w for w in self._workers.values() if w.running is None]
        return idle

    def _named(self, job: Job) -> JobByName | None:
        """``job`` as its name and attempt, if it is a job ``start`` was told of."""
        known = self._known.jobs.get(job.name)
        if known is not None and job == dataclasses.replace(known, attempt=job.attempt):
            return JobByName(job.name, job.attempt)
        return None

    def _limits(self) -> tuple[int | None, int]:
        return self.max_tasks_per_child, self.max_memory_growth

    def _fork_ahead(self) -> None:
        """Have idle workers made for the known jobs still to come, up to the run's
        ``workers``: by the fork server, in the background, or else forked here."""
        idle = sum(w.running is None for w in self._workers.values()) + len(self._asked)
        busy = len(self._workers) + len(self._asked) - idle
        room = self._room - (busy if self.max_tasks_per_child != 1 else 0)
        for _ in range(min(room, len(self._unsent)) - idle):
            if not self._ask(None):
                self._fork(None)

    def _ask(self, named: JobByName | None) -> str | None:
        """Ask the fork server for a worker that runs the ``named`` job, or (None) waits for
        one; the worker's name, or None if there is no server."""
        if self._server is None:
            return None
        ours, theirs = self._ctx.Pipe()
        self._forked += 1
        name = f"Worker-{self._forked}"
        with signals_held():  # until the worker is known, so that shutdown ends it
            asked = self._server.request(named, theirs, name)
            theirs.close()
            if not asked:
                ours.close()
                return None
            self._asked[name] = ours
        return name

    def _take_started(self, until: str | None = None) -> None:
        """Make the workers the fork server started known (first waiting for ``until``);
        forget the ones asked for if it died."""
        if self._server is None or (until is None and not readable(self._server.fileno())):
            return  # no news, and none awaited
        with signals_held():  # until the worker is known, so that shutdown ends it
            for process in self._server.started(until):
                conn = self._asked.pop(process.name)
                self._workers[conn] = _Worker(process, conn)
        if not self._server.alive:
            for conn in self._asked.values():
                conn.close()
            self._asked.clear()

    def _fork(self, job: Job | None, named: JobByName | None = None) -> _Worker:
        """A new worker: it runs ``job`` at once, or (None) waits to be sent one. The fork
        server makes it if it holds the job (``named``); else the runner forks, taking ``job``
        along."""
        if (job is None or named is not None) and (name := self._ask(named)):
            conn = self._asked[name]
            self._take_started(name)
            if conn in self._workers:
                return self._workers[conn]
        ours, theirs = self._ctx.Pipe()
        self._forked += 1
        process = self._ctx.Process(  # not daemonic, so tasks may use multiprocessing
            target=worker_main,
            args=(job, self.store, theirs, self._known, *self._limits()),
            name=f"Worker-{self._forked}",
        )
        with signals_held():  # until the worker is known, so that shutdown ends it
            process.start()
            own_group(process.pid)  # type: ignore[arg-type]
            theirs.close()
            worker = self._workers[ours] = _Worker(process, ours, born_with=job)
        return worker

    def wait(self, timeout: float | None = None) -> list[Outcome]:
        outcomes: list[Outcome] = []
        deadline = None if timeout is None else time.monotonic() + timeout
        while not outcomes:
            by_exit = {w.ended: c for c, w in self._workers.items()}
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            ready = multiprocessing.connection.wait(  # the workers the server started are
                [*self._workers, *by_exit, *self._exiting],  # taken when one is needed
                wait_time(remaining, self._running()),
            )
            for exited in [obj for obj in ready if obj in self._exiting]:
                _reap(self._exiting.pop(exited))  # type: ignore[index]
            for conn in {by_exit.get(obj, obj) for obj in ready if obj not in self._exiting}:
                if conn in self._workers:
                    outcome = self._receive(conn)  # type: ignore[arg-type]
                    if outcome is not None:
                        outcomes.append(outcome)
            outcomes.extend(self._expire())
            if deadline is not None and time.monotonic() >= deadline:
                break
        return outcomes

    def _running(self) -> list[Running]:
        return [w.running for w in self._workers.values() if w.running is not None]

    def _receive(self, conn: Connection) -> Outcome | None:
        """Handle what a worker sent: log records, then its report; None while the job runs.
        Without a report, whether the worker ended is looked at, and then all it sent read."""
        worker = self._workers[conn]
        try:
            report = receive_report(conn)
            if report is None:
                if worker.process.exitcode is None:
                    return None
                report = receive_report(conn)  # it ended: all it sent is in the pipe now
        except (EOFError, OSError):
            report = None
        if report is not None:
            outcome = report.outcome
            if report.held:  # right behind the report, before the connection may be closed
                outcome = dataclasses.replace(outcome, hold=receive_hold(conn))
            worker.running = None
            if not report.more:
                del self._workers[conn]
                self._let_exit(worker)
            return outcome
        running = self._retire(conn)  # the worker died
        if running is None:
            return None  # while idle: nothing is lost, a new worker takes the next job
        if not worker.took(running.job, self._known):  # it never took the job,
            self.submit(running.job)  # which goes to another worker
            return None
        message = _death_message(worker.process.exitcode)
        return Outcome(running.job.name, running.started, time.time(), message)

    def _let_exit(self, worker: _Worker) -> None:
        """A worker done with its jobs exits now. The fork server reaps one it forked (while
        it lives); any other is reaped once it has exited, not waited for here."""
        if isinstance(worker.process, Served) and self._server is not None and self._server.alive:
            worker.close()
            worker.process.release()
        else:
            worker.conn.close()
            self._exiting[worker.ended] = worker  # type: ignore[index]

    def _retire(self, conn: Connection) -> Running | None:
        """Forget a worker that ended, or is ending; its task's processes end with it."""
        worker = self._workers.pop(conn)
        worker.conn.close()
        _reap(worker)
        return worker.running

    def _expire(self) -> list[Outcome]:
        now = time.monotonic()
        expired = [
            (conn, worker, running)
            for conn, worker in self._workers.items()
            if (running := worker.running) is not None
            and running.deadline
            and running.deadline <= now
        ]
        stop_groups([worker.process for _, worker, _ in expired])  # at once: one grace period
        outcomes = []
        for conn, worker, running in expired:
            del self._workers[conn]
            forward_last_words(conn)
            worker.close()
            outcomes.append(timed_out(running.job, running.started, "worker killed"))
        return outcomes

    def shutdown(self) -> list[str]:
        if self._asked:
            self._take_started(list(self._asked)[-1])
        busy = [(w, w.running) for w in self._workers.values() if w.running is not None]
        stop_groups([worker.process for worker, _ in busy])
        self._end_idle([w for w in self._workers.values() if w.running is None])
        for worker in self._workers.values():
            forward_last_words(worker.conn)
            worker.close()
        self._workers.clear()
        for worker in self._exiting.values():
            _reap(worker)
        self._exiting.clear()
        self._unsent.clear()
        if self._server is not None:
            self._server.close()
            self._server = None
        return [running.job.name for _, running in busy]

    def _end_idle(self, idle: list[_Worker]) -> None:
        """Tell idle workers there are no more jobs, and see them end."""
        message = pickle.dumps(NoMoreJobs())
        for worker in idle:
            with contextlib.suppress(OSError):
                worker.conn.send_bytes(message)
        for worker in idle:
            self._retire(worker.conn)


def _reap(worker: _Worker) -> None:
    """See a worker that is ending exit, then end what its task left in its process group."""
    readable(worker.ended, KILL_GRACE)  # type: ignore[arg-type]  (open until this is done)
    kill_group(worker.process.pid, signal.SIGKILL)
    worker.process.join()
    worker.close_watch()


def _death_message(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"worker process was killed by {name}"
    return f"worker process exited with code {exitcode} before reporting a result"
