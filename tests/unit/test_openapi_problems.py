"""The OpenAPI documents declare errors as they are answered: RFC 9457 problem+json."""

from __future__ import annotations

from typing import Any

from shared.openapi import document_problems


def document() -> dict[str, Any]:
    validation = {
        "description": "Validation Error",
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/HTTPValidationError"}}
        },
    }
    return {
        "paths": {
            "/v1/leads/{lead_id}": {
                "get": {"parameters": [{"name": "lead_id"}], "responses": {"422": validation}},
                "parameters": [],
            },
            "/v1/leads": {
                "post": {"requestBody": {"content": {}}, "responses": {"201": {}}},
            },
            "/healthz": {"get": {"responses": {"200": {}}}},
        },
        "components": {"schemas": {"HTTPValidationError": {}, "ValidationError": {}}},
    }


def test_every_error_is_a_problem_and_shared_layers_are_declared() -> None:
    doc = document_problems(document())
    read = doc["paths"]["/v1/leads/{lead_id}"]["get"]["responses"]
    write = doc["paths"]["/v1/leads"]["post"]["responses"]
    assert sorted(read) == ["401", "403", "404", "422", "503"]
    assert sorted(write) == ["201", "400", "401", "403", "404", "409", "413", "422", "503"]
    for code, response in {**read, **write}.items():
        if code != "201":
            assert response["content"] == {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
            }
    assert doc["paths"]["/healthz"]["get"]["responses"] == {"200": {}}  # not behind the token
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert schemas["Problem"]["required"] == ["type", "title", "status"]
    assert schemas["Problem"]["properties"]["errors"]["anyOf"][0]["items"] == {
        "$ref": "#/components/schemas/FieldProblem"
    }
