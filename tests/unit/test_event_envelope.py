"""Building envelopes: subject and key from the aggregate, journey ids, event time."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import pytest

from shared.events import DealWon, LeadRecycled, new_event


def test_new_event_takes_subject_and_key_from_the_aggregate() -> None:
    lead = uuid.uuid4()
    envelope = new_event(
        LeadRecycled(lead_id=lead, reason="not now"), time=datetime(2026, 5, 1, tzinfo=UTC)
    )
    assert envelope.type == "baton.LeadRecycled.v1"
    assert envelope.source == "/services/inside_sales"
    assert envelope.subject == envelope.partitionkey == envelope.correlationid == str(lead)
    assert envelope.causationid is None
    assert "causationid" not in json.loads(envelope.to_json())


def test_follow_up_events_carry_the_journey() -> None:
    lead, opportunity, cause = uuid.uuid4(), uuid.uuid4(), str(uuid.uuid4())
    won = DealWon(
        opportunity_id=opportunity,
        lead_id=lead,
        company="K",
        amount=100,
        currency="JPY",
        mrr=10,
        term_months=12,
        contract_start="2026-07-01",
        owner_id=uuid.uuid4(),
    )
    envelope = new_event(won, correlation_id=str(lead), causation_id=cause)
    assert envelope.subject == str(opportunity)
    assert envelope.correlationid == str(lead)
    assert envelope.causationid == cause


def test_event_time_needs_a_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        new_event(LeadRecycled(lead_id=uuid.uuid4(), reason="x"), time=datetime(2026, 5, 1))
