"""Use cases of the marketing service; the caller's transaction commits them."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.marketing import domain, repository
from services.marketing.captures import CaptureWriter
from services.marketing.models import (
    Activity,
    Campaign,
    CampaignCost,
    Feedback,
    Lead,
    ScoringModelVersion,
    StatusChange,
)
from services.marketing.schemas import (
    ActivityCreate,
    ActivityResult,
    CampaignCostCreate,
    CampaignCreate,
    ImportRowError,
    LeadCreate,
    ScoringModelBody,
)
from shared import versions
from shared.db import on_postgres, read_only
from shared.errors import Conflict, Invalid, NotFound
from shared.events import (
    CampaignCostRecorded,
    CustomerFeedbackShared,
    LeadCaptured,
    LeadEngaged,
    LeadQualified,
    MqlRule,
)
from shared.ids import new_id, new_ids
from shared.outbox import Outbox


def duplicate_lead(existing_id: str) -> Conflict:
    return Conflict(
        "a lead with this email exists",
        kind="duplicate-lead",
        existing_id=existing_id,
        errors=[{"name": "email", "reason": "already known"}],
    )


def now() -> datetime:
    return datetime.now(UTC)


# A scoring model version never changes (a change is a new version), so each database's model in
# force is parsed once and kept with its version. A request still asks which version is in force,
# which is cheap: a change made through any process applies from the next request on.
_models: WeakKeyDictionary[Engine | Connection, tuple[int, domain.ScoringModel]] = (
    WeakKeyDictionary()
)
DEFAULT_MODEL = domain.ScoringModel()


_IN_TRANSACTION = "marketing.scoring_model"  # session.info: (its transaction, model, version)


async def current_model(session: AsyncSession) -> tuple[domain.ScoringModel, int]:
    """The scoring model in force and its version (0: the built-in defaults), asked once a
    transaction."""
    known = session.info.get(_IN_TRANSACTION)
    if known is not None and known[0] is session.get_transaction():
        return known[1], known[2]
    model, version = await _model_in_force(session)
    session.info[_IN_TRANSACTION] = (session.get_transaction(), model, version)
    return model, version


async def _model_in_force(session: AsyncSession) -> tuple[domain.ScoringModel, int]:
    version = await repository.scoring_model_version(session)
    if version == 0:
        return DEFAULT_MODEL, 0
    database = session.get_bind()
    cached = _models.get(database)
    if cached is None or cached[0] != version:
        stored = await versions.latest(session, ScoringModelVersion)
        if stored is None:
            return DEFAULT_MODEL, 0
        cached = _models[database] = (stored.version, model_from_json(stored.body))
    return cached[1], cached[0]


def model_from_json(raw: dict[str, object]) -> domain.ScoringModel:
    body = ScoringModelBody.model_validate(raw)
    return domain.ScoringModel(
        activity_points={str(k): v for k, v in body.activity_points.items()},
        fit_rules=tuple(domain.FitRule(r.field, r.contains, r.points) for r in body.fit_rules),
        decay_after_days=body.decay_after_days,
        decay_half_life_days=body.decay_half_life_days,
        mql_min_score=body.mql_min_score,
        mql_min_touches=body.mql_min_touches,
    )


def model_to_body(model: domain.ScoringModel) -> ScoringModelBody:
    return ScoringModelBody.model_validate(
        {
            "activity_points": dict(model.activity_points),
            "fit_rules": [asdict(r) for r in model.fit_rules],
            "decay_after_days": model.decay_after_days,
            "decay_half_life_days": model.decay_half_life_days,
            "mql_min_score": model.mql_min_score,
            "mql_min_touches": model.mql_min_touches,
        }
    )


NewLead = dict[str, Any]  # a new lead's column values (`new_lead`)


async def capture_leads(
    captures: CaptureWriter, outbox: Outbox, bodies: Sequence[LeadCreate]
) -> list[NewLead | Exception]:
    """Create each lead (email unique) with its LeadCaptured, in one transaction; for each body,
    its new lead's column values or the error that refused it (a known email, answered with the
    existing lead's id; an unknown campaign). Many at once: `shared.group_commit`."""
    version, model = captures.model
    while True:
        chunk = prepare_chunk(list(bodies), model, now(), outbox)
        written = await captures.write(chunk.leads, chunk.events, version)
        if written.version == version:
            break
        # Another version is in force: the leads are scored again with it (a change made
        # through any process applies from the next capture on).
        async with captures.sessions() as session:
            model, version = await _model_in_force(session)
        captures.model = (version, model)
    # The insert is the uniqueness check: a known email (even one a concurrent twin, or a twin in
    # the same group, has just taken) leaves its lead out, without a query before it.
    inserted = set(written.inserted)
    results: list[NewLead | Exception] = []
    left_out: list[int] = []
    for index, lead in enumerate(chunk.leads):
        results.append(lead)
        if lead["id"] not in inserted:
            left_out.append(index)
    if left_out:  # why: an unknown campaign (said first, as with any other write), or the email
        refused = [bodies[index] for index in left_out]
        async with captures.sessions() as session:
            await read_only(session)
            known = await known_campaigns(session, refused)
            existing = await repository.lead_ids_by_email(session, {b.email for b in refused})
        for index, body in zip(left_out, refused, strict=True):
            if body.campaign_id and str(body.campaign_id) not in known:
                results[index] = unknown_campaign(body.campaign_id)
            else:
                results[index] = duplicate_lead(existing.get(body.email, ""))
    return results


async def known_campaigns(session: AsyncSession, bodies: Iterable[LeadCreate]) -> set[str]:
    """Which of the campaigns `bodies` name exist."""
    campaigns = {str(body.campaign_id) for body in bodies if body.campaign_id}
    return await repository.existing_campaigns(session, campaigns) if campaigns else set()


def unknown_campaign(campaign_id: uuid.UUID) -> Invalid:
    return Invalid.fields(f"no campaign {campaign_id}", campaign_id="unknown campaign")


def new_lead(
    body: LeadCreate,
    model: domain.ScoringModel,
    captured_at: datetime,
    lead_id: str | None = None,
) -> NewLead:
    """The column values of a new lead."""
    return {
        "id": lead_id or new_id(),
        "email": body.email,
        "name": body.name,
        "company": body.company,
        "title": body.title,
        "source": body.source,
        "campaign_id": str(body.campaign_id) if body.campaign_id else None,
        "status": "new",
        "captured_at": captured_at,
        "score": model.fit_points(body.title, body.company),
        "touches": 0,
        "times_qualified": 0,
    }


async def record_activity(
    session: AsyncSession, outbox: Outbox, lead_id: str, body: ActivityCreate
) -> ActivityResult:
    """Score the activity into the lead's history; cross the MQL line -> LeadQualified, once."""
    lead = await repository.get_lead(session, lead_id, lock=True)
    if lead is None:
        raise NotFound(f"no lead {lead_id}")
    model, _ = await current_model(session)
    occurred_at = body.occurred_at or now()
    points = model.points_for(body.type)
    session.add(Activity(lead_id=lead.id, type=body.type, points=points, occurred_at=occurred_at))
    await session.flush()
    current = await rescore(session, lead, model)
    if lead.status == "new":
        lead.status = "nurturing"
    outbox.emit(
        session,
        LeadEngaged(
            lead_id=uuid.UUID(lead.id),
            activity=body.type,
            points=points,
            score=current.total,
            touches=current.touches,
        ),
        time=occurred_at,
    )
    qualified = domain.can_qualify(lead.status) and current.is_mql(model)
    if qualified:
        qualify(
            session, outbox, lead, model, max(occurred_at, current.last_activity_at or occurred_at)
        )
    return ActivityResult(
        lead_id=uuid.UUID(lead.id),
        type=body.type,
        points=points,
        score=lead.score,
        touches=lead.touches,
        status=lead.status,
        qualified=qualified,
    )


def score_of(lead: Lead, model: domain.ScoringModel, history: Iterable[Activity]) -> domain.Score:
    """The lead's score from its activity rows (those since its last recycle count)."""
    activities = (domain.Activity(a.type, a.occurred_at) for a in history)
    return domain.score(model, lead.title, lead.company, activities, since=lead.engagement_since)


async def rescore(session: AsyncSession, lead: Lead, model: domain.ScoringModel) -> domain.Score:
    """Recompute the lead's score from its history and store it."""
    current = score_of(lead, model, await repository.activities_of(session, lead.id))
    lead.score = current.total
    lead.touches = current.touches
    lead.last_activity_at = current.last_activity_at
    return current


def qualify(
    session: AsyncSession,
    outbox: Outbox,
    lead: Lead,
    model: domain.ScoringModel,
    at: datetime,
) -> None:
    """The MQL hand-off: status and event in one transaction."""
    lead.status = "mql"
    lead.qualified_at = at
    lead.times_qualified += 1
    session.add(StatusChange(lead_id=lead.id, status="mql", occurred_at=at))
    outbox.emit(
        session,
        LeadQualified(
            lead_id=uuid.UUID(lead.id),
            email=lead.email,
            name=lead.name,
            company=lead.company,
            title=lead.title,
            source=lead.source,
            campaign_id=uuid.UUID(lead.campaign_id) if lead.campaign_id else None,
            score=lead.score,
            touches=lead.touches,
            rule=MqlRule(min_score=model.mql_min_score, min_touches=model.mql_min_touches),
        ),
        time=at,
    )


async def recycle(session: AsyncSession, lead_id: str, reason: str, at: datetime) -> None:
    """Inside Sales sent the lead back: nurture it again from zero engagement."""
    lead = await repository.get_lead(session, lead_id, lock=True)
    if lead is None or lead.status == "disqualified":
        return
    lead.status = "recycled"
    lead.status_reason = reason
    lead.engagement_since = at
    session.add(StatusChange(lead_id=lead.id, status="recycled", reason=reason, occurred_at=at))
    model, _ = await current_model(session)
    await rescore(session, lead, model)


async def disqualify(session: AsyncSession, lead_id: str, reason: str, at: datetime) -> None:
    """Inside Sales judged the lead no fit: it never qualifies again."""
    lead = await repository.get_lead(session, lead_id, lock=True)
    if lead is None:
        return
    lead.status = "disqualified"
    lead.status_reason = reason
    session.add(StatusChange(lead_id=lead.id, status="disqualified", reason=reason, occurred_at=at))


def record_feedback(
    session: AsyncSession, event_id: str, lead_id: str, data: CustomerFeedbackShared, at: datetime
) -> None:
    session.add(
        Feedback(
            event_id=event_id,
            account_id=str(data.account_id),
            lead_id=lead_id,
            kind=data.kind,
            text=data.text,
            occurred_at=at,
        )
    )


async def create_campaign(session: AsyncSession, body: CampaignCreate) -> Campaign:
    campaign = Campaign(id=new_id(), name=body.name, channel=body.channel, created_at=now())
    session.add(campaign)
    return campaign


async def record_cost(
    session: AsyncSession, outbox: Outbox, campaign_id: str, body: CampaignCostCreate
) -> CampaignCost:
    campaign = await repository.get_campaign(session, campaign_id)
    if campaign is None:
        raise NotFound(f"no campaign {campaign_id}")
    cost = CampaignCost(
        campaign_id=campaign.id,
        amount=body.amount,
        currency=body.currency,
        period_start=body.period_start,
        period_end=body.period_end,
        recorded_at=now(),
    )
    session.add(cost)
    await session.flush()
    outbox.emit(
        session,
        CampaignCostRecorded(
            campaign_id=uuid.UUID(campaign.id),
            channel=campaign.channel,
            amount=body.amount,
            currency=body.currency,
            period_start=body.period_start,
            period_end=body.period_end,
        ),
        time=datetime.combine(body.period_start, datetime.min.time(), UTC),
    )
    return cost


IMPORT_CHUNK = 2_000  # leads per transaction: other writers get their turn in between
# Chunks written side by side on PostgreSQL, each in its own transaction: while one waits on the
# server, the next one's rows are on their way (SQLite has one writer at a time). The chunks of
# one import hold distinct emails, so they never wait on each other's rows.
IMPORT_WRITERS = 4


@dataclass(frozen=True)
class ImportChunk:
    """A chunk of an import made ready to write: its leads' rows and their outbox rows."""

    leads: list[dict[str, Any]]
    events: list[dict[str, Any]]  # one per lead, in the same order


async def import_leads(
    sessions: async_sessionmaker[AsyncSession], outbox: Outbox, rows: list[tuple[int, LeadCreate]]
) -> tuple[int, int, list[ImportRowError]]:
    """Import validated rows: (created, duplicates, rows naming unknown campaigns).

    A transaction per chunk of leads, up to `IMPORT_WRITERS` of them at a time on PostgreSQL.
    While chunks are written, a worker thread makes the next one's rows and events, so that the
    CPU's work overlaps the database's. A chunk that fails cancels those being written; those
    committed before stay.
    """
    async with sessions() as session:
        model, _ = await current_model(session)
        known = await known_campaigns(session, (body for _, body in rows))
    accepted, repeats, errors = sort_import(rows, known)
    chunks = [accepted[i : i + IMPORT_CHUNK] for i in range(0, len(accepted), IMPORT_CHUNK)]
    captured = now()

    def prepare(index: int) -> asyncio.Future[ImportChunk]:
        return asyncio.ensure_future(
            asyncio.to_thread(prepare_chunk, chunks[index], model, captured, outbox)
        )

    async def write(chunk: ImportChunk) -> int:
        async with sessions() as session, session.begin():
            return len(await write_chunk(session, outbox, chunk))

    writers = IMPORT_WRITERS if on_postgres(sessions) else 1
    made = 0
    preparing = prepare(0) if chunks else None
    writing: list[asyncio.Task[int]] = []
    try:
        async with asyncio.TaskGroup() as group:  # a failed chunk cancels the others
            while preparing is not None:
                chunk = await preparing
                made += 1
                preparing = prepare(made) if made < len(chunks) else None
                running = [task for task in writing if not task.done()]
                if len(running) >= writers:
                    await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                writing.append(group.create_task(write(chunk)))
    except ExceptionGroup as failed:  # raised as the chunk raised it
        raise failed.exceptions[0] from failed
    finally:
        if preparing is not None:
            preparing.cancel()
    created = sum(task.result() for task in writing)
    return created, repeats + len(accepted) - created, errors


def sort_import(
    rows: Sequence[tuple[int, LeadCreate]], known_campaigns: set[str]
) -> tuple[list[LeadCreate], int, list[ImportRowError]]:
    """The rows to insert, how many repeat an email earlier in the file (duplicates, like a
    known email), and the rows naming an unknown campaign."""
    accepted: list[LeadCreate] = []
    errors: list[ImportRowError] = []
    seen: set[str] = set()
    for line, body in rows:
        if body.campaign_id and str(body.campaign_id) not in known_campaigns:
            errors.append(ImportRowError(line=line, field="campaign_id", reason="unknown campaign"))
        elif body.email not in seen:
            seen.add(body.email)
            accepted.append(body)
    return accepted, len(rows) - len(errors) - len(accepted), errors


def prepare_chunk(
    bodies: list[LeadCreate], model: domain.ScoringModel, captured: datetime, outbox: Outbox
) -> ImportChunk:
    """The rows of a chunk's leads and of their LeadCaptured events (no I/O)."""
    leads = [
        new_lead(body, model, body.occurred_at or captured, lead_id)
        for body, lead_id in zip(bodies, new_ids(len(bodies)), strict=True)
    ]
    # LeadCreate validated each field with LeadCaptured's own types: no need to validate again.
    events = [({"lead_id": r["id"], **r}, r["captured_at"]) for r in leads]
    return ImportChunk(leads, outbox.rows(LeadCaptured, events))


async def write_chunk(session: AsyncSession, outbox: Outbox, chunk: ImportChunk) -> set[str]:
    """Insert the chunk's leads whose email is not known yet, with their events; the ids of
    those created."""
    inserted = await repository.insert_new_leads(session, chunk.leads)
    events = [e for r, e in zip(chunk.leads, chunk.events, strict=True) if r["id"] in inserted]
    await outbox.add_rows(session, events)
    return inserted
