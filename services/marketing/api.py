"""Routes of the marketing API."""

from __future__ import annotations

import asyncio
import functools
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import AwareDatetime

from services.marketing import domain, importer, repository, service
from services.marketing.captures import CaptureWriter
from services.marketing.models import ScoringModelVersion
from services.marketing.schemas import (
    ActivityCreate,
    ActivityResult,
    CampaignCostCreate,
    CampaignCostRead,
    CampaignCreate,
    CampaignRead,
    FeedbackRead,
    ImportResult,
    LeadCreate,
    LeadDetail,
    LeadPage,
    LeadRead,
    ScoreBreakdown,
    ScoringModelBody,
    ScoringModelRead,
    TimelineEntry,
)
from services.marketing.service import NewLead
from shared import versions
from shared.auth import ADMIN_SCOPE, Principal
from shared.errors import NotFound
from shared.events.catalog import FeedbackKind, LeadSource
from shared.group_commit import GroupCommit, GroupWrite
from shared.http import GuardedRoute, OutboxDep, RuntimeDep, SessionDep, require, runtime_of
from shared.pagination import decode_cursor, encode_cursor
from shared.problems import Problem

router = APIRouter(prefix="/v1", tags=["marketing"], route_class=GuardedRoute)
READ = Depends(require("marketing:read"))
WRITE = Depends(require("marketing:write"))


# What a new lead has not had yet (its other columns are in its values).
_NOT_YET = {"status_reason": None, "last_activity_at": None, "qualified_at": None}


def captures_of(request: Request) -> GroupCommit[LeadCreate, NewLead]:
    """Leads captured by concurrent requests are committed together (`shared.group_commit`), a
    group in one trip to the database (`captures`). (Called, not a dependency: FastAPI's
    solving of one costs more than this.)"""
    runtime = runtime_of(request)

    def make_write() -> GroupWrite[LeadCreate, NewLead]:
        return functools.partial(
            service.capture_leads, CaptureWriter(runtime.sessions), runtime.outbox
        )

    return runtime.group_commit("marketing.captures", make_write)


@router.post(
    "/leads", status_code=status.HTTP_201_CREATED, dependencies=[WRITE], response_model=LeadRead
)
async def create_lead(body: LeadCreate, request: Request, response: Response) -> dict[str, Any]:
    """Capture a lead; a known email answers 409 with the existing lead's id."""
    lead = await captures_of(request).submit(body)
    response.headers["Location"] = f"/v1/leads/{lead['id']}"
    return lead | _NOT_YET  # made a LeadRead once, by FastAPI (response_model)


@router.get("/leads", dependencies=[READ])
async def list_leads(
    session: SessionDep,
    lead_status: Annotated[str | None, Query(alias="status", max_length=20)] = None,
    source: LeadSource | None = None,
    campaign_id: uuid.UUID | None = None,
    min_score: Annotated[int | None, Query(ge=-100_000, le=100_000)] = None,
    q: Annotated[
        str | None, Query(min_length=1, max_length=100, description="name, company or email")
    ] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> LeadPage:
    """Leads, newest first, filtered; follow `next_cursor` for more."""
    where = repository.LeadFilter(
        status=lead_status,
        source=source,
        campaign_id=str(campaign_id) if campaign_id else None,
        min_score=min_score,
        text=q,
    )
    leads = await repository.list_leads(session, where, decode_cursor(cursor), limit + 1)
    page = [LeadRead.model_validate(lead) for lead in leads[:limit]]
    last = leads[limit - 1] if len(leads) > limit else None
    cursor_out = encode_cursor(last.captured_at, last.id) if last else None
    return LeadPage(items=page, next_cursor=cursor_out)


@router.get("/leads/{lead_id}", dependencies=[READ])
async def get_lead(lead_id: uuid.UUID, session: SessionDep) -> LeadDetail:
    """The lead with its score broken down by rule, its timeline and its customers' feedback."""
    lead = await repository.get_lead(session, str(lead_id))
    if lead is None:
        raise NotFound(f"no lead {lead_id}")
    model, version = await service.current_model(session)
    history = await repository.activities_of(session, lead.id)
    current = service.score_of(lead, model, history)
    # The lead's capture opens its timeline (its first status, "new", is not stored apart).
    timeline = [TimelineEntry(at=lead.captured_at, kind="status", what="new")]
    timeline += [
        TimelineEntry(at=a.occurred_at, kind="activity", what=a.type, points=a.points)
        for a in history
    ] + [
        TimelineEntry(at=c.occurred_at, kind="status", what=c.status, reason=c.reason)
        for c in await repository.status_changes_of(session, lead.id)
    ]
    feedback = await repository.feedback_for_lead(session, lead, limit=50)
    return LeadDetail(
        **LeadRead.model_validate(lead).model_dump(),
        score_breakdown=ScoreBreakdown(
            total=current.total,
            fit=current.fit,
            engagement=current.engagement,
            touches=current.touches,
            decayed=current.decayed,
            fit_rules=dict(current.fit_rules),
            points_by_activity=dict(current.points_by_activity),
            mql_min_score=model.mql_min_score,
            mql_min_touches=model.mql_min_touches,
            model_version=version,
        ),
        timeline=sorted(timeline, key=lambda e: e.at),
        feedback=[FeedbackRead.model_validate(f) for f in feedback],
    )


@router.post("/leads/{lead_id}/activities", status_code=201, dependencies=[WRITE])
async def add_activity(
    lead_id: uuid.UUID, body: ActivityCreate, session: SessionDep, outbox: OutboxDep
) -> ActivityResult:
    """Record what the lead did; crossing the MQL line hands it to Inside Sales (LeadQualified)."""
    return await service.record_activity(session, outbox, str(lead_id), body)


IMPORT_FILE = {"type": "string", "format": "binary"}


@router.post(
    "/leads/import",
    dependencies=[WRITE],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "text/csv": {"schema": IMPORT_FILE},
                "application/x-ndjson": {"schema": IMPORT_FILE},
            },
        }
    },
    responses={415: {"description": "the body is neither CSV nor JSON lines"}},
)
async def import_leads(request: Request, runtime: RuntimeDep) -> ImportResult:
    """Bulk import from CSV (with a header) or JSON lines, up to 100,000 rows.

    Good rows are imported even when others are bad; each bad row is reported with its line and
    the field that is wrong. Known emails (in the database or earlier in the file) are duplicates.
    """
    content = await request.body()
    try:
        parsed = await asyncio.to_thread(
            importer.parse, content, request.headers.get("content-type", "")
        )
    except importer.ImportFileError as exc:
        code = 415 if exc.field == "Content-Type" else 422
        raise Problem(
            code, exc.reason, type="import", errors=[{"name": exc.field, "reason": exc.reason}]
        ) from exc
    created, duplicates, unknown = await service.import_leads(
        runtime.sessions, runtime.outbox, parsed.rows
    )
    errors = sorted([*parsed.errors, *unknown], key=lambda e: e.line)
    return ImportResult(rows=parsed.count, created=created, duplicates=duplicates, errors=errors)


@router.get("/scoring-model", dependencies=[READ])
async def get_scoring_model(session: SessionDep) -> ScoringModelRead:
    """The scoring model in force (version 0: the built-in defaults)."""
    stored = await versions.latest(session, ScoringModelVersion)
    body = (
        ScoringModelBody.model_validate(stored.body)
        if stored
        else service.model_to_body(domain.ScoringModel())
    )
    return ScoringModelRead(**body.model_dump(), **versions.audit_fields(stored))


@router.put("/scoring-model")
async def put_scoring_model(
    body: ScoringModelBody,
    session: SessionDep,
    principal: Annotated[Principal, Depends(require(ADMIN_SCOPE))],
) -> ScoringModelRead:
    """Replace the scoring model (admin); the change is kept as a new version with who and when."""
    stored = await versions.add_version(session, ScoringModelVersion, body, principal.subject)
    return ScoringModelRead(**body.model_dump(), **versions.audit_fields(stored))


@router.post("/campaigns", status_code=201, dependencies=[WRITE])
async def create_campaign(body: CampaignCreate, session: SessionDep) -> CampaignRead:
    campaign = await service.create_campaign(session, body)
    return await _campaign_read(session, campaign.id)


@router.post("/campaigns/{campaign_id}/costs", status_code=201, dependencies=[WRITE])
async def add_campaign_cost(
    campaign_id: uuid.UUID, body: CampaignCostCreate, session: SessionDep, outbox: OutboxDep
) -> CampaignCostRead:
    """Record money spent on a campaign over a period (CampaignCostRecorded)."""
    cost = await service.record_cost(session, outbox, str(campaign_id), body)
    return CampaignCostRead.model_validate(cost)


@router.get("/campaigns/{campaign_id}", dependencies=[READ])
async def get_campaign(campaign_id: uuid.UUID, session: SessionDep) -> CampaignRead:
    """The campaign with its leads, MQLs, cost, cost per lead and per MQL."""
    return await _campaign_read(session, str(campaign_id))


async def _campaign_read(session: SessionDep, campaign_id: str) -> CampaignRead:
    campaign = await repository.get_campaign(session, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    leads, mqls = await repository.campaign_funnel(session, campaign_id)
    cost = await repository.campaign_costs(session, campaign_id)
    return CampaignRead(
        id=uuid.UUID(campaign.id),
        name=campaign.name,
        channel=campaign.channel,
        created_at=campaign.created_at,
        leads=leads,
        mqls=mqls,
        cost=cost,
        cost_per_lead={c: domain.ratio(total, leads) for c, total in cost.items()},
        cost_per_mql={c: domain.ratio(total, mqls) for c, total in cost.items()},
    )


@router.get("/feedback", dependencies=[READ])
async def list_feedback(
    session: SessionDep,
    kind: FeedbackKind | None = None,
    before: AwareDatetime | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[FeedbackRead]:
    """The customers' voice from Customer Success, newest first (e.g. `kind=case_study`)."""
    rows = await repository.list_feedback(session, kind, before, limit)
    return [FeedbackRead.model_validate(f) for f in rows]
