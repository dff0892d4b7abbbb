"""Every query of the field sales service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.field_sales.domain import OPEN_STAGES
from services.field_sales.models import ChurnAlert, Opportunity, StageChange


async def get_opportunity(
    session: AsyncSession, opportunity_id: str, *, lock: bool = False
) -> Opportunity | None:
    return await session.get(Opportunity, opportunity_id, with_for_update=lock or None)


async def list_opportunities(
    session: AsyncSession,
    *,
    stage: str | None,
    owner_id: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[Opportunity]:
    """Newest first; `after` is the (created_at, id) of the previous page's last item."""
    query = (
        select(Opportunity)
        .order_by(Opportunity.created_at.desc(), Opportunity.id.desc())
        .limit(limit)
    )
    if stage:
        query = query.where(Opportunity.stage == stage)
    if owner_id:
        query = query.where(Opportunity.owner_id == owner_id)
    if after is not None:
        query = query.where(tuple_(Opportunity.created_at, Opportunity.id) < tuple_(*after))
    return (await session.scalars(query)).all()


async def open_opportunities(session: AsyncSession) -> Sequence[Opportunity]:
    return (
        await session.scalars(select(Opportunity).where(Opportunity.stage.in_(OPEN_STAGES)))
    ).all()


async def history_of(session: AsyncSession, opportunity_id: str) -> Sequence[StageChange]:
    query = (
        select(StageChange)
        .where(StageChange.opportunity_id == opportunity_id)
        .order_by(StageChange.occurred_at, StageChange.id)
    )
    return (await session.scalars(query)).all()


async def unaccepted_overdue(
    session: AsyncSession, now: datetime, received_before: datetime, limit: int
) -> Sequence[Opportunity]:
    """Opportunities nobody accepted by their deadline, not yet reported; locked."""
    query = (
        select(Opportunity)
        .where(
            Opportunity.accepted_at.is_(None),
            Opportunity.neglected_at.is_(None),
            Opportunity.stage.in_(OPEN_STAGES),
            Opportunity.accept_by < now,
            Opportunity.received_at < received_before,
        )
        .order_by(Opportunity.accept_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(query)).all()


async def won_deal_of_lead(session: AsyncSession, lead_id: str) -> Opportunity | None:
    query = (
        select(Opportunity)
        .where(Opportunity.lead_id == lead_id, Opportunity.stage == "won")
        .order_by(Opportunity.closed_at.desc())
        .limit(1)
    )
    return await session.scalar(query)


async def alerts(
    session: AsyncSession, owner_id: str | None, before: datetime | None, limit: int
) -> Sequence[ChurnAlert]:
    query = select(ChurnAlert).order_by(ChurnAlert.occurred_at.desc()).limit(limit)
    if owner_id:
        query = query.where(ChurnAlert.owner_id == owner_id)
    if before is not None:
        query = query.where(ChurnAlert.occurred_at < before)
    return (await session.scalars(query)).all()
