"""Routes of the field sales API."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.field_sales import repository
from services.field_sales.schemas import OpportunityRead
from shared.http import SessionDep, require
from shared.problems import Problem

router = APIRouter(prefix="/v1", tags=["opportunities"])
READ = Depends(require("field_sales:read"))


@router.get("/opportunities", dependencies=[READ])
async def list_opportunities(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[OpportunityRead]:
    """Opportunities, newest first."""
    rows = await repository.list_opportunities(session, limit)
    return [OpportunityRead.model_validate(o) for o in rows]


@router.get("/opportunities/{opportunity_id}", dependencies=[READ])
async def get_opportunity(opportunity_id: uuid.UUID, session: SessionDep) -> OpportunityRead:
    opportunity = await repository.get_opportunity(session, str(opportunity_id))
    if opportunity is None:
        raise Problem(404, f"no opportunity {opportunity_id}", type="not-found")
    return OpportunityRead.model_validate(opportunity)
