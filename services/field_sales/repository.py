"""Every query of the field sales service."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.field_sales.models import Opportunity


async def get_opportunity(session: AsyncSession, opportunity_id: str) -> Opportunity | None:
    return await session.get(Opportunity, opportunity_id)


async def list_opportunities(session: AsyncSession, limit: int) -> Sequence[Opportunity]:
    query = select(Opportunity).order_by(Opportunity.created_at.desc()).limit(limit)
    return (await session.scalars(query)).all()
