"""Every query of the KPI service."""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Collection, Sequence
from datetime import date, datetime
from typing import Any, TypeVar, cast

from sqlalchemy import BigInteger, Select, Table, bindparam, delete, extract, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kpi.facts import Contributions
from services.kpi.models import (
    READ_MODEL_TABLES,
    DailyTotal,
    DayRevision,
    FactRow,
    LeadFact,
    LeadRow,
    OpportunityFact,
    OpportunityRow,
    ReadModelState,
    ReasonFact,
    fact_columns,
)
from shared.db import insert_many, select_all
from shared.inbox import InboxRow

_DAILY_TOTALS = cast(Table, DailyTotal.__table__)
_DAY_REVISIONS = cast(Table, DayRevision.__table__)
_REASONS = cast(Table, ReasonFact.__table__)

AnySelect = Select[*tuple[Any, ...]]
Q = TypeVar("Q", bound=AnySelect)


_LEADS = cast(Table, LeadFact.__table__)
_OPPORTUNITIES = cast(Table, OpportunityFact.__table__)
_FACT_TABLES: dict[type[FactRow], tuple[Table, str]] = {
    LeadRow: (_LEADS, "lead_id"),
    OpportunityRow: (_OPPORTUNITIES, "opportunity_id"),
}


# The ingest's loads, built once: the ids are bound as lists when executed (building an IN of
# hundreds of literal ids anew costs more than running it).
_LEADS_AMONG = select(_LEADS).where(_LEADS.c.lead_id.in_(bindparam("ids", expanding=True)))
_OPPORTUNITIES_AMONG = select(_OPPORTUNITIES).where(
    or_(
        _OPPORTUNITIES.c.opportunity_id.in_(bindparam("ids", expanding=True)),
        _OPPORTUNITIES.c.lead_id.in_(bindparam("lead_ids", expanding=True)),
    )
)


async def leads(session: AsyncSession, lead_ids: Collection[str]) -> list[LeadRow]:
    """The facts of those of `lead_ids` that are known."""
    if not lead_ids:
        return []
    rows = await select_all(await session.connection(), _LEADS_AMONG, {"ids": list(lead_ids)})
    return [LeadRow(*row) for row in rows]


async def opportunities(
    session: AsyncSession, opportunity_ids: Collection[str], lead_ids: Collection[str]
) -> list[OpportunityRow]:
    """The known opportunities among `opportunity_ids` and those of the leads `lead_ids`."""
    if not opportunity_ids and not lead_ids:
        return []
    ids = {"ids": list(opportunity_ids), "lead_ids": list(lead_ids)}
    rows = await select_all(await session.connection(), _OPPORTUNITIES_AMONG, ids)
    return [OpportunityRow(*row) for row in rows]


async def save_facts(
    session: AsyncSession,
    kind: type[FactRow],
    new: Sequence[tuple[Any, ...]],
    changed: Sequence[tuple[Any, ...]],
) -> None:
    """Insert the `new` fact rows of `kind`, and write every column of the `changed` ones back
    (each row as its values in column order: `fact_values`).

    A new row that is there already (added meanwhile by a transaction that read before this
    one's) makes the insert fail, and the batch is then applied again, rather than overwrite it."""
    table, key = _FACT_TABLES[kind]
    columns = fact_columns(kind)
    await insert_many(session, table, new, columns=columns)
    await insert_many(session, table, changed, columns=columns, update_conflicts_on=[key])


async def add_totals(session: AsyncSession, delta: Contributions) -> None:
    """Add `delta` to the daily totals, in one upsert (keys in order, zeros dropped)."""
    rows = [(k.day, k.metric, k.source, k.campaign_id, v) for k, v in sorted(delta.items()) if v]
    key = ["day", "metric", "source", "campaign_id"]
    await insert_many(
        session,
        _DAILY_TOTALS,
        rows,
        columns=(*key, "value"),
        update_conflicts_on=key,
        adding=["value"],
    )


async def add_reasons(session: AsyncSession, rows: Sequence[dict[str, Any]]) -> None:
    """Insert reason rows (`ReasonFact` columns), in one statement; those already there stay."""
    await insert_many(session, _REASONS, rows, skip_conflicts_on=[])


async def touch_days(session: AsyncSession, days: Collection[date]) -> None:
    """Move on the revision of each of `days` (in order: concurrent writers lock them alike)."""
    rows = [(day, 1) for day in sorted(days)]
    await insert_many(
        session,
        _DAY_REVISIONS,
        rows,
        columns=("day", "revision"),
        update_conflicts_on=["day"],
        adding=["revision"],
    )


async def day_revisions(
    session: AsyncSession, start: date, end: date
) -> tuple[int, int, list[tuple[date, int]]]:
    """The read model's generation, the sum of the revisions of every day before `start`, and
    the revisions of the days in `[start, end)` that have one, in day order."""
    connection = await session.connection()  # plain statements: no ORM layer per query
    generation = select(ReadModelState.generation).where(ReadModelState.id == 1).scalar_subquery()
    before = (
        select(func.coalesce(func.sum(DayRevision.revision), 0).cast(BigInteger))
        .where(DayRevision.day < start)
        .scalar_subquery()
    )
    first = (await connection.execute(select(generation, before))).one()
    query = (
        select(DayRevision.day, DayRevision.revision)
        .where(DayRevision.day >= start, DayRevision.day < end)
        .order_by(DayRevision.day)
    )
    days = [(day, int(revision)) for day, revision in await connection.execute(query)]
    return first[0] or 0, int(first[1] or 0), days


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
        # (a bigint, not PostgreSQL's numeric sum, which asyncpg would make a Decimal)
        select(DailyTotal.day, DailyTotal.metric, func.sum(DailyTotal.value).cast(BigInteger))
        .where(DailyTotal.day >= start, DailyTotal.day < end)
        .group_by(DailyTotal.day, DailyTotal.metric),
        source,
        campaign_id,
    )
    days: dict[date, Counter[str]] = {}
    for day, metric, value in await (await session.connection()).execute(query):
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


def _epoch_us(dialect: str, column: Any) -> Any:
    """`column`, a time, in whole microseconds since 1970 UTC, worked out by the database."""
    if dialect == "postgresql":
        return (extract("epoch", column) * 1_000_000).cast(BigInteger)  # exact: a numeric
    # SQLite holds UTC times as text, 'YYYY-MM-DD HH:MM:SS.ffffff'; strftime('%s') would round
    # the fraction, so the seconds and the microseconds are read apart.
    seconds = func.strftime("%s", func.substr(column, 1, 19)).cast(BigInteger)
    return seconds * 1_000_000 + func.substr(column, 21, 6).cast(BigInteger)


def _length_us(dialect: str, earlier: Any, later: Any) -> Any:
    """The time from `earlier` to `later` in whole microseconds (exact), NULL if either is."""
    if dialect == "postgresql":  # one numeric, not two
        return (extract("epoch", later - earlier) * 1_000_000).cast(BigInteger)
    return _epoch_us(dialect, later) - _epoch_us(dialect, earlier)


@functools.cache
def _milestone_intervals_query(
    dialect: str,
    table: type[LeadFact] | type[OpportunityFact],
    milestone: str,
    intervals: tuple[tuple[str, str], ...],
    by_source: bool,
    by_campaign: bool,
) -> AnySelect:
    """The statement of `milestone_intervals`, built once per shape (parameters bound later)."""
    at = getattr(table, milestone)
    lengths = (
        _length_us(dialect, getattr(table, earlier), getattr(table, later))
        for earlier, later in intervals
    )
    query = (
        select(_epoch_us(dialect, at), *lengths)
        .where(at >= bindparam("start"), at < bindparam("end"))
        .order_by(at)
    )
    if by_source:
        query = query.where(table.source == bindparam("source"))
    if by_campaign:
        query = query.where(table.campaign_id == bindparam("campaign_id"))
    return query


async def milestone_intervals(
    session: AsyncSession,
    table: type[LeadFact] | type[OpportunityFact],
    milestone: str,
    intervals: Sequence[tuple[str, str]],
    start: datetime,
    end: datetime,
    source: str | None,
    campaign_id: str | None,
) -> Sequence[tuple[int, *tuple[int | None, ...]]]:
    """Per fact row of `table` whose `milestone` falls in `[start, end)`, in milestone order:
    the milestone, then for each `(earlier, later)` of `intervals` the time from one to the other
    (None when either is unknown), in whole microseconds."""
    query = _milestone_intervals_query(
        session.get_bind().dialect.name,
        table,
        milestone,
        tuple(intervals),
        source is not None,
        campaign_id is not None,
    )
    parameters = {"start": start, "end": end, "source": source, "campaign_id": campaign_id}
    rows = (await (await session.connection()).execute(query, parameters)).all()
    return cast(Sequence[tuple[int, *tuple[int | None, ...]]], rows)


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
