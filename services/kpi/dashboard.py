"""The dashboard page and its assets, served by the service itself (no CDN: works offline).

The page holds no data: the browser fetches it from /v1 with the bearer token given in the
address fragment (`/dashboard#token=...`), which never reaches a server or its logs.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter
from starlette.responses import FileResponse, HTMLResponse, Response

from services.kpi.pages import render_dashboard
from shared.problems import Problem

router = APIRouter(tags=["dashboard"])
STATIC = Path(__file__).parent / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
ASSETS = {
    "plotly.min.js": PLOTLY_JS,
    "dashboard.js": STATIC / "dashboard.js",
    "dashboard.css": STATIC / "dashboard.css",
}
MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css"}


@router.get("/dashboard", response_class=HTMLResponse, summary="The KPI dashboard")
async def dashboard() -> Response:
    """A page for the sales leader's morning: funnel, KPI tiles, SLA compliance, revenue/churn."""
    return HTMLResponse(render_dashboard(), headers={"Cache-Control": "no-cache"})


@router.get(
    "/dashboard/assets/{name}",
    summary="Dashboard scripts and styles",
    response_class=FileResponse,
    responses={
        200: {"content": {media: {} for media in MEDIA_TYPES.values()}},
        404: {"description": "no such asset"},
    },
)
async def asset(name: str) -> Response:
    path = ASSETS.get(name)
    if path is None:
        raise Problem(404, f"no asset {name!r}")
    return FileResponse(
        path, media_type=MEDIA_TYPES[path.suffix], headers={"Cache-Control": "max-age=3600"}
    )
