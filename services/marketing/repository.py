"""Every query of the marketing service, but the captures' one-trip write (`captures`)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, func, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.marketing.models import (
    Activity,
    Campaign,
    CampaignCost,
    Feedback,
    Lead,
    ScoringModelVersion,
    StatusChange,
)
from shared.db import insert_many

# The tables themselves, for the statements on hot paths: Core skips the ORM's bookkeeping.
LEADS: Table = Lead.__table__  # type: ignore[assignment]
SCORING_MODELS: Table = ScoringModelVersion.__table__  # type: ignore[assignment]
# Statements run with every lead, made once: making one costs more than running it.
SCORING_MODEL_VERSION = select(func.max(SCORING_MODELS.c.version))


async def get_lead(session: AsyncSession, lead_id: str, *, lock: bool = False) -> Lead | None:
    """The lead; with `lock`, held for update until the transaction ends (PostgreSQL)."""
    return await session.get(Lead, lead_id, with_for_update=lock or None)


async def lead_ids_by_email(session: AsyncSession, emails: Iterable[str]) -> dict[str, str]:
    """The id of the lead holding each of `emails` that one holds."""
    query = select(Lead.email, Lead.id).where(Lead.email.in_(list(emails)))
    return {email: lead_id for email, lead_id in (await session.execute(query)).all()}


@dataclass(frozen=True)
class LeadFilter:
    status: str | None = None
    source: str | None = None
    campaign_id: str | None = None
    min_score: int | None = None
    text: str | None = None


async def list_leads(
    session: AsyncSession, where: LeadFilter, after: tuple[datetime, str] | None, limit: int
) -> Sequence[Lead]:
    """Newest first; `after` is the (captured_at, id) of the last lead of the previous page."""
    query = select(Lead).order_by(Lead.captured_at.desc(), Lead.id.desc()).limit(limit)
    if where.status:
        query = query.where(Lead.status == where.status)
    if where.source:
        query = query.where(Lead.source == where.source)
    if where.campaign_id:
        query = query.where(Lead.campaign_id == where.campaign_id)
    if where.min_score is not None:
        query = query.where(Lead.score >= where.min_score)
    if where.text:
        pattern = f"%{_escape_like(where.text.lower())}%"
        query = query.where(
            or_(
                func.lower(Lead.name).like(pattern, escape="\\"),
                func.lower(Lead.company).like(pattern, escape="\\"),
                Lead.email.like(pattern, escape="\\"),
            )
        )
    if after is not None:
        query = query.where(tuple_(Lead.captured_at, Lead.id) < tuple_(*after))
    return (await session.scalars(query)).all()


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def activities_of(session: AsyncSession, lead_id: str) -> Sequence[Activity]:
    query = select(Activity).where(Activity.lead_id == lead_id).order_by(Activity.occurred_at)
    return (await session.scalars(query)).all()


async def status_changes_of(session: AsyncSession, lead_id: str) -> Sequence[StatusChange]:
    query = select(StatusChange).where(StatusChange.lead_id == lead_id)
    return (await session.scalars(query.order_by(StatusChange.occurred_at))).all()


async def get_campaign(session: AsyncSession, campaign_id: str) -> Campaign | None:
    return await session.get(Campaign, campaign_id)


async def existing_campaigns(session: AsyncSession, ids: Iterable[str]) -> set[str]:
    query = select(Campaign.id).where(Campaign.id.in_(list(ids)))
    return set((await session.scalars(query)).all())


async def campaign_funnel(session: AsyncSession, campaign_id: str) -> tuple[int, int]:
    """(leads, leads that ever became an MQL) of a campaign."""
    query = select(func.count(), func.count(Lead.qualified_at)).where(
        Lead.campaign_id == campaign_id
    )
    leads, mqls = (await session.execute(query)).one()
    return int(leads), int(mqls)


async def campaign_costs(session: AsyncSession, campaign_id: str) -> dict[str, int]:
    query = (
        select(CampaignCost.currency, func.sum(CampaignCost.amount))
        .where(CampaignCost.campaign_id == campaign_id)
        .group_by(CampaignCost.currency)
    )
    return {currency: int(total) for currency, total in (await session.execute(query)).all()}


async def feedback_for_lead(session: AsyncSession, lead: Lead, limit: int) -> Sequence[Feedback]:
    """Feedback from this lead's journey, or from any journey that began at the same company."""
    same_company = select(Lead.id).where(Lead.company == lead.company)
    query = (
        select(Feedback)
        .where(or_(Feedback.lead_id == lead.id, Feedback.lead_id.in_(same_company)))
        .order_by(Feedback.occurred_at.desc())
        .limit(limit)
    )
    return (await session.scalars(query)).all()


async def list_feedback(
    session: AsyncSession, kind: str | None, before: datetime | None, limit: int
) -> Sequence[Feedback]:
    query = select(Feedback).order_by(Feedback.occurred_at.desc()).limit(limit)
    if kind:
        query = query.where(Feedback.kind == kind)
    if before is not None:
        query = query.where(Feedback.occurred_at < before)
    return (await session.scalars(query)).all()


async def insert_new_leads(session: AsyncSession, rows: list[dict[str, Any]]) -> set[str]:
    """Insert leads (an import's chunk, a group of captures), skipping those whose email is
    known; the ids inserted."""
    return set(await insert_many(session, LEADS, rows, skip_conflicts_on=["email"], returning="id"))


async def scoring_model_version(session: AsyncSession) -> int:
    """The version of the scoring model in force (0: the built-in defaults)."""
    return int(await session.scalar(SCORING_MODEL_VERSION) or 0)
