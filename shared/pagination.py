"""Opaque cursors for keyset pagination: the sort key of the last item of a page."""

from __future__ import annotations

import base64
import uuid
from datetime import datetime

import orjson

from shared.problems import Problem


def encode_cursor(at: datetime, key: str) -> str:
    raw = orjson.dumps([at.isoformat(), key])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    """The (time, id) a cursor stands for; 422 naming `cursor` if it is not one of ours."""
    if cursor is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        at, key = orjson.loads(raw)
        return datetime.fromisoformat(at), str(uuid.UUID(key))
    except (ValueError, TypeError, orjson.JSONDecodeError) as exc:
        reason = [{"name": "cursor", "reason": "not a cursor this service gave out"}]
        raise Problem(422, "invalid cursor", type="validation", errors=reason) from exc
