"""How every service's OpenAPI document describes its errors: RFC 9457 problem details.

FastAPI documents only the 422 of request validation, as `application/json` with its own shape.
The services answer every error as `application/problem+json` (shared.problems), and a few
errors come from the shared layers rather than the route: the bearer token (401, 403), the body
limit (413), the Idempotency-Key (400, 409, 422), a service still starting (503). This module
rewrites the generated document so clients and contract tests see what is really answered, and
declares the bearer token every `/v1` operation asks for (checked by `shared.http.require`).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from fastapi.security import HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from shared.problems import PROBLEM_JSON

WRITES = frozenset({"post", "put", "patch", "delete"})
METHODS = WRITES | {"get", "head", "options"}
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
# The security scheme of every /v1 operation, as FastAPI would document an HTTPBearer dependency.
BEARER = HTTPBearer(description="A JWT from `baton token --scope ...`")


class FieldProblem(BaseModel):
    name: str = Field(description="the field, parameter or header that is wrong")
    reason: str


class Problem(BaseModel):
    """An RFC 9457 problem details object, as every error is answered."""

    model_config = ConfigDict(extra="allow")

    type: str = Field(description="a URI naming the kind of problem, or about:blank")
    title: str
    status: int
    detail: str | None = None
    instance: str | None = None
    errors: list[FieldProblem] | None = Field(
        default=None, description="for invalid input: each wrong field and why"
    )


def error_statuses(path: str, method: str, operation: dict[str, Any]) -> set[int]:
    """The error statuses an operation can answer besides those its route declares."""
    statuses: set[int] = set()
    if path.startswith("/v1"):
        statuses |= {401, 403, 503}
        if operation.get("parameters") or operation.get("requestBody"):
            statuses.add(422)
        if "{" in path:
            statuses.add(404)
        if method in WRITES:
            statuses |= {400, 409, 422}  # Idempotency-Key: malformed, in progress, reused
            statuses |= {404, 409}  # the domain: an unknown or conflicting target
        if operation.get("requestBody"):
            statuses.add(413)
    return statuses


def document_problems(document: dict[str, Any]) -> dict[str, Any]:
    """Declare every error response of `document` as problem+json, and the bearer token of
    every `/v1` operation (in place; returned)."""
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            if method not in METHODS:
                continue
            if path.startswith("/v1"):
                operation["security"] = [{BEARER.scheme_name: []}]
            responses = operation.setdefault("responses", {})
            for status in sorted(error_statuses(path, method, operation)):
                responses.setdefault(str(status), {"description": HTTPStatus(status).phrase})
            for code, response in responses.items():
                if code.isdigit() and int(code) >= 400:
                    response["content"] = {PROBLEM_JSON: {"schema": PROBLEM_REF}}
    components = document.setdefault("components", {})
    bearer = jsonable_encoder(BEARER.model, by_alias=True, exclude_none=True)
    components.setdefault("securitySchemes", {})[BEARER.scheme_name] = bearer
    schemas = components.setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(problem.pop("$defs", {}))
    schemas["Problem"] = problem
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return document


def install_problem_documentation(app: FastAPI) -> None:
    """Make `app.openapi()` return the document with its errors declared as problems."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented extension point
