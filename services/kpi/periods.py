"""Calendar periods in the reporting time zone: days, ISO weeks and months (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

WEEK_PATTERN = re.compile(r"^(\d{4})-W(\d{2})$")


class Granularity(StrEnum):
    day = "day"
    week = "week"
    month = "month"


@dataclass(frozen=True, slots=True)
class Period:
    """Local days `[start, end)`, labelled like `2026-11-23`, `2026-W48` or `2026-11`."""

    start: date
    end: date
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days


def local_day(moment: datetime, tz: ZoneInfo) -> date:
    """The calendar day `moment` falls on in `tz`."""
    return moment.astimezone(tz).date()


def day_start(day: date, tz: ZoneInfo) -> datetime:
    """The instant (UTC) at which `day` begins in `tz`."""
    return datetime.combine(day, time(), tz).astimezone(UTC)


def bucket_start(day: date, granularity: Granularity) -> date:
    if granularity is Granularity.week:
        return day - timedelta(days=day.weekday())
    if granularity is Granularity.month:
        return day.replace(day=1)
    return day


def next_bucket(start: date, granularity: Granularity) -> date:
    if granularity is Granularity.week:
        return start + timedelta(days=7)
    if granularity is Granularity.month:
        return date(start.year + start.month // 12, start.month % 12 + 1, 1)
    return start + timedelta(days=1)


def label(start: date, granularity: Granularity) -> str:
    if granularity is Granularity.week:
        year, week, _ = start.isocalendar()
        return f"{year}-W{week:02d}"
    if granularity is Granularity.month:
        return f"{start.year}-{start.month:02d}"
    return start.isoformat()


def split(start: date, end: date, granularity: Granularity) -> list[Period]:
    """The calendar buckets that cover `[start, end)`, the first and last cut to the range."""
    periods = []
    cursor = start
    while cursor < end:
        bucket = bucket_start(cursor, granularity)
        stop = min(next_bucket(bucket, granularity), end)
        periods.append(Period(cursor, stop, label(bucket, granularity)))
        cursor = stop
    return periods


def iso_week(text: str) -> Period:
    """The ISO week `YYYY-Www` as a period; ValueError if there is no such week."""
    match = WEEK_PATTERN.match(text)
    if not match:
        raise ValueError("expected an ISO week like 2026-W48")
    start = date.fromisocalendar(int(match[1]), int(match[2]), 1)
    return Period(start, start + timedelta(days=7), text)


def previous(period: Period) -> Period:
    """The period of the same length just before `period`."""
    length = timedelta(days=period.days)
    start = period.start - length
    return Period(start, period.start, label(start, Granularity.week) if period.days == 7 else "")


def default_range(today: date, granularity: Granularity) -> tuple[date, date]:
    """The last 12 periods up to and including the current one."""
    end = next_bucket(bucket_start(today, granularity), granularity)
    start = bucket_start(today, granularity)
    for _ in range(11):
        start = bucket_start(start - timedelta(days=1), granularity)
    return start, end
