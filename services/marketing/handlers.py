"""Events the marketing service consumes, and what each one does: the event -> handler table."""

from __future__ import annotations

from services.marketing import service
from shared.events import LeadDisqualified, LeadRecycled
from shared.inbox import EventContext, Handler


async def on_lead_recycled(ctx: EventContext, event: LeadRecycled) -> None:
    await service.set_status(ctx.session, str(event.lead_id), "recycled", event.reason)


async def on_lead_disqualified(ctx: EventContext, event: LeadDisqualified) -> None:
    await service.set_status(ctx.session, str(event.lead_id), "disqualified", event.reason)


HANDLERS: dict[str, Handler] = {
    LeadRecycled.event_type(): on_lead_recycled,
    LeadDisqualified.event_type(): on_lead_disqualified,
}
