"""Use cases of the field sales service; the caller's transaction commits them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.field_sales import repository
from services.field_sales.models import Opportunity
from shared.events import OpportunityCreated


async def open_opportunity(
    session: AsyncSession, sql: OpportunityCreated, created_at: datetime
) -> None:
    """Take over an SQL from Inside Sales as an opportunity in the first stage."""
    if await repository.get_opportunity(session, str(sql.opportunity_id)) is not None:
        return
    session.add(
        Opportunity(
            id=str(sql.opportunity_id),
            lead_id=str(sql.lead_id),
            company=sql.company,
            contact_name=sql.contact.name,
            contact_email=sql.contact.email,
            need=sql.need or "",
            estimated_amount=sql.estimated_amount,
            currency=sql.currency,
            stage="qualification",
            created_at=created_at,
        )
    )
