"""Fixtures shared by every tier: the embedded broker, databases, settings and tokens."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from baton.broker import EmbeddedBroker
from shared.settings import ALL_TOPICS

PG_DSN = os.environ.get("BATON_TEST_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRE_POSTGRES = os.environ.get("BATON_REQUIRE_POSTGRES") == "1"


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """One embedded Tansu broker on a free port for the whole run, topics created."""
    log_file = tmp_path_factory.mktemp("broker") / "broker.log"
    with EmbeddedBroker(log_file=log_file) as embedded:
        yield embedded


@pytest.fixture(scope="session")
async def topics(broker: EmbeddedBroker) -> tuple[str, ...]:
    from shared.bus import ensure_topics
    from shared.settings import BatonSettings

    await ensure_topics(BatonSettings(kafka_bootstrap=broker.bootstrap), ALL_TOPICS)
    return ALL_TOPICS


async def _postgres_available() -> str | None:
    try:
        connection = await asyncpg.connect(PG_DSN, timeout=3)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        return f"PostgreSQL is not reachable at {PG_DSN}: {exc}"
    await connection.close()
    return None


class PostgresDatabases:
    """Creates throw-away databases named `baton_test_*` and drops exactly those."""

    def __init__(self) -> None:
        self.created: list[str] = []

    async def create(self) -> str:
        name = f"baton_test_{uuid.uuid4().hex[:12]}"
        connection = await asyncpg.connect(PG_DSN)
        try:
            await connection.execute(f'CREATE DATABASE "{name}"')
        finally:
            await connection.close()
        self.created.append(name)
        base = PG_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return f"{base}/{name}"

    async def drop_all(self) -> None:
        connection = await asyncpg.connect(PG_DSN)
        try:
            for name in self.created:
                await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await connection.close()


@pytest.fixture(scope="session")
async def postgres() -> AsyncIterator[PostgresDatabases]:
    reason = await _postgres_available()
    if reason is not None:
        if REQUIRE_POSTGRES:
            pytest.fail(f"BATON_REQUIRE_POSTGRES=1 but {reason}")
        pytest.skip(reason)
    databases = PostgresDatabases()
    yield databases
    await databases.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def database_url(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Callable[[str], Any]:
    """`await database_url("marketing")`: a fresh database of the parametrised backend."""
    databases: PostgresDatabases | None = (
        request.getfixturevalue("postgres") if backend == "postgres" else None
    )

    async def make(service: str) -> str:
        if databases is None:
            return f"sqlite+aiosqlite:///{tmp_path / f'{service}-{uuid.uuid4().hex[:6]}.db'}"
        return await databases.create()

    return make


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[EmbeddedBroker]:
    """A broker of the test's own, for a consumer that reads every topic from the beginning
    (the session's broker carries the other tests' events)."""
    with EmbeddedBroker(log_file=tmp_path / "broker.log") as embedded:
        yield embedded


@pytest.fixture
async def kpi(
    own_broker: EmbeddedBroker, database_url: Any, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The KPI service on its own broker (`client.bootstrap`) and a fresh database."""
    from services.kpi.app import create_app
    from shared.bus import ensure_topics
    from shared.settings import BatonSettings
    from tests.helpers import make_settings, serve

    await ensure_topics(BatonSettings(kafka_bootstrap=own_broker.bootstrap), ALL_TOPICS)
    settings = make_settings(
        "kpi",
        database_url=await database_url("kpi"),
        bootstrap=own_broker.bootstrap,
        data_dir=tmp_path,
        consumer_group_suffix=f"-{uuid.uuid4().hex[:6]}",
        gauges_interval_s=0.5,
    )
    async with serve(create_app(settings)) as client:
        client.bootstrap = own_broker.bootstrap  # type: ignore[attr-defined]
        yield client
