"""Events the inside sales service consumes, and what each one does."""

from __future__ import annotations

from services.inside_sales import service
from shared.events import LeadQualified
from shared.inbox import EventContext, Handler


async def on_lead_qualified(ctx: EventContext, event: LeadQualified) -> None:
    await service.accept_mql(ctx.session, ctx.outbox, event, ctx.envelope.time)


HANDLERS: dict[str, Handler] = {LeadQualified.event_type(): on_lead_qualified}
