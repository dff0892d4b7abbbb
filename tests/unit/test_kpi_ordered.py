"""Sorted runs read as one ascending sequence, and the medians taken of it (pure: no I/O)."""

from __future__ import annotations

import random
import statistics

import pytest

from services.kpi.formulas import median, percentile
from services.kpi.ordered import Ascending


def runs_of(rng: random.Random, count: int, size: int, spread: int) -> list[list[float]]:
    """Sorted runs that overlap, with repeated values and some empty runs."""
    return [
        sorted(float(rng.randrange(spread)) / 4 for _ in range(rng.randrange(size + 1)))
        for _ in range(count)
    ]


@pytest.mark.parametrize("seed", range(20))
def test_every_position_holds_the_value_of_the_merged_runs(seed: int) -> None:
    rng = random.Random(seed)
    runs = runs_of(rng, rng.randrange(1, 60), 40, rng.choice((5, 200, 10_000)))
    merged = sorted(value for run in runs for value in run)
    ascending = Ascending(runs)
    assert len(ascending) == len(merged)
    assert [ascending[i] for i in range(len(merged))] == merged
    assert list(ascending) == merged
    if merged:
        assert ascending[-1] == merged[-1]
        assert ascending[1:3] == merged[1:3]


def test_positions_outside_are_index_errors() -> None:
    ascending = Ascending([[1.0, 2.0], [], [0.5]])
    assert ascending[0] == 0.5
    with pytest.raises(IndexError):
        ascending[3]
    with pytest.raises(IndexError):
        ascending[-4]
    assert len(Ascending([[], []])) == 0


@pytest.mark.parametrize("seed", range(10))
def test_medians_and_percentiles_of_runs_are_those_of_the_values(seed: int) -> None:
    rng = random.Random(seed)
    runs = runs_of(rng, 52, 300, 100_000)
    values = [value for run in runs for value in run]
    rng.shuffle(values)
    assert median(Ascending(runs)) == round(statistics.median(values), 4) == median(values)
    for pct in (50, 90, 99):
        assert percentile(Ascending(runs), pct) == percentile(values, pct)
    assert median(Ascending([])) is None
