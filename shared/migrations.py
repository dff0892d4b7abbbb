"""Alembic, per service: each service has its own migration folder and its own version table."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic import command, context
from alembic.config import Config
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from shared import idempotency, inbox, outbox
from shared.db import PlumbingBase, create_engine

PLUMBING_TABLES = (outbox.OutboxRow, inbox.InboxRow, idempotency.IdempotencyRecord)


def alembic_config(service: str, migrations_dir: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(migrations_dir))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["service"] = service
    return config


def version_table(service: str) -> str:
    return f"alembic_version_{service}"


async def upgrade(engine: AsyncEngine, service: str, migrations_dir: Path) -> None:
    """Bring the service's database to the newest revision (one migrator at a time)."""
    config = alembic_config(service, migrations_dir, engine.url.render_as_string(False))
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together: the first migrates, the others wait and find it done.
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": f"migrate:{service}"}
            )
        await connection.run_sync(_upgrade_on, config)


def _upgrade_on(connection: Connection, config: Config) -> None:
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def run_env(service_metadata: MetaData) -> None:
    """The body of every service's `migrations/env.py`."""
    config = context.config
    service = config.attributes.get("service") or config.get_main_option("service")
    if not service:
        raise RuntimeError("the Alembic config must name the service")
    options: dict[str, Any] = {
        "target_metadata": [service_metadata, PlumbingBase.metadata],
        "version_table": version_table(service),
        "render_as_batch": True,  # SQLite cannot ALTER most things in place
        "compare_type": True,
    }
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_with(connection, options)
        return
    url = config.get_main_option("sqlalchemy.url")
    if context.is_offline_mode():
        context.configure(url=url, literal_binds=True, **options)
        with context.begin_transaction():
            context.run_migrations()
        return
    asyncio.run(_run_online(url or "", options))


def _run_with(connection: Connection, options: dict[str, Any]) -> None:
    context.configure(connection=connection, **options)
    with context.begin_transaction():
        context.run_migrations()


async def _run_online(url: str, options: dict[str, Any]) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_with, options)
    finally:
        await engine.dispose()
