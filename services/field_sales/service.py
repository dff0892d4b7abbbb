"""Use cases of the field sales service; the caller's transaction commits them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from services.field_sales import domain, repository
from services.field_sales.models import ChurnAlert, Opportunity, PolicyVersion, StageChange
from services.field_sales.schemas import AcceptBody, LoseBody, PolicyBody, StageBody, WinBody
from shared import versions
from shared.errors import Conflict, Invalid, NotFound
from shared.events import (
    ChurnRisk,
    DealLost,
    DealWon,
    OpportunityAccepted,
    OpportunityCreated,
    OpportunityNeglected,
    OpportunityStageChanged,
)
from shared.outbox import Outbox


def now() -> datetime:
    return datetime.now(UTC)


async def current_policy(session: AsyncSession) -> tuple[domain.SalesPolicy, PolicyVersion | None]:
    stored = await versions.latest(session, PolicyVersion)
    if stored is None:
        return domain.SalesPolicy(), None
    body = PolicyBody.model_validate(stored.body)
    policy = domain.SalesPolicy(
        accept_within=timedelta(hours=body.accept_hours),
        probabilities={
            **domain.DEFAULT_PROBABILITIES,
            **{str(k): v for k, v in body.probabilities.items()},
        },
        loss_reasons=tuple(body.loss_reasons),
    )
    return policy, stored


async def open_opportunity(
    session: AsyncSession, sql: OpportunityCreated, created_at: datetime
) -> None:
    """Take over an SQL from Inside Sales, due to be accepted within the acceptance SLA."""
    if await repository.get_opportunity(session, str(sql.opportunity_id)) is not None:
        return
    policy, _ = await current_policy(session)
    session.add(
        Opportunity(
            id=str(sql.opportunity_id),
            lead_id=str(sql.lead_id),
            company=sql.company,
            contact_name=sql.contact.name,
            contact_email=sql.contact.email,
            contact_title=sql.contact.title,
            need=sql.need or "",
            decision_maker=sql.decision_maker,
            budget=sql.budget,
            timeline=sql.timeline,
            estimated_amount=sql.estimated_amount,
            currency=sql.currency,
            rep_id=str(sql.rep_id) if sql.rep_id else None,
            stage="qualification",
            amount=sql.estimated_amount,
            probability=policy.probabilities["qualification"],
            created_at=created_at,
            received_at=now(),
            accept_by=policy.accept_by(created_at),
        )
    )


async def _load(session: AsyncSession, opportunity_id: str) -> Opportunity:
    opportunity = await repository.get_opportunity(session, opportunity_id, lock=True)
    if opportunity is None:
        raise NotFound(f"no opportunity {opportunity_id}")
    return opportunity


def report_neglect(session: AsyncSession, outbox: Outbox, opportunity: Opportunity) -> None:
    """OpportunityNeglected, once, at the accept-by time (event time)."""
    if opportunity.neglected_at is not None or opportunity.accept_by is None:
        return
    opportunity.neglected_at = opportunity.accept_by
    outbox.emit(
        session,
        OpportunityNeglected(
            opportunity_id=uuid.UUID(opportunity.id),
            lead_id=uuid.UUID(opportunity.lead_id),
            accept_by=opportunity.accept_by,
        ),
        time=opportunity.accept_by,
        correlation_id=opportunity.lead_id,
    )


async def sweep_neglected(
    session: AsyncSession, outbox: Outbox, at: datetime, grace: timedelta, limit: int = 500
) -> int:
    """Report SQLs nobody accepted by their deadline (fresh hand-offs get `grace`)."""
    items = await repository.unaccepted_overdue(session, at, at - grace, limit)
    for opportunity in items:
        report_neglect(session, outbox, opportunity)
    return len(items)


async def accept(
    session: AsyncSession, outbox: Outbox, opportunity_id: str, body: AcceptBody
) -> Opportunity:
    opportunity = await _load(session, opportunity_id)
    if opportunity.stage in domain.CLOSED_STAGES:
        raise Conflict(f"the opportunity is {opportunity.stage}")
    if opportunity.accepted_at is not None:
        raise Conflict("the opportunity was already accepted")
    occurred_at = body.occurred_at or now()
    if opportunity.accept_by is not None and occurred_at > opportunity.accept_by:
        report_neglect(session, outbox, opportunity)  # accepted late: neglected all the same
    opportunity.owner_id = str(body.owner_id)
    opportunity.accepted_at = occurred_at
    outbox.emit(
        session,
        OpportunityAccepted(
            opportunity_id=uuid.UUID(opportunity.id),
            lead_id=uuid.UUID(opportunity.lead_id),
            owner_id=body.owner_id,
        ),
        time=occurred_at,
        correlation_id=opportunity.lead_id,
    )
    return opportunity


def _move(
    session: AsyncSession,
    outbox: Outbox,
    opportunity: Opportunity,
    target: str,
    amount: int,
    probability: int,
    at: datetime,
) -> None:
    try:
        domain.check_move(opportunity.stage, target, accepted=opportunity.accepted_at is not None)
    except domain.IllegalMove as exc:
        raise Conflict(str(exc)) from exc
    session.add(
        StageChange(
            opportunity_id=opportunity.id,
            from_stage=opportunity.stage,
            to_stage=target,
            amount=amount,
            probability=probability,
            occurred_at=at,
        )
    )
    outbox.emit(
        session,
        OpportunityStageChanged(
            opportunity_id=uuid.UUID(opportunity.id),
            lead_id=uuid.UUID(opportunity.lead_id),
            from_stage=opportunity.stage,
            to_stage=target,
            amount=amount,
            probability=probability,
        ),
        time=at,
        correlation_id=opportunity.lead_id,
    )
    opportunity.stage, opportunity.amount, opportunity.probability = target, amount, probability


async def change_stage(
    session: AsyncSession, outbox: Outbox, opportunity_id: str, body: StageBody
) -> Opportunity:
    opportunity = await _load(session, opportunity_id)
    policy, _ = await current_policy(session)
    amount = body.amount if body.amount is not None else opportunity.amount
    probability = (
        body.probability if body.probability is not None else policy.probabilities[body.stage]
    )
    _move(session, outbox, opportunity, body.stage, amount, probability, body.occurred_at or now())
    if body.expected_close is not None:
        opportunity.expected_close = body.expected_close
    return opportunity


async def win(
    session: AsyncSession, outbox: Outbox, opportunity_id: str, body: WinBody
) -> Opportunity:
    """Close as won: the hand-off to Customer Success (DealWon)."""
    opportunity = await _load(session, opportunity_id)
    at = body.occurred_at or now()
    _move(session, outbox, opportunity, "won", body.amount, 100, at)
    opportunity.closed_at = at
    opportunity.mrr, opportunity.term_months = body.mrr, body.term_months
    opportunity.contract_start = body.contract_start
    opportunity.currency = body.currency or opportunity.currency
    assert opportunity.owner_id is not None  # _move refuses unaccepted deals
    outbox.emit(
        session,
        DealWon(
            opportunity_id=uuid.UUID(opportunity.id),
            lead_id=uuid.UUID(opportunity.lead_id),
            company=opportunity.company,
            amount=body.amount,
            currency=opportunity.currency,
            mrr=body.mrr,
            term_months=body.term_months,
            contract_start=body.contract_start,
            owner_id=uuid.UUID(opportunity.owner_id),
        ),
        time=at,
        correlation_id=opportunity.lead_id,
    )
    return opportunity


async def lose(
    session: AsyncSession, outbox: Outbox, opportunity_id: str, body: LoseBody
) -> Opportunity:
    opportunity = await _load(session, opportunity_id)
    policy, _ = await current_policy(session)
    if body.reason not in policy.loss_reasons:
        allowed = ", ".join(policy.loss_reasons)
        raise Invalid.fields(
            f"{body.reason!r} is not a loss reason", reason=f"not one of: {allowed}"
        )
    at = body.occurred_at or now()
    _move(session, outbox, opportunity, "lost", opportunity.amount, 0, at)
    opportunity.closed_at = at
    opportunity.loss_reason, opportunity.loss_note = body.reason, body.note
    outbox.emit(
        session,
        DealLost(
            opportunity_id=uuid.UUID(opportunity.id),
            lead_id=uuid.UUID(opportunity.lead_id),
            reason=body.reason,
        ),
        time=at,
        correlation_id=opportunity.lead_id,
    )
    return opportunity


async def raise_alert(session: AsyncSession, event_id: str, risk: ChurnRisk, at: datetime) -> None:
    """Show a churn risk to the owner of the deal that won the account."""
    deal = await repository.won_deal_of_lead(session, str(risk.lead_id))
    session.add(
        ChurnAlert(
            event_id=event_id,
            account_id=str(risk.account_id),
            lead_id=str(risk.lead_id),
            opportunity_id=deal.id if deal else None,
            owner_id=deal.owner_id if deal else None,
            company=deal.company if deal else None,
            health_score=risk.health_score,
            reasons=list(risk.reasons),
            mrr_at_risk=risk.mrr_at_risk,
            currency=risk.currency,
            occurred_at=at,
        )
    )
