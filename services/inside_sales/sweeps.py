"""The response-SLA sweep the inside sales service runs in the background."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from services.inside_sales import service
from shared.runtime import Runtime

log = logging.getLogger(__name__)


async def response_sla_sweep(runtime: Runtime) -> None:
    """Every `sweep_interval_s`, report the MQLs whose first contact is overdue (once each)."""
    settings = runtime.settings
    grace = timedelta(seconds=settings.sweep_grace_s)
    while True:
        try:
            while True:  # until a pass finds nothing more
                async with runtime.sessions() as session, session.begin():
                    found = await service.sweep_breaches(
                        session, runtime.outbox, datetime.now(UTC), grace
                    )
                if not found:
                    break
                log.info("response SLA breaches reported", extra={"count": found})
        except Exception as exc:  # the next pass tries again
            log.warning("response SLA sweep failed", extra={"error": repr(exc)})
        await asyncio.sleep(settings.sweep_interval_s)
