"""The customer success service: onboarding, health, churn risk and expansion."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.customer_success.api import router
from services.customer_success.handlers import HANDLERS
from services.customer_success.models import Base
from services.customer_success.settings import Settings
from shared.app import ServiceSpec, create_service_app
from shared.settings import topic_of

SPEC = ServiceSpec(
    name="customer_success",
    title="Baton Customer Success",
    description="Onboards customers, drives adoption, prevents churn and grows revenue.",
    settings_class=Settings,
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    routers=(router,),
    consumes=(topic_of("field_sales"),),
    handlers=HANDLERS,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)


app = create_app()
