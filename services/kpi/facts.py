"""How facts count towards the daily totals (pure: no I/O).

A fact row's contributions are a function of the row alone, and every field of a row is merged
order-independently (the earliest time wins), so the totals come out the same whatever order
events arrive in. Events that stand alone (an NPS answer, an upsell) contribute once; the inbox
sees to "once".
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import NamedTuple, Protocol
from zoneinfo import ZoneInfo

from services.kpi.periods import local_day

NO_DIMENSION = ""


class Key(NamedTuple):
    metric: str
    day: date
    source: str = NO_DIMENSION
    campaign_id: str = NO_DIMENSION


Contributions = Counter[Key]


@dataclass(frozen=True, slots=True)
class Rules:
    """What the KPI service assumes where the events are silent."""

    tz: ZoneInfo
    currency: str
    # Reporting-currency minor units per minor unit of another currency.
    fx_rates: dict[str, float] = field(default_factory=dict)
    # First contact is due this long after the MQL when LeadAccepted's respond_by is unknown.
    response_sla: timedelta = timedelta(hours=24)
    # A won customer is handed over in time when onboarded within this long.
    onboarding_sla: timedelta = timedelta(days=30)

    def convert(self, amount: int, currency: str | None) -> int | None:
        """`amount` in the reporting currency; None when there is no rate for `currency`."""
        if currency is None or currency == self.currency:
            return amount
        rate = self.fx_rates.get(currency)
        return None if rate is None else round(amount * rate)


class LeadFacts(Protocol):
    source: str
    campaign_id: str
    captured_at: datetime | None
    downloads: dict[str, int]
    mql_at: datetime | None
    respond_by: datetime | None
    first_touch_at: datetime | None
    sla_breached_at: datetime | None
    sql_at: datetime | None
    won_at: datetime | None


class OpportunityFacts(Protocol):
    source: str
    campaign_id: str
    created_at: datetime | None
    accepted_at: datetime | None
    neglected_at: datetime | None
    won_at: datetime | None
    amount: int | None
    mrr: int | None
    lost_at: datetime | None
    onboarded_at: datetime | None


def earliest(current: datetime | None, candidate: datetime) -> datetime:
    """The merge of two times of the same milestone: the first one counts."""
    return candidate if current is None or candidate < current else current


def response_status(lead: LeadFacts, rules: Rules) -> str | None:
    """`in_sla`, `breached` or `open` for an MQL's first contact; None before the MQL."""
    if lead.mql_at is None:
        return None
    due = lead.respond_by or lead.mql_at + rules.response_sla
    if lead.first_touch_at is not None:
        return "in_sla" if lead.first_touch_at <= due else "breached"
    return "breached" if lead.sla_breached_at is not None else "open"


def lead_contributions(lead: LeadFacts, rules: Rules) -> Contributions:
    """What one lead adds to the daily totals; cohort numerators count on the cohort's day."""
    out: Contributions = Counter()

    def add(metric: str, at: datetime | date, value: int = 1) -> None:
        day = at if not isinstance(at, datetime) else local_day(at, rules.tz)
        out[Key(metric, day, lead.source, lead.campaign_id)] += value

    if lead.captured_at is not None:
        add("leads_captured", lead.captured_at)
        if lead.mql_at is not None:
            add("leads_to_mql", lead.captured_at)
        if lead.won_at is not None:
            add("leads_to_customer", lead.captured_at)
    for day, count in lead.downloads.items():
        add("content_downloads", date.fromisoformat(day), count)
    if lead.mql_at is not None:
        add("mqls", lead.mql_at)
        add(f"mqls_{response_status(lead, rules)}", lead.mql_at)
        if lead.first_touch_at is not None:
            add("mqls_contacted", lead.mql_at)
        if lead.sql_at is not None:
            add("mqls_to_sql", lead.mql_at)
    return out


def opportunity_contributions(opportunity: OpportunityFacts, rules: Rules) -> Contributions:
    """What one opportunity adds: SQL cohort outcomes on its creation day, deals on their day."""
    out: Contributions = Counter()
    o = opportunity

    def add(metric: str, at: datetime, value: int = 1) -> None:
        out[Key(metric, local_day(at, rules.tz), o.source, o.campaign_id)] += value

    if o.created_at is not None:
        add("sqls", o.created_at)
        if o.neglected_at is not None:
            add("sqls_neglected", o.created_at)
        elif o.accepted_at is not None:
            add("sqls_accepted_in_sla", o.created_at)
        if o.won_at is not None:
            add("sqls_won", o.created_at)
    if o.won_at is not None:
        add("deals_won", o.won_at)
        add("revenue_won", o.won_at, o.amount or 0)
        add("mrr_new", o.won_at, o.mrr or 0)
        if o.onboarded_at is not None and o.onboarded_at - o.won_at <= rules.onboarding_sla:
            add("deals_onboarded_in_sla", o.won_at)
    if o.lost_at is not None:
        add("deals_lost", o.lost_at)
    return out


def difference(old: Contributions, new: Contributions) -> Contributions:
    """What to add to the totals to turn `old` contributions into `new` ones (zeros dropped)."""
    delta: Contributions = Counter(new)
    delta.subtract(old)
    return Counter({key: value for key, value in delta.items() if value})


def spread(amount: int, first: date, last: date) -> list[tuple[date, int]]:
    """`amount` shared evenly over the days `first`..`last` (the remainder to the first days)."""
    days = max((last - first).days + 1, 1)
    share, remainder = divmod(amount, days)
    return [
        (first + timedelta(days=i), share + (1 if i < remainder else 0))
        for i in range(days)
        if share or i < remainder
    ]


def nps_contributions(score: int, day: date) -> Contributions:
    out: Contributions = Counter({Key("nps_responses", day): 1})
    if score >= 9:
        out[Key("nps_promoters", day)] += 1
    elif score <= 6:
        out[Key("nps_detractors", day)] += 1
    return out


def mrr_change(metric_up: str, metric_down: str, delta: int, day: date) -> Contributions:
    """An MRR movement as a positive amount on the metric for its direction."""
    if delta == 0:
        return Counter()
    return Counter({Key(metric_up if delta > 0 else metric_down, day): abs(delta)})
