"""How facts count towards the daily totals (pure: no I/O).

A fact row's contributions are a function of the row alone, and every field of a row is merged
order-independently (the earliest time wins), so the totals come out the same whatever order
events arrive in. Events that stand alone (an NPS answer, an upsell) contribute once; the inbox
sees to "once".
"""

from __future__ import annotations

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


# What rows or events add to the daily totals, by key (a plain dict: each key is set once,
# and a Counter costs a microsecond to make, twice per changed fact in a transaction).
Contributions = dict[Key, int]


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
    """What one lead adds to the daily totals; cohort numerators count on the cohort's day.

    (Each milestone's day is worked out once, and each key set once: the read model works out
    a changed row's contributions twice a transaction.)"""
    out: Contributions = {}
    source, campaign_id, tz = lead.source, lead.campaign_id, rules.tz
    if lead.captured_at is not None:
        day = local_day(lead.captured_at, tz)
        out[Key("leads_captured", day, source, campaign_id)] = 1
        if lead.mql_at is not None:
            out[Key("leads_to_mql", day, source, campaign_id)] = 1
        if lead.won_at is not None:
            out[Key("leads_to_customer", day, source, campaign_id)] = 1
    for download_day, count in lead.downloads.items():
        out[Key("content_downloads", date.fromisoformat(download_day), source, campaign_id)] = count
    if lead.mql_at is not None:
        day = local_day(lead.mql_at, tz)
        out[Key("mqls", day, source, campaign_id)] = 1
        out[Key(f"mqls_{response_status(lead, rules)}", day, source, campaign_id)] = 1
        if lead.first_touch_at is not None:
            out[Key("mqls_contacted", day, source, campaign_id)] = 1
        if lead.sql_at is not None:
            out[Key("mqls_to_sql", day, source, campaign_id)] = 1
    return out


def opportunity_contributions(opportunity: OpportunityFacts, rules: Rules) -> Contributions:
    """What one opportunity adds: SQL cohort outcomes on its creation day, deals on their day."""
    out: Contributions = {}
    o = opportunity
    source, campaign_id, tz = o.source, o.campaign_id, rules.tz
    if o.created_at is not None:
        day = local_day(o.created_at, tz)
        out[Key("sqls", day, source, campaign_id)] = 1
        if o.neglected_at is not None:
            out[Key("sqls_neglected", day, source, campaign_id)] = 1
        elif o.accepted_at is not None:
            out[Key("sqls_accepted_in_sla", day, source, campaign_id)] = 1
        if o.won_at is not None:
            out[Key("sqls_won", day, source, campaign_id)] = 1
    if o.won_at is not None:
        day = local_day(o.won_at, tz)
        out[Key("deals_won", day, source, campaign_id)] = 1
        out[Key("revenue_won", day, source, campaign_id)] = o.amount or 0
        out[Key("mrr_new", day, source, campaign_id)] = o.mrr or 0
        if o.onboarded_at is not None and o.onboarded_at - o.won_at <= rules.onboarding_sla:
            out[Key("deals_onboarded_in_sla", day, source, campaign_id)] = 1
    if o.lost_at is not None:
        out[Key("deals_lost", local_day(o.lost_at, tz), source, campaign_id)] = 1
    return out


def difference(old: Contributions, new: Contributions) -> Contributions:
    """What to add to the totals to turn `old` contributions into `new` ones (zeros dropped)."""
    delta: Contributions = {}
    for key, value in new.items():
        if change := value - old.get(key, 0):
            delta[key] = change
    for key, value in old.items():
        if value and key not in new:
            delta[key] = -value
    return delta


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
    out: Contributions = {Key("nps_responses", day): 1}
    if score >= 9:
        out[Key("nps_promoters", day)] = 1
    elif score <= 6:
        out[Key("nps_detractors", day)] = 1
    return out


def mrr_change(metric_up: str, metric_down: str, delta: int, day: date) -> Contributions:
    """An MRR movement as a positive amount on the metric for its direction."""
    if delta == 0:
        return {}
    return {Key(metric_up if delta > 0 else metric_down, day): abs(delta)}
