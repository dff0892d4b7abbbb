"""Routes of the KPI API."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal, cast

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import HTMLResponse, Response

from services.kpi import meeting, rebuild, service
from services.kpi.formulas import DEPARTMENTS
from services.kpi.pages import render_meeting
from services.kpi.periods import Granularity, default_range, iso_week, local_day, split
from services.kpi.results import cache_of
from services.kpi.schemas import (
    BatonMeeting,
    Filters,
    Funnel,
    FunnelStage,
    HandoffCompliance,
    KpiReport,
    SlaReport,
)
from services.kpi.service import Scope
from services.kpi.settings import Settings
from shared.events.catalog import LeadSource
from shared.http import GuardedRoute, RuntimeDep, SessionDep, require
from shared.problems import Problem

router = APIRouter(prefix="/v1", tags=["kpi"], route_class=GuardedRoute)
READ = Depends(require("kpi:read"))
WRITE = Depends(require("kpi:write"))
MAX_PERIODS = 400

Department = Literal["marketing", "inside_sales", "field_sales", "customer_success", "shared"]
From = Annotated[date | None, Query(alias="from", description="first local day (inclusive)")]
To = Annotated[
    date | None, Query(alias="to", description="local day after the last one (exclusive)")
]
CampaignId = Annotated[uuid.UUID | None, Query()]


def _settings(runtime: RuntimeDep) -> Settings:
    return cast(Settings, runtime.settings)


def _scope(
    settings: Settings,
    start: date | None,
    end: date | None,
    granularity: Granularity,
    source: str | None = None,
    campaign_id: uuid.UUID | None = None,
) -> Scope:
    """The asked range (default: the last 12 periods), checked: 422 naming the field."""
    today = local_day(datetime.now(UTC), settings.tz)
    default_start, default_end = default_range(today, granularity)
    start, end = start or default_start, end or default_end
    if start >= end:
        raise Problem(
            422, "`to` must be after `from`", errors=[{"name": "to", "reason": "not after from"}]
        )
    if len(split(start, end, granularity)) > MAX_PERIODS:
        raise Problem(
            422,
            f"the range spans more than {MAX_PERIODS} periods of a {granularity}",
            errors=[{"name": "from", "reason": f"more than {MAX_PERIODS} periods"}],
        )
    return Scope(start, end, source, str(campaign_id) if campaign_id else None)


async def _report(
    runtime: RuntimeDep,
    session: SessionDep,
    start: date | None,
    end: date | None,
    granularity: Granularity,
    source: str | None,
    campaign_id: uuid.UUID | None,
    departments: tuple[str, ...],
) -> KpiReport:
    settings = _settings(runtime)
    scope = _scope(settings, start, end, granularity, source, campaign_id)
    result = await service.kpis(
        session, settings.rules(), scope, granularity, departments, cache_of(runtime)
    )
    notes = []
    if result["unconverted_amounts"]:
        notes.append(
            f"{result['unconverted_amounts']} amount(s) in a currency without a rate to "
            f"{settings.currency} were left out (see BATON_KPI_FX_RATES)"
        )
    if scope.filtered:
        notes.append("Customer Success KPIs and LTV carry no lead source or campaign: null here")
    return KpiReport(
        from_=scope.start,
        to=scope.end,
        granularity=granularity.value,
        timezone=settings.timezone,
        currency=settings.currency,
        filters=Filters(source=scope.source, campaign_id=scope.campaign_id),
        periods=result["periods"],
        total=result["total"],
        notes=notes,
    )


@router.get("/kpis", dependencies=[READ], response_model=KpiReport)
async def all_kpis(
    runtime: RuntimeDep,
    session: SessionDep,
    start: From = None,
    end: To = None,
    granularity: Granularity = Granularity.week,
    source: LeadSource | None = None,
    campaign_id: CampaignId = None,
) -> Response:
    """Every department's KPIs and the shared ones, per day, ISO week or month, by event time."""
    return _json(
        await _report(runtime, session, start, end, granularity, source, campaign_id, DEPARTMENTS)
    )


@router.get("/kpis/{department}", dependencies=[READ], response_model=KpiReport)
async def department_kpis(
    department: Department,
    runtime: RuntimeDep,
    session: SessionDep,
    start: From = None,
    end: To = None,
    granularity: Granularity = Granularity.week,
    source: LeadSource | None = None,
    campaign_id: CampaignId = None,
) -> Response:
    """One department's KPIs (or `shared`)."""
    return _json(
        await _report(runtime, session, start, end, granularity, source, campaign_id, (department,))
    )


def _json(report: KpiReport) -> Response:
    """`report` as FastAPI would send it (by alias, unset fields left out), serialized once: a
    returned model would be dumped, validated again and serialized."""
    body = report.model_dump_json(by_alias=True, exclude_unset=True)
    return Response(body, media_type="application/json")


@router.get("/funnel", dependencies=[READ])
async def funnel(
    runtime: RuntimeDep,
    session: SessionDep,
    start: From = None,
    end: To = None,
    source: LeadSource | None = None,
    campaign_id: CampaignId = None,
) -> Funnel:
    """The leads captured in the range, stage by stage: counts, conversion from the stage
    before, and the median days it took."""
    settings = _settings(runtime)
    scope = _scope(settings, start, end, Granularity.week, source, campaign_id)
    stages = await service.funnel(session, settings.rules(), scope)
    return Funnel(
        from_=scope.start,
        to=scope.end,
        timezone=settings.timezone,
        filters=Filters(source=scope.source, campaign_id=scope.campaign_id),
        stages=[FunnelStage(**stage) for stage in stages],
    )


@router.get("/sla-compliance", dependencies=[READ])
async def sla_compliance(
    runtime: RuntimeDep, session: SessionDep, start: From = None, end: To = None
) -> SlaReport:
    """Per hand-off (MQL, SQL, deal, churn risk): passed, accepted within the SLA, breached,
    still open, and what was turned back with the reasons."""
    settings = _settings(runtime)
    scope = _scope(settings, start, end, Granularity.week)
    rows = await service.sla_compliance(session, settings.rules(), scope, datetime.now(UTC))
    return SlaReport(
        from_=scope.start,
        to=scope.end,
        timezone=settings.timezone,
        handoffs=[HandoffCompliance(**row) for row in rows],
    )


@router.get(
    "/reports/baton-meeting",
    dependencies=[READ],
    responses={200: {"content": {"text/html": {}}, "description": "JSON, or HTML on request"}},
)
async def baton_meeting(
    request: Request,
    runtime: RuntimeDep,
    session: SessionDep,
    week: Annotated[
        str | None,
        Query(pattern=r"^\d{4}-W\d{2}$", description="ISO week, e.g. 2026-W47 (default: last)"),
    ] = None,
) -> Any:
    """The weekly review of every hand-off and KPI against the week before; a printable HTML
    page with `Accept: text/html`."""
    settings = _settings(runtime)
    now = datetime.now(UTC)
    if week is None:
        monday = service.last_complete_week(now, settings.rules())
        year, number, _ = monday.isocalendar()
        week = f"{year}-W{number:02d}"
    try:
        period = iso_week(week)
    except ValueError as exc:
        raise Problem(
            422, f"no such ISO week {week!r}", errors=[{"name": "week", "reason": str(exc)}]
        ) from exc
    body = await meeting.baton_meeting(session, settings.rules(), period, now)
    report = BatonMeeting(**body, timezone=settings.timezone, currency=settings.currency)
    if "text/html" in request.headers.get("accept", ""):
        return HTMLResponse(render_meeting(report))
    return report


@router.post("/rebuild", status_code=202, dependencies=[WRITE])
async def rebuild_read_model(runtime: RuntimeDep) -> dict[str, Any]:
    """Drop the read model and consume every topic again from the beginning."""
    generation = await rebuild.rebuild(runtime)
    return {"status": "rebuilding", "generation": generation}


@router.get("/rebuild", dependencies=[READ])
async def rebuild_status(runtime: RuntimeDep) -> dict[str, Any]:
    """The read model's generation and how far its consumer has caught up."""
    return await rebuild.status(runtime)
