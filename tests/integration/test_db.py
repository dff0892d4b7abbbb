"""Engines from `shared.db` against a real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from sqlalchemy import text

from shared.db import create_engine
from tests.conftest import PG_DSN, PostgresDatabases

pytestmark = pytest.mark.postgres


async def test_connections_the_server_closed_are_replaced_when_taken_from_the_pool(
    postgres: PostgresDatabases,
) -> None:
    # As after a restart of PostgreSQL: the server closes every connection in the pool.
    url = await postgres.create()
    engine = create_engine(url, pool_size=3)
    try:

        async def backend_pid() -> int:
            async with engine.connect() as connection:
                pid: int = await connection.scalar(text("SELECT pg_backend_pid()"))
                await asyncio.sleep(0.05)  # held a while, so that the pool opens several
                return pid

        before = set(await asyncio.gather(*(backend_pid() for _ in range(3))))
        assert len(before) == 3
        admin = await asyncpg.connect(PG_DSN)
        try:
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM unnest($1::int[]) pid", before
            )
        finally:
            await admin.close()
        await asyncio.sleep(0.2)  # the driver sees the sockets close
        after = set(await asyncio.gather(*(backend_pid() for _ in range(3))))
        assert not after & before
    finally:
        await engine.dispose()
