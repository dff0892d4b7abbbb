"""Settings of the kpi service (DESIGN §2)."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from services.kpi.facts import Rules
from shared.settings import ServiceSettings


class Settings(ServiceSettings):
    service: ClassVar[str] = "kpi"

    database_url: str | None = Field(None, validation_alias="BATON_KPI_DATABASE_URL")
    port: int = Field(8005, validation_alias="BATON_KPI_PORT")
    # Days, weeks and months are those of this time zone (a change needs `baton kpi rebuild`).
    timezone: str = Field("Asia/Tokyo", validation_alias="BATON_KPI_TIMEZONE")
    currency: str = Field("JPY", pattern=r"^[A-Z]{3}$", validation_alias="BATON_KPI_CURRENCY")
    # Reporting-currency minor units per minor unit of another currency, e.g. {"USD": 1.5}.
    fx_rates: dict[str, float] = Field(default_factory=dict, validation_alias="BATON_KPI_FX_RATES")
    response_sla_hours: float = Field(
        24.0, gt=0, le=24 * 90, validation_alias="BATON_KPI_RESPONSE_SLA_HOURS"
    )
    onboarding_sla_days: float = Field(
        30.0, gt=0, le=365, validation_alias="BATON_KPI_ONBOARDING_SLA_DAYS"
    )
    gauges_interval_s: float = Field(30.0, gt=0, le=3600, validation_alias="BATON_KPI_GAUGES_S")
    # Events a fetch takes (all in one transaction): the read model loads and writes once a
    # transaction, and a fact changed by several of its events is written once, so a backlog
    # goes faster in larger ones than the other services' 500 (bench/README.md): 5,000 rather
    # than 2,000, with young collections as much rarer (`shared.app.tune_interpreter`), took
    # 14-19% less time an event in `bench.kpi_replay`; 10,000 no less again.
    consumer_batch_size: int = Field(5000, ge=1, le=10_000)

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def rules(self) -> Rules:
        return Rules(
            tz=self.tz,
            currency=self.currency,
            fx_rates=dict(self.fx_rates),
            response_sla=timedelta(hours=self.response_sla_hours),
            onboarding_sla=timedelta(days=self.onboarding_sla_days),
        )
