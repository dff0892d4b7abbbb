"""Every query of the KPI service."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from services.kpi.models import EventFact


async def count_by_type(
    session: AsyncSession, start: datetime | None, end: datetime | None
) -> dict[str, int]:
    query = select(EventFact.event_type, func.count()).group_by(EventFact.event_type)
    if start is not None:
        query = query.where(EventFact.occurred_at >= start)
    if end is not None:
        query = query.where(EventFact.occurred_at < end)
    return {event_type: count for event_type, count in (await session.execute(query)).all()}
