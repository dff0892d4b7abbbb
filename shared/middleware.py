"""ASGI middleware: request ids and HTTP metrics, and limits on request body size."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping

from fastapi import HTTPException
from prometheus_client import Counter, Histogram
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared import logs
from shared.metrics import ServiceMetrics
from shared.problems import problem_response

REQUEST_ID = b"x-request-id"
DEFAULT_MAX_BODY = 1_048_576
MAX_KNOWN_SERIES = 1_000


class ObservabilityMiddleware:
    """Gives each request an id (echoed as `X-Request-ID`, put in logs) and records its metrics."""

    def __init__(self, app: ASGIApp, metrics: ServiceMetrics) -> None:
        self.app = app
        self._metrics = metrics
        self._known: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = (header(scope, REQUEST_ID) or b"").decode("latin-1")[:100]
        # (16 random bytes as hex: what uuid4().hex is made of, at a fraction of its cost)
        rid = given if given.isprintable() and given else secrets.token_hex(16)
        token = logs.request_id.set(rid)
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID, rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(token)
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            requests, latency = self._series(scope["method"], template, str(status))
            requests.inc()
            latency.observe(time.perf_counter() - started)

    def _series(self, method: str, route: str, status: str) -> tuple[Counter, Histogram]:
        """The request counter and latency histogram of (method, route, status), kept once made:
        a metric's `labels` takes a lock and checks its labels each time."""
        key = (method, route, status)
        series = self._known.get(key)
        if series is None:
            series = (self._metrics.http_requests(*key), self._metrics.http_latency(method, route))
            if len(self._known) < MAX_KNOWN_SERIES:  # (methods are whatever clients send)
                self._known[key] = series
        return series


class BodyLimitMiddleware:
    """Answers 413 to bodies over the limit (per path prefix, else the default) before parsing."""

    def __init__(self, app: ASGIApp, limits: Mapping[str, int]) -> None:
        self.app = app
        self._limits = sorted(limits.items(), key=lambda item: -len(item[0]))

    def _limit_for(self, scope: Scope) -> int:
        for prefix, limit in self._limits:
            if scope["path"].startswith(prefix):
                return limit
        runtime = getattr(scope["app"].state, "runtime", None)
        return runtime.settings.max_body_bytes if runtime else DEFAULT_MAX_BODY

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit_for(scope)
        declared = header(scope, b"content-length")
        if declared is not None and declared.isdigit():
            if int(declared) > limit:
                await _too_large(limit)(scope, receive, send)
            else:  # the server reads no more of the body than it declares: nothing to count
                await self.app(scope, receive, send)
            return
        received = 0
        response_started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            response_started = response_started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _BodyTooLarge:
            if not response_started:
                await _too_large(limit)(scope, receive, send)


def header(scope: Scope, name: bytes) -> bytes | None:
    """The first value of the (lower-case) header `name` of a request, if it has one."""
    for key, value in scope["headers"]:
        if key == name:
            return value
    return None


class _BodyTooLarge(HTTPException):
    """Raised while the body streams in; FastAPI lets HTTP exceptions through as they are."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def _too_large(limit: int) -> Response:
    return problem_response(
        413,
        f"the request body is larger than {limit} bytes",
        type="body-too-large",
        errors=[{"name": "body", "reason": f"larger than {limit} bytes"}],
    )
