"""Every query of the inside sales service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from services.inside_sales.models import QueueItem, Rep, Touch


async def get_item(session: AsyncSession, lead_id: str, *, lock: bool = False) -> QueueItem | None:
    return await session.get(QueueItem, lead_id, with_for_update=lock or None)


async def queue(
    session: AsyncSession,
    *,
    rep_id: str | None,
    status: str | None,
    after: tuple[datetime, str] | None,
    limit: int,
) -> Sequence[QueueItem]:
    """Most urgent first; `after` is the (respond_by, lead_id) of the previous page's last item."""
    query = select(QueueItem).order_by(QueueItem.respond_by, QueueItem.lead_id).limit(limit)
    if rep_id:
        query = query.where(QueueItem.rep_id == rep_id)
    if status:
        query = query.where(QueueItem.status == status)
    if after is not None:
        query = query.where(tuple_(QueueItem.respond_by, QueueItem.lead_id) > tuple_(*after))
    return (await session.scalars(query)).all()


async def touches_of(session: AsyncSession, lead_id: str) -> Sequence[Touch]:
    query = select(Touch).where(Touch.lead_id == lead_id).order_by(Touch.occurred_at, Touch.id)
    return (await session.scalars(query)).all()


async def overdue(
    session: AsyncSession, now: datetime, received_before: datetime, limit: int
) -> Sequence[QueueItem]:
    """Uncontacted MQLs past their respond-by time, not yet reported; locked, skipping others'."""
    query = (
        select(QueueItem)
        .where(
            QueueItem.status == "new",
            QueueItem.first_contact_at.is_(None),
            QueueItem.sla_breached_at.is_(None),
            QueueItem.respond_by < now,
            QueueItem.received_at < received_before,
        )
        .order_by(QueueItem.respond_by)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    return (await session.scalars(query)).all()


async def get_rep(session: AsyncSession, rep_id: str) -> Rep | None:
    return await session.get(Rep, rep_id)


async def rep_by_email(session: AsyncSession, email: str) -> Rep | None:
    return await session.scalar(select(Rep).where(Rep.email == email))


async def list_reps(session: AsyncSession) -> Sequence[Rep]:
    return (await session.scalars(select(Rep).order_by(Rep.created_at, Rep.id))).all()


async def active_reps_locked(session: AsyncSession) -> Sequence[Rep]:
    """The active reps, locked: assignments are dealt one at a time."""
    query = select(Rep).where(Rep.active.is_(True)).order_by(Rep.id).with_for_update()
    return (await session.scalars(query)).all()


async def last_turn(session: AsyncSession) -> int:
    return int(await session.scalar(select(func.coalesce(func.max(Rep.last_turn), 0))) or 0)
