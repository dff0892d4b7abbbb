"""Tables of the field sales service."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import BigIntKey, UTCDateTime, new_metadata
from shared.versions import VersionedRules


class Base(DeclarativeBase):
    metadata = new_metadata()


class Opportunity(Base):
    """An SQL handed over by Inside Sales, with what they learned, and its way to a close."""

    __tablename__ = "opportunities"
    __table_args__ = (
        Index("ix_opportunities_stage_owner", "stage", "owner_id"),
        Index("ix_opportunities_unaccepted", "accepted_at", "accept_by"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    lead_id: Mapped[str] = mapped_column(String(36), index=True)
    company: Mapped[str] = mapped_column(String(200))
    contact_name: Mapped[str] = mapped_column(String(200))
    contact_email: Mapped[str] = mapped_column(String(254))
    contact_title: Mapped[str | None] = mapped_column(String(200), nullable=True)
    need: Mapped[str] = mapped_column(String(2000))
    decision_maker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    budget: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    timeline: Mapped[str | None] = mapped_column(String(200), nullable=True)
    estimated_amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    rep_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    stage: Mapped[str] = mapped_column(String(20), default="qualification")
    amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    probability: Mapped[int] = mapped_column(Integer, default=10, server_default="10")
    expected_close: Mapped[date | None] = mapped_column(Date, nullable=True)
    owner_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    received_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accept_by: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    neglected_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    mrr: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    term_months: Mapped[int | None] = mapped_column(Integer, nullable=True)
    contract_start: Mapped[date | None] = mapped_column(Date, nullable=True)
    loss_reason: Mapped[str | None] = mapped_column(String(50), nullable=True)
    loss_note: Mapped[str | None] = mapped_column(String(2000), nullable=True)


class StageChange(Base):
    __tablename__ = "stage_changes"
    __table_args__ = (Index("ix_stage_changes_opportunity", "opportunity_id", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    opportunity_id: Mapped[str] = mapped_column(ForeignKey("opportunities.id", ondelete="CASCADE"))
    from_stage: Mapped[str] = mapped_column(String(20))
    to_stage: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int] = mapped_column(BigInteger)
    probability: Mapped[int] = mapped_column(Integer)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ChurnAlert(Base):
    """A churn risk Customer Success raised on an account this team won."""

    __tablename__ = "churn_alerts"
    __table_args__ = (Index("ix_churn_alerts_owner_time", "owner_id", "occurred_at"),)

    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    account_id: Mapped[str] = mapped_column(String(36))
    lead_id: Mapped[str] = mapped_column(String(36))
    opportunity_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    owner_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    company: Mapped[str | None] = mapped_column(String(200), nullable=True)
    health_score: Mapped[int] = mapped_column(Integer)
    reasons: Mapped[list[str]] = mapped_column(JSON)
    mrr_at_risk: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PolicyVersion(VersionedRules, Base):
    """Every sales policy (acceptance SLA, stage probabilities, loss reasons) ever in force."""

    __tablename__ = "policy_versions"
