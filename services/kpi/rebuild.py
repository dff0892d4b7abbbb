"""Rebuilding the read model: drop it, and consume every topic again from the beginning.

Each rebuild starts a new generation, read by a new consumer group (`baton.kpi`, then
`baton.kpi.rebuild-1`, ...), which has no committed offsets and so starts at the earliest.
Run one KPI replica: a rebuild restarts the consumer of the process that received it.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.kpi import repository
from shared.inbox import InboxConsumer
from shared.runtime import Runtime
from shared.settings import ServiceSettings


def group_of(settings: ServiceSettings, generation: int) -> str:
    return settings.group_id if generation == 0 else f"{settings.group_id}.rebuild-{generation}"


async def consumer_group(
    sessions: async_sessionmaker[AsyncSession], settings: ServiceSettings
) -> str:
    """The consumer group of the read model's current generation."""
    async with sessions() as session, session.begin():
        return group_of(settings, (await repository.state(session)).generation)


async def clear(sessions: async_sessionmaker[AsyncSession]) -> int:
    """Drop the read model and start a new generation; its number."""
    async with sessions() as session, session.begin():
        await repository.clear_read_model(session)
        state = await repository.state(session)
        state.generation += 1
        state.rebuilt_at = datetime.now(UTC)
        return state.generation


async def rebuild(runtime: Runtime) -> int:
    """Stop consuming, clear, and consume again from the beginning in a new group."""
    async with runtime.maintenance:
        consumer = runtime.consumer
        if consumer is None:
            raise RuntimeError("this service has no consumer")
        await consumer.stop()
        generation = await clear(runtime.sessions)
        replacement = consumer.restarted(group_of(runtime.settings, generation))
        replacement.start()
        runtime.consumer = replacement
        return generation


async def status(runtime: Runtime) -> dict[str, Any]:
    async with runtime.sessions() as session, session.begin():
        state = await repository.state(session)
        generation, rebuilt_at = state.generation, state.rebuilt_at
    consumer: InboxConsumer | None = runtime.consumer
    return {
        "generation": generation,
        "consumer_group": group_of(runtime.settings, generation),
        "rebuilt_at": rebuilt_at,
        "lag": None if consumer is None else consumer.lag(),
    }
