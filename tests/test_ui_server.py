"""The ``pyperunner ui`` server as users meet it: a real process on a free port, real runs, HTTP.

The page itself is tested in a browser elsewhere; here the JSON it reads, the downloads, the
paths it refuses, a run followed while it goes on, and stopping with Ctrl-C.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Served

from pyperunner import Pipeline, Runner, task


@task("Source", receives_input=False)
def source(size):
    print(f"made {size} rows")
    return list(range(size))


@task("Boom")
def boom(data):
    raise ValueError("bad rows <b>here</b>")


def run_once(tmp_path: Path, size: int, name: str = "served") -> Path:
    runner = Runner(tmp_path / "data", tmp_path / "log", executor="inline", console=False)
    return runner.run(Pipeline(name, [boom("b")(source("s", size=size))])).run_dir


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    run_once(tmp_path, 3)
    run_once(tmp_path, 4)
    server = Served(["log"], tmp_path)
    yield server
    if server.process.poll() is None:
        server.stop()


def test_runs_are_listed_newest_first_and_filtered(served: Served, tmp_path: Path) -> None:
    listing = served.json("/api/runs")
    assert listing["total"] == 2
    first, second = sorted(p.name for p in (tmp_path / "log").iterdir())
    assert [run["id"] for run in listing["runs"]] == [second, first]
    assert listing["runs"][0]["counts"] == {"FAILURE": 1, "SUCCESS": 1}
    assert listing["runs"][0]["state"] == "finished" and listing["runs"][0]["tasks"] == 2
    assert served.json("/api/runs?q=SERV&failed=1&limit=1")["runs"][0]["id"] == second
    assert served.json("/api/runs?q=other")["total"] == 0
    assert served.json("/api/runs?offset=1")["runs"][0]["id"] == first


def test_a_run_its_task_log_and_its_result_are_served(served: Served, tmp_path: Path) -> None:
    run_id = served.json("/api/runs")["runs"][0]["id"]
    run = served.json(f"/api/runs/{run_id}")
    tasks = {task["name"]: task for task in run["tasks"]}
    assert tasks["Boom(b)"]["status"] == "FAILURE"
    assert "bad rows <b>here</b>" in tasks["Boom(b)"]["traceback"]  # as it is: the page escapes
    assert tasks["Source(s)"]["preview"]["text"] == "[0, 1, 2, 3]"
    key = tasks["Source(s)"]["key"]
    assert "made 4 rows" in served.json(f"/api/runs/{run_id}/tasks/{key}/log")["log"]
    status, body = served.get(f"/api/runs/{run_id}/tasks/{key}/result")
    stored = tmp_path / "data" / "Source(s)" / key / "result.dump.gz"
    assert status == 200 and body == stored.read_bytes()
    assert served.get(f"/api/runs/{run_id}/tasks/{tasks['Boom(b)']['key']}/result")[0] == 404


def test_two_runs_are_compared(served: Served) -> None:
    second, first = (run["id"] for run in served.json("/api/runs")["runs"])
    compared = served.json(f"/api/compare?a={first}&b={second}")
    changed = {task["name"]: task for task in compared["tasks"]}
    assert changed["Source(s)"]["changes"] == ["parameters changed: size"]
    assert changed["Boom(b)"]["changes"] == ["upstream changed: Source(s)"]
    assert compared["added"] == compared["removed"] == []


def test_the_cache_is_shown_and_nothing_is_deleted(served: Served, tmp_path: Path) -> None:
    (tmp_path / "data" / "Old(x)" / ("0" * 32)).mkdir(parents=True)
    cache = served.json("/api/cache")
    entries = {(task["name"], e["key"]): e for task in cache["tasks"] for e in task["entries"]}
    assert entries["Old(x)", "0" * 32]["garbage"] and cache["garbage_entries"] == 1
    used = [e for (name, _), e in entries.items() if name == "Source(s)"]
    assert len(used) == 2 and all(len(e["runs"]) == 1 and not e["garbage"] for e in used)
    assert (tmp_path / "data" / "Old(x)" / ("0" * 32)).is_dir()


@pytest.mark.parametrize(
    "path",
    [
        "/api/runs/..%2F..%2Fetc%2Fpasswd",
        "/api/runs/%2Fetc%2Fpasswd",
        "/api/runs/nope",
        "/static/..%2Fserver.py",
        "/static/%2Fetc%2Fpasswd",
        "/etc/passwd",
        "/api/runs/RUN/tasks/..%2F..%2F..%2Fpipeline.yaml/log",
    ],
)
def test_paths_outside_the_runs_are_not_found(served: Served, path: str) -> None:
    run_id = served.json("/api/runs")["runs"][0]["id"]
    status, body = served.get(path.replace("RUN", run_id))
    assert status == 404 or (status == 200 and json.loads(body) == {"log": ""}), (status, body)
    assert b"root:" not in body and b"pipeline:" not in body


def test_a_result_outside_the_data_paths_given_is_not_served(tmp_path: Path) -> None:
    run_dir = run_once(tmp_path, 3)
    (tmp_path / "elsewhere").mkdir()
    server = Served(["log", "--data-path", "elsewhere"], tmp_path)
    try:
        run = server.json(f"/api/runs/{run_dir.name}")
        key = next(t["key"] for t in run["tasks"] if t["name"] == "Source(s)")
        assert server.get(f"/api/runs/{run_dir.name}/tasks/{key}/result")[0] == 404
    finally:
        server.stop()


def test_a_run_is_followed_while_it_goes_on(tmp_path: Path) -> None:
    started, release = tmp_path / "started", tmp_path / "release"
    os.mkfifo(started)
    os.mkfifo(release)
    script = tmp_path / "slow.py"
    script.write_text(
        textwrap.dedent(
            f"""
            from pyperunner import Pipeline, Runner, task

            @task("Slow", receives_input=False)
            def slow():
                with open({str(started)!r}, "w"):
                    pass  # the test now knows the task runs
                with open({str(release)!r}) as waiting:
                    waiting.read()  # until the test lets it end
                return 1

            Runner("data", "log", executor="inline", console=False).run(Pipeline("slow", [slow()]))
            """
        )
    )
    (tmp_path / "log").mkdir()
    server = Served(["log"], tmp_path)
    running = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path)
    try:
        with open(started):  # the task has started
            pass
        [run] = server.json("/api/runs")["runs"]
        assert run["state"] == "running"
        document = server.json(f"/api/runs/{urllib.parse.quote(run['id'])}")
        assert [task["status"] for task in document["tasks"]] == ["RUNNING"]
        with open(release, "w"):
            pass
        assert running.wait(timeout=60) == 0
        changes = server.json(f"/api/runs/{run['id']}/changes?since={document['journal']}")
        assert changes["tasks"]["Slow()"]["status"] == "SUCCESS"
        assert changes["state"] == "finished" and changes["journal"] > document["journal"]
    finally:
        running.kill()
        server.stop()


def test_ctrl_c_stops_the_server_cleanly(served: Served) -> None:
    assert served.json("/api/runs")["total"] == 2
    code, errors = served.stop()
    assert code == 0 and errors == ""


def test_importing_pyperunner_does_not_import_the_server_stack() -> None:
    code = (
        "import sys, pyperunner, pyperunner.cli; print(sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('starlette', 'uvicorn')))"
    )
    assert (
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        == "[]"
    )
