"""What a bulk import inserts, before any I/O: rows sorted out, leads and events made."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import orjson

from services.marketing import domain
from services.marketing.schemas import LeadCreate
from services.marketing.service import prepare_chunk, sort_import
from shared.events import LeadCaptured
from shared.outbox import Outbox, lane_of

CAMPAIGN = uuid.uuid4()


def lead(email: str, campaign: uuid.UUID | None = None) -> LeadCreate:
    return LeadCreate(email=email, name="N", company="C", source="seo", campaign_id=campaign)


def test_rows_naming_an_unknown_campaign_are_errors_and_repeats_are_duplicates() -> None:
    rows = [
        (2, lead("a@x.jp")),
        (3, lead("b@x.jp", CAMPAIGN)),
        (4, lead("a@x.jp")),  # repeats line 2
        (5, lead("c@x.jp", uuid.uuid4())),  # unknown campaign
        (6, lead("c@x.jp")),  # not a repeat: line 5 was not accepted
    ]
    accepted, repeats, errors = sort_import(rows, {str(CAMPAIGN)})
    assert [body.email for body in accepted] == ["a@x.jp", "b@x.jp", "c@x.jp"]
    assert repeats == 1
    assert [(e.line, e.field) for e in errors] == [(5, "campaign_id")]


def test_a_chunk_holds_each_lead_and_its_lead_captured_event() -> None:
    captured = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    earlier = datetime(2026, 2, 1, 9, 0, tzinfo=UTC)
    bodies = [lead("a@x.jp"), lead("b@x.jp", CAMPAIGN).model_copy(update={"occurred_at": earlier})]
    chunk = prepare_chunk(bodies, domain.ScoringModel(), captured, Outbox("baton.marketing", 8))
    assert [r["email"] for r in chunk.leads] == ["a@x.jp", "b@x.jp"]
    assert [r["captured_at"] for r in chunk.leads] == [captured, earlier]
    assert len({r["id"] for r in chunk.leads}) == 2
    for row, event in zip(chunk.leads, chunk.events, strict=True):
        envelope = orjson.loads(event["payload"])
        assert event["key"] == envelope["partitionkey"] == envelope["data"]["lead_id"] == row["id"]
        assert event["event_id"] == envelope["id"]
        assert event["lane"] == lane_of(row["id"], 8)
        assert event["event_type"] == envelope["type"] == "baton.LeadCaptured.v1"
        assert event["occurred_at"] == row["captured_at"]
    assert orjson.loads(chunk.events[1]["payload"])["data"]["campaign_id"] == str(CAMPAIGN)


def test_a_validated_lead_is_valid_as_lead_captured() -> None:
    """The import skips validating LeadCaptured again: LeadCreate checks each field LeadCaptured
    takes from it with the same types and constraints."""
    for name, captured in LeadCaptured.model_fields.items():
        if name == "lead_id":
            continue  # made by the service
        created = LeadCreate.model_fields[name]
        assert created.annotation == captured.annotation, name
        assert created.metadata == captured.metadata, name
