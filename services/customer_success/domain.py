"""Customer Success rules, free of I/O."""

from __future__ import annotations

import calendar
from datetime import date


def renewal_date(contract_start: date, term_months: int) -> date:
    """The day the contract ends and is up for renewal (month arithmetic, clamped to month end)."""
    months = contract_start.month - 1 + term_months
    year, month = contract_start.year + months // 12, months % 12 + 1
    day = min(contract_start.day, calendar.monthrange(year, month)[1])
    return date(year, month, day)
