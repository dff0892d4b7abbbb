"""Use cases of the inside sales service; the caller's transaction commits them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.inside_sales import domain, repository
from services.inside_sales.models import QueueItem, Rep, SlaVersion, Touch
from services.inside_sales.schemas import (
    CloseBody,
    QualifyBody,
    RepCreate,
    SlaBody,
    TouchCreate,
    TouchResult,
)
from shared import versions
from shared.errors import Conflict, Invalid, NotFound
from shared.events import (
    Contact,
    LeadAccepted,
    LeadContacted,
    LeadDisqualified,
    LeadQualified,
    LeadRecycled,
    LeadResponseSlaBreached,
    OpportunityCreated,
)
from shared.ids import new_id, new_uuid
from shared.outbox import Outbox


def now() -> datetime:
    return datetime.now(UTC)


async def current_policy(session: AsyncSession) -> tuple[domain.SlaPolicy, SlaVersion | None]:
    stored = await versions.latest(session, SlaVersion)
    if stored is None:
        return domain.SlaPolicy(), None
    body = SlaBody.model_validate(stored.body)
    policy = domain.SlaPolicy(
        response_time=timedelta(hours=body.response_hours), sql_criteria=tuple(body.sql_criteria)
    )
    return policy, stored


async def add_rep(session: AsyncSession, body: RepCreate) -> Rep:
    if await repository.rep_by_email(session, body.email) is not None:
        raise Conflict(
            f"a rep with the email {body.email} exists",
            errors=[{"name": "email", "reason": "already known"}],
        )
    rep = Rep(id=new_id(), name=body.name, email=body.email, created_at=now())
    rep.active, rep.last_turn = True, 0
    session.add(rep)
    return rep


async def deactivate_rep(session: AsyncSession, rep_id: str) -> Rep:
    rep = await repository.get_rep(session, rep_id)
    if rep is None:
        raise NotFound(f"no rep {rep_id}")
    rep.active = False
    return rep


async def accept_mql(
    session: AsyncSession, outbox: Outbox, mql: LeadQualified, qualified_at: datetime
) -> None:
    """Take an MQL into the queue, due within the SLA, dealt to the next rep (LeadAccepted)."""
    lead_id = str(mql.lead_id)
    item = await repository.get_item(session, lead_id, lock=True)
    if item is not None and item.status != "recycled":
        return  # already in the queue, or done with: a recycled lead may come back, others not
    policy, _ = await current_policy(session)
    rep_id = await _deal(session)
    if item is None:
        item = QueueItem(lead_id=lead_id)
        session.add(item)
    values: dict[str, Any] = {
        "email": mql.email,
        "name": mql.name,
        "company": mql.company,
        "title": mql.title,
        "source": mql.source,
        "score": mql.score,
        "touches": mql.touches,
        "campaign_id": str(mql.campaign_id) if mql.campaign_id else None,
        "mql_rule": mql.rule.model_dump(),
        "status": "new",
        "rep_id": rep_id,
        "qualified_at": qualified_at,
        "respond_by": policy.respond_by(qualified_at),
        "received_at": now(),
        "first_contact_at": None,
        "sla_breached_at": None,
        "touch_count": 0,
        "closed_at": None,
        "close_reason": None,
    }
    for key, value in values.items():
        setattr(item, key, value)
    outbox.emit(
        session,
        LeadAccepted(
            lead_id=mql.lead_id,
            rep_id=uuid.UUID(rep_id) if rep_id else None,
            respond_by=item.respond_by,
        ),
        time=qualified_at,
    )


async def _deal(session: AsyncSession) -> str | None:
    reps = await repository.active_reps_locked(session)
    chosen = domain.next_rep([domain.RepTurn(r.id, r.last_turn) for r in reps])
    if chosen is None:
        return None
    turn = await repository.last_turn(session) + 1
    next(r for r in reps if r.id == chosen).last_turn = turn
    return chosen


async def open_item(session: AsyncSession, lead_id: str) -> QueueItem:
    """The lead's queue item, locked, if it is still being worked (else NotFound / Conflict)."""
    item = await repository.get_item(session, lead_id, lock=True)
    if item is None:
        raise NotFound(f"no MQL {lead_id} in the queue")
    if item.status not in domain.OPEN:
        raise Conflict(f"the lead is {item.status}")
    return item


async def assign(session: AsyncSession, lead_id: str, rep_id: str) -> QueueItem:
    item = await open_item(session, lead_id)
    rep = await repository.get_rep(session, rep_id)
    if rep is None:
        raise NotFound(f"no rep {rep_id}")
    if not rep.active:
        raise Conflict(f"rep {rep_id} is not active")
    item.rep_id = rep.id
    return item


async def record_touch(
    session: AsyncSession, outbox: Outbox, lead_id: str, body: TouchCreate
) -> TouchResult:
    """Log a touch; the first one answers the response SLA (late: the breach is reported too)."""
    item = await open_item(session, lead_id)
    if body.rep_id is not None and await repository.get_rep(session, str(body.rep_id)) is None:
        raise NotFound(f"no rep {body.rep_id}")
    rep_id = str(body.rep_id) if body.rep_id else item.rep_id
    occurred_at = body.occurred_at or now()
    first = item.first_contact_at is None
    response_seconds = None
    if first:
        item.first_contact_at = occurred_at
        item.status = "contacted"
        response_seconds = max(int((occurred_at - item.qualified_at).total_seconds()), 0)
        if domain.is_late(item.respond_by, occurred_at, occurred_at):
            report_breach(session, outbox, item)
    item.touch_count += 1
    touch = Touch(
        lead_id=item.lead_id,
        rep_id=rep_id,
        channel=body.channel,
        outcome=body.outcome,
        notes=body.notes,
        occurred_at=occurred_at,
    )
    session.add(touch)
    await session.flush()
    outbox.emit(
        session,
        LeadContacted(
            lead_id=uuid.UUID(item.lead_id),
            rep_id=uuid.UUID(rep_id) if rep_id else None,
            channel=body.channel,
            outcome=body.outcome,
            first_contact=first,
            response_seconds=response_seconds,
        ),
        time=occurred_at,
    )
    return TouchResult(
        id=touch.id,
        rep_id=uuid.UUID(rep_id) if rep_id else None,
        channel=touch.channel,
        outcome=touch.outcome,
        notes=touch.notes,
        occurred_at=occurred_at,
        first_contact=first,
        response_seconds=response_seconds,
    )


def report_breach(session: AsyncSession, outbox: Outbox, item: QueueItem) -> None:
    """LeadResponseSlaBreached, once per lead, at the respond-by time (event time)."""
    if item.sla_breached_at is not None:
        return
    item.sla_breached_at = item.respond_by
    outbox.emit(
        session,
        LeadResponseSlaBreached(
            lead_id=uuid.UUID(item.lead_id),
            rep_id=uuid.UUID(item.rep_id) if item.rep_id else None,
            respond_by=item.respond_by,
        ),
        time=item.respond_by,
    )


async def sweep_breaches(
    session: AsyncSession, outbox: Outbox, at: datetime, grace: timedelta, limit: int = 500
) -> int:
    """Report MQLs nobody contacted by their respond-by time.

    An MQL received less than `grace` ago is left alone even if its (backdated) deadline has
    passed: whoever loads history sends its touches right after it.
    """
    items = await repository.overdue(session, at, at - grace, limit)
    for item in items:
        report_breach(session, outbox, item)
    return len(items)


async def qualify(session: AsyncSession, outbox: Outbox, lead_id: str, body: QualifyBody) -> str:
    """The SQL hand-off: if the criteria hold, create the opportunity (OpportunityCreated)."""
    item = await repository.get_item(session, lead_id, lock=True)
    if item is None:
        raise NotFound(f"no MQL {lead_id} in the queue")
    if item.status == "qualified":
        raise Conflict("the lead was already qualified; a lead is qualified once")
    if item.status not in domain.OPEN:
        raise Conflict(f"the lead is {item.status}")
    policy, _ = await current_policy(session)
    unmet = policy.unmet(body.model_dump())
    if unmet:
        raise Invalid(
            f"SQL criteria not met: {', '.join(unmet)}",
            kind="sql-criteria-unmet",
            errors=[{"name": c, "reason": "required to qualify, not identified"} for c in unmet],
        )
    occurred_at = body.occurred_at or now()
    opportunity_id = new_uuid()
    contact = body.contact or Contact(name=item.name, email=item.email, title=item.title)
    item.status = "qualified"
    item.closed_at = occurred_at
    item.opportunity_id = str(opportunity_id)
    item.qualification = body.model_dump(mode="json", exclude={"occurred_at"})
    outbox.emit(
        session,
        OpportunityCreated(
            opportunity_id=opportunity_id,
            lead_id=uuid.UUID(item.lead_id),
            company=item.company,
            contact=Contact.model_validate(contact.model_dump()),
            need=body.need,
            decision_maker=body.decision_maker,
            budget=body.budget,
            timeline=body.timeline,
            estimated_amount=body.estimated_amount,
            currency=body.currency,
            rep_id=uuid.UUID(item.rep_id) if item.rep_id else None,
        ),
        time=occurred_at,
        correlation_id=item.lead_id,
    )
    return str(opportunity_id)


async def close(
    session: AsyncSession, outbox: Outbox, lead_id: str, body: CloseBody, verdict: str
) -> QueueItem:
    """Recycle (back to Marketing for nurturing) or disqualify (out of the funnel) a lead."""
    item = await open_item(session, lead_id)
    occurred_at = body.occurred_at or now()
    item.status = verdict
    item.closed_at = occurred_at
    item.close_reason = body.reason
    event = LeadRecycled if verdict == "recycled" else LeadDisqualified
    outbox.emit(
        session, event(lead_id=uuid.UUID(item.lead_id), reason=body.reason), time=occurred_at
    )
    return item
