"""The inside sales service: the MQL queue, first contact and the SQL hand-off."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.inside_sales import service
from services.inside_sales.api import router
from services.inside_sales.handlers import HANDLERS
from services.inside_sales.models import Base
from services.inside_sales.settings import Settings
from shared.app import ServiceSpec, create_service_app
from shared.settings import topic_of
from shared.sweeps import periodic_sweep

SPEC = ServiceSpec(
    name="inside_sales",
    title="Baton Inside Sales",
    description=("Calls every MQL fast, judges the need and passes real opportunities (SQLs) on."),
    settings_class=Settings,
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    routers=(router,),
    consumes=(topic_of("marketing"),),
    handlers=HANDLERS,
    background=(periodic_sweep("response_sla", service.sweep_breaches),),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)


app = create_app()
