"""Sorted runs read as one ascending sequence, without merging them (pure: no I/O).

A year's median is the middle of every week's samples: the weeks' sorted lists are kept, and the
k-th smallest of their union is found by bisecting them, in about as many steps as there are
halvings of the longest run, instead of merging hundreds of thousands of values per request.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Sequence
from heapq import merge
from typing import overload


class Ascending(Sequence[float]):
    """The values of `runs` (each in ascending order) in ascending order; `len` and indexing
    need no merge, iterating merges lazily."""

    def __init__(self, runs: Sequence[Sequence[float]]) -> None:
        self._runs = [run for run in runs if run]
        self._length = sum(len(run) for run in self._runs)
        # The values found so far by position (the same median is asked by several KPIs), and
        # the last one found: its index, and how many values are at or below it.
        self._found: dict[int, float] = {}
        self._last: tuple[int, float, int] | None = None

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[float]:
        return merge(*self._runs)

    @overload
    def __getitem__(self, index: int) -> float: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[float]: ...

    def __getitem__(self, index: int | slice) -> float | Sequence[float]:
        if isinstance(index, slice):
            return list(self)[index]
        if index < 0:
            index += self._length
        if not 0 <= index < self._length:
            raise IndexError("index out of range")
        if len(self._runs) == 1:
            return self._runs[0][index]
        if index not in self._found:
            if self._last is not None and self._last[0] == index - 1:
                self._found[index] = self._next(*self._last)  # a median's second middle value
            else:
                self._found[index] = self._select(index)
        return self._found[index]

    def _next(self, index: int, value: float, at_or_below: int) -> float:
        """The value at `index + 1`, given the one at `index`."""
        if index + 1 < at_or_below:
            found = value
        else:
            found = min(
                run[position]
                for run in self._runs
                if (position := bisect_right(run, value)) < len(run)
            )
        self._last = (index + 1, found, _at_or_below(self._runs, found))
        return found

    def _select(self, index: int) -> float:
        """The value at `index`: each step takes the middle of the run with the most values
        left as a pivot, counts the values below and up to it in every run, and keeps the side
        that holds the one asked for."""
        runs = self._runs
        low = [0] * len(runs)
        high = [len(run) for run in runs]
        active = list(range(len(runs)))
        k = index
        while True:
            widths = [high[i] - low[i] for i in active]
            widest = active[widths.index(max(widths))]
            pivot = runs[widest][(low[widest] + high[widest]) // 2]
            below = [bisect_left(runs[i], pivot, low[i], high[i]) for i in active]
            count = sum(b - low[i] for b, i in zip(below, active, strict=True))
            if k < count:
                for b, i in zip(below, active, strict=True):
                    high[i] = b
            else:
                upto = [bisect_right(runs[i], pivot, low[i], high[i]) for i in active]
                count = sum(u - low[i] for u, i in zip(upto, active, strict=True))
                if k < count:
                    self._last = (index, pivot, _at_or_below(runs, pivot))
                    return pivot
                k -= count
                for u, i in zip(upto, active, strict=True):
                    low[i] = u
            active = [i for i in active if low[i] < high[i]]


def _at_or_below(runs: Sequence[Sequence[float]], value: float) -> int:
    return sum(bisect_right(run, value) for run in runs)
