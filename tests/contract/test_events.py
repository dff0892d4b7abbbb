"""The event contract: a golden example per event, the generated documents, and rejections."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shared.events import (
    CATALOG,
    EVENT_TYPES,
    EventParseError,
    decode,
    parse_envelope,
    parse_event,
)
from shared.events.docs import SCHEMA_DIR, asyncapi, check_docs, render_docs

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = Path(__file__).parent / "examples"
TYPES = sorted(EVENT_TYPES)


def example(event_type: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EXAMPLES / f"{event_type}.json").read_text())
    return loaded


def test_every_event_has_a_golden_example() -> None:
    assert sorted(p.stem for p in EXAMPLES.glob("*.json")) == TYPES
    assert len(CATALOG) == 23


@pytest.mark.parametrize("event_type", TYPES)
def test_golden_example_round_trips(event_type: str) -> None:
    raw = example(event_type)
    envelope = parse_envelope(json.dumps(raw))
    data = decode(envelope)
    assert type(data) is EVENT_TYPES[event_type]
    assert envelope.subject == envelope.partitionkey == data.aggregate_id()
    assert json.loads(envelope.to_json()) == raw
    assert data.model_dump(mode="json") == raw["data"]


@pytest.mark.parametrize("event_type", TYPES)
def test_one_validation_reads_what_two_steps_read(event_type: str) -> None:
    """`parse_event` (the consumers' way) gives the attributes and data that `parse_envelope`
    then `decode` give."""
    raw = json.dumps({**example(event_type), "extension": "kept"})
    event = parse_event(raw)
    assert event is not None
    attributes, data = event
    envelope = parse_envelope(raw)
    assert data == decode(envelope) and type(data) is EVENT_TYPES[event_type]
    assert attributes.model_dump(exclude={"data"}) == envelope.model_dump(exclude={"data"})
    assert attributes.event_id == envelope.event_id == str(envelope.id)


@pytest.mark.parametrize("event_type", TYPES)
def test_golden_example_matches_the_published_schema(event_type: str) -> None:
    schema = json.loads((ROOT / SCHEMA_DIR / f"{event_type}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    jsonschema.validate(example(event_type), schema, cls=jsonschema.Draft202012Validator)


def test_committed_documents_match_the_models() -> None:
    drift = check_docs(ROOT)
    assert drift == [], f"generated documents are out of date, run `baton schemas`: {drift}"


def test_asyncapi_names_every_event_once() -> None:
    document = asyncapi()
    assert document["asyncapi"] == "3.0.0"
    messages = {m for c in document["channels"].values() for m in c["messages"]}
    assert messages == {m.event_name for m in CATALOG} | {"DeadLetter"}
    assert set(render_docs()) == {"docs/asyncapi.yaml"} | {f"{SCHEMA_DIR}/{t}.json" for t in TYPES}


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"type": "baton.LeadTeleported.v1"}, "type"),
        ({"time": "2026-04-14T10:30:00"}, "time"),
        ({"id": "not-a-uuid"}, "id"),
        ({"specversion": "0.3"}, "specversion"),
    ],
)
def test_bad_envelopes_are_rejected_naming_the_field(change: dict[str, Any], named: str) -> None:
    raw = {**example("baton.DealWon.v1"), **change}
    with pytest.raises(EventParseError, match=named):
        decode(parse_envelope(json.dumps(raw)))
    assert parse_event(json.dumps(raw)) is None  # (then read in two steps, to say why)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"currency": "yen"}, "currency"),
        ({"lead_id": "42"}, "lead_id"),
        ({"surprise": True}, "surprise"),
        ({"term_months": 0}, "term_months"),
    ],
)
def test_bad_data_is_rejected_naming_the_field(change: dict[str, Any], named: str) -> None:
    raw = example("baton.DealWon.v1")
    raw["data"] = {**raw["data"], **change}
    with pytest.raises(EventParseError, match=named):
        decode(parse_envelope(json.dumps(raw)))
    assert parse_event(json.dumps(raw)) is None


def test_missing_data_field_is_named() -> None:
    raw = example("baton.ChurnRisk.v1")
    del raw["data"]["mrr_at_risk"]
    with pytest.raises(EventParseError, match="mrr_at_risk"):
        decode(parse_envelope(json.dumps(raw)))


def test_not_json_is_an_event_parse_error() -> None:
    with pytest.raises(EventParseError):
        parse_envelope(b"\xff not json")
    assert parse_event(b"\xff not json") is None
