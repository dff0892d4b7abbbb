"""What a running service holds: built by the lifespan, reached by routes through the app state."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.auth import TokenVerifier
from shared.inbox import InboxConsumer
from shared.metrics import ServiceMetrics
from shared.outbox import Outbox, OutboxRelay
from shared.settings import ServiceSettings


@dataclass
class Runtime:
    """Everything the lifespan built; routes reach it through `request.app.state.runtime`."""

    settings: ServiceSettings
    engine: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    outbox: Outbox
    verifier: TokenVerifier
    metrics: ServiceMetrics
    relay: OutboxRelay | None = None
    consumer: InboxConsumer | None = None
    # Held by operations that must not overlap (e.g. a read model rebuild).
    maintenance: asyncio.Lock = field(default_factory=asyncio.Lock)
    # A service's own per-process objects, by name (e.g. the KPI service's result cache).
    extensions: dict[str, Any] = field(default_factory=dict)
