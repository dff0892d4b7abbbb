"""HTTP plumbing of the simulator: one client per service, retries, polling for hand-offs."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import httpx

DEPARTMENTS = ("marketing", "inside_sales", "field_sales", "customer_success")
ATTEMPTS = 6
POLL_START_S = 0.1
POLL_MAX_S = 0.5


class SimulationError(Exception):
    """The simulation cannot go on (a service refuses the set-up, or cannot be reached)."""


def _retryable(response: httpx.Response) -> bool:
    """5xx, 429, and 409 "idempotency key in progress" (the first attempt is still running)."""
    if response.status_code >= 500 or response.status_code == 429:
        return True
    return response.status_code == 409 and "idempotency-key-in-progress" in response.text


def problem(response: httpx.Response) -> str:
    """A short description of an error answer (its problem detail when there is one)."""
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return f"{response.status_code} {detail or response.text[:200]}"


class Services:
    """The departments' APIs, with safely retried writes and counted requests.

    Every write carries an `Idempotency-Key`, so a write whose answer was lost can be sent
    again: the service answers the first outcome instead of doing it twice.
    """

    def __init__(self, clients: Mapping[str, httpx.AsyncClient], handoff_timeout: float) -> None:
        self._clients = clients
        self.handoff_timeout = handoff_timeout
        self.requests = 0
        self.retries = 0
        self._run = uuid.uuid4().hex[:12]  # keys are unique per run; what is written is not

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        urls: Mapping[str, str],
        tokens: Mapping[str, str],
        *,
        connections: int,
        handoff_timeout: float = 60.0,
    ) -> AsyncIterator[Services]:
        """Clients for the four departments; closed on exit."""
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        async with contextlib.AsyncExitStack() as stack:
            clients = {
                name: await stack.enter_async_context(
                    httpx.AsyncClient(
                        base_url=urls[name],
                        headers={"Authorization": f"Bearer {tokens[name]}"},
                        timeout=httpx.Timeout(60.0, connect=10.0),
                        limits=limits,
                    )
                )
                for name in DEPARTMENTS
            }
            yield cls(clients, handoff_timeout)

    async def send(
        self,
        service: str,
        method: str,
        path: str,
        body: Mapping[str, Any] | None = None,
        *,
        key: str | None = None,
        params: Mapping[str, Any] | None = None,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        """One request, retried with backoff on transport errors and retryable answers.

        A write is only retried with a `key` (GETs always are).
        """
        headers = dict(headers or {})
        if key:
            headers["Idempotency-Key"] = f"sim-{self._run}-{key}"
        repeatable = method == "GET" or key is not None
        for attempt in range(ATTEMPTS):
            if attempt:
                self.retries += 1
                await asyncio.sleep(min(0.2 * 2**attempt, 3.0))
            self.requests += 1
            try:
                response = await self._clients[service].request(
                    method, path, json=body, content=content, headers=headers, params=params
                )
            except httpx.TransportError as exc:
                if not repeatable or attempt == ATTEMPTS - 1:
                    raise SimulationError(f"{service} {method} {path}: {exc!r}") from exc
                continue
            if not repeatable or not _retryable(response) or attempt == ATTEMPTS - 1:
                return response
        raise AssertionError("unreachable")

    async def post(
        self, service: str, path: str, body: Mapping[str, Any], key: str
    ) -> httpx.Response:
        return await self.send(service, "POST", path, body, key=key)

    async def get(
        self, service: str, path: str, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        return await self.send(service, "GET", path, params=params)

    async def wait_for(
        self, service: str, path: str, ready: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any] | None:
        """GET `path` until it answers 200 with a body that is `ready` (None after the timeout).

        A hand-off crosses the broker asynchronously: 404 means "not there yet".
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.handoff_timeout
        delay = POLL_START_S
        while True:
            response = await self.get(service, path)
            if response.status_code == 200 and ready(found := response.json()):
                return found
            if response.status_code not in (200, 404):
                raise SimulationError(f"{service} GET {path}: {problem(response)}")
            if loop.time() > deadline:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX_S)


class AccountFinder:
    """Finds the account Customer Success opened for a won deal.

    Accounts are listed by owner, not looked up by deal, so one scanner serves every lead
    waiting for an account: it pages through the accounts of the owners being waited on.
    """

    def __init__(self, services: Services) -> None:
        self._services = services
        self._waiting: dict[str, tuple[str, asyncio.Future[dict[str, Any]]]] = {}
        self._scanner: asyncio.Task[None] | None = None

    async def find(self, opportunity_id: str, owner_id: str) -> dict[str, Any] | None:
        """The account opened from `opportunity_id` (None if it does not appear in time)."""
        future: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[opportunity_id] = (owner_id, future)
        if self._scanner is None or self._scanner.done():
            self._scanner = asyncio.create_task(self._scan())
        try:
            return await asyncio.wait_for(future, self._services.handoff_timeout)
        except TimeoutError:
            return None
        finally:
            self._waiting.pop(opportunity_id, None)

    async def _scan(self) -> None:
        delay = POLL_START_S
        try:
            while self._waiting:
                for owner in {owner for owner, _ in self._waiting.values()}:
                    await self._scan_owner(owner)
                await asyncio.sleep(delay)
                delay = min(delay * 1.5, POLL_MAX_S)
        except SimulationError as exc:  # every waiter learns why
            for _, future in self._waiting.values():
                if not future.done():
                    future.set_exception(exc)

    async def _scan_owner(self, owner: str) -> None:
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"owner_id": owner, "limit": 200}
            if cursor is not None:
                params["cursor"] = cursor
            response = await self._services.get("customer_success", "/v1/accounts", params)
            if response.status_code != 200:
                raise SimulationError(f"customer_success GET /v1/accounts: {problem(response)}")
            page = response.json()
            for account in page["items"]:
                waiting = self._waiting.get(account["opportunity_id"])
                if waiting is not None and not waiting[1].done():
                    waiting[1].set_result(account)
            cursor = page["next_cursor"]
            if cursor is None:
                return
