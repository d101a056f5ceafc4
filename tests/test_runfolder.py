"""Run folders read back (``pyperunner.runfolder``): a run from its journal or its YAML files,
summaries for listings, runs in start order, and the entries kept runs use (gc's selection)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from pyperunner import Pipeline, Runner, Task, run, runfolder
from pyperunner.journal import read_journal
from pyperunner.runfolder import RunFolderError


class Step(Task):
    @run
    def run(self, data=None, fail=False):
        if fail:
            raise ValueError("asked to fail")
        return len(data or [])


def a_run(root: Path, fail: bool = False, name: str = "folder") -> Path:
    pipeline = Pipeline(name, [Step("b", fail=fail)(Step("a"))])
    return (
        Runner(root / "data", root / "log", executor="inline", console=False).run(pipeline).run_dir
    )


def made_before_journals(folder: Path) -> Path:
    for name in ("events.jsonl", "summary.json"):
        (folder / name).unlink()
    return folder


def test_a_run_reads_the_same_from_its_journal_and_from_its_yaml_files(tmp_path: Path) -> None:
    folder = a_run(tmp_path, fail=True)
    journal = runfolder.read_run(folder)
    assert journal.journal is not None and journal.journal.ended
    copy = made_before_journals(shutil.copytree(folder, tmp_path / "copy"))
    yaml_files = runfolder.read_run(copy)
    assert yaml_files.journal is None
    assert journal.tasks == yaml_files.tasks
    assert journal.outcome is not None and yaml_files.outcome is not None
    for name in journal.tasks:
        assert journal.outcome["tasks"][name] == yaml_files.outcome["tasks"][name]


def test_a_journal_rebuilds_each_tasks_latest_valid_record_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each task's record is rebuilt from its latest valid line only, once: a damaged last
    line leaves the one before it, a line that is not JSON (or holds two values) is skipped."""
    from pyperunner.status import TaskRun

    folder = a_run(tmp_path)
    journal = folder / "events.jsonl"
    lines = journal.read_text().splitlines()
    *head, ended = lines
    damaged = {"task": "Step(b)", "t": 0, "run": {"status": "SUCCESS", "attempts": "many"}}
    extra = [json.dumps(damaged), "not json", '{"task": "Step(a)"}, {"task": "Step(a)"}']
    journal.write_text("\n".join([*head, *extra, ended]) + "\n")
    rebuilt: list[object] = []
    real = TaskRun.from_dict.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        TaskRun, "from_dict", classmethod(lambda cls, doc: rebuilt.append(doc) or real(cls, doc))
    )

    read = read_journal(folder)

    assert read is not None and read.ended
    assert {name: run.status.value for name, run in read.tasks.items()} == {
        "Step(a)": "SUCCESS",
        "Step(b)": "SUCCESS",
    }
    assert len(rebuilt) == 3  # Step(b): the damaged line, then the one before; Step(a): one


def test_a_summary_comes_from_summary_json_else_from_the_files_else_says_why(tmp_path: Path):
    folder = a_run(tmp_path, fail=True)
    summary = runfolder.summarize(folder)
    assert (summary.pipeline, summary.tasks, summary.state) == ("folder", 2, "finished")
    assert summary.counts == {"SUCCESS": 1, "FAILURE": 1}
    made_before_journals(folder)
    from_files = runfolder.summarize(folder)
    assert (from_files.pipeline, from_files.counts) == (summary.pipeline, summary.counts)
    (folder / "run.yaml").write_text("tasks: [1]\n")
    broken = runfolder.summarize(folder)
    assert broken.state == "unreadable" and broken.pipeline == "folder"  # pipeline.yaml is fine
    assert broken.problem == "run.yaml: its 'tasks' is not a mapping of task name to record"
    (folder / "pipeline.yaml").write_text("pipeline: [oops\n")
    assert runfolder.summarize(folder).problem.startswith("pipeline.yaml: cannot be read")


def test_runs_are_in_start_order_and_the_latest_is_last(tmp_path: Path) -> None:
    first, second, third = (a_run(tmp_path, name=f"p{i}") for i in range(3))
    assert [s.folder for s in runfolder.runs_in(tmp_path / "log")] == [first, second, third]


def test_the_entries_kept_runs_use(tmp_path: Path) -> None:
    first = a_run(tmp_path)
    second = a_run(tmp_path, fail=True)
    keys = {
        (name, spec["key"])
        for f in (first, second)
        for name, spec in runfolder.read_run(f).tasks.items()
    }
    assert runfolder.entries_used([tmp_path / "log"]) == (keys, 2)
    assert runfolder.entries_used([first])[1] == 1
    assert runfolder.entries_used([first / "pipeline.yaml", second]) == (keys, 2)
    saved = Pipeline("saved", [Step("a")]).to_file(tmp_path / "saved.yml")
    assert runfolder.entries_used([saved])[0] == {("Step(a)", Step("a").hash())}


def test_a_kept_run_that_cannot_be_read_stops_the_selection(tmp_path: Path) -> None:
    folder = made_before_journals(a_run(tmp_path))
    outcome = json.loads(json.dumps(runfolder.read_run(folder).outcome))
    outcome["tasks"]["Ghost()"] = {"status": "SUCCESS"}
    (folder / "run.yaml").write_text(json.dumps(outcome))  # JSON is YAML too
    with pytest.raises(RunFolderError, match=r"lacks task\(s\) \['Ghost\(\)'\]"):
        runfolder.entries_used([tmp_path / "log"])
