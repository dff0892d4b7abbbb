"""Tables of the customer success service."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from shared.db import BigIntKey, UTCDateTime, new_metadata
from shared.versions import VersionedRules


class Base(DeclarativeBase):
    metadata = new_metadata()


class Account(Base):
    """A customer, opened when Field Sales wins the deal."""

    __tablename__ = "accounts"
    __table_args__ = (Index("ix_accounts_won_id", "won_at", "id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    opportunity_id: Mapped[str] = mapped_column(String(36), unique=True)
    lead_id: Mapped[str] = mapped_column(String(36), index=True)
    company: Mapped[str] = mapped_column(String(200))
    owner_id: Mapped[str] = mapped_column(String(36), index=True)
    mrr: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    term_months: Mapped[int] = mapped_column(Integer)
    contract_start: Mapped[date] = mapped_column(Date)
    renewal_date: Mapped[date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(20), default="onboarding")
    won_at: Mapped[datetime] = mapped_column(UTCDateTime)
    deal_amount: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    health_score: Mapped[int | None] = mapped_column(Integer, nullable=True)
    band: Mapped[str | None] = mapped_column(String(10), nullable=True, index=True)
    factors: Mapped[dict[str, float] | None] = mapped_column(JSON, nullable=True)
    churn_risk_open: Mapped[bool] = mapped_column(Boolean, default=False, server_default="0")
    last_nps: Mapped[int | None] = mapped_column(Integer, nullable=True)
    onboarding: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    onboarded_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    churned_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AccountEvent(Base):
    """What happened to an account (usage, NPS, band changes, revenue, feedback): its timeline."""

    __tablename__ = "account_events"
    __table_args__ = (Index("ix_account_events_account_time", "account_id", "kind", "occurred_at"),)

    id: Mapped[int] = mapped_column(BigIntKey, primary_key=True, autoincrement=True)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(30))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)


class HealthModelVersion(VersionedRules, Base):
    """Every health model ever in force: who changed it, when, and to what."""

    __tablename__ = "health_models"
