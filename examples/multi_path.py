"""The manual's multi-path pipeline as a small, real ETL job.

Two sources of the same measurements (a CSV file and an SQLite database) are loaded, normalized
in two different ways, one branch is augmented, and both branches are compared at the end:

    LoadData(csv) -> ProcessData(normalize-l1) -> AugmentData(augment) --+
                                                                         +-> Evaluate(both)
    LoadData(database) -> ProcessData(normalize-l2) ---------------------+

Run it twice: the second run takes every result from the cache. Everything it writes goes to
``pyperunner-example/`` in the current folder (or the folder given as the first argument).
"""

from __future__ import annotations

import csv
import math
import random
import sqlite3
import statistics
import sys
from pathlib import Path

from pyperunner import Pipeline, Runner, Task, run

COLUMNS = ("height", "weight", "age")


def make_inputs(folder: Path) -> tuple[Path, Path]:
    """Write the example's two input sources (deterministic, so the cache stays valid)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(42)
    rows = [
        (round(rng.gauss(172, 9), 1), round(rng.gauss(74, 12), 1), rng.randint(18, 90))
        for _ in range(500)
    ]
    csv_path, db_path = folder / "measurements.csv", folder / "measurements.sqlite"
    if not csv_path.exists():
        with csv_path.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(COLUMNS)
            writer.writerows(rows[:250])
    if not db_path.exists():
        with sqlite3.connect(db_path) as db:
            db.execute("CREATE TABLE measurements (height REAL, weight REAL, age INTEGER)")
            db.executemany("INSERT INTO measurements VALUES (?, ?, ?)", rows[250:])
    return csv_path, db_path


class LoadData(Task):
    """Read the measurements from a CSV file or an SQLite database."""

    @run
    def run(self, data, filename=None, database=None):
        if filename is not None:
            with open(filename, newline="") as handle:
                rows = [[float(row[c]) for c in COLUMNS] for row in csv.DictReader(handle)]
        else:
            with sqlite3.connect(database["path"]) as db:
                query = f"SELECT {', '.join(COLUMNS)} FROM {database['table']}"
                rows = [[float(v) for v in row] for row in db.execute(query)]
        print(f"loaded {len(rows)} rows")
        return {"source": self.name, "columns": list(COLUMNS), "rows": rows}


class ProcessData(Task):
    """Scale every column (axis=0) or every row (axis=1) to unit l1 or l2 norm."""

    @run
    def run(self, data, norm, axis=0):
        table = data[0]
        rows = table["rows"]
        power = 1 if norm == "l1" else 2
        if axis == 0:
            norms = [
                sum(abs(row[i]) ** power for row in rows) ** (1 / power)
                for i in range(len(table["columns"]))
            ]
            rows = [[value / n for value, n in zip(row, norms, strict=True)] for row in rows]
        else:
            rows = [
                [v / sum(abs(x) ** power for x in row) ** (1 / power) for v in row] for row in rows
            ]
        return {**table, "source": self.name, "rows": rows}


class AugmentData(Task):
    """Add rotated and noisy copies of the rows (a classic data augmentation)."""

    @run
    def run(self, data, types, seed=0):
        table = data[0]
        rng = random.Random(seed)
        rows = list(table["rows"])
        if "rotate" in types:
            angle = math.radians(5)
            rows += [
                [
                    r[0] * math.cos(angle) - r[1] * math.sin(angle),
                    r[0] * math.sin(angle) + r[1] * math.cos(angle),
                    *r[2:],
                ]
                for r in table["rows"]
            ]
        if "noise" in types:
            rows += [[v * (1 + rng.gauss(0, 0.01)) for v in r] for r in table["rows"]]
        print(f"augmented {len(table['rows'])} rows to {len(rows)}")
        return {**table, "source": self.name, "rows": rows}


class Evaluate(Task):
    """Compare the column statistics of every input branch."""

    @run
    def run(self, data):
        report = {}
        for table in data:
            columns = list(zip(*table["rows"], strict=True))
            report[table["source"]] = {
                name: {"mean": statistics.fmean(col), "stdev": statistics.stdev(col)}
                for name, col in zip(table["columns"], columns, strict=True)
            }
        for source, stats in report.items():
            means = ", ".join(f"{c}={s['mean']:.4f}" for c, s in stats.items())
            print(f"{source}: {means}")
        return report


def build_pipeline(csv_path: Path, db_path: Path) -> Pipeline:
    """Wire the tasks exactly as in the manual's multi-path example."""
    pipeline = Pipeline("my-pipeline")
    load_db = LoadData("database", database={"path": str(db_path), "table": "measurements"})
    norm_l2 = ProcessData("normalize-l2", norm="l2", axis=0)(load_db)
    load_csv = LoadData("csv", filename=str(csv_path))
    norm_l1 = ProcessData("normalize-l1", norm="l1")(load_csv)
    augment = AugmentData("augment", types=["rotate", "noise"])(norm_l1)
    Evaluate("both")([norm_l2, augment])
    pipeline.add(load_db)
    pipeline.add(load_csv)
    return pipeline


def main(workdir: Path) -> None:
    csv_path, db_path = make_inputs(workdir / "inputs")
    pipeline = build_pipeline(csv_path, db_path)
    pipeline.summary()

    runner = Runner(data_path=workdir / "data", log_path=workdir / "log")
    result = runner.run(pipeline)
    print("status image:", runner.write_status_image("status.png"))
    print("tasks:", list(pipeline.results()))
    print("Evaluate(both) compared:", list(pipeline["Evaluate(both)"]))
    print("run folder:", result.run_dir)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "pyperunner-example"))
