"""The field sales service: opportunities, pipeline and the DealWon hand-off."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.field_sales import service
from services.field_sales.api import router
from services.field_sales.handlers import HANDLERS
from services.field_sales.models import Base
from services.field_sales.settings import Settings
from shared.app import ServiceSpec, create_service_app
from shared.settings import topic_of
from shared.sweeps import periodic_sweep

SPEC = ServiceSpec(
    name="field_sales",
    title="Baton Field Sales",
    description=(
        "Meets, proposes, quotes, follows the customer's approval (ringi) and closes deals."
    ),
    settings_class=Settings,
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    routers=(router,),
    consumes=(topic_of("inside_sales"), topic_of("customer_success")),
    handlers=HANDLERS,
    background=(periodic_sweep("acceptance_sla", service.sweep_neglected),),
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)


app = create_app()
