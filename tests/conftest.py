"""Shared test helpers: counting task executions across processes without touching task keys;
driving headless Chromium, the ``pyperunner ui`` server and the runs the pages are tested on."""

from __future__ import annotations

import errno
import html.parser
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis.configuration import set_hypothesis_home_dir

from pyperunner import Pipeline, Runner, Task, run

CALLS_ENV = "PYPERUNNER_TEST_CALLS"

# Hypothesis keeps caches in a `.hypothesis` folder of the working directory: keep them out of the
# repository, and keep no example database at all (each run draws afresh).
set_hypothesis_home_dir(tempfile.mkdtemp(prefix="pyperunner-hypothesis-"))
settings.register_profile("pyperunner", database=None)
settings.load_profile("pyperunner")


def local_cluster() -> Any:
    """A Dask ``LocalCluster`` of two worker processes with one thread each, for Dask tests
    (which skip where ``distributed`` is not installed)."""
    import distributed

    return distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    )


def parent_of(pid: int) -> int:
    """The parent of process ``pid`` (Linux ``/proc``)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return int(stat.rpartition(")")[2].split()[1])


@pytest.fixture(autouse=True)
def _stop_signals_as_they_were() -> Iterator[None]:
    """Every test leaves SIGINT, SIGTERM and SIGHUP as it found them, and no signal blocked
    (asserted); the three are set again after each test, which also puts the kernel's record
    back in step with Python's table. Once, in the full suite, the scripts ``test_faults``
    starts inherited SIGINT ignored while ``signal.getsignal`` showed the default handler;
    two later full runs that logged the kernel's ignored set after every test never saw it
    change, so the cause is not known and this guard stays."""
    stops = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    before = {sig: signal.getsignal(sig) for sig in stops}
    blocked = signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    after = {sig: signal.getsignal(sig) for sig in stops}
    for sig, handler in before.items():
        signal.signal(sig, handler)
    changed = {signal.Signals(sig).name: after[sig] for sig in stops if after[sig] != before[sig]}
    assert not changed, f"the test left these signal handlers: {changed}"
    assert signal.pthread_sigmask(signal.SIG_BLOCK, []) == blocked, "the test left signals blocked"


def record_call(name: str) -> None:
    """Append ``name`` to the calls file named by the environment (one line per execution).

    Tasks call this; the file is opened in append mode so concurrent processes do not clobber it.
    """
    path = os.environ.get(CALLS_ENV)
    if path:
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(name + "\n")


class Calls:
    """Reads back which tasks executed, in which order, since the last reset."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def order(self) -> list[str]:
        if not self.path.exists():
            return []
        return self.path.read_text(encoding="utf-8").splitlines()

    def counts(self) -> Counter[str]:
        return Counter(self.order())

    def reset(self) -> None:
        self.path.unlink(missing_ok=True)


@pytest.fixture
def calls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Executions of tasks that call ``record_call``, across processes and threads."""
    path = tmp_path / "calls.txt"
    monkeypatch.setenv(CALLS_ENV, str(path))
    return Calls(path)


def _refuse_pidfd_open(pid: int, flags: int = 0) -> int:
    raise OSError(errno.EPERM, "pidfd_open refused")


@pytest.fixture(params=["missing", "refused"])
def without_pidfds(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """A system without pidfds: ``os.pidfd_open`` is missing (Linux before 5.3, not Linux) or
    refused (a seccomp filter); what this process forks inherits it."""
    if request.param == "missing":
        monkeypatch.delattr(os, "pidfd_open")
    else:
        monkeypatch.setattr(os, "pidfd_open", _refuse_pidfd_open)


@pytest.fixture
def paths(tmp_path: Path) -> tuple[Path, Path]:
    """A fresh (data_path, log_path) pair inside tmp_path."""
    return tmp_path / "data", tmp_path / "log"


def double_fork_sleeper() -> int:
    """Detach ``sleep 61`` as daemons do (fork, setsid, fork, exec): the middle process exits at
    once, so the sleeper is an orphan in a session of its own; return its pid."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:  # the caller may have threads: this child only forks, writes and exits
        try:
            os.setsid()
            sleeper = os.fork()
            if sleeper == 0:
                os.execvp("sleep", ["sleep", "61"])
            os.write(write_end, str(sleeper).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    os.waitpid(middle, 0)
    with os.fdopen(read_end, "rb") as reading:
        return int(reading.read())


# --------------------------------------------------------------------------- browsers


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Chromium executable; skip without one, but fail in CI where it must be installed."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None and Path("/usr/bin/chromium").exists():
        found = "/usr/bin/chromium"
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("chromium not found: CI must install it (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    return found


def sync_playwright() -> Any:
    """Playwright's context manager; skip without the package, but fail in CI."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("playwright is not installed: CI must install the test extras")
        pytest.skip("playwright is not installed (pip install playwright)")
    return sync_playwright()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One headless Chromium for a test module."""
    executable = chromium_path()
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page; the test fails if the page raised a JavaScript error or opened a dialog."""
    opened = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    opened.on("pageerror", lambda error: errors.append(f"error: {error}"))

    def on_dialog(dialog: Any) -> None:
        errors.append(f"dialog: {dialog.message}")
        dialog.dismiss()

    opened.on("dialog", on_dialog)
    yield opened
    opened.close()
    assert not errors, errors


# --------------------------------------------------------------------------- the ui server


class Served:
    """A ``pyperunner ui`` process on a free port and its base URL."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        command = [sys.executable, "-c", "from pyperunner.cli import main; main()", "ui", *args]
        self.process = subprocess.Popen(
            [*command, "--port", "0"],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.process.stdout.readline()  # the announcement: it listens from now on
        assert "http://127.0.0.1:" in line, line + self.process.stderr.read()
        self.url = line.split()[2]

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(self.url + path.lstrip("/"), timeout=30) as answer:
                return answer.status, answer.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()

    def json(self, path: str) -> Any:
        status, body = self.get(path)
        assert status == 200, (path, status, body)
        return json.loads(body)

    def stop(self) -> tuple[int, str]:
        self.process.send_signal(signal.SIGINT)
        _, errors = self.process.communicate(timeout=30)
        return self.process.returncode, errors


# --------------------------------------------------------------------------- notebook displays


class _Rows(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: Any) -> None:
        if tag == "tr":
            self.rows.append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self.cell is not None:
            self.rows[-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def table_rows(markup: str) -> list[list[str]]:
    """The text of each cell of each row of the tables in ``markup``, as a browser shows it
    (entities decoded), header rows included."""
    parser = _Rows()
    parser.feed(markup)
    return parser.rows


# --------------------------------------------------------------------------- runs to look at

EVIL = "<img src=x onerror=alert(1)>"
"""Markup a run may hold anywhere (a tag, a parameter, an error, a log line): pages show it as
text."""
FAILING = ("s2-max", "s5-std")
KINDS = ("mean", "max", "min", "std", "sum", "len")


class Source(Task):
    """A table of ``rows`` rows (a numpy array, so its preview has a shape and a dtype)."""

    @run
    def run(self, rows=100):
        import numpy as np

        return np.arange(rows * 3, dtype="float64").reshape(rows, 3)


class Clean(Task):
    """Drops nothing; its threshold is the parameter a second run changes."""

    @run
    def run(self, data, threshold=0.5):
        return data


class Feature(Task):
    """One feature of one cleaned table; the tags in ``FAILING`` print a line, then raise."""

    @run
    def run(self, data, kind="mean"):
        if self.tag in FAILING:
            print(f"computing {self.tag} went wrong")
            raise ValueError(f"no {kind} for {self.tag}")
        return float(len(data))


class Train(Task):
    """Takes every feature."""

    @run
    def run(self, data, rate=0.1):
        return len(data)


class Report(Task):
    """The end of the pipeline."""

    @run
    def run(self, data):
        return "done"


class Marked(Task):
    """A task whose tag, parameter, printed line and error are markup."""

    @run
    def run(self, note=EVIL):
        print(f"printed {note}")
        raise ValueError(f"broken {note}")


def feature_pipeline(threshold: float = 0.5) -> Pipeline:
    """7 sources -> a Clean each -> 6 features each (2 of them fail) -> Train -> Report;
    ``threshold`` is Clean(s3)'s."""
    features = []
    sources = [Source(f"s{i}") for i in range(7)]
    for i, source in enumerate(sources):
        clean = Clean(f"s{i}", threshold=threshold if i == 3 else 0.5)(source)
        features += [Feature(f"s{i}-{kind}", kind=kind)(clean) for kind in KINDS]
    Report("final")(Train("model")(features))
    return Pipeline("features", sources)


def marked_pipeline() -> Pipeline:
    """One task with markup everywhere, beside a plain one."""
    return Pipeline(f"marked {EVIL}", [Marked(EVIL), Source("plain", rows=2)])


def run_inline(root: Path, pipeline: Pipeline) -> Path:
    """Run ``pipeline`` with the inline executor, data and logs under ``root``; its run folder."""
    runner = Runner(root / "data", root / "log", executor="inline", console=False)
    return runner.run(pipeline).run_dir


@pytest.fixture(scope="module")
def feature_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The feature pipeline's first run, then a second with Clean(s3)'s threshold changed."""
    root = tmp_path_factory.mktemp("runs")
    return run_inline(root, feature_pipeline()), run_inline(root, feature_pipeline(0.7))
