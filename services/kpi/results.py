"""KPI results kept in memory while the days they were worked out from are unchanged.

Every change the ingest makes moves on the revision of the days it touches (`DayRevision`), in
the same transaction. A request reads those revisions (a few hundred small rows) and then only
the days whose revision moved since their totals and duration samples were kept, each run of
adjacent days in one query; a period is put together again from its days only if one of them
moved, and its KPIs are worked out again only if a day before its end moved (its opening
balances read every day before it). A year of weeks whose last day changed costs the read of
that day. A rebuild moves the read model's generation on, which drops everything kept. Per
process: several replicas each keep their own.
"""

from __future__ import annotations

import itertools
from collections import Counter, OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from shared.runtime import Runtime


class Revisions(NamedTuple):
    """The day revisions a KPI request reads, from `repository.day_revisions`."""

    generation: int
    before: int  # sum over the days before the range
    days: list[tuple[date, int]]  # the range's days that have one, in order

    def through(self, ends: Sequence[date]) -> list[int]:
        """For each of `ends` (ascending), the sum of the revisions of every day before it."""
        out, running, position = [], self.before, 0
        for end in ends:
            while position < len(self.days) and self.days[position][0] < end:
                running += self.days[position][1]
                position += 1
            out.append(running)
        return out


@dataclass
class DayData:
    """One local day's totals and duration samples, read at `revision`."""

    revision: int
    totals: Counter[str]
    samples: dict[str, list[float]]  # per kind of duration, ascending


@dataclass
class PeriodResult:
    """One period's totals and samples (what its row and the range's total are made of), read
    at `data_revision` of its own days, and its KPI row, worked out at `row_revision` of every
    day before its end (-1: not yet)."""

    data_revision: int
    totals: Counter[str]
    samples: dict[str, list[float]]  # per kind of duration, ascending
    row_revision: int = -1
    row: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> int:
        return sum(len(values) for values in self.samples.values())


# The range's total reads its samples as runs of this many consecutive periods, merged.
BLOCK_PERIODS = 8


@dataclass
class ScopeResults:
    """What is kept for one request shape: range, filters, granularity, departments."""

    generation: int
    days: dict[date, DayData] = field(default_factory=dict)
    periods: dict[date, PeriodResult] = field(default_factory=dict)
    total: tuple[int, dict[str, Any]] | None = None
    opening: tuple[int, Counter[str]] | None = None
    # (kind, first period's position) -> the block's periods' data revisions, merged samples
    blocks: dict[tuple[str, int], tuple[tuple[int, ...], list[float]]] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Samples held (each in its day, and by reference in its period and block)."""
        return sum(result.size for result in self.periods.values()) + len(self.days)

    def runs(self, kind: str, periods: Sequence[PeriodResult]) -> list[list[float]]:
        """The samples of `kind` of `periods` (the range's, in order) as a few sorted runs: a
        block of consecutive periods is merged again only when one of its periods changed, so
        the k-th value of the range is found among a handful of runs, not one per period."""
        out = []
        for first in range(0, len(periods), BLOCK_PERIODS):
            group = periods[first : first + BLOCK_PERIODS]
            stamp = tuple(period.data_revision for period in group)
            block = self.blocks.get((kind, first))
            if block is None or block[0] != stamp:
                merged = sorted(itertools.chain.from_iterable(p.samples[kind] for p in group))
                block = self.blocks[(kind, first)] = (stamp, merged)
            out.append(block[1])
        return out


class ResultCache:
    """Results by request shape, the least recently used dropped beyond `max_samples`
    duration samples (about 50 bytes each, with the lists that hold them) or `max_scopes`
    shapes. A year of weeks over a million leads holds about 600,000."""

    def __init__(self, max_samples: int = 1_500_000, max_scopes: int = 64) -> None:
        self.max_samples = max_samples
        self.max_scopes = max_scopes
        self._scopes: OrderedDict[tuple[Any, ...], ScopeResults] = OrderedDict()

    def scope(self, key: tuple[Any, ...], generation: int) -> ScopeResults:
        """The results kept for `key` (none if they belong to another generation)."""
        results = self._scopes.get(key)
        if results is None or results.generation != generation:
            results = self._scopes[key] = ScopeResults(generation)
        self._scopes.move_to_end(key)
        return results

    def trim(self) -> None:
        """Drop the least recently used shapes (never the latest) until within the limits."""
        while len(self._scopes) > 1 and (
            len(self._scopes) > self.max_scopes
            or sum(results.size for results in self._scopes.values()) > self.max_samples
        ):
            self._scopes.popitem(last=False)

    def __len__(self) -> int:
        return len(self._scopes)


def cache_of(runtime: Runtime) -> ResultCache:
    """The running KPI service's cache (one per process and database)."""
    cache = runtime.extensions.get("kpi.results")
    if cache is None:
        cache = runtime.extensions["kpi.results"] = ResultCache()
    return cache
