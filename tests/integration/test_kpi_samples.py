"""The durations KPI medians and percentiles are taken of (response time, funnel velocity, sales
cycle), which the database works out in whole microseconds: to the bit what the fact rows' times
give in Python, dated on the local day of the milestone that dates them, with a source filter,
in a time zone whose days start at different hours around its clock changes."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.kpi.app import SPEC as KPI
from services.kpi.facts import Rules
from services.kpi.models import LeadFact, OpportunityFact
from services.kpi.periods import Granularity, Period, day_start, local_day, split
from services.kpi.service import DAY, HOUR, Scope, _samples
from shared.db import create_engine, session_factory
from shared.migrations import upgrade

# Clocks go back at midnight on 2026-04-05 and forward at midnight on 2026-09-06.
SANTIAGO = ZoneInfo("America/Santiago")
START, END = date(2026, 3, 16), date(2026, 9, 21)
SOURCES = ("ads", "seo", "webinar")
# kind: (facts, milestone that dates it, from, to, unit)
KINDS: dict[str, tuple[str, str, str, str, float]] = {
    "response_hours": ("lead", "mql_at", "mql_at", "first_touch_at", HOUR),
    "lead_to_mql": ("lead", "mql_at", "captured_at", "mql_at", DAY),
    "mql_to_sql": ("lead", "sql_at", "mql_at", "sql_at", DAY),
    "sql_to_won": ("lead", "won_at", "sql_at", "won_at", DAY),
    "sales_cycle_days": ("opportunity", "won_at", "created_at", "won_at", DAY),
}


def moments(rng: random.Random) -> Callable[[], datetime | None]:
    """Random instants with microseconds around the range, local midnights and the instants
    just before them among them; sometimes None."""
    first = day_start(START, SANTIAGO) - timedelta(days=3)
    span = int((day_start(END, SANTIAGO) - first).total_seconds()) + 6 * 86_400
    edges = [date(2026, 4, 4), date(2026, 4, 5), date(2026, 9, 6), date(2026, 9, 7), START, END]

    def moment() -> datetime | None:
        draw = rng.random()
        if draw < 0.1:
            return None
        if draw < 0.25:
            edge = day_start(rng.choice(edges), SANTIAGO)
            return edge - timedelta(microseconds=rng.choice((0, 1)))
        return first + timedelta(seconds=rng.randrange(span), microseconds=rng.randrange(10**6))

    return moment


def facts(seed: int) -> tuple[list[LeadFact], list[OpportunityFact]]:
    rng = random.Random(seed)
    moment = moments(rng)
    leads, opportunities = [], []
    for _ in range(400):
        source = rng.choice(SOURCES)
        times = {name: moment() for name in ("captured_at", "mql_at", "first_touch_at")}
        times |= {name: moment() for name in ("sql_at", "won_at")}
        lead = LeadFact(lead_id=str(uuid.uuid4()), source=source, campaign_id="", downloads={})
        for name, value in times.items():
            setattr(lead, name, value)
        leads.append(lead)
        opportunity = OpportunityFact(
            opportunity_id=str(uuid.uuid4()),
            lead_id=lead.lead_id,
            source=source,
            campaign_id="",
            created_at=moment(),
            won_at=moment(),
        )
        opportunities.append(opportunity)
    return leads, opportunities


def expected(rows: list[Any], kind: str, scope: Scope, period: Period) -> list[float]:
    """The samples of `kind` in `period` as Python works them out from the rows' datetimes."""
    _, milestone, earlier, later, unit = KINDS[kind]
    start, end = scope.instants(Rules(tz=SANTIAGO, currency="JPY"))
    values = []
    for row in rows:
        at, first, last = getattr(row, milestone), getattr(row, earlier), getattr(row, later)
        if scope.source is not None and row.source != scope.source:
            continue
        if at is None or not start <= at < end or first is None or last is None:
            continue
        if period.start <= local_day(at, SANTIAGO) < period.end:
            values.append(max((last - first).total_seconds() / unit, 0.0))
    return sorted(values)


@pytest.mark.parametrize("source", [None, "ads"])
async def test_durations_are_exact_and_dated_on_local_days(
    database_url: Callable[[str], Any], source: str | None
) -> None:
    leads, opportunities = facts(seed=7)
    engine = create_engine(await database_url("kpi"))
    try:
        await upgrade(engine, "kpi", KPI.migrations)
        sessions = session_factory(engine)
        async with sessions() as session, session.begin():
            session.add_all([*leads, *opportunities])
        scope = Scope(START, END, source)
        rules = Rules(tz=SANTIAGO, currency="JPY")
        async with sessions() as session:
            samples = await _samples(session, scope, rules)
    finally:
        await engine.dispose()
    periods = [
        *split(START, END, Granularity.day),
        *split(START, END, Granularity.week),
        Period(START, END, "total"),
    ]
    counted = 0
    for kind, (table, *_) in KINDS.items():
        rows: list[Any] = leads if table == "lead" else opportunities
        for period in periods:
            want = expected(rows, kind, scope, period)
            assert samples.within(kind, period) == want, (kind, period)
            counted += len(want)
    assert counted > 1000  # every kind has samples, on many days
