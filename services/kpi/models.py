"""Tables of the KPI service: its own read model, built from events only.

Facts are kept per lead and per opportunity, each field merged so that the order in which events
arrive does not matter (the earliest time wins). Every fact row contributes to `daily_totals`,
the per-day aggregates most KPIs are read from; when a row changes, its old contributions are
taken out and the new ones put in. The ingest holds the fact rows it changes as plain
`LeadRow` and `OpportunityRow` objects; the queries read the mapped classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import date, datetime
from operator import attrgetter
from typing import Any, cast

from sqlalchemy import JSON, BigInteger, Date, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import UTCDateTime, new_metadata

ID = String(36)
REASON = String(2000)


class Base(DeclarativeBase):
    metadata = new_metadata()


class LeadFact(Base):
    """One lead's journey: when it crossed each hand-off, and how it was handled."""

    __tablename__ = "lead_facts"
    __table_args__ = (
        Index("ix_lead_facts_captured_at", "captured_at"),
        Index("ix_lead_facts_mql_at", "mql_at"),
        Index("ix_lead_facts_sql_at", "sql_at"),
        Index("ix_lead_facts_won_at", "won_at"),
        Index("ix_lead_facts_churn_risk_at", "churn_risk_at"),
    )

    lead_id: Mapped[str] = mapped_column(ID, primary_key=True)
    source: Mapped[str] = mapped_column(String(20), default="")
    campaign_id: Mapped[str] = mapped_column(String(36), default="")
    captured_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Content downloads per local day ("2026-01-31": 2): the lead's own, so they follow its source.
    downloads: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    mql_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    respond_by: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_touch_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sla_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sql_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    won_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    renewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    churn_risk_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    churned_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(slots=True)
class LeadRow:
    """A `lead_facts` row as the ingest holds it in hand, free of the ORM (fields in column
    order): the read model loads, changes and writes back hundreds of them a transaction."""

    lead_id: str
    source: str = ""
    campaign_id: str = ""
    captured_at: datetime | None = None
    downloads: dict[str, int] = field(default_factory=dict)
    mql_at: datetime | None = None
    respond_by: datetime | None = None
    first_touch_at: datetime | None = None
    sla_breached_at: datetime | None = None
    sql_at: datetime | None = None
    won_at: datetime | None = None
    renewed_at: datetime | None = None
    churn_risk_at: datetime | None = None
    churned_at: datetime | None = None


class OpportunityFact(Base):
    """One opportunity (SQL): accepted in time or neglected, won or lost, onboarded."""

    __tablename__ = "opportunity_facts"
    __table_args__ = (
        Index("ix_opportunity_facts_created_at", "created_at"),
        Index("ix_opportunity_facts_won_at", "won_at"),
    )

    opportunity_id: Mapped[str] = mapped_column(ID, primary_key=True)
    lead_id: Mapped[str] = mapped_column(String(100), index=True)
    # The lead's source and campaign, copied once the lead is known, for filtered KPIs.
    source: Mapped[str] = mapped_column(String(20), default="")
    campaign_id: Mapped[str] = mapped_column(String(36), default="")
    created_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    neglected_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    won_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    amount: Mapped[int | None] = mapped_column(BigInteger)  # won, in the reporting currency
    mrr: Mapped[int | None] = mapped_column(BigInteger)  # won, in the reporting currency
    lost_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    onboarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


@dataclass(slots=True)
class OpportunityRow:
    """An `opportunity_facts` row as the ingest holds it in hand (fields in column order)."""

    opportunity_id: str
    lead_id: str
    source: str = ""
    campaign_id: str = ""
    created_at: datetime | None = None
    accepted_at: datetime | None = None
    neglected_at: datetime | None = None
    won_at: datetime | None = None
    amount: int | None = None
    mrr: int | None = None
    lost_at: datetime | None = None
    onboarded_at: datetime | None = None


FactRow = LeadRow | OpportunityRow
_COLUMNS = {kind: tuple(f.name for f in fields(kind)) for kind in (LeadRow, OpportunityRow)}
_VALUES = {kind: attrgetter(*columns) for kind, columns in _COLUMNS.items()}


def fact_columns(kind: type[FactRow]) -> tuple[str, ...]:
    """The columns of `kind`'s table, in order: its fields' names."""
    return _COLUMNS[kind]


def fact_record(row: FactRow) -> dict[str, Any]:
    """Column -> value of the row."""
    return dict(zip(_COLUMNS[type(row)], fact_values(row), strict=True))


def fact_values(row: FactRow) -> tuple[Any, ...]:
    """The row's values, in column order."""
    return cast(tuple[Any, ...], _VALUES[type(row)](row))


class ReasonFact(Base):
    """Why a hand-off was turned back: recycled, disqualified, lost, churned, at risk."""

    __tablename__ = "reason_facts"
    __table_args__ = (Index("ix_reason_facts_kind_time", "kind", "occurred_at"),)

    event_id: Mapped[str] = mapped_column(ID, primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, default=0)
    kind: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(REASON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)


class DailyTotal(Base):
    """A counter or a sum of one metric on one local day, per lead source and campaign."""

    __tablename__ = "daily_totals"
    __table_args__ = (Index("ix_daily_totals_metric_day", "metric", "day"),)

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    source: Mapped[str] = mapped_column(String(20), primary_key=True)
    campaign_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class DayRevision(Base):
    """How often the facts or totals dated on one local day have changed: a KPI result computed
    from days whose revisions have not moved since is still right (see `services.kpi.results`)."""

    __tablename__ = "day_revisions"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    revision: Mapped[int] = mapped_column(BigInteger, default=0)


class ReadModelState(Base):
    """The read model's generation: a rebuild starts a new one, read by a new consumer group."""

    __tablename__ = "read_model_state"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=1)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    rebuilt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


READ_MODEL_TABLES = (LeadFact, OpportunityFact, ReasonFact, DailyTotal, DayRevision)
