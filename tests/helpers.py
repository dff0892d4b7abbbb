"""Helpers for tests: settings for a service under test, tokens, waiting, serving an app."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from fastapi import FastAPI

from baton.broker import free_port
from services import settings_class
from shared.auth import mint_token
from shared.db import create_engine, session_factory
from shared.events import CONTENT_TYPE
from shared.migrations import upgrade
from shared.settings import ServiceSettings

TEST_SECRET = "test-secret-" + "x" * 40


def make_settings(
    service: str, *, database_url: str, bootstrap: str, data_dir: Path, **overrides: Any
) -> ServiceSettings:
    """Settings for a service under test: fast consumer groups, short polls, the test secret."""
    values: dict[str, Any] = {
        "database_url": database_url,
        "kafka_bootstrap": bootstrap,
        "kafka_idempotence": False,
        "kafka_session_timeout_ms": 2000,
        "kafka_heartbeat_interval_ms": 300,
        "kafka_request_timeout_ms": 5000,
        "data_dir": data_dir,
        "jwt_secret": TEST_SECRET,
        "outbox_poll_interval_s": 0.2,
        "log_format": "console",
        **overrides,
    }
    return settings_class(service)(**values)


def token(*scopes: str, subject: str = "tests") -> str:
    return mint_token(TEST_SECRET, subject=subject, scopes=scopes)


def auth(*scopes: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(*scopes)}"}


async def eventually(
    check: Callable[[], Any], *, timeout: float = 30.0, interval: float = 0.1
) -> Any:
    """Await `check()` until it returns a truthy value (or fail after `timeout` seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    last: Any = None
    while asyncio.get_running_loop().time() < deadline:
        last = await check()
        if last:
            return last
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s; last value: {last!r}")


@contextlib.asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """Run `app` under uvicorn on a free port (lifespan included); yield a client for it."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        await task


@contextlib.asynccontextmanager
async def topic_tail(bootstrap: str, topic: str) -> AsyncIterator[AIOKafkaConsumer]:
    """A plain aiokafka consumer on every partition of `topic`, from its current end.

    The positions are fixed before the caller acts, so nothing published afterwards is missed.
    (The embedded broker may hand back the last batch before the end too: filter what you read.)
    """
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        for partition, offset in (await consumer.end_offsets(partitions)).items():
            consumer.seek(partition, offset)
        yield consumer
    finally:
        await consumer.stop()


async def read_events(
    consumer: AIOKafkaConsumer,
    *types: str,
    where: Callable[[Any], bool] = lambda envelope: True,
    settle: float = 1.0,
    timeout: float = 20.0,
) -> list[tuple[Any, Any]]:
    """(record, decoded envelope) of everything read until each of `types` has come (as often as
    it is named) among the envelopes that match `where`, and for `settle` seconds after, so that
    an event sent once too often, or one that should not have been, can show. Fails if `types`
    have not all come within `timeout` seconds: a slow machine waits longer, never too little.
    """
    wanted = Counter(types)
    found: list[tuple[Any, Any]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout

    def missing() -> Counter[str]:
        return wanted - Counter(e["type"] for _, e in found if where(e))

    while missing():
        if loop.time() >= deadline:
            raise AssertionError(f"not read within {timeout} s: {dict(missing())}")
        await _read_into(found, consumer)
    settled = loop.time() + settle
    while loop.time() < settled:
        await _read_into(found, consumer)
    return found


async def _read_into(found: list[tuple[Any, Any]], consumer: AIOKafkaConsumer) -> None:
    for records in (await consumer.getmany(timeout_ms=200)).values():
        found.extend((r, orjson.loads(r.value)) for r in records)


async def publish(bootstrap: str, topic: str, *envelopes: Any) -> None:
    """Publish as another service would: a plain aiokafka producer, key = partitionkey."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for envelope in envelopes:
            await producer.send_and_wait(
                topic,
                envelope.to_json(),
                key=envelope.partitionkey.encode(),
                headers=[("content-type", CONTENT_TYPE.encode())],
            )
    finally:
        await producer.stop()


@contextlib.asynccontextmanager
async def migrated_sessions(url: str, service: str, migrations: Path) -> AsyncIterator[Any]:
    """Sessions of the database at `url`, brought to the service's newest revision; its engine
    disposed of on exit."""
    engine = create_engine(url)
    await upgrade(engine, service, migrations)
    try:
        yield session_factory(engine)
    finally:
        await engine.dispose()
