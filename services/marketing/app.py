"""The marketing service: leads, campaigns, scoring and the MQL hand-off."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.marketing.api import router
from services.marketing.handlers import HANDLERS
from services.marketing.models import Base
from services.marketing.settings import Settings
from shared.app import ServiceSpec, create_service_app
from shared.settings import topic_of

SPEC = ServiceSpec(
    name="marketing",
    title="Baton Marketing",
    description="Creates and nurtures leads and hands Inside Sales the ones worth a call (MQLs).",
    settings_class=Settings,
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    routers=(router,),
    consumes=(topic_of("inside_sales"), topic_of("customer_success")),
    handlers=HANDLERS,
    body_limits={"/v1/leads/import": 64 * 1024 * 1024},
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)


app = create_app()
