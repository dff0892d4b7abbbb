"""A group of captured leads and their LeadCaptured events, written in one trip to the database.

The capture (`POST /v1/leads`) is the service's hottest write; concurrent ones are written a
group at a time (`shared.group_commit`). Through SQLAlchemy a group took a session and four
statements (the scoring model's version, the leads, their events, the commit), and
SQLAlchemy's own work for each cost the event loop many times SQLite's or PostgreSQL's. Here a
group is one trip: on SQLite one function on the connection's thread (BEGIN IMMEDIATE, the
version, the leads, their events, COMMIT); on PostgreSQL one statement, atomic on its own.

The leads come scored with the model last seen in force. The trip writes them only if that
version is still the one in force, in its own transaction, as the statements before read it
in theirs; otherwise it writes nothing and says which version is, to score them again with.
A lead whose email is known, or which names a campaign there is not, is left out (its event
with it); the caller asks why.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.marketing.domain import ScoringModel
from services.marketing.models import Campaign, Lead, ScoringModelVersion
from shared.db import SQLITE_MAX_PARAMETERS, driver_connection, driver_values, sqlite_insert_sql
from shared.outbox import OUTBOX_TABLE, wake_relay

# What a capture writes of a new lead (`service.new_lead`) and of its event (`Outbox.rows`).
LEAD_COLUMNS = (
    "id",
    "email",
    "name",
    "company",
    "title",
    "source",
    "campaign_id",
    "status",
    "captured_at",
    "score",
    "touches",
    "times_qualified",
)
EVENT_COLUMNS = (
    "event_id",
    "event_type",
    "topic",
    "key",  # the lead's id
    "lane",
    "payload",
    "occurred_at",
    "created_at",
)
_CAMPAIGN = LEAD_COLUMNS.index("campaign_id")
_KEY = EVENT_COLUMNS.index("key")
_LEADS: Table = Lead.__table__  # type: ignore[assignment]
_SCORING_MODELS = ScoringModelVersion.__tablename__
_CAMPAIGNS = Campaign.__tablename__


@dataclass(frozen=True)
class Written:
    """What a group's trip did: the scoring model's version in force, and the ids of the leads
    inserted (none unless it was the version the leads were scored with)."""

    version: int
    inserted: list[str]


class CaptureWriter:
    """Writes groups of captures to the database of `sessions`, and wakes its outbox relay."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        # The scoring model last found in force, with its version (0: the built-in defaults).
        self.model: tuple[int, ScoringModel] = (0, ScoringModel())
        self._engine = sessions.kw["bind"]
        self._dialect = self._engine.dialect
        self._postgres = self._dialect.name == "postgresql"

    async def write(
        self, leads: Sequence[dict[str, Any]], events: Sequence[dict[str, Any]], version: int
    ) -> Written:
        """Insert `leads` (scored with the scoring model's `version`) and, of each one inserted,
        its event (`events`, in the same order), if `version` is the one in force."""
        lead_values = driver_values(self._dialect, _LEADS, LEAD_COLUMNS, leads)
        event_values = driver_values(self._dialect, OUTBOX_TABLE, EVENT_COLUMNS, events)
        async with driver_connection(self._engine) as connection:
            if self._postgres:
                found, inserted = await connection.fetchrow(
                    _on_postgres(self._dialect), *lead_values, *event_values, version
                )
            else:
                found, inserted = await connection.run(
                    _write_on_sqlite,
                    version,
                    list(zip(*lead_values, strict=True)),
                    list(zip(*event_values, strict=True)),
                    sqlite_insert_sql(
                        self._dialect,
                        _LEADS,
                        LEAD_COLUMNS,
                        skip_conflicts_on=["email"],
                        returning="id",
                    ),
                    sqlite_insert_sql(self._dialect, OUTBOX_TABLE, EVENT_COLUMNS),
                )
        if inserted:
            wake_relay(self.sessions)
        return Written(found, list(inserted))


def _write_on_sqlite(
    connection: sqlite3.Connection,
    version: int,
    leads: list[tuple[Any, ...]],
    events: list[tuple[Any, ...]],
    lead_insert: tuple[str, str, str],
    event_insert: tuple[str, str, str],
) -> tuple[int, list[str]]:
    """On the connection's thread: one transaction (see `CaptureWriter.write`); the inserts as
    `shared.db.sqlite_insert_sql` makes them."""
    connection.execute("BEGIN IMMEDIATE")  # the write lock first, as every writer takes it
    try:
        found = connection.execute(f"SELECT max(version) FROM {_SCORING_MODELS}").fetchone()[0]
        if (found or 0) != version:
            return found or 0, []
        named = {lead[_CAMPAIGN] for lead in leads if lead[_CAMPAIGN] is not None}
        if named:
            known = _campaigns_among(connection, named)
            leads = [lead for lead in leads if lead[_CAMPAIGN] is None or lead[_CAMPAIGN] in known]
        head, one, tail = lead_insert
        inserted: list[str] = []
        per_statement = SQLITE_MAX_PARAMETERS // len(LEAD_COLUMNS)
        for start in range(0, len(leads), per_statement):
            part = leads[start : start + per_statement]
            flat = [value for lead in part for value in lead]
            statement = f"{head} VALUES {', '.join([one] * len(part))}{tail}"
            inserted += [row[0] for row in connection.execute(statement, flat)]
        if inserted:
            event_of = {event[_KEY]: event for event in events}
            event_head, event_one, _ = event_insert
            connection.executemany(
                f"{event_head} VALUES {event_one}", [event_of[i] for i in inserted]
            )
        connection.execute("COMMIT")
        return version, inserted
    finally:
        if connection.in_transaction:  # not committed: nothing written
            connection.execute("ROLLBACK")


def _campaigns_among(connection: sqlite3.Connection, ids: set[str]) -> set[str]:
    marks = ", ".join("?" * len(ids))
    query = f"SELECT id FROM {_CAMPAIGNS} WHERE id IN ({marks})"
    return {row[0] for row in connection.execute(query, list(ids))}


@functools.cache
def _on_postgres(dialect: Any) -> str:
    """The group's one statement: an array per column of the leads ($1...), then of the events,
    then the version they were scored with. A data-modifying CTE: the events inserted are
    those of the leads inserted, and all of it commits, or none."""
    position = iter(range(1, len(LEAD_COLUMNS) + len(EVENT_COLUMNS) + 2))

    def arrays(table: Table, columns: tuple[str, ...]) -> str:
        return ", ".join(
            f"${next(position)}::{table.c[name].type.compile(dialect=dialect)}[]"
            for name in columns
        )

    leads, events = ", ".join(LEAD_COLUMNS), ", ".join(EVENT_COLUMNS)
    lead_arrays = arrays(_LEADS, LEAD_COLUMNS)
    event_arrays = arrays(OUTBOX_TABLE, EVENT_COLUMNS)
    return (
        f"WITH model AS (SELECT coalesce(max(version), 0) AS version FROM {_SCORING_MODELS}), "
        f"new_leads AS (INSERT INTO {_LEADS.name} ({leads}) "
        f"SELECT * FROM unnest({lead_arrays}) AS l({leads}) "
        f"WHERE (SELECT version FROM model) = ${next(position)} "
        f"AND (l.campaign_id IS NULL OR l.campaign_id IN (SELECT id FROM {_CAMPAIGNS})) "
        "ON CONFLICT (email) DO NOTHING RETURNING id), "
        f"new_events AS (INSERT INTO {OUTBOX_TABLE.name} ({events}) "
        f"SELECT * FROM unnest({event_arrays}) AS e({events}) "
        "WHERE e.key IN (SELECT id FROM new_leads)) "
        "SELECT (SELECT version FROM model), ARRAY(SELECT id FROM new_leads)"
    )
