"""The KPI result cache's bookkeeping (pure: no I/O)."""

from __future__ import annotations

from collections import Counter
from datetime import date

from services.kpi.results import PeriodResult, ResultCache, Revisions

D = date(2026, 3, 2)


def day(n: int) -> date:
    return date.fromordinal(D.toordinal() + n)


def test_a_period_reads_every_revision_before_its_end() -> None:
    revisions = Revisions(generation=0, before=5, days=[(day(0), 2), (day(3), 1), (day(9), 4)])
    assert revisions.through([day(1), day(7), day(14)]) == [7, 8, 12]
    # a day with no revision yet adds nothing; the days before the range count for every period
    assert revisions.through([day(0)]) == [5]
    assert Revisions(0, 0, []).through([day(1), day(2)]) == [0, 0]


def test_a_change_on_one_day_moves_that_period_and_every_later_one_only() -> None:
    before = Revisions(0, 0, [(day(0), 1), (day(8), 1), (day(15), 1)])
    after = Revisions(0, 0, [(day(0), 1), (day(8), 2), (day(15), 1)])
    ends = [day(7), day(14), day(21)]
    moved = [a != b for a, b in zip(before.through(ends), after.through(ends), strict=True)]
    assert moved == [False, True, True]


def result(samples: int) -> PeriodResult:
    return PeriodResult(1, Counter(), {"response_hours": [float(n) for n in range(samples)]})


def test_results_of_another_generation_are_dropped() -> None:
    cache = ResultCache()
    kept = cache.scope(("week",), generation=0)
    kept.periods[D] = result(3)
    assert cache.scope(("week",), generation=0).periods == {D: kept.periods[D]}
    assert cache.scope(("week",), generation=1).periods == {}


def test_the_least_recently_used_shapes_go_beyond_the_limits() -> None:
    cache = ResultCache(max_samples=10, max_scopes=3)
    for name in ("a", "b", "c"):
        cache.scope((name,), 0).periods[D] = result(4)
    cache.scope(("a",), 0)  # used again: "b" is now the oldest
    cache.trim()
    assert cache.scope(("a",), 0).periods and cache.scope(("c",), 0).periods
    assert not cache.scope(("b",), 0).periods  # dropped: 12 samples were over 10
    for name in ("d", "e", "f"):
        cache.scope((name,), 0)
    cache.trim()
    assert len(cache) == 3
