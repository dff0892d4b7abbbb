"""Errors a use case raises when a request cannot be done; every service answers them alike.

They carry no HTTP machinery: the app factory turns each into RFC 9457 problem details
(NotFound 404, Conflict 409, Invalid 422 naming the fields).
"""

from __future__ import annotations

from typing import Any, ClassVar


class DomainError(Exception):
    status: ClassVar[int] = 400
    kind: ClassVar[str] = "bad-request"

    def __init__(self, detail: str, *, kind: str | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problem_type = kind or self.kind
        self.extensions = extensions


class NotFound(DomainError):
    status = 404
    kind = "not-found"


class Conflict(DomainError):
    """The request is fine but the thing is not in a state that allows it."""

    status = 409
    kind = "conflict"


class Invalid(DomainError):
    """Input that passed the schema but breaks a rule; `errors` name the fields."""

    status = 422
    kind = "validation"

    @classmethod
    def fields(cls, detail: str, **reasons: str) -> Invalid:
        return cls(detail, errors=[{"name": n, "reason": r} for n, r in reasons.items()])
