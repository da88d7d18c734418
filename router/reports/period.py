"""The report's date range, validated before anything touches a table.

Only ``datetime.date`` objects leave this module; Table filters are built from their ``isoformat()``, so no
caller text can reach a query.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from router.errors import RouterError
from router.reports.aggregate import GROUP_BY, GroupBy

_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits only (\d matches any script's)
DEFAULT_DAYS = 7


def today_utc() -> date:
    return datetime.now(UTC).date()


@dataclass(frozen=True)
class Period:
    start: date
    end: date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def _bad(param: str, message: str) -> RouterError:
    return RouterError(f"{param}: {message}", code="validation_error", status=400)


def parse_date(param: str, text: str) -> date:
    if not _DATE.fullmatch(text):
        raise _bad(param, "must be a date as YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise _bad(param, "is not a calendar date") from None


def parse_period(start: str | None, end: str | None, *, max_days: int, today: date | None = None) -> Period:
    """``from``/``to`` (inclusive, UTC days). Missing ``to`` is today; missing ``from`` is 7 days ending at
    ``to``. Errors name the parameter and never echo its value."""
    today = today or today_utc()
    end_day = parse_date("to", end) if end is not None else today
    if start is not None:
        start_day = parse_date("from", start)
    elif end_day.toordinal() > DEFAULT_DAYS:
        start_day = end_day - timedelta(days=DEFAULT_DAYS - 1)
    else:
        start_day = date.min
    if start_day > end_day:
        raise _bad("from", "must be on or before to")
    period = Period(start_day, end_day)
    if period.days > max_days:
        raise _bad("to", f"the range is {period.days} days; at most {max_days} are allowed (REPORT_MAX_DAYS)")
    return period


def parse_group_by(value: str | None) -> GroupBy | None:
    if value is None:
        return None
    for option in GROUP_BY:
        if value == option:
            return option
    raise _bad("group_by", "must be one of " + ", ".join(GROUP_BY))
