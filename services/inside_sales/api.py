"""Routes of the inside sales API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from services.inside_sales import repository
from services.inside_sales.schemas import QueueItemRead
from shared.http import SessionDep, require

router = APIRouter(prefix="/v1", tags=["queue"])
READ = Depends(require("inside_sales:read"))


@router.get("/queue", dependencies=[READ])
async def get_queue(
    session: SessionDep, limit: Annotated[int, Query(ge=1, le=500)] = 100
) -> list[QueueItemRead]:
    """MQLs by respond-by time, most urgent first."""
    return [QueueItemRead.model_validate(i) for i in await repository.queue(session, limit)]
