"""Settings of the marketing service (DESIGN §2)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "marketing"

    database_url: str | None = Field(None, validation_alias="BATON_MARKETING_DATABASE_URL")
    port: int = Field(8001, validation_alias="BATON_MARKETING_PORT")
