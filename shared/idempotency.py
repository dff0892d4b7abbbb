"""`Idempotency-Key` for POSTs: a retried request gets the first answer instead of a second effect.

Keys are scoped by the caller (the token's subject). The first request with a key reserves it;
while it runs, a second one gets 409; afterwards the stored response is replayed (with
`Idempotent-Replayed: true`); the same key with a different request gets 422. Responses of 5xx
free the key for a retry. A reservation whose request died is taken over after `lock_s`.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import Integer, LargeBinary, String, Text, delete, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.auth import AuthError, TokenVerifier
from shared.db import PlumbingBase, UTCDateTime, insert_if_absent
from shared.middleware import header
from shared.problems import problem_response
from shared.runtime import Runtime

HEADER = b"idempotency-key"
MAX_KEY_LENGTH = 200
_REPLAYED_HEADERS = (b"content-type", b"location")


class IdempotencyRecord(PlumbingBase):
    __tablename__ = "idempotency_keys"

    principal: Mapped[str] = mapped_column(String(200), primary_key=True)
    key: Mapped[str] = mapped_column(String(MAX_KEY_LENGTH), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    headers: Mapped[str | None] = mapped_column(Text, nullable=True)
    body: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class IdempotencyMiddleware:
    """ASGI middleware using the running app's sessions, token verifier and settings."""

    def __init__(self, app: ASGIApp, lock_s: int = 60) -> None:
        self.app = app
        self._lock = timedelta(seconds=lock_s)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw_key = header(scope, HEADER)
        runtime: Runtime | None = getattr(scope["app"].state, "runtime", None)
        if raw_key is None or runtime is None:
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1").strip()
        if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
            response = problem_response(
                400,
                f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
                type="idempotency-key",
                errors=[{"name": "Idempotency-Key", "reason": "invalid value"}],
            )
            await response(scope, receive, send)
            return
        sessions = runtime.sessions
        principal = await _principal(runtime.verifier, header(scope, b"authorization") or b"")
        if principal is None:  # auth will answer 401 itself; nothing to remember
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        fingerprint = _fingerprint(scope, body)
        ttl = timedelta(seconds=runtime.settings.idempotency_ttl_s)
        early = await self._reserve(sessions, principal, key, fingerprint, ttl)
        if early is not None:
            await early(scope, receive, send)
            return
        try:
            captured, held = await self._forward(scope, body)
        except BaseException:
            await self._finish(sessions, principal, key, {"status": 500})  # free the key
            raise
        # The response goes out only once it is stored: a retry right after it is a replay.
        await self._finish(sessions, principal, key, captured)
        for message in held:
            await send(message)

    async def _reserve(
        self,
        sessions: async_sessionmaker[AsyncSession],
        principal: str,
        key: str,
        fingerprint: str,
        ttl: timedelta,
    ) -> Any:
        """Reserve the key; or return the response to give instead of running the request."""
        now = datetime.now(UTC)
        async with sessions() as session, session.begin():
            if await _insert(session, principal, key, fingerprint, now):
                return None
            record = await session.get(IdempotencyRecord, (principal, key))
            if record is None:  # expired and swept between the two statements
                await _insert(session, principal, key, fingerprint, now)
                return None
            expired = record.created_at < now - ttl
            stale = record.status is None and record.created_at < now - self._lock
            if expired or stale:
                record.fingerprint, record.status, record.created_at = fingerprint, None, now
                record.headers = record.body = None
                return None
            if record.fingerprint != fingerprint:
                return problem_response(
                    422,
                    "this Idempotency-Key was used for a different request",
                    type="idempotency-key-reused",
                    errors=[{"name": "Idempotency-Key", "reason": "reused with another request"}],
                )
            if record.status is None:
                return problem_response(
                    409,
                    "a request with this Idempotency-Key is still being processed; retry later",
                    type="idempotency-key-in-progress",
                    headers={"Retry-After": "1"},
                )
            return _Replay(record.status, record.headers or "[]", record.body or b"")

    async def _forward(self, scope: Scope, body: bytes) -> tuple[dict[str, Any], list[Message]]:
        captured: dict[str, Any] = {"status": 500, "headers": [], "body": b""}
        held: list[Message] = []
        sent = False

        async def replay_body() -> Message:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def capture(message: Message) -> None:
            if message["type"] == "http.response.start":
                captured["status"] = message["status"]
                captured["headers"] = [
                    [k.decode("latin-1"), v.decode("latin-1")]
                    for k, v in message.get("headers", [])
                    if k.lower() in _REPLAYED_HEADERS
                ]
            elif message["type"] == "http.response.body":
                captured["body"] += message.get("body", b"")
            held.append(message)

        await self.app(scope, replay_body, capture)
        return captured, held

    async def _finish(
        self,
        sessions: async_sessionmaker[AsyncSession],
        principal: str,
        key: str,
        captured: dict[str, Any],
    ) -> None:
        where = (IdempotencyRecord.principal == principal) & (IdempotencyRecord.key == key)
        async with sessions() as session, session.begin():
            if captured["status"] >= 500:
                await session.execute(delete(IdempotencyRecord).where(where))
                return
            await session.execute(
                update(IdempotencyRecord)
                .where(where)
                .values(
                    status=captured["status"],
                    headers=orjson.dumps(captured["headers"]).decode(),
                    body=captured["body"],
                )
            )


class _Replay:
    def __init__(self, status: int, headers: str, body: bytes) -> None:
        self.status = status
        self.headers = [(k.encode(), v.encode()) for k, v in orjson.loads(headers)]
        self.body = body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            *self.headers,
            (b"content-length", str(len(self.body)).encode()),
            (b"idempotent-replayed", b"true"),
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


async def _principal(verifier: TokenVerifier, authorization: bytes) -> str | None:
    scheme, _, token = authorization.decode("latin-1").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return None
    try:
        return (await verifier.verify(token.strip())).subject
    except AuthError:
        return None


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _fingerprint(scope: Scope, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (scope["method"], scope["path"], scope.get("query_string", b"").decode()):
        digest.update(part.encode())
        digest.update(b"\0")
    digest.update(body)
    return digest.hexdigest()


async def _insert(
    session: AsyncSession, principal: str, key: str, fingerprint: str, now: datetime
) -> bool:
    values = {"principal": principal, "key": key, "fingerprint": fingerprint, "created_at": now}
    return await insert_if_absent(session, IdempotencyRecord, values)


async def sweep_expired(session: AsyncSession, ttl_s: int) -> int:
    """Delete records older than the TTL; returns how many."""
    cutoff = datetime.now(UTC) - timedelta(seconds=ttl_s)
    result = await session.execute(
        delete(IdempotencyRecord).where(IdempotencyRecord.created_at < cutoff)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]
