"""Use cases of the KPI API: KPIs per period, the funnel, SLA compliance per hand-off."""

from __future__ import annotations

import bisect
import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession

from services.kpi import repository
from services.kpi.facts import Rules
from services.kpi.formulas import (
    PeriodFacts,
    department_kpis,
    median,
    ratio,
)
from services.kpi.models import LeadFact, OpportunityFact
from services.kpi.ordered import Ascending
from services.kpi.periods import Granularity, Period, day_start, local_day, split
from services.kpi.results import DayData, PeriodResult, ResultCache, Revisions, ScopeResults

BALANCE_METRICS = (
    "deals_won",
    "customers_churned",
    "mrr_new",
    "mrr_expansion",
    "mrr_contraction",
    "mrr_churned",
)
HOUR, DAY = 3600.0, 86400.0
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Scope:
    """Local days `[start, end)`, optionally one lead source and/or one campaign."""

    start: date
    end: date
    source: str | None = None
    campaign_id: str | None = None

    @property
    def filtered(self) -> bool:
        return self.source is not None or self.campaign_id is not None

    def instants(self, rules: Rules) -> tuple[datetime, datetime]:
        return day_start(self.start, rules.tz), day_start(self.end, rules.tz)


class Samples:
    """Durations of each kind by the instant that dates them, for medians and percentiles."""

    def __init__(self, tz: ZoneInfo) -> None:
        self._tz = tz
        # Per kind: the dating instants (whole microseconds since 1970 UTC, ascending) and,
        # position for position, the durations.
        self._by_kind: dict[str, tuple[list[int], list[float]]] = {}

    def add(self, kind: str, dated: list[int], values: list[float]) -> None:
        self._by_kind[kind] = (dated, values)

    def within(self, kind: str, period: Period) -> list[float]:
        """The durations dated on the local days of `period`, in ascending order."""
        dated, values = self._by_kind.get(kind, ([], []))
        low = bisect.bisect_left(dated, _epoch_us(day_start(period.start, self._tz)))
        high = bisect.bisect_left(dated, _epoch_us(day_start(period.end, self._tz)))
        return sorted(values[low:high])


def _epoch_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _seconds(later: datetime, earlier: datetime) -> float:
    return (later - earlier).total_seconds()


# Per query: the facts, the milestone that dates a sample, and the kinds of sample it gives,
# each the time from one milestone to another, in a unit.
SAMPLES: tuple[tuple[type[LeadFact] | type[OpportunityFact], str, Any], ...] = (
    (
        LeadFact,
        "mql_at",
        (
            ("response_hours", ("mql_at", "first_touch_at"), HOUR),
            ("lead_to_mql", ("captured_at", "mql_at"), DAY),
        ),
    ),
    (LeadFact, "sql_at", (("mql_to_sql", ("mql_at", "sql_at"), DAY),)),
    (LeadFact, "won_at", (("sql_to_won", ("sql_at", "won_at"), DAY),)),
    (OpportunityFact, "won_at", (("sales_cycle_days", ("created_at", "won_at"), DAY),)),
)
KINDS = tuple(kind for _, _, kinds in SAMPLES for kind, _, _ in kinds)
VELOCITY_STAGES = ("lead_to_mql", "mql_to_sql", "sql_to_won")


async def _samples(session: AsyncSession, scope: Scope, rules: Rules) -> Samples:
    """Every duration the KPIs take a median or a percentile of, over the scope.

    The database works out the durations in whole microseconds, so no row becomes an ORM
    object or a datetime; `us / 1e6` is what `timedelta.total_seconds()` gives, to the bit.
    """
    start, end = scope.instants(rules)
    samples = Samples(rules.tz)
    for table, milestone, kinds in SAMPLES:
        rows = await repository.milestone_intervals(
            session,
            table,
            milestone,
            [interval for _, interval, _ in kinds],
            start,
            end,
            scope.source,
            scope.campaign_id,
        )
        for position, (kind, _, unit) in enumerate(kinds, start=1):
            dated = [row[0] for row in rows if row[position] is not None]
            values = [
                max(us / 1_000_000 / unit, 0.0) for row in rows if (us := row[position]) is not None
            ]
            samples.add(kind, dated, values)
    return samples


def _period_facts(
    period: Period,
    totals: Counter[str],
    opening: Counter[str],
    samples: Mapping[str, Ascending],
    filtered: bool,
) -> PeriodFacts:
    return PeriodFacts(
        days=period.days,
        totals=totals,
        opening=opening,
        response_hours=samples["response_hours"],
        sales_cycle_days=samples["sales_cycle_days"],
        velocity_days={stage: samples[stage] for stage in VELOCITY_STAGES},
        filtered=filtered,
    )


def _kpis_of(departments: Sequence[str], facts: PeriodFacts) -> dict[str, Any]:
    return {department: department_kpis(department, facts) for department in departments}


async def kpis(
    session: AsyncSession,
    rules: Rules,
    scope: Scope,
    granularity: Granularity,
    departments: Sequence[str],
    cache: ResultCache | None = None,
) -> dict[str, Any]:
    """The KPIs of `departments` per period of `granularity`, and over the whole range.

    With a `cache`, only the days whose revision moved since it kept them are read from the
    database; a period none of whose days (nor any day before it) moved is taken as it was.
    """
    periods = split(scope.start, scope.end, granularity)
    revisions = Revisions(*await repository.day_revisions(session, scope.start, scope.end))
    kept = (cache if cache is not None else ResultCache()).scope(
        (rules.tz.key, scope, granularity, tuple(departments)), revisions.generation
    )
    if kept.opening is None or kept.opening[0] != revisions.before:
        opening = await repository.totals_before(session, scope.start, BALANCE_METRICS)
        kept.opening = (revisions.before, opening)
    opening = kept.opening[1]
    read = await _read_days(session, rules, scope, revisions, kept)
    period_revisions = revisions.through([period.end for period in periods])
    # The periods are contiguous: each one's own days are those before its end and not before
    # the previous one's.
    own_revisions = [
        end - start
        for start, end in zip(
            [revisions.before, *period_revisions[:-1]], period_revisions, strict=True
        )
    ]
    running, all_totals = Counter(opening), Counter[str]()
    results, rows = [], []
    for period, own, revision in zip(periods, own_revisions, period_revisions, strict=True):
        result = kept.periods.get(period.start)
        if result is None or result.data_revision != own:
            result = kept.periods[period.start] = _period_data(period, own, kept.days)
        if result.row_revision != revision:
            ordered = {kind: Ascending([values]) for kind, values in result.samples.items()}
            facts = _period_facts(period, result.totals, Counter(running), ordered, scope.filtered)
            result.row = _period_row(period, _kpis_of(departments, facts))
            result.row_revision = revision
        results.append(result)
        rows.append(result.row)
        running.update({metric: result.totals[metric] for metric in BALANCE_METRICS})
        all_totals.update(result.totals)
    if kept.total is None or kept.total[0] != period_revisions[-1]:
        whole = Period(scope.start, scope.end, "total")
        union = {kind: Ascending(kept.runs(kind, results)) for kind in KINDS}
        facts = _period_facts(whole, all_totals, opening, union, scope.filtered)
        kept.total = (period_revisions[-1], _period_row(whole, _kpis_of(departments, facts)))
    if cache is not None and read:  # only what was read can take the cache over its limits
        cache.trim()
    return {
        "periods": rows,
        "total": kept.total[1],
        "unconverted_amounts": all_totals.get("unconverted_amounts", 0),
    }


async def _read_days(
    session: AsyncSession, rules: Rules, scope: Scope, revisions: Revisions, kept: ScopeResults
) -> int:
    """Read the totals and samples of the scope's days that `kept` lacks or holds at an older
    revision, each run of adjacent days in one go; how many days were read."""
    revision_of = dict(revisions.days)
    stale = [
        day
        for day in _days(scope.start, scope.end)
        if (data := kept.days.get(day)) is None or data.revision != revision_of.get(day, 0)
    ]
    for first, end in _runs(stale):
        part = Scope(first, end, scope.source, scope.campaign_id)
        totals = await repository.daily_totals(session, first, end, scope.source, scope.campaign_id)
        samples = await _samples(session, part, rules)
        for day in _days(first, end):
            within = Period(day, day + timedelta(days=1), "")
            kept.days[day] = DayData(
                revision_of.get(day, 0),
                totals.get(day, Counter()),
                {kind: samples.within(kind, within) for kind in KINDS},
            )
    return len(stale)


def _period_data(period: Period, revision: int, days: Mapping[date, DayData]) -> PeriodResult:
    """A period's totals and samples, from its days'."""
    parts = [days[day] for day in _days(period.start, period.end)]
    totals = Counter[str]()
    for part in parts:
        totals.update(part.totals)
    samples = {
        kind: sorted(itertools.chain.from_iterable(part.samples[kind] for part in parts))
        for kind in KINDS
    }
    return PeriodResult(revision, totals, samples)


def _days(start: date, end: date) -> list[date]:
    return [start + timedelta(days=n) for n in range((end - start).days)]


def _runs(days: Sequence[date]) -> list[tuple[date, date]]:
    """`days` (ascending) as runs of consecutive days, each `(first, day after the last)`."""
    runs: list[tuple[date, date]] = []
    for day in days:
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + timedelta(days=1))
        else:
            runs.append((day, day + timedelta(days=1)))
    return runs


def _period_row(period: Period, values: dict[str, Any]) -> dict[str, Any]:
    return {"label": period.label, "start": period.start, "end": period.end, "kpis": values}


async def funnel(session: AsyncSession, rules: Rules, scope: Scope) -> list[dict[str, Any]]:
    """The leads captured in the range, stage by stage: lead -> MQL -> SQL -> won -> retained."""
    start, end = scope.instants(rules)
    leads = await repository.lead_milestones(
        session, "captured_at", start, end, scope.source, scope.campaign_id
    )
    reached: dict[str, list[float | None]] = {s: [] for s in STAGES}
    for lead in leads:
        steps = (
            ("lead", lead.captured_at, None),
            ("mql", lead.mql_at, lead.captured_at),
            ("sql", lead.sql_at, lead.mql_at),
            ("won", lead.won_at, lead.sql_at),
            ("retained", lead.won_at if lead.churned_at is None else None, None),
        )
        for stage, at, previous in steps:
            if at is None:
                break
            if stage == "retained":
                renewed = lead.renewed_at
                reached[stage].append(_seconds(renewed, at) / DAY if renewed else None)
            else:
                reached[stage].append(_seconds(at, previous) / DAY if previous else None)
    out, before = [], None
    for stage in STAGES:
        durations = [d for d in reached[stage] if d is not None]
        count = len(reached[stage])
        out.append(
            {
                "stage": stage,
                "count": count,
                "conversion_from_previous": None if before is None else ratio(count, before),
                "median_days_from_previous": median([max(d, 0.0) for d in durations]),
            }
        )
        before = count
    return out


STAGES = ("lead", "mql", "sql", "won", "retained")
HANDOFFS = ("mql", "sql", "deal", "churn_risk")
REJECTIONS = {
    "mql": ("recycled", "disqualified"),
    "sql": ("lost",),
    "deal": ("churned",),
    "churn_risk": ("churn_risk",),
}


async def sla_compliance(
    session: AsyncSession, rules: Rules, scope: Scope, now: datetime
) -> list[dict[str, Any]]:
    """Per hand-off in the range: passed, accepted within the SLA, breached, still open, and
    what was turned back, with reasons."""
    start, end = scope.instants(rules)
    totals = Counter[str]()
    for values in (
        await repository.daily_totals(session, scope.start, scope.end, None, None)
    ).values():
        totals.update(values)
    reasons = await repository.reasons(
        session, [k for ks in REJECTIONS.values() for k in ks], start, end
    )
    deal_in_sla = deal_breached = 0
    for deal in await repository.deals_won(session, start, end, None, None):
        assert deal.won_at is not None
        due = deal.won_at + rules.onboarding_sla
        if deal.onboarded_at is not None and deal.onboarded_at <= due:
            deal_in_sla += 1
        elif deal.onboarded_at is not None or now > due:
            deal_breached += 1
    risks = await repository.lead_milestones(session, "churn_risk_at", start, end, None, None)
    counts = {
        "mql": (totals["mqls"], totals["mqls_in_sla"], totals["mqls_breached"]),
        "sql": (totals["sqls"], totals["sqls_accepted_in_sla"], totals["sqls_neglected"]),
        "deal": (totals["deals_won"], deal_in_sla, deal_breached),
    }
    out = []
    for handoff in HANDOFFS:
        rejected = {
            kind: {
                "total": sum(reasons[kind].values()),
                "reasons": [{"reason": r, "count": c} for r, c in reasons[kind].most_common(20)],
            }
            for kind in REJECTIONS[handoff]
        }
        if handoff == "churn_risk":
            churned = sum(1 for lead in risks if lead.churned_at is not None)
            row = {
                "handoff": handoff,
                "passed": totals["churn_risks"],
                "accepted_in_sla": None,
                "breached": None,
                "open": None,
                "compliance_rate": None,
                "churned_after_risk": churned,
                "mrr_at_risk": totals["mrr_at_risk"],
            }
        else:
            passed, in_sla, breached = counts[handoff]
            row = {
                "handoff": handoff,
                "passed": passed,
                "accepted_in_sla": in_sla,
                "breached": breached,
                "open": passed - in_sla - breached,
                "compliance_rate": ratio(in_sla, passed),
            }
        out.append({**row, "rejected": rejected})
    return out


def last_complete_week(now: datetime, rules: Rules) -> date:
    """Monday of the last full ISO week before `now`, in the reporting time zone."""
    today = local_day(now, rules.tz)
    return today - timedelta(days=today.weekday() + 7)
