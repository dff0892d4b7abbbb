"""Tables of the marketing service."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import BigIntKey, UTCDateTime, new_metadata
from shared.versions import VersionedRules


class Base(DeclarativeBase):
    metadata = new_metadata()


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        Index("ix_leads_status_captured", "status", "captured_at"),
        Index("ix_leads_captured_id", "captured_at", "id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str] = mapped_column(String(200))
    title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    source: Mapped[str] = mapped_column(String(20))
    campaign_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    status: Mapped[str] = mapped_column(String(20), default="new")
    status_reason: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    score: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    touches: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_activity_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Activities before this moment no longer count (set when Inside Sales recycles the lead).
    engagement_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    qualified_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    times_qualified: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Activity(Base):
    """Something a lead did, at the time it happened."""

    __tablename__ = "activities"
    __table_args__ = (Index("ix_activities_lead_time", "lead_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(30))
    points: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StatusChange(Base):
    """The lead's way through the funnel after its capture, for its timeline (the capture, status
    "new", is the lead's `captured_at`)."""

    __tablename__ = "lead_status_changes"
    __table_args__ = (Index("ix_lead_status_changes_lead", "lead_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScoringModelVersion(VersionedRules, Base):
    """Every scoring model ever in force: who changed it, when, and to what."""

    __tablename__ = "scoring_models"


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    channel: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class CampaignCost(Base):
    __tablename__ = "campaign_costs"

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    campaign_id: Mapped[str] = mapped_column(ForeignKey("campaigns.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    period_start: Mapped[date] = mapped_column(Date)
    period_end: Mapped[date] = mapped_column(Date)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Feedback(Base):
    """The customer's voice from Customer Success, tied to the lead its journey began with."""

    __tablename__ = "feedback"
    __table_args__ = (Index("ix_feedback_kind_time", "kind", "occurred_at"),)

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(36))
    lead_id: Mapped[str] = mapped_column(String(100), index=True)
    kind: Mapped[str] = mapped_column(String(30))
    text: Mapped[str] = mapped_column(String(5000))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
