"""Use cases of the marketing service; the caller's transaction commits them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from services.marketing import repository
from services.marketing.models import Lead
from services.marketing.schemas import LeadCreate
from shared.events import LeadCaptured
from shared.outbox import Outbox


class DuplicateLead(Exception):
    def __init__(self, existing_id: str) -> None:
        super().__init__(existing_id)
        self.existing_id = existing_id


async def capture_lead(session: AsyncSession, outbox: Outbox, body: LeadCreate) -> Lead:
    """Create a lead (email unique) and emit LeadCaptured with it."""
    existing = await repository.find_lead_by_email(session, body.email)
    if existing is not None:
        raise DuplicateLead(existing.id)
    captured_at = body.occurred_at or datetime.now(UTC)
    lead = Lead(
        id=str(uuid.uuid4()),
        email=body.email,
        name=body.name,
        company=body.company,
        title=body.title,
        source=body.source,
        campaign_id=str(body.campaign_id) if body.campaign_id else None,
        status="new",
        captured_at=captured_at,
    )
    try:
        async with session.begin_nested():  # a concurrent twin may win the unique email
            session.add(lead)
    except IntegrityError:
        winner = await repository.find_lead_by_email(session, body.email)
        raise DuplicateLead(winner.id if winner else "") from None
    outbox.emit(
        session,
        LeadCaptured(
            lead_id=uuid.UUID(lead.id),
            email=lead.email,
            name=lead.name,
            company=lead.company,
            title=lead.title,
            source=body.source,
            campaign_id=body.campaign_id,
        ),
        time=captured_at,
    )
    return lead


async def set_status(session: AsyncSession, lead_id: str, status: str, reason: str) -> None:
    """Record Inside Sales' verdict on a lead we handed over (recycled or disqualified)."""
    lead = await repository.get_lead(session, lead_id)
    if lead is not None:
        lead.status = status
        lead.status_reason = reason
