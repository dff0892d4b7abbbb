"""Tables of the inside sales service."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import BigIntKey, UTCDateTime, new_metadata
from shared.versions import VersionedRules


class Base(DeclarativeBase):
    metadata = new_metadata()


class Rep(Base):
    """An inside seller; MQLs are dealt to the active ones in turn."""

    __tablename__ = "reps"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), unique=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    last_turn: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class QueueItem(Base):
    """An MQL and its way through Inside Sales, with the context Marketing sent along."""

    __tablename__ = "queue_items"
    __table_args__ = (
        Index("ix_queue_items_status_respond_by", "status", "respond_by"),
        Index("ix_queue_items_rep_respond_by", "rep_id", "respond_by"),
    )

    lead_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source: Mapped[str] = mapped_column(String(20))
    score: Mapped[int] = mapped_column(Integer)
    touches: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20), default="new")
    qualified_at: Mapped[datetime] = mapped_column(UTCDateTime)
    respond_by: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    campaign_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    mql_rule: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    rep_id: Mapped[str | None] = mapped_column(ForeignKey("reps.id"), nullable=True)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_contact_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sla_breached_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    touch_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    close_reason: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    opportunity_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    qualification: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


class Touch(Base):
    """A call, mail or meeting with the lead."""

    __tablename__ = "touches"
    __table_args__ = (Index("ix_touches_lead_time", "lead_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("queue_items.lead_id", ondelete="CASCADE"))
    rep_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    channel: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str] = mapped_column(String(20))
    notes: Mapped[str | None] = mapped_column(String(5000), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SlaVersion(VersionedRules, Base):
    """Every SLA policy ever in force: who changed it, when, and to what."""

    __tablename__ = "sla_versions"
