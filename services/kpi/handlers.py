"""The KPI service consumes every event of the catalog and keeps it as a fact."""

from __future__ import annotations

from services.kpi.models import EventFact
from shared.events import EVENT_TYPES, EventData
from shared.inbox import EventContext, Handler


async def record_fact(ctx: EventContext, event: EventData) -> None:
    envelope = ctx.envelope
    ctx.session.add(
        EventFact(
            event_id=str(envelope.id),
            event_type=envelope.type,
            subject=envelope.subject,
            correlation_id=envelope.correlationid,
            occurred_at=envelope.time,
            data=envelope.data,
        )
    )


HANDLERS: dict[str, Handler] = dict.fromkeys(EVENT_TYPES, record_fact)
