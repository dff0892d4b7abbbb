"""Building envelopes: subject and key from the aggregate, journey ids, event time."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from pydantic import AwareDatetime, TypeAdapter

from shared.events import (
    CampaignCostRecorded,
    DealWon,
    LeadCaptured,
    LeadQualified,
    LeadRecycled,
    MqlRule,
    envelope_json,
    event_ids,
    new_event,
)


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


def test_a_batch_of_envelopes_gets_its_event_ids_at_once() -> None:
    envelopes = [new_event(LeadRecycled(lead_id=uuid.uuid4(), reason="x")) for _ in range(3)]
    assert event_ids(envelopes) == [str(envelope.id) for envelope in envelopes]
    assert [envelope.event_id for envelope in envelopes] == [str(e.id) for e in envelopes]


def test_event_time_needs_a_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        new_event(LeadRecycled(lead_id=uuid.uuid4(), reason="x"), time=datetime(2026, 5, 1))


JST = timezone(timedelta(hours=9))
CAPTURED = [
    LeadCaptured(lead_id=uuid.uuid4(), email="a@x.jp", name="A", company="C", source="seo"),
    LeadCaptured(
        lead_id=uuid.uuid4(),
        email="b@x.jp",
        name="B \u00e9\u65e5\u672c",
        company='Quote " and \\ KK',
        title="Head of Sales",
        source="ads",
        campaign_id=uuid.uuid4(),
    ),
]
TIMES = [
    datetime(2026, 3, 1, 9, 0, 0, 123456, tzinfo=UTC),
    datetime(2026, 3, 1, 9, 0, tzinfo=UTC),  # no microseconds
    datetime(2026, 3, 1, 9, 0, 0, 5, tzinfo=JST),
    TypeAdapter(AwareDatetime).validate_python("2026-03-10T09:00:00.1-05:30"),  # pydantic's zone
]


@pytest.mark.parametrize("time", TIMES)
@pytest.mark.parametrize("data", CAPTURED)
@pytest.mark.parametrize("journey", [(None, None), ("journey-1", str(uuid.uuid4()))])
def test_envelope_json_is_what_the_envelope_model_writes(
    data: LeadCaptured, time: datetime, journey: tuple[str | None, str | None]
) -> None:
    """The bulk path's envelope, byte for byte the model's: UUIDs, times and their zones, None
    fields, text needing escapes, the journey ids."""
    event_id = uuid.uuid4()
    correlation_id, causation_id = journey
    expected = new_event(
        data,
        time=time,
        event_id=event_id,
        correlation_id=correlation_id,
        causation_id=causation_id,
    ).to_json()
    given = [(data.model_dump(), event_id), (data.model_dump(mode="json"), str(event_id))]
    for as_given, given_id in given:
        written = envelope_json(
            LeadCaptured,
            as_given,
            event_id=given_id,
            time=time,
            correlation_id=correlation_id,
            causation_id=causation_id,
        )
        assert written == expected


def test_envelope_json_of_nested_data_and_dates() -> None:
    """Data with a nested model (LeadQualified's rule) and dates, given in its JSON form."""
    qualified = LeadQualified(
        lead_id=uuid.uuid4(),
        email="q@x.jp",
        name="Q",
        company="C",
        source="webinar",
        score=90,
        touches=4,
        rule=MqlRule(min_score=80, min_touches=3),
    )
    cost = CampaignCostRecorded(
        campaign_id=uuid.uuid4(),
        channel="ads",
        amount=1000,
        currency="JPY",
        period_start=date(2026, 3, 1),
        period_end=date(2026, 3, 31),
    )
    event_id, time = uuid.uuid4(), datetime(2026, 3, 1, tzinfo=UTC)
    for data in (qualified, cost):
        written = envelope_json(
            type(data), data.model_dump(mode="json"), event_id=event_id, time=time
        )
        assert written == new_event(data, time=time, event_id=event_id).to_json()


def test_envelope_json_needs_a_zone() -> None:
    with pytest.raises(ValueError, match="time zone"):
        envelope_json(
            LeadCaptured,
            CAPTURED[0].model_dump(),
            event_id=uuid.uuid4(),
            time=datetime(2026, 3, 1),
        )
