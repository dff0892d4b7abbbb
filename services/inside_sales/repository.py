"""Every query of the inside sales service."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.inside_sales.models import QueueItem


async def get_item(session: AsyncSession, lead_id: str) -> QueueItem | None:
    return await session.get(QueueItem, lead_id)


async def queue(session: AsyncSession, limit: int) -> Sequence[QueueItem]:
    query = select(QueueItem).order_by(QueueItem.respond_by, QueueItem.lead_id).limit(limit)
    return (await session.scalars(query)).all()
