"""How facts count towards the daily totals, and the calendar they are counted in."""

from __future__ import annotations

import itertools
from collections import Counter
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.kpi.facts import (
    Key,
    Rules,
    difference,
    earliest,
    lead_contributions,
    opportunity_contributions,
    response_status,
    spread,
)
from services.kpi.models import LeadRow, OpportunityRow
from services.kpi.periods import Granularity, default_range, iso_week, local_day, split

JST = ZoneInfo("Asia/Tokyo")
RULES = Rules(tz=JST, currency="JPY", fx_rates={"USD": 1.5})


def lead_row(**facts: Any) -> LeadRow:
    """The fact row the ingest holds of a lead (captured from a webinar, unless given)."""
    return LeadRow("lead-1", **{"source": "webinar", **facts})


def opportunity_row(**facts: Any) -> OpportunityRow:
    return OpportunityRow("opportunity-1", "lead-1", **facts)


def jst(day: int, hour: int = 10) -> datetime:
    return datetime(2026, 3, day, hour, tzinfo=JST)


def test_the_day_is_the_reporting_time_zone_s() -> None:
    late_utc = datetime(2026, 3, 1, 16, 30, tzinfo=ZoneInfo("UTC"))  # 01:30 on the 2nd in Tokyo
    assert local_day(late_utc, JST) == date(2026, 3, 2)


def test_a_lead_counts_its_cohort_rates_on_its_capture_day() -> None:
    lead = lead_row(
        captured_at=jst(2),
        mql_at=jst(4),
        first_touch_at=jst(4, 12),
        sql_at=jst(9),
        won_at=jst(20),
        downloads={"2026-03-03": 2},
    )
    c = lead_contributions(lead, RULES)
    on = {(k.metric, k.day) for k in c}
    assert ("leads_captured", date(2026, 3, 2)) in on
    assert ("leads_to_mql", date(2026, 3, 2)) in on
    assert ("leads_to_customer", date(2026, 3, 2)) in on
    assert ("mqls", date(2026, 3, 4)) in on
    assert ("mqls_in_sla", date(2026, 3, 4)) in on
    assert ("mqls_to_sql", date(2026, 3, 4)) in on
    assert c[Key("content_downloads", date(2026, 3, 3), "webinar")] == 2


@pytest.mark.parametrize(
    ("lead", "status"),
    [
        (lead_row(), None),
        (lead_row(mql_at=jst(2)), "open"),
        (lead_row(mql_at=jst(2), first_touch_at=jst(3, 9)), "in_sla"),  # 23 h: the default 24 h SLA
        (lead_row(mql_at=jst(2), first_touch_at=jst(3, 11)), "breached"),
        (lead_row(mql_at=jst(2), respond_by=jst(4), first_touch_at=jst(3, 11)), "in_sla"),
        (lead_row(mql_at=jst(2), sla_breached_at=jst(3)), "breached"),
    ],
)
def test_response_status(lead: LeadRow, status: str | None) -> None:
    assert response_status(lead, RULES) == status


def test_an_opportunity_counts_neglect_against_its_creation_day() -> None:
    o = opportunity_row(
        created_at=jst(2),
        neglected_at=jst(4),
        accepted_at=jst(5),
        won_at=jst(20),
        amount=1_200,
        mrr=100,
        onboarded_at=jst(25),
    )
    c = opportunity_contributions(o, RULES)
    assert c[Key("sqls_neglected", date(2026, 3, 2))] == 1
    assert Key("sqls_accepted_in_sla", date(2026, 3, 2)) not in c  # accepted, but too late
    assert c[Key("revenue_won", date(2026, 3, 20))] == 1_200
    assert c[Key("deals_onboarded_in_sla", date(2026, 3, 20))] == 1


def test_facts_merged_in_any_order_give_the_same_totals() -> None:
    """The property the read model rests on: apply milestone by milestone, in every order."""
    milestones = {
        "captured_at": jst(2),
        "mql_at": jst(3),
        "first_touch_at": jst(5),  # late: breached
        "sla_breached_at": jst(4),
        "sql_at": jst(6),
        "won_at": jst(10),
    }
    results = set()
    for order in itertools.permutations(milestones):
        lead, totals = lead_row(), Counter[Key]()
        for name in order:
            before = lead_contributions(lead, RULES)
            setattr(lead, name, earliest(getattr(lead, name), milestones[name]))
            totals.update(difference(before, lead_contributions(lead, RULES)))
        results.add(frozenset((+totals).items()))
    assert len(results) == 1
    final = dict(next(iter(results)))
    assert final[Key("mqls_breached", date(2026, 3, 3), "webinar")] == 1
    assert Key("mqls_open", date(2026, 3, 3), "webinar") not in final


def test_earliest_keeps_the_first_time() -> None:
    assert earliest(None, jst(3)) == jst(3)
    assert earliest(jst(2), jst(3)) == jst(2)
    assert earliest(jst(4), jst(3)) == jst(3)


def test_spread_shares_an_amount_over_days() -> None:
    assert spread(700, date(2026, 3, 2), date(2026, 3, 8)) == [
        (date(2026, 3, 2) + timedelta(days=i), 100) for i in range(7)
    ]
    assert spread(10, date(2026, 3, 1), date(2026, 3, 3)) == [
        (date(2026, 3, 1), 4),
        (date(2026, 3, 2), 3),
        (date(2026, 3, 3), 3),
    ]
    assert sum(v for _, v in spread(1_000_003, date(2026, 1, 1), date(2026, 1, 31))) == 1_000_003
    assert spread(5, date(2026, 3, 9), date(2026, 3, 2)) == [(date(2026, 3, 9), 5)]


def test_amounts_convert_to_the_reporting_currency() -> None:
    assert RULES.convert(100, "JPY") == 100
    assert RULES.convert(100, None) == 100
    assert RULES.convert(100, "USD") == 150
    assert RULES.convert(100, "EUR") is None


def test_split_cuts_calendar_buckets_to_the_range() -> None:
    weeks = split(date(2026, 3, 4), date(2026, 3, 18), Granularity.week)
    assert [(p.label, p.start.day, p.end.day) for p in weeks] == [
        ("2026-W10", 4, 9),
        ("2026-W11", 9, 16),
        ("2026-W12", 16, 18),
    ]
    months = split(date(2025, 12, 15), date(2026, 2, 1), Granularity.month)
    assert [p.label for p in months] == ["2025-12", "2026-01"]
    assert [p.days for p in split(date(2026, 3, 1), date(2026, 3, 4), Granularity.day)] == [1] * 3


def test_iso_weeks() -> None:
    week = iso_week("2026-W01")
    assert (week.start, week.end) == (date(2025, 12, 29), date(2026, 1, 5))
    with pytest.raises(ValueError):
        iso_week("2026-W54")
    with pytest.raises(ValueError):
        iso_week("2026-11")


def test_the_default_range_is_the_last_twelve_periods() -> None:
    start, end = default_range(date(2026, 11, 25), Granularity.week)
    assert (start, end) == (date(2026, 9, 7), date(2026, 11, 30))
    assert len(split(start, end, Granularity.week)) == 12
    start, end = default_range(date(2026, 11, 25), Granularity.month)
    assert (start, end) == (date(2025, 12, 1), date(2026, 12, 1))
