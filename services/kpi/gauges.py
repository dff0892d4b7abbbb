"""Prometheus gauges of the headline KPIs (this week and this month), for Grafana."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import cast

from prometheus_client import Gauge

from services.kpi.formulas import DEPARTMENTS
from services.kpi.meeting import flatten
from services.kpi.periods import Granularity, bucket_start, local_day, next_bucket
from services.kpi.results import cache_of
from services.kpi.service import Scope, kpis
from services.kpi.settings import Settings
from shared.runtime import Runtime

log = logging.getLogger(__name__)


async def refresh_gauges(gauge: Gauge, runtime: Runtime) -> None:
    """Set `baton_kpi_value{department,kpi,period}` for the current week and month."""
    settings = cast(Settings, runtime.settings)
    today = local_day(datetime.now(UTC), settings.tz)
    samples: list[tuple[tuple[str, str, str], float]] = []
    for granularity in (Granularity.week, Granularity.month):
        start = bucket_start(today, granularity)
        scope = Scope(start, next_bucket(start, granularity))
        async with runtime.sessions() as session:
            report = await kpis(
                session, settings.rules(), scope, granularity, DEPARTMENTS, cache_of(runtime)
            )
        for department, values in report["total"]["kpis"].items():
            samples += [
                ((department, name, granularity.value), value)
                for name, value in flatten(values).items()
                if isinstance(value, int | float)
            ]
    # In one go, with no await in between, so that a scrape never sees half a refresh; a KPI
    # that became null loses its sample instead of keeping its last value.
    gauge.clear()
    for labels, value in samples:
        gauge.labels(*labels).set(value)


async def publish_gauges(runtime: Runtime) -> None:
    """Refresh the KPI gauges every BATON_KPI_GAUGES_S seconds until shutdown."""
    gauge = Gauge(
        "baton_kpi_value",
        "Headline KPI of the current period (rates as fractions, money in minor units)",
        ["department", "kpi", "period"],
        registry=runtime.metrics.registry,
    )
    interval = cast(Settings, runtime.settings).gauges_interval_s
    while True:
        try:
            await refresh_gauges(gauge, runtime)
        except Exception as exc:  # the next refresh may well succeed
            log.warning("KPI gauges not refreshed", extra={"error": repr(exc)})
        await asyncio.sleep(interval)
