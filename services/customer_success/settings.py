"""Settings of the customer_success service (DESIGN §2)."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field

from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "customer_success"

    database_url: str | None = Field(None, validation_alias="BATON_CUSTOMER_SUCCESS_DATABASE_URL")
    port: int = Field(8004, validation_alias="BATON_CUSTOMER_SUCCESS_PORT")
