"""Pure pieces of the shared library: settings, tokens, lanes, problem field names, the order
of the inbox's offset commits."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import cast
from zoneinfo import ZoneInfo

import jwt
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import TypeAdapter
from sqlalchemy import DateTime
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import async_sessionmaker

from services import settings_class
from shared.app import young_collection_threshold
from shared.auth import AuthError, Principal, TokenVerifier, mint_token
from shared.db import UTCDateTime
from shared.inbox import InboxConsumer
from shared.outbox import Outbox, lane_of
from shared.problems import field_name
from shared.settings import ensure_secret_file

SECRET = "s" * 40


def test_service_settings_read_their_own_variables(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("BATON_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("BATON_KPI_DATABASE_URL", "postgresql+asyncpg://db/kpi")
    monkeypatch.setenv("BATON_FIELD_SALES_PORT", "9103")
    kpi = settings_class("kpi")()
    field_sales = settings_class("field_sales")()
    marketing = settings_class("marketing")()
    assert kpi.database_url == "postgresql+asyncpg://db/kpi"
    assert kpi.port == 8005
    assert field_sales.port == 9103
    assert marketing.database_url == f"sqlite+aiosqlite:///{(tmp_path / 'marketing.db').resolve()}"
    assert marketing.topic == "baton.marketing"
    assert marketing.group_id == "baton.marketing"
    assert (kpi.consumer_batch_size, marketing.consumer_batch_size) == (5000, 500)
    monkeypatch.setenv("BATON_CONSUMER_BATCH_SIZE", "100")
    assert settings_class("kpi")().consumer_batch_size == 100
    with pytest.raises(KeyError):
        settings_class("sales")


def test_a_consumer_with_larger_fetches_collects_its_young_objects_less_often() -> None:
    """Department services (fetches of 500, or no consumer) keep the threshold of 50,000; the
    KPI service's fetches of 5,000 get 40 objects an event."""
    assert young_collection_threshold(0) == young_collection_threshold(500) == 50_000
    assert young_collection_threshold(5000) == 200_000


def test_jwt_secret_is_made_once_and_kept(tmp_path: Path) -> None:
    first = ensure_secret_file(tmp_path / "secret")
    assert len(first) >= 32
    assert ensure_secret_file(tmp_path / "secret") == first
    assert (tmp_path / "secret").stat().st_mode & 0o777 == 0o600


def test_prod_refuses_to_make_up_a_secret(tmp_path: Path) -> None:
    settings = settings_class("marketing")(env="prod", data_dir=tmp_path)
    with pytest.raises(ValueError, match="BATON_JWT_SECRET"):
        settings.resolved_jwt_secret()
    short = settings_class("marketing")(jwt_secret="short", data_dir=tmp_path)
    with pytest.raises(ValueError, match="at least"):
        short.resolved_jwt_secret()


async def test_tokens_round_trip_and_expire() -> None:
    verifier = TokenVerifier(secret=SECRET)
    token = mint_token(SECRET, subject="crm-sync", scopes=["marketing:read", "marketing:write"])
    principal = await verifier.verify(token)
    assert principal == Principal("crm-sync", frozenset({"marketing:read", "marketing:write"}))
    assert principal.allows("marketing:write")
    assert not principal.allows("kpi:read")
    assert Principal("ops", frozenset({"admin"})).allows("kpi:read")
    expired = mint_token(SECRET, subject="x", scopes=[], ttl=timedelta(seconds=-1))
    with pytest.raises(AuthError, match="expired"):
        await verifier.verify(expired)
    with pytest.raises(AuthError):
        await verifier.verify(mint_token("t" * 40, subject="x", scopes=[]))
    with pytest.raises(AuthError):
        await verifier.verify("not-a-jwt")


async def test_a_verified_token_is_checked_once_and_refused_once_expired(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    verifier = TokenVerifier(secret=SECRET)
    checked: list[str] = []
    check = verifier._verify

    async def counting(token: str) -> tuple[Principal, float]:
        checked.append(token)
        return await check(token)

    monkeypatch.setattr(verifier, "_verify", counting)
    token = mint_token(
        SECRET, subject="crm-sync", scopes=["marketing:write"], ttl=timedelta(seconds=1)
    )
    first = await verifier.verify(token)
    assert await verifier.verify(token) == first
    assert checked == [token]
    expires_at = jwt.decode(token, options={"verify_signature": False})["exp"]
    await asyncio.sleep(max(0.0, expires_at - time.time()) + 0.05)
    with pytest.raises(AuthError, match="expired"):
        await verifier.verify(token)
    assert checked == [token, token]


def test_lanes_are_stable_and_spread() -> None:
    assert lane_of("lead-1", 8) == lane_of("lead-1", 8)
    lanes = {lane_of(f"lead-{n}", 8) for n in range(200)}
    assert lanes == set(range(8))


def test_problem_field_names() -> None:
    assert field_name(("body", "contact", "email")) == "contact.email"
    assert field_name(("query", "limit")) == "limit"
    assert field_name(("body",)) == "body"
    assert field_name(("body", "items", 3, "amount")) == "items.3.amount"


def test_a_time_goes_into_sqlite_as_the_text_sqlalchemy_makes_of_it_in_utc() -> None:
    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
    sqlalchemys = DateTime().dialect_impl(dialect).bind_processor(dialect)
    assert ours is not None and sqlalchemys is not None
    times = [
        datetime(2026, 3, 1, 9, 30, 5, 123456, tzinfo=UTC),
        datetime(2026, 3, 1, 9, 30, tzinfo=UTC),  # no fraction: still six digits
        TypeAdapter(datetime).validate_python("2026-03-01T09:30:05.5Z"),  # pydantic's UTC
        datetime(2026, 3, 1, 18, 30, 5, tzinfo=timezone(timedelta(hours=9))),
        datetime(2026, 1, 15, 9, 30, tzinfo=ZoneInfo("Europe/London")),  # +00:00, not UTC
        datetime(2026, 7, 15, 9, 30, tzinfo=ZoneInfo("Europe/London")),  # +01:00
    ]
    for at in times:
        assert ours(at) == sqlalchemys(at.astimezone(UTC).replace(tzinfo=None)), at
    assert ours(None) is None
    with pytest.raises(ValueError, match="naive datetimes"):
        ours(datetime(2026, 3, 1, 9, 30))


def test_a_time_comes_back_from_sqlite_as_sqlalchemy_reads_it_aware_in_utc() -> None:
    dialect = sqlite.dialect()
    ours = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    sqlalchemys = DateTime().dialect_impl(dialect).result_processor(dialect, None)
    assert ours is not None and sqlalchemys is not None
    texts = [
        "2026-03-01 09:30:05.123456",  # as SQLAlchemy writes it
        "2026-03-01 09:30:00.000000",
        "2026-03-01 09:30:05",  # as SQLite's CURRENT_TIMESTAMP writes it
    ]
    for text in texts:
        back, naive = ours(text), sqlalchemys(text)
        assert back is not None and naive is not None
        assert back == naive.replace(tzinfo=UTC), text
        assert back.tzinfo is UTC
    assert ours("2026-03-01T18:30:05+09:00") == datetime(2026, 3, 1, 9, 30, 5, tzinfo=UTC)
    assert ours(None) is None


def test_a_time_the_driver_reads_comes_back_aware_in_utc() -> None:
    dialect = postgresql.asyncpg.dialect()  # (asyncpg hands back aware times, in UTC)
    ours = UTCDateTime().dialect_impl(dialect).result_processor(dialect, None)
    assert ours is not None
    at = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
    assert ours(at) is at
    assert ours(datetime(2026, 3, 1, 18, 30, tzinfo=timezone(timedelta(hours=9)))) == at
    assert ours(datetime(2026, 3, 1, 9, 30)) == at  # naive: in UTC
    assert ours(None) is None


def test_a_column_of_times_goes_to_asyncpg_as_it_is_and_a_naive_one_is_refused() -> None:
    dialect = postgresql.asyncpg.dialect()
    column = UTCDateTime().column_bind_processor(dialect)
    assert column is not None
    times = [datetime(2026, 3, 1, 9, 30, tzinfo=UTC), None, datetime(2026, 3, 1, tzinfo=UTC)]
    assert column(times) is times
    with pytest.raises(ValueError, match="naive"):
        column([*times, datetime(2026, 3, 1, 9, 30)])


async def test_an_offset_commit_running_behind_is_not_overtaken(tmp_path: Path) -> None:
    """The inbox commits a fetch's offsets while it applies the next one: a later commit waits
    for it, rather than land first and be overwritten by the older offsets."""
    settings = settings_class("kpi")(data_dir=tmp_path, jwt_secret=SECRET)
    inbox = InboxConsumer(settings, async_sessionmaker(), (), {}, cast(Outbox, None))
    partition = TopicPartition("baton.marketing", 0)
    committed: list[int] = []

    class Consumer:  # (the broker's side of a commit is not what is under test)
        def assignment(self) -> set[TopicPartition]:
            return {partition}

        async def commit(self, offsets: dict[TopicPartition, int]) -> None:
            if offsets[partition] == 1:  # the first answer is slow
                await asyncio.sleep(0.05)
            committed.append(offsets[partition])

    consumer = cast(AIOKafkaConsumer, Consumer())
    inbox._done[partition] = 1
    behind = asyncio.create_task(inbox._commit(consumer))
    await asyncio.sleep(0)  # (it has taken its offsets)
    inbox._done[partition] = 2
    await inbox._commit(consumer)
    await behind
    assert committed == [1, 2]
