"""The HTTP contract every service shares: auth, problem details, limits, idempotency, health."""

from __future__ import annotations

import asyncio
import dataclasses
import importlib
import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Depends, Request
from fastapi.routing import APIRoute
from sqlalchemy.ext.asyncio import AsyncSession

from baton.broker import EmbeddedBroker
from services.marketing.app import SPEC as MARKETING
from services.marketing.app import create_app as create_marketing
from shared.app import create_service_app
from shared.auth import mint_token
from shared.http import GuardedRoute, get_session, require
from shared.problems import PROBLEM_JSON
from shared.settings import SERVICES
from tests.helpers import TEST_SECRET, auth, make_settings, serve


def body(**overrides: Any) -> dict[str, Any]:
    values = {
        "email": f"it-{uuid.uuid4().hex[:8]}@example.com",
        "name": "Aiko Tanaka",
        "company": "Tanaka Shoji",
        "title": "CIO",
        "source": "seminar",
    }
    return {**values, **overrides}


@pytest.fixture
async def marketing(
    broker: EmbeddedBroker, topics: Any, tmp_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(
        "marketing",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'marketing.db'}",
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
        max_body_bytes=4096,
    )
    async with serve(create_marketing(settings)) as client:
        yield client


async def test_auth(marketing: httpx.AsyncClient) -> None:
    no_token = await marketing.post("/v1/leads", json=body())
    assert no_token.status_code == 401
    assert no_token.headers["content-type"] == PROBLEM_JSON
    assert no_token.headers["www-authenticate"] == "Bearer"
    # The token is checked before the body is read: a caller without one learns nothing of it.
    unread = await marketing.post(
        "/v1/leads", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert unread.status_code == 401

    wrong_scope = await marketing.post("/v1/leads", json=body(), headers=auth("marketing:read"))
    assert wrong_scope.status_code == 403
    assert "marketing:write" in wrong_scope.json()["detail"]

    right = await marketing.post("/v1/leads", json=body(), headers=auth("marketing:write"))
    assert right.status_code == 201, right.text

    admin = await marketing.post("/v1/leads", json=body(), headers=auth("admin"))
    assert admin.status_code == 201

    expired = mint_token(
        TEST_SECRET, subject="t", scopes=["marketing:write"], ttl=timedelta(seconds=-5)
    )
    late = await marketing.post(
        "/v1/leads", json=body(), headers={"Authorization": f"Bearer {expired}"}
    )
    assert late.status_code == 401
    assert "expired" in late.json()["detail"]

    forged = mint_token("another-secret-" + "y" * 40, subject="t", scopes=["admin"])
    bad = await marketing.post(
        "/v1/leads", json=body(), headers={"Authorization": f"Bearer {forged}"}
    )
    assert bad.status_code == 401

    good = mint_token(TEST_SECRET, subject="t", scopes=["marketing:write"])
    for header in (f"Basic {good}", "Bearer", good, ""):
        refused = await marketing.post("/v1/leads", json=body(), headers={"Authorization": header})
        assert refused.status_code == 401, header
        assert refused.json()["detail"] == "a bearer token is required"
    either_case = await marketing.post(
        "/v1/leads", json=body(), headers={"Authorization": f"bearer  {good}"}
    )
    assert either_case.status_code == 201, either_case.text


@pytest.mark.parametrize("service", SERVICES)
async def test_every_v1_route_requires_a_token_and_a_scope(
    service: str, broker: EmbeddedBroker, topics: Any, tmp_path: Path
) -> None:
    """Every /v1 operation in the OpenAPI schema: 401 without a token, 403 without the scope."""
    module = importlib.import_module(f"services.{service}.app")
    settings = make_settings(
        service,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}",
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
    )
    async with serve(module.create_app(settings)) as client:
        schema = (await client.get("/openapi.json")).json()
        operations = [
            (method.upper(), path.replace("{", "").replace("}", ""))
            for path, item in schema["paths"].items()
            if path.startswith("/v1/")
            for method in item
        ]
        assert operations, f"{service} has no /v1 operations"
        no_scope = {"Authorization": f"Bearer {mint_token(TEST_SECRET, subject='t', scopes=[])}"}
        for method, path in operations:
            concrete = re.sub(r"/[a-z_]+_id\b", f"/{uuid.uuid4()}", path)
            anonymous = await client.request(method, concrete)
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            scopeless = await client.request(method, concrete, headers=no_scope)
            assert scopeless.status_code == 403, (method, path, scopeless.text)


async def test_an_apps_dependency_overrides_reach_its_v1_routes_and_only_its(
    broker: EmbeddedBroker, topics: Any, tmp_path: Path
) -> None:
    """`app.dependency_overrides` replaces what a /v1 route depends on, as FastAPI's users
    expect (in their tests, say), in that app alone: apps made from one spec share its routers.
    The scope checks still run first."""
    settings = make_settings(
        "marketing",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'marketing.db'}",
        bootstrap=broker.bootstrap,
        data_dir=tmp_path,
    )
    seen: list[str] = []

    async def watched_session(request: Request) -> AsyncIterator[AsyncSession]:
        seen.append(request.url.path)
        async for session in get_session(request):
            yield session

    overridden, plain = create_marketing(settings), create_marketing(settings)
    overridden.dependency_overrides[get_session] = watched_session
    async with serve(overridden) as client:
        assert (await client.get("/v1/scoring-model")).status_code == 401
        assert seen == []
        read = await client.get("/v1/scoring-model", headers=auth("marketing:read"))
        assert read.status_code == 200, read.text
        assert seen == ["/v1/scoring-model"]
    async with serve(plain) as client:
        read = await client.get("/v1/scoring-model", headers=auth("marketing:read"))
        assert read.status_code == 200, read.text
    assert seen == ["/v1/scoring-model"]


def test_a_v1_route_without_a_scope_is_refused_at_start_up() -> None:
    """A /v1 route that forgot `require(scope)` stops the app from being made, naming it."""
    for route_class in (APIRoute, GuardedRoute):
        guarded = APIRouter(prefix="/v1", route_class=route_class)
        forgot = APIRouter(prefix="/v1", route_class=route_class)

        @guarded.get("/things", dependencies=[Depends(require("marketing:read"))])
        @forgot.get("/things")
        async def things() -> list[str]:
            return []

        create_service_app(dataclasses.replace(MARKETING, routers=[guarded]))
        with pytest.raises(ValueError, match=r"GET /v1/things"):
            create_service_app(dataclasses.replace(MARKETING, routers=[forgot]))


async def test_problem_details_name_the_field(marketing: httpx.AsyncClient) -> None:
    headers = auth("marketing:write")
    bad = await marketing.post("/v1/leads", json=body(email="not-an-email"), headers=headers)
    assert bad.status_code == 422
    problem = bad.json()
    assert bad.headers["content-type"] == PROBLEM_JSON
    assert problem["status"] == 422
    assert [e["name"] for e in problem["errors"]] == ["email"]

    not_text = await marketing.post("/v1/leads", json=body(email=42), headers=headers)
    assert not_text.status_code == 422
    assert not_text.json()["errors"][0]["name"] == "email"

    wrong_source = await marketing.post("/v1/leads", json=body(source="tv"), headers=headers)
    assert wrong_source.json()["errors"][0]["name"] == "source"

    not_json = await marketing.post(
        "/v1/leads", content=b"{not json", headers={**headers, "content-type": "application/json"}
    )
    assert not_json.status_code == 422
    assert not_json.headers["content-type"] == PROBLEM_JSON

    missing = await marketing.get(f"/v1/leads/{uuid.uuid4()}", headers=auth("marketing:read"))
    assert missing.status_code == 404
    assert missing.headers["content-type"] == PROBLEM_JSON

    bad_id = await marketing.get("/v1/leads/not-a-uuid", headers=auth("marketing:read"))
    assert bad_id.status_code == 422
    assert bad_id.json()["errors"][0]["name"] == "lead_id"

    unknown = await marketing.get("/v1/nothing-here", headers=headers)
    assert unknown.status_code == 404
    assert unknown.headers["content-type"] == PROBLEM_JSON


async def test_duplicate_email_is_409_with_existing_id(marketing: httpx.AsyncClient) -> None:
    headers = auth("marketing:write")
    first = await marketing.post("/v1/leads", json=body(email=" Dup@Example.com"), headers=headers)
    assert first.json()["email"] == "dup@example.com"
    again = await marketing.post("/v1/leads", json=body(email="dup@example.com"), headers=headers)
    assert again.status_code == 409
    assert again.json()["existing_id"] == first.json()["id"]


async def test_oversized_bodies_are_413(marketing: httpx.AsyncClient) -> None:
    headers = auth("marketing:write")
    huge = await marketing.post("/v1/leads", json=body(name="x" * 10_000), headers=headers)
    assert huge.status_code == 413
    assert huge.headers["content-type"] == PROBLEM_JSON

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    streamed = await marketing.post(
        "/v1/leads", content=chunks(), headers={**headers, "content-type": "application/json"}
    )
    assert streamed.status_code == 413

    long_field = await marketing.post("/v1/leads", json=body(name="x" * 300), headers=headers)
    assert long_field.status_code == 422
    assert long_field.json()["errors"][0]["name"] == "name"


async def test_idempotency_key(marketing: httpx.AsyncClient) -> None:
    headers = {**auth("marketing:write"), "Idempotency-Key": f"k-{uuid.uuid4()}"}
    payload = body()
    first = await marketing.post("/v1/leads", json=payload, headers=headers)
    second = await marketing.post("/v1/leads", json=payload, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"

    reused = await marketing.post("/v1/leads", json=body(), headers=headers)
    assert reused.status_code == 422
    assert reused.json()["errors"][0]["name"] == "Idempotency-Key"

    # the same key from another caller is another request
    other = {**auth("marketing:write"), "Idempotency-Key": headers["Idempotency-Key"]}
    other["Authorization"] = "Bearer " + mint_token(
        TEST_SECRET, subject="someone-else", scopes=["marketing:write"]
    )
    assert (await marketing.post("/v1/leads", json=body(), headers=other)).status_code == 201


async def test_concurrent_requests_with_one_key_have_one_effect(
    marketing: httpx.AsyncClient,
) -> None:
    headers = {**auth("marketing:write"), "Idempotency-Key": f"k-{uuid.uuid4()}"}
    payload = body()
    responses = await asyncio.gather(
        *(marketing.post("/v1/leads", json=payload, headers=headers) for _ in range(5))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes.count(201) >= 1
    assert set(codes) <= {201, 409}
    ids = {r.json()["id"] for r in responses if r.status_code == 201}
    assert len(ids) == 1


async def test_health_readiness_metrics(marketing: httpx.AsyncClient) -> None:
    assert (await marketing.get("/healthz")).json()["status"] == "ok"
    ready = await marketing.get("/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"] == {"database": "up", "broker": "up"}
    await marketing.post("/v1/leads", json=body(), headers=auth("marketing:write"))
    metrics = (await marketing.get("/metrics")).text
    assert 'baton_http_requests_total{method="POST",route="/v1/leads",status="201"}' in metrics
    assert "baton_outbox_backlog" in metrics
    request_id = (await marketing.get("/healthz", headers={"X-Request-ID": "abc"})).headers
    assert request_id["x-request-id"] == "abc"


async def test_readiness_reports_a_missing_broker(tmp_path: Path) -> None:
    settings = make_settings(
        "marketing",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'm.db'}",
        bootstrap="127.0.0.1:1",
        data_dir=tmp_path,
    )
    async with serve(create_marketing(settings)) as c:
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["broker"] == "down"
        # writes are still accepted: the outbox keeps them until the broker is back
        created = await c.post("/v1/leads", json=body(), headers=auth("marketing:write"))
        assert created.status_code == 201
