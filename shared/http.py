"""Request dependencies for service routers: the runtime, the session, the caller and scopes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Annotated, Any

import orjson
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import AuthError, Principal
from shared.db import read_only
from shared.outbox import Outbox
from shared.problems import Problem
from shared.runtime import Runtime

_bearer = HTTPBearer(auto_error=False, description="A JWT from `baton token --scope ...`")
_CHALLENGE = {"WWW-Authenticate": "Bearer"}


# The dependencies are `async def` even where they do not await: FastAPI runs a plain `def` one
# in its thread pool, a hop that costs more than the dependency itself.
async def get_runtime(request: Request) -> Runtime:
    runtime: Runtime | None = request.app.state.runtime
    if runtime is None:
        raise Problem(503, "the service is starting")
    return runtime


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]


READING_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request, runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One session per request, committed when the route returns: the one commit boundary.
    A GET (or HEAD) only reads: its transaction is begun as such (`shared.db.read_only`)."""
    async with runtime.sessions() as session, session.begin():
        if request.method in READING_METHODS:
            await read_only(session)
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_outbox(runtime: RuntimeDep) -> Outbox:
    return runtime.outbox


OutboxDep = Annotated[Outbox, Depends(get_outbox)]


async def authenticated(
    runtime: RuntimeDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller of a `/v1` route, from its bearer token (401 when there is none or it is bad)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Problem(401, "a bearer token is required", headers=_CHALLENGE, type="unauthorized")
    try:
        return await runtime.verifier.verify(credentials.credentials)
    except AuthError as exc:
        raise Problem(401, str(exc), headers=_CHALLENGE, type="unauthorized") from exc


def require(scope: str) -> Callable[..., Coroutine[Any, Any, Principal]]:
    """A dependency that lets the request through only if its token carries `scope` (or admin)."""

    async def check(principal: Annotated[Principal, Depends(authenticated)]) -> Principal:
        if not principal.allows(scope):
            raise Problem(403, f"the token lacks the scope {scope!r}", type="forbidden")
        return principal

    return check


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
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media == "application/json" or media.endswith("+json"):
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
