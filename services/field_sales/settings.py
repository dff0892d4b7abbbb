"""Settings of the field_sales service (DESIGN §2)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "field_sales"

    database_url: str | None = Field(None, validation_alias="BATON_FIELD_SALES_DATABASE_URL")
    port: int = Field(8003, validation_alias="BATON_FIELD_SALES_PORT")
