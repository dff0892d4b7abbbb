"""The app factory every service is built with: lifespan, auth, problems, health, metrics."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import gc
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute, request_response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import MetaData, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.responses import JSONResponse, PlainTextResponse, Response

from shared.auth import TokenVerifier
from shared.bus import broker_reachable
from shared.db import create_engine, session_factory
from shared.http import required_scope
from shared.idempotency import IdempotencyMiddleware, sweep_expired
from shared.inbox import Handler, InboxConsumer, Selective, TransactionWorkFactory
from shared.metrics import ServiceMetrics
from shared.middleware import BodyLimitMiddleware, ObservabilityMiddleware
from shared.migrations import upgrade
from shared.openapi import install_problem_documentation
from shared.outbox import Outbox, OutboxRelay
from shared.problems import install_problem_handlers, problem_response
from shared.runtime import Runtime
from shared.settings import ServiceSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServiceSpec:
    """What makes one service: its tables, migrations, routes and event handlers."""

    name: str
    title: str
    description: str
    settings_class: type[ServiceSettings]
    metadata: MetaData
    migrations: Path
    routers: Sequence[APIRouter] = ()
    # Routes outside /v1 that need no token (pages whose data the browser fetches from /v1).
    pages: Sequence[APIRouter] = ()
    consumes: tuple[str, ...] = ()
    handlers: Mapping[str, Handler | Selective] = field(default_factory=dict)
    # Work the handlers share in each inbox transaction, done once for all its events.
    transaction_work: TransactionWorkFactory | None = None
    # The service runs one replica, and its handlers change nothing but through its
    # transaction work, a `OneWriterWork`: a fetch is handled while the one before writes.
    one_writer: bool = False
    publishes: bool = True
    body_limits: Mapping[str, int] = field(default_factory=dict)
    # Loops the service runs besides its relay and consumer (e.g. SLA sweeps), until shutdown.
    background: Sequence[Callable[[Runtime], Coroutine[Any, Any, None]]] = ()
    # The consumer group, when it is not `settings.group_id` (read from the service's database).
    consumer_group: (
        Callable[[async_sessionmaker[AsyncSession], ServiceSettings], Awaitable[str]] | None
    ) = None


def build_verifier(settings: ServiceSettings) -> TokenVerifier:
    if settings.jwt_jwks_url:
        return TokenVerifier(
            jwks_url=settings.jwt_jwks_url,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    return TokenVerifier(
        secret=settings.resolved_jwt_secret(),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )


def create_service_app(spec: ServiceSpec, settings: ServiceSettings | None = None) -> FastAPI:
    """A FastAPI app for `spec`; settings are read from the environment at start-up if not given."""
    metrics = ServiceMetrics(spec.name)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        resolved = settings or spec.settings_class()
        async with run_service(spec, resolved, metrics) as runtime:
            app.state.runtime = runtime
            yield
        app.state.runtime = None

    app = FastAPI(
        title=spec.title,
        description=spec.description,
        version="1.0.0",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        # Baton's telemetry is its Prometheus metrics and JSON logs; FastAPI's own OpenTelemetry
        # would stay idle (no SDK is installed) but ask whether it is configured on every
        # request (~4 µs).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.runtime = None
    install_problem_handlers(app)
    install_problem_documentation(app)
    for router in spec.routers:
        if router.prefix != "/v1":
            raise ValueError(f"{spec.name}: API routers must have the prefix /v1")
        # No /v1 route without a token and a scope (and no text a database cannot store).
        unguarded = [
            f"{' '.join(sorted(route.methods or ()))} {route.path}"
            for route in router.routes
            if isinstance(route, APIRoute) and required_scope(route) is None
        ]
        if unguarded:
            raise ValueError(
                f"{spec.name}: routes without `shared.http.require(scope)`: {unguarded}"
            )
        _add_routes(app, router)
    for router in spec.pages:
        if router.prefix.startswith("/v1"):
            raise ValueError(f"{spec.name}: pages must not be under /v1")
        _add_routes(app, router)
    _add_operational_routes(app, spec, metrics)

    app.add_middleware(IdempotencyMiddleware)
    app.add_middleware(BodyLimitMiddleware, limits=dict(spec.body_limits))
    app.add_middleware(ObservabilityMiddleware, metrics=metrics)
    return app


def _add_routes(app: FastAPI, router: APIRouter) -> None:
    """`router`'s routes, added to the app's: a router makes each with its prefix, tags and
    dependencies already. (`include_router` keeps the router's routes behind an inclusion of
    its own, kept up to date with the router, which matches each request twice over: 10 to 20
    µs a request.)"""
    app.router.routes.extend(
        _of_app(route, app) if isinstance(route, APIRoute) else route for route in router.routes
    )


def _of_app(route: APIRoute, app: FastAPI) -> APIRoute:
    """A copy of `route` whose dependencies the app's `dependency_overrides` replace, as they do
    those of a route `include_router` adds (a test of an integration may override the session,
    say). A copy: a service's routers are shared by every app made from its spec. The scope
    checks a `GuardedRoute` runs first are no dependencies, and no override skips them."""
    own = copy.copy(route)
    own.dependency_overrides_provider = app
    own.app = request_response(own.get_route_handler())
    return own


@asynccontextmanager
async def run_service(
    spec: ServiceSpec, settings: ServiceSettings, metrics: ServiceMetrics
) -> AsyncIterator[Runtime]:
    """Migrate, run the relay and the consumer while the context lasts, then drain them."""
    engine = create_engine(settings.db_url)
    await upgrade(engine, spec.name, spec.migrations)
    sessions = session_factory(engine)
    runtime = Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        outbox=Outbox(settings.topic, settings.outbox_lanes),
        verifier=build_verifier(settings),
        metrics=metrics,
    )
    if spec.publishes:
        runtime.relay = OutboxRelay(settings, sessions, metrics)
        runtime.relay.start()
    if spec.consumes:
        group_id = await spec.consumer_group(sessions, settings) if spec.consumer_group else None
        runtime.consumer = InboxConsumer(
            settings,
            sessions,
            spec.consumes,
            spec.handlers,
            runtime.outbox,
            metrics,
            work=spec.transaction_work,
            one_writer=spec.one_writer,
            group_id=group_id,
        )
        runtime.consumer.start()
    tasks = [asyncio.create_task(_sweep_idempotency(sessions, settings.idempotency_ttl_s))]
    tasks += [asyncio.create_task(loop(runtime)) for loop in spec.background]
    tune_interpreter(settings.consumer_batch_size if spec.consumes else 0)
    log.info("service started", extra={"service": spec.name})
    try:
        yield runtime
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if runtime.consumer is not None:
            await runtime.consumer.stop()
        if runtime.relay is not None:
            await runtime.relay.stop()
        await engine.dispose()
        log.info("service stopped", extra={"service": spec.name})


# Allocations (less deallocations) between two young-generation collections; CPython's default
# of 700 makes a bulk import or a consumer's batch, which allocate tens of thousands of objects
# that mostly live until the batch is done, collect hundreds of times. A KPI ingest transaction
# of 2,000 events keeps 10,000 to 50,000 alive: at 10,000 its collections took 3-5 us an event.
GC_YOUNG_THRESHOLD = 50_000
# A consumer whose fetches are larger gets a threshold as much larger: objects alive an event
# of a fetch (the fetch applied, the next one read meanwhile). KPI ingest with fetches of 5,000,
# 2026-12-06: 23 young collections, 0.25 s of a 3 s run at 50,000; 40 an event (200,000) made
# `bench.kpi_replay` 11-12% faster on either database, a million no faster still.
GC_OBJECTS_PER_FETCHED_EVENT = 40

# How long a thread waiting for the GIL lets the one holding it run before asking for it
# (CPython's default: 5 ms). Under load the event loop's thread holds the GIL almost all the
# time, and every SQLite statement (aiosqlite) or `asyncio.to_thread` call ends on a worker
# thread that needs the GIL back to hand its result over: at 5 ms each such hand-over could wait
# up to 5 ms, a convoy. Lead ingest on SQLite, 2026-12-04: 1,529 req/s at 5 ms against 1,918 at
# 1 ms and 2,066 at 0.2 ms (median of 8 runs each, alternating); 0.1-0.5 ms alike.
GIL_SWITCH_INTERVAL_S = 0.0002


def young_collection_threshold(consumer_batch_size: int) -> int:
    """The young generation's threshold of a service whose consumer fetches so many events."""
    return max(GC_YOUNG_THRESHOLD, GC_OBJECTS_PER_FETCHED_EVENT * consumer_batch_size)


def tune_interpreter(consumer_batch_size: int = 0) -> None:
    """Once a service has started (benchmarks that run a part of a service in their own process
    call it as the service would): what start-up built lives as long as the process, so it is
    out of the collector's scans; fewer, larger young collections (the more, the larger its
    consumer's fetches); and a short GIL switch interval, so that the results of worker threads
    reach the event loop soon."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(young_collection_threshold(consumer_batch_size), older, oldest)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


async def _sweep_idempotency(sessions: async_sessionmaker[AsyncSession], ttl_s: int) -> None:
    while True:
        try:
            async with sessions() as session, session.begin():
                await sweep_expired(session, ttl_s)
        except Exception as exc:  # a sweep that fails now succeeds next time
            log.warning("idempotency sweep failed", extra={"error": repr(exc)})
        await asyncio.sleep(600)


def _add_operational_routes(app: FastAPI, spec: ServiceSpec, metrics: ServiceMetrics) -> None:
    @app.get("/healthz", tags=["operations"], summary="Liveness")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": spec.name}

    @app.get(
        "/readyz",
        tags=["operations"],
        summary="Readiness: database and broker",
        responses={503: {"description": "a dependency is down, or the service is starting"}},
    )
    async def readyz(request: Request) -> Response:
        runtime: Runtime | None = request.app.state.runtime
        if runtime is None:
            return problem_response(503, "starting", checks={"database": "down", "broker": "down"})
        checks = {"database": "up", "broker": "up"}
        try:
            async with runtime.engine.connect() as connection:
                await asyncio.wait_for(connection.execute(text("SELECT 1")), 2.0)
        except Exception:
            checks["database"] = "down"
        if not await broker_reachable(runtime.settings):
            checks["broker"] = "down"
        if "down" in checks.values():
            return problem_response(503, "a dependency is not available", checks=checks)
        return JSONResponse({"status": "ready", "service": spec.name, "checks": checks})

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics",
        response_class=PlainTextResponse,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def prometheus_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
