"""Rules a department owns (scoring model, SLAs, health model): every change is a new version.

Each service keeps its rules in a table of its own with this mixin's columns; the newest version
is in force, older ones stay as the audit trail (who changed what, when).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel
from sqlalchemy import JSON, Integer, String, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from shared.db import UTCDateTime


class VersionedRules:
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    changed_by: Mapped[str] = mapped_column(String(200))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime)


R = TypeVar("R", bound=VersionedRules)


async def latest(session: AsyncSession, table: type[R]) -> R | None:
    """The version in force (None: the built-in defaults, never changed)."""
    query = select(table).order_by(table.version.desc()).limit(1)
    row: R | None = await session.scalar(query)
    return row


async def add_version(session: AsyncSession, table: type[R], body: BaseModel, changed_by: str) -> R:
    """Store `body` as the next version, in force from the commit on."""
    current = await latest(session, table)
    row = table(
        version=(current.version if current else 0) + 1,  # type: ignore[call-arg]
        body=body.model_dump(mode="json"),
        changed_by=changed_by,
        changed_at=datetime.now(UTC),
    )
    session.add(row)
    return row


def audit_fields(stored: VersionedRules | None) -> dict[str, Any]:
    """`version`, `changed_by`, `changed_at` for a read model (0 / None for the defaults)."""
    if stored is None:
        return {"version": 0, "changed_by": None, "changed_at": None}
    return {
        "version": stored.version,
        "changed_by": stored.changed_by,
        "changed_at": stored.changed_at,
    }
