"""Request dependencies for service routers: the runtime, the session, the caller and scopes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import AuthError, Principal
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


async def get_session(runtime: RuntimeDep) -> AsyncIterator[AsyncSession]:
    """One session per request, committed when the route returns: the one commit boundary."""
    async with runtime.sessions() as session, session.begin():
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
