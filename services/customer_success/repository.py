"""Every query of the customer success service."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer_success.models import Account


async def get_account(session: AsyncSession, account_id: str) -> Account | None:
    return await session.get(Account, account_id)


async def account_for_opportunity(session: AsyncSession, opportunity_id: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.opportunity_id == opportunity_id))


async def list_accounts(session: AsyncSession, limit: int) -> Sequence[Account]:
    query = select(Account).order_by(Account.renewal_date, Account.id).limit(limit)
    return (await session.scalars(query)).all()
