"""Settings of the inside_sales service (DESIGN §2)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "inside_sales"

    database_url: str | None = Field(None, validation_alias="BATON_INSIDE_SALES_DATABASE_URL")
    port: int = Field(8002, validation_alias="BATON_INSIDE_SALES_PORT")
