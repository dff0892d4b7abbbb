"""What a running service holds: built by the lifespan, reached by routes through the app state."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from shared.auth import TokenVerifier
from shared.db import on_postgres
from shared.group_commit import GroupCommit, GroupWrite
from shared.inbox import InboxConsumer
from shared.metrics import ServiceMetrics
from shared.outbox import Outbox, OutboxRelay
from shared.settings import ServiceSettings

Item = TypeVar("Item")
Result = TypeVar("Result")

# Groups written side by side on PostgreSQL: while one waits for its commit, the next is on its
# way (SQLite has one writer at a time).
GROUP_WRITERS_POSTGRES = 2


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

    def group_commit(
        self, name: str, make_write: Callable[[], GroupWrite[Item, Result]]
    ) -> GroupCommit[Item, Result]:
        """The process's group commit `name` (`shared.group_commit`), made on first use with
        the write `make_write` makes."""
        group: GroupCommit[Item, Result] | None = self.extensions.get(name)
        if group is None:
            group = self.extensions[name] = GroupCommit(
                make_write(),
                writers=GROUP_WRITERS_POSTGRES if on_postgres(self.sessions) else 1,
                observe=self.metrics.group_commit_items(group=name).observe,
            )
        return group
