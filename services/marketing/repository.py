"""Every query of the marketing service."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.marketing.models import Lead


async def get_lead(session: AsyncSession, lead_id: str) -> Lead | None:
    return await session.get(Lead, lead_id)


async def find_lead_by_email(session: AsyncSession, email: str) -> Lead | None:
    return await session.scalar(select(Lead).where(Lead.email == email))
