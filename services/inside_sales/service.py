"""Use cases of the inside sales service; the caller's transaction commits them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.inside_sales import domain, repository
from services.inside_sales.models import QueueItem
from shared.events import LeadQualified


async def enqueue_mql(session: AsyncSession, mql: LeadQualified, qualified_at: datetime) -> None:
    """Put a newly qualified lead in the queue, due for first contact within the SLA."""
    if await repository.get_item(session, str(mql.lead_id)) is not None:
        return
    session.add(
        QueueItem(
            lead_id=str(mql.lead_id),
            email=mql.email,
            name=mql.name,
            company=mql.company,
            title=mql.title,
            source=mql.source,
            score=mql.score,
            touches=mql.touches,
            status="new",
            qualified_at=qualified_at,
            respond_by=domain.respond_by(qualified_at),
        )
    )
