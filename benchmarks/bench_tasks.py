"""The pyperunner tasks and pipelines of the benchmarks (only the public API)."""

from __future__ import annotations

import plain

from pyperunner import Pipeline, Sequential, task


@task("Start", receives_input=False)
def start(i=0):
    return i


@task("Step")
def step(data):
    return data[0] + 1


@task("Child")
def child(data, i):
    return data[0] + i


@task("RungRoot", receives_input=False)
def rung_root(i, side):
    return i


@task("Rung")
def rung(data, i, side):
    return data[0] + data[1] + i


@task("Burn", receives_input=False)
def burn(i, n):
    return plain.burn(n) + i


@task("Make", receives_input=False)
def make(size, seed=0):
    return plain.make_array(size, seed)


@task("Total")
def total(data):
    return plain.array_sum(data[0])


def chain(n: int) -> tuple[Pipeline, str]:
    """A chain of ``n`` tasks: Start then n-1 Steps; returns it and its last task's name."""
    tasks = [start("0", i=0)] + [step(str(k)) for k in range(1, n)]
    return Sequential(f"chain{n}", tasks), tasks[-1].name


def fanout(n: int) -> tuple[Pipeline, list[str]]:
    """One root and ``n - 1`` children of it; returns it and the children's names."""
    root = start("root", i=0)
    children = [child(str(k), i=k)(root) for k in range(1, n)]
    return Pipeline(f"fanout{n}", [root]), [c.name for c in children]


def ladder(depth: int) -> Pipeline:
    """Two tasks per layer, each depending on both tasks of the layer above."""
    above = [rung_root("a0", i=0, side="a"), rung_root("b0", i=0, side="b")]
    roots = list(above)
    for k in range(1, depth):
        above = [rung(f"{side}{k}", i=k, side=side)(above) for side in ("a", "b")]
    return Pipeline(f"ladder{depth}", roots)


def cpu_bound(count: int, n: int) -> Pipeline:
    """``count`` independent tasks of ``n`` loop iterations each."""
    return Pipeline(f"cpu{count}", [burn(str(k), i=k, n=n) for k in range(count)])


def handoff(size: int) -> tuple[Pipeline, str]:
    """Make (a ``size``-byte array) -> Total (its sum); returns it and Total's name."""
    last = total("sum")(make("array", size=size))
    return Pipeline("handoff", [last]), last.name


@task("Source", receives_input=False)
def source(i):
    return plain.combine([], i)


@task("Node")
def node(data, i):
    return plain.combine(list(data), i)
