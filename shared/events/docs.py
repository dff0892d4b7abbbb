"""The event catalog as documents: `docs/asyncapi.yaml` (AsyncAPI 3.0) and a JSON Schema each.

Generated from the models, never edited by hand: `baton schemas` writes them, `--check` (and a
test) fails when the committed files drift from the models.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from shared.events.catalog import CATALOG
from shared.events.envelope import CONTENT_TYPE, Envelope, EventData

ASYNCAPI_PATH = "docs/asyncapi.yaml"
SCHEMA_DIR = "docs/schemas"
SCHEMA_ID_BASE = "https://baton.dev/schemas/"
PRODUCERS = ("marketing", "inside_sales", "field_sales", "customer_success")


def envelope_schema(model: type[EventData]) -> dict[str, Any]:
    """The JSON Schema of a whole CloudEvent carrying `model` as its data."""
    schema = Envelope.model_json_schema(mode="serialization")
    data = model.model_json_schema(mode="serialization", ref_template="#/$defs/{model}")
    defs = data.pop("$defs", {})
    properties = dict(schema["properties"])
    properties["type"] = {**properties["type"], "const": model.event_type()}
    properties["source"] = {**properties["source"], "const": f"/services/{model.producer}"}
    properties["data"] = data
    result: dict[str, Any] = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"{SCHEMA_ID_BASE}{model.event_type()}.json",
        "title": model.event_type(),
        "description": (model.__doc__ or "").strip(),
        "type": "object",
        "properties": properties,
        "required": sorted({*schema.get("required", []), "type", "source", "data"}),
        "additionalProperties": True,  # CloudEvents extensions may be added
    }
    if defs:
        result["$defs"] = dict(sorted(defs.items()))
    return result


def asyncapi() -> dict[str, Any]:
    """The AsyncAPI 3.0 document of every topic, message and operation."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for producer in PRODUCERS:
        models = [m for m in CATALOG if m.producer == producer]
        channel = f"baton.{producer}"
        channels[producer] = {
            "address": channel,
            "description": f"Every event the {producer} service publishes.",
            "messages": {
                m.event_name: {"$ref": f"#/components/messages/{m.event_name}"} for m in models
            },
            "bindings": {"kafka": {"partitions": 6, "bindingVersion": "0.5.0"}},
        }
        operations[f"publish_{producer}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{producer}"},
            "summary": f"The {producer} service publishes its events from its outbox.",
            "messages": [
                {"$ref": f"#/channels/{producer}/messages/{m.event_name}"} for m in models
            ],
        }
        for model in models:
            schema = envelope_schema(model)
            schema.pop("$schema")
            schemas[model.event_name] = schema
            messages[model.event_name] = {
                "name": model.event_type(),
                "title": model.event_name,
                "summary": (model.__doc__ or "").strip(),
                "contentType": CONTENT_TYPE,
                "headers": {
                    "type": "object",
                    "properties": {"content-type": {"type": "string", "const": CONTENT_TYPE}},
                },
                "payload": {"$ref": f"#/components/schemas/{model.event_name}"},
                "bindings": {
                    "kafka": {
                        "key": {"type": "string", "description": "the partitionkey (aggregate id)"},
                        "bindingVersion": "0.5.0",
                    }
                },
            }
    channels["dlq"] = {
        "address": "baton.dlq",
        "description": "Events a consumer could not read or handle, with the error.",
        "messages": {"DeadLetter": {"$ref": "#/components/messages/DeadLetter"}},
    }
    messages["DeadLetter"] = {
        "name": "baton.DeadLetter",
        "contentType": "application/json",
        "payload": DEAD_LETTER_SCHEMA,
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Baton events",
            "version": "1.0.0",
            "description": (
                "The hand-off events between Marketing, Inside Sales, Field Sales and Customer "
                "Success, as CloudEvents 1.0 in structured JSON mode (Kafka value = the envelope, "
                "key = partitionkey). Generated from shared/events by `baton schemas`."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {
            "embedded": {
                "host": "127.0.0.1:9092",
                "protocol": "kafka",
                "description": "The embedded Tansu broker of `baton up`.",
            },
            "production": {
                "host": "kafka:9092",
                "protocol": "kafka-secure",
                "description": "Apache Kafka; SASL/TLS through the BATON_KAFKA_* settings.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": schemas},
    }


DEAD_LETTER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["service", "kind", "error", "topic", "partition", "offset", "failed_at"],
    "properties": {
        "service": {"type": "string", "description": "the consumer that gave up"},
        "kind": {"type": "string", "enum": ["unparseable", "failed"]},
        "error": {"type": "string"},
        "topic": {"type": "string"},
        "partition": {"type": "integer"},
        "offset": {"type": "integer"},
        "key": {"type": ["string", "null"]},
        "timestamp": {"type": "integer"},
        "failed_at": {"type": "string", "format": "date-time"},
        "payload": {"type": "string", "description": "the original value, when it is UTF-8"},
        "payload_base64": {"type": "string", "description": "the original value otherwise"},
    },
}


def render_docs() -> dict[str, str]:
    """Repo-relative path -> the text each generated file must have."""
    files = {
        ASYNCAPI_PATH: yaml.safe_dump(asyncapi(), sort_keys=False, allow_unicode=True, width=100)
    }
    for model in CATALOG:
        schema = envelope_schema(model)
        text = orjson.dumps(schema, option=orjson.OPT_INDENT_2).decode() + "\n"
        files[f"{SCHEMA_DIR}/{model.event_type()}.json"] = text
    return files


def _stale(root: Path, expected: dict[str, str]) -> list[str]:
    folder = root / SCHEMA_DIR
    if not folder.exists():
        return []
    present = {f"{SCHEMA_DIR}/{p.name}" for p in folder.glob("*.json")}
    return sorted(present - expected.keys())


def check_docs(root: Path) -> list[str]:
    """The generated files that are missing, different, or no longer generated."""
    expected = render_docs()
    drift = [
        path
        for path, text in expected.items()
        if not (root / path).exists() or (root / path).read_text() != text
    ]
    return sorted(drift + _stale(root, expected))


def write_docs(root: Path) -> list[Path]:
    """Write every generated file (and remove stale schemas); return the paths written."""
    expected = render_docs()
    for stale in _stale(root, expected):
        (root / stale).unlink()
    written = []
    for path, text in expected.items():
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists() or target.read_text() != text:
            target.write_text(text)
            written.append(target)
    return written


if __name__ == "__main__":
    repo = Path.cwd()
    if "--check" in sys.argv[1:]:
        drifted = check_docs(repo)
        print("\n".join(drifted) or "up to date")
        sys.exit(1 if drifted else 0)
    for written_path in write_docs(repo):
        print(written_path.relative_to(repo))
