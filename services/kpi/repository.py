"""Every query of the KPI service."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any, TypeVar

from sqlalchemy import Select, delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.kpi.facts import Contributions
from services.kpi.models import (
    READ_MODEL_TABLES,
    DailyTotal,
    LeadFact,
    OpportunityFact,
    ReadModelState,
    ReasonFact,
)
from shared.db import insert_if_absent
from shared.inbox import InboxRow

AnySelect = Select[*tuple[Any, ...]]
Q = TypeVar("Q", bound=AnySelect)


def _insert(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def lead(session: AsyncSession, lead_id: str) -> LeadFact:
    """The lead's facts, a new row if it is not known yet."""
    row = await session.get(LeadFact, lead_id)
    if row is None:
        row = LeadFact(lead_id=lead_id, source="", campaign_id="", downloads={})
        session.add(row)
    return row


async def opportunity(session: AsyncSession, opportunity_id: str, lead_id: str) -> OpportunityFact:
    row = await session.get(OpportunityFact, opportunity_id)
    if row is None:
        known = await session.get(LeadFact, lead_id)
        row = OpportunityFact(
            opportunity_id=opportunity_id,
            lead_id=lead_id,
            source=known.source if known else "",
            campaign_id=known.campaign_id if known else "",
        )
        session.add(row)
    return row


async def opportunities_of(session: AsyncSession, lead_id: str) -> Sequence[OpportunityFact]:
    query = select(OpportunityFact).where(OpportunityFact.lead_id == lead_id)
    return (await session.scalars(query)).all()


async def add_totals(session: AsyncSession, delta: Contributions) -> None:
    """Add `delta` to the daily totals (one upsert per changed key)."""
    if not delta:
        return
    insert = _insert(session)
    statement = insert(DailyTotal)
    statement = statement.on_conflict_do_update(
        index_elements=["day", "metric", "source", "campaign_id"],
        set_={"value": DailyTotal.value + statement.excluded.value},
    )
    rows = [
        {
            "day": k.day,
            "metric": k.metric,
            "source": k.source,
            "campaign_id": k.campaign_id,
            "value": v,
        }
        for k, v in delta.items()
    ]
    await session.execute(statement, rows)


async def add_reason(
    session: AsyncSession, event_id: str, position: int, kind: str, reason: str, at: datetime
) -> None:
    values = {
        "event_id": event_id,
        "position": position,
        "kind": kind,
        "reason": reason,
        "occurred_at": at,
    }
    await insert_if_absent(session, ReasonFact, values)


def _filtered(query: Q, source: str | None, campaign_id: str | None) -> Q:
    if source is not None:
        query = query.where(DailyTotal.source == source)
    if campaign_id is not None:
        query = query.where(DailyTotal.campaign_id == campaign_id)
    return query


async def daily_totals(
    session: AsyncSession, start: date, end: date, source: str | None, campaign_id: str | None
) -> dict[date, Counter[str]]:
    """Per local day in `[start, end)`: metric -> total."""
    query = _filtered(
        select(DailyTotal.day, DailyTotal.metric, func.sum(DailyTotal.value))
        .where(DailyTotal.day >= start, DailyTotal.day < end)
        .group_by(DailyTotal.day, DailyTotal.metric),
        source,
        campaign_id,
    )
    days: dict[date, Counter[str]] = {}
    for day, metric, value in await session.execute(query):
        days.setdefault(day, Counter())[metric] += int(value)
    return days


async def totals_before(session: AsyncSession, day: date, metrics: Sequence[str]) -> Counter[str]:
    """Metric -> total over every day before `day` (the opening balances)."""
    query = (
        select(DailyTotal.metric, func.sum(DailyTotal.value))
        .where(DailyTotal.day < day, DailyTotal.metric.in_(metrics))
        .group_by(DailyTotal.metric)
    )
    return Counter({metric: int(value) for metric, value in await session.execute(query)})


def _lead_filter(query: Q, source: str | None, campaign_id: str | None) -> Q:
    if source is not None:
        query = query.where(LeadFact.source == source)
    if campaign_id is not None:
        query = query.where(LeadFact.campaign_id == campaign_id)
    return query


async def lead_milestones(
    session: AsyncSession,
    column: str,
    start: datetime,
    end: datetime,
    source: str | None,
    campaign_id: str | None,
) -> Sequence[LeadFact]:
    """Leads whose milestone `column` (e.g. `mql_at`) falls in `[start, end)`."""
    milestone = getattr(LeadFact, column)
    query = select(LeadFact).where(milestone >= start, milestone < end)
    return (await session.scalars(_lead_filter(query, source, campaign_id))).all()


async def deals_won(
    session: AsyncSession,
    start: datetime,
    end: datetime,
    source: str | None,
    campaign_id: str | None,
) -> Sequence[OpportunityFact]:
    query = select(OpportunityFact).where(
        OpportunityFact.won_at >= start, OpportunityFact.won_at < end
    )
    if source is not None:
        query = query.where(OpportunityFact.source == source)
    if campaign_id is not None:
        query = query.where(OpportunityFact.campaign_id == campaign_id)
    return (await session.scalars(query)).all()


async def reasons(
    session: AsyncSession, kinds: Sequence[str], start: datetime, end: datetime
) -> dict[str, Counter[str]]:
    """Per kind (recycled, disqualified, lost, churned, churn_risk): reason -> count."""
    query = (
        select(ReasonFact.kind, ReasonFact.reason, func.count())
        .where(
            ReasonFact.kind.in_(kinds),
            ReasonFact.occurred_at >= start,
            ReasonFact.occurred_at < end,
        )
        .group_by(ReasonFact.kind, ReasonFact.reason)
    )
    out: dict[str, Counter[str]] = {kind: Counter() for kind in kinds}
    for kind, reason, count in await session.execute(query):
        out[kind][reason] += int(count)
    return out


async def state(session: AsyncSession) -> ReadModelState:
    """The read model's state row (made on first use)."""
    row = await session.get(ReadModelState, 1)
    if row is None:
        row = ReadModelState(id=1, generation=0, settings={})
        session.add(row)
        await session.flush()
    return row


async def clear_read_model(session: AsyncSession) -> None:
    """Drop every fact, total and handled-event record (a rebuild starts from nothing)."""
    for table in (*READ_MODEL_TABLES, InboxRow):
        await session.execute(delete(table))
