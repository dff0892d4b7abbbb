"""Inside Sales rules, free of I/O."""

from __future__ import annotations

from datetime import datetime, timedelta

DEFAULT_RESPONSE_SLA = timedelta(hours=24)


def respond_by(qualified_at: datetime, sla: timedelta = DEFAULT_RESPONSE_SLA) -> datetime:
    """When the first contact with an MQL is due: its qualification time plus the response SLA."""
    return qualified_at + sla
