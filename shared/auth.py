"""Bearer JWT verification and minting (DESIGN §8): HS256 by default, RS256 through JWKS."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ADMIN_SCOPE = "admin"
ALGORITHMS_HS = ("HS256",)
ALGORITHMS_JWKS = ("RS256", "ES256")
VERIFIED_CACHE_SIZE = 1024
VERIFIED_CACHE_TTL_S = 60.0


class AuthError(Exception):
    """A token that is missing, malformed, expired or not signed by us (-> 401)."""


@dataclass(frozen=True, slots=True)
class Principal:
    subject: str
    scopes: frozenset[str]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes or ADMIN_SCOPE in self.scopes


def scopes_of(service: str) -> tuple[str, str]:
    return f"{service}:read", f"{service}:write"


def mint_token(
    secret: str,
    *,
    subject: str,
    scopes: Sequence[str],
    ttl: timedelta = timedelta(hours=12),
    issuer: str = "baton",
    audience: str = "baton",
) -> str:
    """An HS256 token for `subject` carrying `scopes` (space-separated `scope` claim)."""
    now = datetime.now(UTC)
    claims = {
        "sub": subject,
        "scope": " ".join(scopes),
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "iss": issuer,
        "aud": audience,
    }
    return jwt.encode(claims, secret, algorithm="HS256")


class TokenVerifier:
    """Checks signature, expiry, issuer and audience, and reads the scopes of a bearer token."""

    def __init__(
        self,
        *,
        secret: str | None = None,
        jwks_url: str | None = None,
        issuer: str = "baton",
        audience: str = "baton",
    ) -> None:
        if not secret and not jwks_url:
            raise ValueError("a JWT secret or a JWKS URL is required")
        self._secret = secret
        self._jwks = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=300) if jwks_url else None
        self._issuer = issuer
        self._audience = audience
        # token -> (its principal, until when it may be taken without a check)
        self._verified: dict[str, tuple[Principal, float]] = {}

    async def verify(self, token: str) -> Principal:
        # A client sends the same token with request after request: the signature and claims of
        # a token are checked once, and its principal kept until it expires (for a minute at most,
        # so that a key withdrawn from the JWKS stops counting soon).
        now = time.time()
        known = self._verified.get(token)
        if known is not None:
            if now < known[1]:
                return known[0]
            del self._verified[token]
        principal, expires_at = await self._verify(token)
        if len(self._verified) >= VERIFIED_CACHE_SIZE:
            del self._verified[next(iter(self._verified))]  # the oldest
        self._verified[token] = (principal, min(expires_at, now + VERIFIED_CACHE_TTL_S))
        return principal

    async def _verify(self, token: str) -> tuple[Principal, float]:
        if self._jwks is not None:
            # PyJWKClient fetches keys with blocking I/O (cached afterwards): keep it off the loop.
            try:
                signing_key = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
            except jwt.PyJWTError as exc:
                raise AuthError(str(exc)) from exc
            return self._decode(token, signing_key.key, ALGORITHMS_JWKS)
        assert self._secret is not None
        return self._decode(token, self._secret, ALGORITHMS_HS)

    def _decode(
        self, token: str, key: object, algorithms: Sequence[str]
    ) -> tuple[Principal, float]:
        try:
            claims = jwt.decode(
                token,
                key,  # type: ignore[arg-type]
                algorithms=list(algorithms),
                issuer=self._issuer,
                audience=self._audience,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError as exc:
            raise AuthError("token expired") from exc
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}") from exc
        raw = claims.get("scope", "")
        scopes = raw.split() if isinstance(raw, str) else [str(s) for s in raw]
        principal = Principal(subject=str(claims["sub"]), scopes=frozenset(scopes))
        return principal, float(claims["exp"])
