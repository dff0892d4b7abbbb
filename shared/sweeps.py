"""Periodic SLA sweeps: find what is overdue by event time and report it, once, in a transaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from shared.outbox import Outbox
from shared.runtime import Runtime

log = logging.getLogger(__name__)

# (session, outbox, now, grace) -> how many items it reported
SweepStep = Callable[[AsyncSession, Outbox, datetime, timedelta], Awaitable[int]]


def periodic_sweep(name: str, step: SweepStep) -> Callable[[Runtime], Coroutine[Any, Any, None]]:
    """A background loop for a service: run `step` every `sweep_interval_s` until it finds none.

    Each run is its own transaction, so a breach and its event commit together; the step locks
    what it reports (`FOR UPDATE SKIP LOCKED`), so replicas never report an item twice.
    """

    async def loop(runtime: Runtime) -> None:
        settings = runtime.settings
        grace = timedelta(seconds=settings.sweep_grace_s)
        while True:
            try:
                while True:
                    async with runtime.sessions() as session, session.begin():
                        found = await step(session, runtime.outbox, datetime.now(UTC), grace)
                    if not found:
                        break
                    log.info("sweep reported items", extra={"sweep": name, "count": found})
            except Exception as exc:  # the next pass tries again
                log.warning("sweep failed", extra={"sweep": name, "error": repr(exc)})
            await asyncio.sleep(settings.sweep_interval_s)

    loop.__name__ = f"{name}_sweep"
    return loop
