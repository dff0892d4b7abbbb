"""Routes of the field sales API."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from services.field_sales import domain, repository, service
from services.field_sales.models import PolicyVersion
from services.field_sales.schemas import (
    AcceptBody,
    AlertRead,
    BucketRead,
    LoseBody,
    OpportunityDetail,
    OpportunityPage,
    OpportunityRead,
    PipelineRead,
    PolicyBody,
    PolicyRead,
    StageBody,
    StageChangeRead,
    WinBody,
)
from shared import versions
from shared.auth import ADMIN_SCOPE, Principal
from shared.errors import NotFound
from shared.events.catalog import Currency
from shared.http import GuardedRoute, OutboxDep, SessionDep, require
from shared.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1", tags=["field sales"], route_class=GuardedRoute)
READ = Depends(require("field_sales:read"))
WRITE = Depends(require("field_sales:write"))
StageFilter = Annotated[
    str | None, Query(pattern="^(qualification|proposal|quote|approval|negotiation|won|lost)$")
]


@router.get("/opportunities", dependencies=[READ])
async def list_opportunities(
    session: SessionDep,
    stage: StageFilter = None,
    owner_id: uuid.UUID | None = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> OpportunityPage:
    """Opportunities, newest first, by stage and owner."""
    rows = await repository.list_opportunities(
        session,
        stage=stage,
        owner_id=str(owner_id) if owner_id else None,
        after=decode_cursor(cursor),
        limit=limit + 1,
    )
    last = rows[limit - 1] if len(rows) > limit else None
    return OpportunityPage(
        items=[OpportunityRead.model_validate(o) for o in rows[:limit]],
        next_cursor=encode_cursor(last.created_at, last.id) if last else None,
    )


@router.get("/opportunities/{opportunity_id}", dependencies=[READ])
async def get_opportunity(opportunity_id: uuid.UUID, session: SessionDep) -> OpportunityDetail:
    """The opportunity with everything Inside Sales learned and its stage history."""
    opportunity = await repository.get_opportunity(session, str(opportunity_id))
    if opportunity is None:
        raise NotFound(f"no opportunity {opportunity_id}")
    history = await repository.history_of(session, opportunity.id)
    return OpportunityDetail(
        **OpportunityRead.model_validate(opportunity).model_dump(),
        history=[StageChangeRead.model_validate(h) for h in history],
    )


@router.post("/opportunities/{opportunity_id}/accept", dependencies=[WRITE])
async def accept(
    opportunity_id: uuid.UUID, body: AcceptBody, session: SessionDep, outbox: OutboxDep
) -> OpportunityRead:
    """Take the SQL and name its owner (OpportunityAccepted); late acceptance counts as neglect."""
    opportunity = await service.accept(session, outbox, str(opportunity_id), body)
    return OpportunityRead.model_validate(opportunity)


@router.post("/opportunities/{opportunity_id}/stage", dependencies=[WRITE])
async def change_stage(
    opportunity_id: uuid.UUID, body: StageBody, session: SessionDep, outbox: OutboxDep
) -> OpportunityRead:
    """Move through the pipeline; probability defaults to the stage's (OpportunityStageChanged)."""
    opportunity = await service.change_stage(session, outbox, str(opportunity_id), body)
    return OpportunityRead.model_validate(opportunity)


@router.post("/opportunities/{opportunity_id}/win", dependencies=[WRITE])
async def win(
    opportunity_id: uuid.UUID, body: WinBody, session: SessionDep, outbox: OutboxDep
) -> OpportunityRead:
    """Close as won: the hand-off to Customer Success (DealWon)."""
    opportunity = await service.win(session, outbox, str(opportunity_id), body)
    return OpportunityRead.model_validate(opportunity)


@router.post("/opportunities/{opportunity_id}/lose", dependencies=[WRITE])
async def lose(
    opportunity_id: uuid.UUID, body: LoseBody, session: SessionDep, outbox: OutboxDep
) -> OpportunityRead:
    """Close as lost, with a reason from the policy's list (DealLost)."""
    opportunity = await service.lose(session, outbox, str(opportunity_id), body)
    return OpportunityRead.model_validate(opportunity)


@router.get("/pipeline", dependencies=[READ])
async def pipeline(session: SessionDep, currency: Currency = "JPY") -> PipelineRead:
    """Open deals: count, amount and probability-weighted amount by stage, owner, close month."""
    deals = [
        domain.OpenDeal(o.stage, o.owner_id, o.amount, o.probability, o.expected_close)
        for o in await repository.open_opportunities(session)
        if o.currency == currency
    ]
    result = domain.forecast(deals)

    def read(buckets: dict[str, domain.Bucket]) -> dict[str, BucketRead]:
        return {k: BucketRead.model_validate(b, from_attributes=True) for k, b in buckets.items()}

    return PipelineRead(
        currency=currency,
        total=BucketRead.model_validate(result.total, from_attributes=True),
        by_stage=read(result.by_stage),
        by_owner=read(result.by_owner),
        expected_closes_by_month=read(result.by_close_month),
    )


@router.get("/alerts", dependencies=[READ])
async def alerts(
    session: SessionDep,
    owner_id: uuid.UUID | None = None,
    before: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[AlertRead]:
    """Churn risks on accounts this team won, newest first; `owner_id` for one seller's."""
    rows = await repository.alerts(session, str(owner_id) if owner_id else None, before, limit)
    return [AlertRead.model_validate(a) for a in rows]


@router.get("/sla", dependencies=[READ])
async def get_sla(session: SessionDep) -> PolicyRead:
    """Acceptance SLA, stage probabilities and loss reasons in force (version 0: defaults)."""
    _, stored = await service.current_policy(session)
    body = PolicyBody.model_validate(stored.body) if stored else PolicyBody()
    return PolicyRead(**body.model_dump(), **versions.audit_fields(stored))


@router.put("/sla")
async def put_sla(
    body: PolicyBody,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(ADMIN_SCOPE))],
) -> PolicyRead:
    """Change the policy (admin); kept as a new version with who and when."""
    stored = await versions.add_version(session, PolicyVersion, body, principal.subject)
    return PolicyRead(**body.model_dump(), **versions.audit_fields(stored))
