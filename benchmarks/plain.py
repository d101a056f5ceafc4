"""The plain work every benchmark does, shared by pyperunner tasks and the references.

Nothing here imports pyperunner, so a reference run pays only for what it uses.
"""

from __future__ import annotations


def start(i: int) -> int:
    """The root of a chain or fan-out: returns its argument."""
    return i


def inc(x: int) -> int:
    """One link of a chain: returns its input plus one."""
    return x + 1


def add(x: int, i: int) -> int:
    """One child of a fan-out: returns its input plus its index."""
    return x + i


def burn(n: int) -> int:
    """A pure-Python CPU-bound loop of ``n`` iterations (calibrated to about 1 s)."""
    x = 0
    for i in range(n):
        x = (x * 31 + i) & 0xFFFFFFFF
    return x


def make_array(size: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """``size`` incompressible random bytes as a uint8 numpy array (``size`` a multiple of 8).

    Drawn as uint64 and viewed as bytes: the same random bits as drawing bytes one by one, but
    several times faster, so the generation is a small part of the hand-off it feeds.
    """
    import numpy as np

    words = np.random.default_rng(seed).integers(0, 2**64, size // 8, dtype=np.uint64)
    return words.view(np.uint8)


def array_sum(array) -> int:  # type: ignore[no-untyped-def]
    """The sum of every byte of ``array`` (reads all of it)."""
    return int(array.sum())


def combine(values: list[int], i: int) -> int:
    """A task of ``benchmarks/scale.py``: the sum of its inputs plus its index (kept small)."""
    return (sum(values) + i) % 1_000_003
