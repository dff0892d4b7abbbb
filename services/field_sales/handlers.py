"""Events the field sales service consumes, and what each one does."""

from __future__ import annotations

from services.field_sales import service
from shared.events import ChurnRisk, OpportunityCreated
from shared.inbox import EventContext, Handler


async def on_opportunity_created(ctx: EventContext, event: OpportunityCreated) -> None:
    await service.open_opportunity(ctx.session, event, ctx.envelope.time)


async def on_churn_risk(ctx: EventContext, event: ChurnRisk) -> None:
    await service.raise_alert(ctx.session, ctx.envelope.event_id, event, ctx.envelope.time)


HANDLERS: dict[str, Handler] = {
    OpportunityCreated.event_type(): on_opportunity_created,
    ChurnRisk.event_type(): on_churn_risk,
}
