"""Use cases of the customer success service; the caller's transaction commits them."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.customer_success import domain, repository
from services.customer_success.models import Account
from shared.events import DealWon


async def open_account(session: AsyncSession, deal: DealWon, won_at: datetime) -> None:
    """Open the customer's account from the won deal, renewal due at the end of the term."""
    if await repository.account_for_opportunity(session, str(deal.opportunity_id)) is not None:
        return
    session.add(
        Account(
            id=str(uuid.uuid4()),
            opportunity_id=str(deal.opportunity_id),
            lead_id=str(deal.lead_id),
            company=deal.company,
            owner_id=str(deal.owner_id),
            mrr=deal.mrr,
            currency=deal.currency,
            term_months=deal.term_months,
            contract_start=deal.contract_start,
            renewal_date=domain.renewal_date(deal.contract_start, deal.term_months),
            status="onboarding",
            won_at=won_at,
        )
    )
