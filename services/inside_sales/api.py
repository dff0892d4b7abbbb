"""Routes of the inside sales API."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query, status

from services.inside_sales import repository, service
from services.inside_sales.models import SlaVersion
from services.inside_sales.schemas import (
    AssignBody,
    CloseBody,
    LeadDetail,
    Qualified,
    QualifyBody,
    QueueItemRead,
    QueuePage,
    RepCreate,
    RepRead,
    SlaBody,
    SlaRead,
    TouchCreate,
    TouchRead,
    TouchResult,
)
from shared import versions
from shared.auth import ADMIN_SCOPE, Principal
from shared.errors import NotFound
from shared.http import GuardedRoute, OutboxDep, SessionDep, require
from shared.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1", tags=["inside sales"], route_class=GuardedRoute)
READ = Depends(require("inside_sales:read"))
WRITE = Depends(require("inside_sales:write"))
QueueStatus = Annotated[
    str | None, Query(pattern="^(new|contacted|qualified|recycled|disqualified)$")
]


@router.get("/queue", dependencies=[READ])
async def get_queue(
    session: SessionDep,
    rep_id: uuid.UUID | None = None,
    item_status: Annotated[QueueStatus, Query(alias="status")] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> QueuePage:
    """MQLs by respond-by time, most urgent first; filter by rep and status."""
    items = await repository.queue(
        session,
        rep_id=str(rep_id) if rep_id else None,
        status=item_status,
        after=decode_cursor(cursor),
        limit=limit + 1,
    )
    last = items[limit - 1] if len(items) > limit else None
    return QueuePage(
        items=[QueueItemRead.model_validate(i) for i in items[:limit]],
        next_cursor=encode_cursor(last.respond_by, last.lead_id) if last else None,
    )


@router.get("/leads/{lead_id}", dependencies=[READ])
async def get_lead(lead_id: uuid.UUID, session: SessionDep) -> LeadDetail:
    """The MQL with the context Marketing passed (score, touches, source, rule) and its touches."""
    item = await repository.get_item(session, str(lead_id))
    if item is None:
        raise NotFound(f"no MQL {lead_id} in the queue")
    touches = await repository.touches_of(session, item.lead_id)
    return LeadDetail(
        **QueueItemRead.model_validate(item).model_dump(),
        mql_rule=item.mql_rule,
        touch_log=[TouchRead.model_validate(t) for t in touches],
        qualification=item.qualification,
        close_reason=item.close_reason,
    )


@router.post("/reps", status_code=status.HTTP_201_CREATED, dependencies=[WRITE])
async def create_rep(body: RepCreate, session: SessionDep) -> RepRead:
    return RepRead.model_validate(await service.add_rep(session, body))


@router.get("/reps", dependencies=[READ])
async def list_reps(session: SessionDep) -> list[RepRead]:
    return [RepRead.model_validate(r) for r in await repository.list_reps(session)]


@router.post("/reps/{rep_id}/deactivate", dependencies=[WRITE])
async def deactivate_rep(rep_id: uuid.UUID, session: SessionDep) -> RepRead:
    """No new MQLs are dealt to the rep; their open leads stay theirs until reassigned."""
    return RepRead.model_validate(await service.deactivate_rep(session, str(rep_id)))


@router.post("/leads/{lead_id}/assign", dependencies=[WRITE])
async def assign(lead_id: uuid.UUID, body: AssignBody, session: SessionDep) -> QueueItemRead:
    item = await service.assign(session, str(lead_id), str(body.rep_id))
    return QueueItemRead.model_validate(item)


@router.post("/leads/{lead_id}/touches", status_code=201, dependencies=[WRITE])
async def add_touch(
    lead_id: uuid.UUID, body: TouchCreate, session: SessionDep, outbox: OutboxDep
) -> TouchResult:
    """Log a call, mail or meeting; the first one is the lead's first contact (LeadContacted)."""
    return await service.record_touch(session, outbox, str(lead_id), body)


@router.post("/leads/{lead_id}/qualify", status_code=201, dependencies=[WRITE])
async def qualify(
    lead_id: uuid.UUID, body: QualifyBody, session: SessionDep, outbox: OutboxDep
) -> Qualified:
    """Hand the lead to Field Sales as an opportunity, or 422 naming each unmet SQL criterion."""
    opportunity_id = await service.qualify(session, outbox, str(lead_id), body)
    return Qualified(opportunity_id=uuid.UUID(opportunity_id), lead_id=lead_id)


@router.post("/leads/{lead_id}/recycle", dependencies=[WRITE])
async def recycle(
    lead_id: uuid.UUID, body: CloseBody, session: SessionDep, outbox: OutboxDep
) -> QueueItemRead:
    """Not now: back to Marketing for nurturing (LeadRecycled)."""
    item = await service.close(session, outbox, str(lead_id), body, "recycled")
    return QueueItemRead.model_validate(item)


@router.post("/leads/{lead_id}/disqualify", dependencies=[WRITE])
async def disqualify(
    lead_id: uuid.UUID, body: CloseBody, session: SessionDep, outbox: OutboxDep
) -> QueueItemRead:
    """No fit: out of the funnel for good (LeadDisqualified)."""
    item = await service.close(session, outbox, str(lead_id), body, "disqualified")
    return QueueItemRead.model_validate(item)


@router.get("/sla", dependencies=[READ])
async def get_sla(session: SessionDep) -> SlaRead:
    """The response SLA and SQL criteria in force (version 0: the built-in defaults)."""
    _, stored = await service.current_policy(session)
    body = SlaBody.model_validate(stored.body) if stored else SlaBody()
    return SlaRead(**body.model_dump(), **versions.audit_fields(stored))


@router.put("/sla")
async def put_sla(
    body: SlaBody,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(ADMIN_SCOPE))],
) -> SlaRead:
    """Change the SLA (admin); kept as a new version with who and when. New MQLs use it."""
    stored = await versions.add_version(session, SlaVersion, body, principal.subject)
    return SlaRead(**body.model_dump(), **versions.audit_fields(stored))
