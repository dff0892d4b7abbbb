"""Events the marketing service consumes, and what each one does: the event -> handler table."""

from __future__ import annotations

from services.marketing import service
from shared.events import CustomerFeedbackShared, LeadDisqualified, LeadRecycled
from shared.inbox import EventContext, Handler


async def on_lead_recycled(ctx: EventContext, event: LeadRecycled) -> None:
    await service.recycle(ctx.session, str(event.lead_id), event.reason, ctx.envelope.time)


async def on_lead_disqualified(ctx: EventContext, event: LeadDisqualified) -> None:
    await service.disqualify(ctx.session, str(event.lead_id), event.reason, ctx.envelope.time)


async def on_feedback(ctx: EventContext, event: CustomerFeedbackShared) -> None:
    # The journey's correlation id is the lead it began with: that is whose feedback it is.
    envelope = ctx.envelope
    service.record_feedback(
        ctx.session, envelope.event_id, envelope.correlationid, event, envelope.time
    )


HANDLERS: dict[str, Handler] = {
    LeadRecycled.event_type(): on_lead_recycled,
    LeadDisqualified.event_type(): on_lead_disqualified,
    CustomerFeedbackShared.event_type(): on_feedback,
}
