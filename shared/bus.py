"""aiokafka producers, consumers and topic administration, configured from the settings."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from shared.settings import BatonSettings

log = logging.getLogger(__name__)


def connection_options(settings: BatonSettings) -> dict[str, Any]:
    """Bootstrap, TLS and SASL options common to every aiokafka client."""
    options: dict[str, Any] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "security_protocol": settings.kafka_security_protocol,
        "request_timeout_ms": settings.kafka_request_timeout_ms,
        "retry_backoff_ms": 100,
    }
    if settings.kafka_security_protocol in ("SSL", "SASL_SSL"):
        options["ssl_context"] = ssl.create_default_context(
            cafile=str(settings.kafka_ssl_cafile) if settings.kafka_ssl_cafile else None
        )
    if settings.kafka_security_protocol.startswith("SASL"):
        options["sasl_mechanism"] = settings.kafka_sasl_mechanism or "PLAIN"
        options["sasl_plain_username"] = settings.kafka_sasl_username
        password = settings.kafka_sasl_password
        options["sasl_plain_password"] = password.get_secret_value() if password else None
    return options


def create_producer(settings: BatonSettings, **overrides: Any) -> AIOKafkaProducer:
    """A producer with `acks=all`, a small linger and idempotence as the settings say."""
    options: dict[str, Any] = {
        **connection_options(settings),
        "acks": "all",
        "linger_ms": settings.kafka_linger_ms,
        "enable_idempotence": settings.kafka_idempotence,
        "max_batch_size": 1_048_576,
        "max_request_size": 4_194_304,
        **overrides,
    }
    return AIOKafkaProducer(**options)


def create_consumer(
    settings: BatonSettings, group_id: str | None, **overrides: Any
) -> AIOKafkaConsumer:
    """A consumer that commits explicitly and starts a new group from the earliest offset."""
    options: dict[str, Any] = {
        **connection_options(settings),
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "session_timeout_ms": settings.kafka_session_timeout_ms,
        "heartbeat_interval_ms": min(
            settings.kafka_heartbeat_interval_ms, settings.kafka_session_timeout_ms // 3
        ),
        "max_poll_interval_ms": 300_000,
        "fetch_max_wait_ms": settings.kafka_fetch_max_wait_ms,
        "isolation_level": "read_uncommitted",
        **overrides,
    }
    return AIOKafkaConsumer(**options)


async def ensure_topics(settings: BatonSettings, topics: Iterable[str]) -> list[str]:
    """Create the missing ones of `topics`; return the names created."""
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in dict.fromkeys(topics) if t not in existing]
        if missing:
            new = [
                NewTopic(t, settings.kafka_partitions, settings.kafka_replication_factor)
                for t in missing
            ]
            with contextlib.suppress(TopicAlreadyExistsError):  # another process was quicker
                await admin.create_topics(new)
        return missing
    finally:
        await admin.close()


async def list_topics(settings: BatonSettings) -> dict[str, int]:
    """Topic name -> partition count, as the broker reports them."""
    admin = AIOKafkaAdminClient(**connection_options(settings))
    await admin.start()
    try:
        names = await admin.list_topics()
        described = await admin.describe_topics(names) if names else []
        return {d["topic"]: len(d["partitions"]) for d in described}
    finally:
        await admin.close()


async def broker_reachable(settings: BatonSettings, timeout: float = 2.0) -> bool:
    """Whether a Kafka broker answers a metadata request at the configured bootstrap."""
    admin = AIOKafkaAdminClient(**{**connection_options(settings), "request_timeout_ms": 2000})
    try:
        await asyncio.wait_for(admin.start(), timeout)
        await asyncio.wait_for(admin.list_topics(), timeout)
        return True
    except (KafkaError, OSError, TimeoutError):
        return False
    finally:
        await admin.close()


class CommitOnRevoke(ConsumerRebalanceListener):
    """On revocation, commits what was already handled for the revoked partitions."""

    def __init__(self, consumer: AIOKafkaConsumer, done: dict[Any, int], lock: asyncio.Lock):
        self._consumer = consumer
        self._done = done
        self._lock = lock

    async def on_partitions_revoked(self, revoked: Any) -> None:
        async with self._lock:  # wait for the event being handled right now
            offsets = {tp: self._done.pop(tp) for tp in revoked if tp in self._done}
            if offsets:
                try:
                    await self._consumer.commit(offsets)
                except KafkaError as exc:
                    log.warning("commit on revoke failed", extra={"error": str(exc)})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("partitions assigned", extra={"partitions": sorted(str(tp) for tp in assigned)})
