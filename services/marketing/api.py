"""Routes of the marketing API."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Depends, Response, status

from services.marketing import repository, service
from services.marketing.schemas import LeadCreate, LeadRead
from shared.http import OutboxDep, SessionDep, require
from shared.problems import Problem

router = APIRouter(prefix="/v1", tags=["leads"])
READ = Depends(require("marketing:read"))
WRITE = Depends(require("marketing:write"))


@router.post("/leads", status_code=status.HTTP_201_CREATED, dependencies=[WRITE])
async def create_lead(
    body: LeadCreate, session: SessionDep, outbox: OutboxDep, response: Response
) -> LeadRead:
    """Capture a lead; a known email answers 409 with the existing lead's id."""
    try:
        lead = await service.capture_lead(session, outbox, body)
    except service.DuplicateLead as exc:
        raise Problem(
            409,
            "a lead with this email exists",
            type="duplicate-lead",
            existing_id=exc.existing_id,
            errors=[{"name": "email", "reason": "already known"}],
        ) from exc
    response.headers["Location"] = f"/v1/leads/{lead.id}"
    return LeadRead.model_validate(lead)


@router.get("/leads/{lead_id}", dependencies=[READ])
async def get_lead(lead_id: uuid.UUID, session: SessionDep) -> LeadRead:
    lead = await repository.get_lead(session, str(lead_id))
    if lead is None:
        raise Problem(404, f"no lead {lead_id}", type="not-found")
    return LeadRead.model_validate(lead)
