"""Every query of the customer success service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime

from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.customer_success.models import Account, AccountEvent


async def get_account(
    session: AsyncSession, account_id: str, *, lock: bool = False
) -> Account | None:
    return await session.get(Account, account_id, with_for_update=lock or None)


async def account_for_opportunity(session: AsyncSession, opportunity_id: str) -> Account | None:
    return await session.scalar(select(Account).where(Account.opportunity_id == opportunity_id))


async def list_accounts(
    session: AsyncSession,
    *,
    band: str | None,
    owner_id: str | None,
    renewal_before: date | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[Account]:
    """Newest customers first; `after` is the (won_at, id) of the previous page's last one."""
    query = select(Account).order_by(Account.won_at.desc(), Account.id.desc()).limit(limit)
    if band:
        query = query.where(Account.band == band)
    if owner_id:
        query = query.where(Account.owner_id == owner_id)
    if renewal_before:
        query = query.where(Account.renewal_date < renewal_before, Account.status != "churned")
    if after is not None:
        query = query.where(tuple_(Account.won_at, Account.id) < tuple_(*after))
    return (await session.scalars(query)).all()


async def timeline(
    session: AsyncSession, account_id: str, limit: int = 200
) -> Sequence[AccountEvent]:
    query = (
        select(AccountEvent)
        .where(AccountEvent.account_id == account_id)
        .order_by(AccountEvent.occurred_at.desc(), AccountEvent.id.desc())
        .limit(limit)
    )
    return (await session.scalars(query)).all()


async def latest_event(session: AsyncSession, account_id: str, kind: str) -> AccountEvent | None:
    query = (
        select(AccountEvent)
        .where(AccountEvent.account_id == account_id, AccountEvent.kind == kind)
        .order_by(AccountEvent.occurred_at.desc(), AccountEvent.id.desc())
        .limit(1)
    )
    return await session.scalar(query)
