"""Routes of the KPI API."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import AwareDatetime

from services.kpi import repository
from services.kpi.schemas import EventCounts
from shared.http import SessionDep, require
from shared.problems import Problem

router = APIRouter(prefix="/v1", tags=["events"])
READ = Depends(require("kpi:read"))


@router.get("/event-counts", dependencies=[READ])
async def event_counts(
    session: SessionDep,
    start: Annotated[AwareDatetime | None, Query(alias="from")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to")] = None,
) -> EventCounts:
    """Events received per type in `[from, to)` by event time: what each hand-off moved."""
    if start is not None and end is not None and end <= start:
        raise Problem(
            422, "`to` must be after `from`", errors=[{"name": "to", "reason": "not after from"}]
        )
    counts = await repository.count_by_type(session, start, end)
    return EventCounts(from_=start, to=end, counts=counts)
