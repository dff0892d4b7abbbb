"""The KPI service: department and shared KPIs computed from the event stream."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from services.kpi import dashboard, rebuild
from services.kpi.api import router
from services.kpi.gauges import publish_gauges
from services.kpi.handlers import HANDLERS
from services.kpi.ingest import read_model
from services.kpi.models import Base
from services.kpi.settings import Settings
from shared.app import ServiceSpec, create_service_app
from shared.settings import SERVICES, topic_of

SPEC = ServiceSpec(
    name="kpi",
    title="Baton KPI",
    description="Computes every department's KPIs and the shared ones from the event stream.",
    settings_class=Settings,
    metadata=Base.metadata,
    migrations=Path(__file__).parent / "migrations",
    routers=(router,),
    pages=(dashboard.router,),
    consumes=tuple(topic_of(s) for s in SERVICES if s != "kpi"),
    handlers=HANDLERS,
    transaction_work=read_model,
    one_writer=True,  # (run one replica: see the README)
    publishes=False,
    background=(publish_gauges,),
    consumer_group=rebuild.consumer_group,
)


def create_app(settings: Settings | None = None) -> FastAPI:
    return create_service_app(SPEC, settings)


app = create_app()
