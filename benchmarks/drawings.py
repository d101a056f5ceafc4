"""How fast the pictures draw: ``python benchmarks/drawings.py [--repeat 5]``.

The figures the report tests once asserted with a wall clock, measured here instead (best of
``--repeat``, after a warm-up that loads the fonts): ``status.png`` of 60 tasks in 6 layers and
of a chain of 200 tasks (``report.image.write_status_png``), and the ASCII drawing of 200 tasks
with random edges (``report.ascii.draw_ascii``, what ``Pipeline.summary`` prints). Each has a
target; the exit code is 1 if one is missed. Run by hand; nothing here is a test.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import networkx as nx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_report_image import layered_graph

from pyperunner.report.ascii import draw_ascii
from pyperunner.report.image import write_status_png


def chain(n: int = 200) -> nx.DiGraph:
    """Of two classes in turn, so that no part of it is drawn as a group."""
    graph = nx.DiGraph()
    nx.add_path(graph, [f"Step{i % 2}(number-{i})" for i in range(n)])
    return graph


def random_edges(n: int = 200, seed: int = 7) -> tuple[list[str], list[tuple[str, str]]]:
    rng = random.Random(seed)
    nodes = [f"task_{index}" for index in range(n)]
    edges = [(nodes[i], nodes[j]) for i in range(n) for j in range(i + 1, n) if rng.random() < 0.02]
    return nodes, edges


def best_of(repeat: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder)
        write_status_png(chain(4), out / "warm-up.png")  # font loading
        nodes, edges = random_edges()
        cases: list[tuple[str, float, Callable[[], object]]] = [
            ("status.png, 60 tasks", 0.5, lambda: write_status_png(layered_graph(), out / "a.png")),
            ("status.png, chain of 200", 0.5, lambda: write_status_png(chain(), out / "b.png")),
            ("ASCII, 200 tasks", 1.0, lambda: draw_ascii(nodes, edges)),
        ]
        missed = 0
        for name, target, work in cases:
            seconds = best_of(args.repeat, work)
            verdict = "ok" if seconds < target else "MISSED"
            missed += seconds >= target
            print(
                f"{name:<28} {seconds * 1000:8.1f} ms   target < {target * 1000:.0f} ms  {verdict}"
            )
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
