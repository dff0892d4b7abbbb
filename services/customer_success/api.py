"""Routes of the customer success API."""

from __future__ import annotations

import uuid
from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, status

from services.customer_success import repository, service
from services.customer_success.models import HealthModelVersion
from services.customer_success.schemas import (
    AccountDetail,
    AccountPage,
    AccountRead,
    ChurnBody,
    FeedbackBody,
    HealthModelBody,
    HealthModelRead,
    HealthRead,
    NpsBody,
    RenewalBody,
    StepBody,
    TimelineEntry,
    UpsellBody,
    UsageBody,
)
from shared import versions
from shared.auth import ADMIN_SCOPE, Principal
from shared.errors import NotFound
from shared.http import GuardedRoute, OutboxDep, SessionDep, require
from shared.pagination import decode_cursor, encode_cursor

router = APIRouter(prefix="/v1", tags=["customer success"], route_class=GuardedRoute)
READ = Depends(require("customer_success:read"))
WRITE = Depends(require("customer_success:write"))
BandFilter = Annotated[str | None, Query(pattern="^(green|yellow|red)$")]


@router.get("/accounts", dependencies=[READ])
async def list_accounts(
    session: SessionDep,
    band: BandFilter = None,
    owner_id: uuid.UUID | None = None,
    renewal_within_days: Annotated[int | None, Query(ge=0, le=3650)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> AccountPage:
    """Customers, newest first: by health band, owner, or renewal due within N days."""
    renewal_before = (
        date.today() + timedelta(days=renewal_within_days + 1)
        if renewal_within_days is not None
        else None
    )
    rows = await repository.list_accounts(
        session,
        band=band,
        owner_id=str(owner_id) if owner_id else None,
        renewal_before=renewal_before,
        after=decode_cursor(cursor),
        limit=limit + 1,
    )
    last = rows[limit - 1] if len(rows) > limit else None
    return AccountPage(
        items=[AccountRead.model_validate(a) for a in rows[:limit]],
        next_cursor=encode_cursor(last.won_at, last.id) if last else None,
    )


@router.get("/accounts/{account_id}", dependencies=[READ])
async def get_account(account_id: uuid.UUID, session: SessionDep) -> AccountDetail:
    """The account with its health score, the factors behind it, onboarding and timeline."""
    account = await repository.get_account(session, str(account_id))
    if account is None:
        raise NotFound(f"no account {account_id}")
    return AccountDetail(
        **AccountRead.model_validate(account).model_dump(),
        factors=account.factors,
        deal_amount=account.deal_amount,
        last_nps=account.last_nps,
        onboarding=account.onboarding,
        timeline=[
            TimelineEntry.model_validate(e) for e in await repository.timeline(session, account.id)
        ],
    )


@router.post("/accounts/{account_id}/onboarding/{step}", dependencies=[WRITE])
async def complete_step(
    account_id: uuid.UUID,
    step: Annotated[str, Path(max_length=50)],
    body: StepBody,
    session: SessionDep,
    outbox: OutboxDep,
) -> AccountRead:
    """Tick an onboarding step; the last one emits CustomerOnboarded."""
    account = await service.complete_step(session, outbox, str(account_id), step, body.occurred_at)
    return AccountRead.model_validate(account)


@router.post("/accounts/{account_id}/usage", status_code=201, dependencies=[WRITE])
async def record_usage(
    account_id: uuid.UUID, body: UsageBody, session: SessionDep, outbox: OutboxDep
) -> HealthRead:
    """A usage reading: rescored at once; a band change or a drop into red goes out."""
    return await service.record_usage(session, outbox, str(account_id), body)


@router.post("/accounts/{account_id}/nps", status_code=201, dependencies=[WRITE])
async def record_nps(
    account_id: uuid.UUID, body: NpsBody, session: SessionDep, outbox: OutboxDep
) -> AccountRead:
    await service.record_nps(session, outbox, str(account_id), body)
    return await _read(session, account_id)


@router.post("/accounts/{account_id}/upsells", status_code=201, dependencies=[WRITE])
async def upsell(
    account_id: uuid.UUID, body: UpsellBody, session: SessionDep, outbox: OutboxDep
) -> AccountRead:
    return AccountRead.model_validate(await service.upsell(session, outbox, str(account_id), body))


@router.post("/accounts/{account_id}/renewals", status_code=201, dependencies=[WRITE])
async def renew(
    account_id: uuid.UUID, body: RenewalBody, session: SessionDep, outbox: OutboxDep
) -> AccountRead:
    return AccountRead.model_validate(await service.renew(session, outbox, str(account_id), body))


@router.post("/accounts/{account_id}/churn", dependencies=[WRITE])
async def churn(
    account_id: uuid.UUID, body: ChurnBody, session: SessionDep, outbox: OutboxDep
) -> AccountRead:
    return AccountRead.model_validate(await service.churn(session, outbox, str(account_id), body))


@router.post(
    "/accounts/{account_id}/feedback", status_code=status.HTTP_202_ACCEPTED, dependencies=[WRITE]
)
async def share_feedback(
    account_id: uuid.UUID, body: FeedbackBody, session: SessionDep, outbox: OutboxDep
) -> dict[str, str]:
    """Pass the customer's voice to Marketing and Sales (CustomerFeedbackShared)."""
    await service.share_feedback(session, outbox, str(account_id), body)
    return {"status": "shared"}


async def _read(session: SessionDep, account_id: uuid.UUID) -> AccountRead:
    account = await repository.get_account(session, str(account_id))
    assert account is not None
    return AccountRead.model_validate(account)


@router.get("/health-model", dependencies=[READ])
async def get_health_model(session: SessionDep) -> HealthModelRead:
    """Weights, band thresholds and onboarding steps in force (version 0: the defaults)."""
    _, body, stored = await service.current_model(session)
    return HealthModelRead(**body.model_dump(), **versions.audit_fields(stored))


@router.put("/health-model")
async def put_health_model(
    body: HealthModelBody,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(ADMIN_SCOPE))],
) -> HealthModelRead:
    """Change the health model (admin); kept as a new version with who and when."""
    stored = await versions.add_version(session, HealthModelVersion, body, principal.subject)
    return HealthModelRead(**body.model_dump(), **versions.audit_fields(stored))
