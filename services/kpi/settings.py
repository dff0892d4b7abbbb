"""Settings of the kpi service (DESIGN §2)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "kpi"

    database_url: str | None = Field(None, validation_alias="BATON_KPI_DATABASE_URL")
    port: int = Field(8005, validation_alias="BATON_KPI_PORT")
