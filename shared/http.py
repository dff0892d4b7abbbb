"""Request dependencies for service routers: the runtime, the session, the caller and scopes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request, Response
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import AuthError, Principal
from shared.db import read_only
from shared.middleware import header
from shared.outbox import Outbox
from shared.problems import Problem
from shared.runtime import Runtime

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


# The dependencies are `async def` even where they do not await: FastAPI runs a plain `def` one
# in its thread pool, a hop that costs more than the dependency itself. And they are few, each
# taking the request itself rather than other dependencies: FastAPI solves every dependency's own
# dependencies again on each use, even when their values are cached (about 10 µs a dependency).
def runtime_of(request: Request) -> Runtime:
    """The running service's runtime (503 while it starts)."""
    runtime: Runtime | None = request.app.state.runtime
    if runtime is None:
        raise Problem(503, "the service is starting")
    return runtime


async def get_runtime(request: Request) -> Runtime:
    return runtime_of(request)


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


READING_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """One session per request, committed when the route returns: the one commit boundary.
    A GET (or HEAD) only reads: its transaction is begun as such (`shared.db.read_only`)."""
    async with runtime_of(request).sessions() as session, session.begin():
        if request.method in READING_METHODS:
            await read_only(session)
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_outbox(request: Request) -> Outbox:
    return runtime_of(request).outbox


OutboxDep = Annotated[Outbox, Depends(get_outbox)]


async def authenticate(runtime: Runtime, authorization: str | None) -> Principal:
    """The caller, from the bearer token of an `Authorization` header (401 when there is none
    or it is bad)."""
    scheme, token = get_authorization_scheme_param(authorization)
    if scheme.lower() != "bearer" or not token:
        raise Problem(401, "a bearer token is required", headers=_CHALLENGE, type="unauthorized")
    try:
        return await runtime.verifier.verify(token)
    except AuthError as exc:
        raise Problem(401, str(exc), headers=_CHALLENGE, type="unauthorized") from exc


# The checks `require` made, with the scope each asks for (see `required_scope`).
_SCOPE_CHECKS: dict[Callable[..., Any], str] = {}


def require(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """The door of a `/v1` route, a dependency every one of them has (the app factory sees to it):
    the request goes through only if its bearer token is good (else 401) and carries `scope` or
    admin (else 403), and then only if it holds no text a database cannot store (422, see
    `refuse_nul_text`). Its value is the caller.

    The token is read from the request here rather than through FastAPI's `HTTPBearer`, a
    dependency of its own solved on every request; the OpenAPI document declares the scheme
    on every `/v1` operation instead (`shared.openapi.BEARER`)."""

    async def check(request: Request) -> Principal:
        principal = await authenticate(runtime_of(request), request.headers.get("authorization"))
        if not principal.allows(scope):
            raise Problem(403, f"the token lacks the scope {scope!r}", type="forbidden")
        await refuse_nul_text(request)
        return principal

    _SCOPE_CHECKS[check] = scope
    return check


class GuardedRoute(APIRoute):
    """A route whose `require(scope)` checks, declared in its `dependencies`, run before FastAPI
    solves the rest, rather than as dependencies of their own: the same checks, first as
    before, without FastAPI's solving of one (about 8 µs a request). A `require` taken as a
    parameter (for the caller) stays a dependency. Every `/v1` router's route class."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        declared = list(kwargs.pop("dependencies", None) or ())
        # (set before APIRoute's own __init__, which builds the handler)
        self.guards = [d.dependency for d in declared if d.dependency in _SCOPE_CHECKS]
        others = [d for d in declared if d.dependency not in _SCOPE_CHECKS]
        super().__init__(path, endpoint, dependencies=others, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        guards = self.guards
        if not guards:
            return handler

        async def guarded(request: Request) -> Response:
            for check in guards:
                await check(request)
            return await handler(request)

        return guarded


def required_scope(route: APIRoute) -> str | None:
    """The scope a route `require`s: of its guards (`GuardedRoute`), else of its dependencies."""
    for check in getattr(route, "guards", ()):
        return _SCOPE_CHECKS[check]
    return _dependant_scope(route.dependant)


def _dependant_scope(dependant: Dependant) -> str | None:
    for sub in dependant.dependencies:
        scope = _SCOPE_CHECKS.get(sub.call) if sub.call is not None else None
        if scope is None:
            scope = _dependant_scope(sub)
        if scope is not None:
            return scope
    return None


# NUL (U+0000) is valid in JSON and in URLs, but PostgreSQL cannot store it in text, and SQLite
# would keep what PostgreSQL refuses: it is refused up front, naming where it was.
_NUL_REASON = "must not contain the NUL character (U+0000)"


async def refuse_nul_text(request: Request) -> None:
    """422 for a NUL in a path or query parameter, or in a string (or key) of a JSON body.

    Other bodies (the imports' CSV and JSON lines) are read row by row, and a row holding a NUL
    is reported as a bad row. A JSON body without the escape `\\u0000` costs one byte search.
    """
    errors: list[dict[str, Any]] = []
    if "\x00" in request.scope["path"]:
        errors.append({"loc": ("path",), "msg": _NUL_REASON, "type": "string_nul"})
    query: bytes = request.scope.get("query_string", b"")
    if b"%00" in query or b"\x00" in query:  # a query without either has no NUL once decoded
        for name, value in request.query_params.multi_items():
            if "\x00" in name or "\x00" in value:
                errors.append({"loc": ("query", name), "msg": _NUL_REASON, "type": "string_nul"})
    content_type = header(request.scope, b"content-type") or b""
    media = content_type.split(b";")[0].strip().lower()
    if media == b"application/json" or media.endswith(b"+json"):
        body = await request.body()  # read once: FastAPI has it from the same cache
        if b"\\u0000" in body:
            with contextlib.suppress(orjson.JSONDecodeError):  # FastAPI reports bad JSON
                errors.extend(
                    {"loc": ("body", *where), "msg": _NUL_REASON, "type": "string_nul"}
                    for where in _nul_paths(orjson.loads(body), ())
                )
    if errors:
        raise RequestValidationError(errors)


def _nul_paths(value: Any, where: tuple[str | int, ...]) -> Iterator[tuple[str | int, ...]]:
    """Where, in a parsed JSON value, a string or a key holds a NUL."""
    if isinstance(value, str):
        if "\x00" in value:
            yield where
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield (*where, key)
            else:
                yield from _nul_paths(item, (*where, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_paths(item, (*where, index))
