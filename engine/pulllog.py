"""Keeping and querying the pull log (``tb_pull_log``): the statutory minimum retention, the
``TONGBAN_PULL_LOG_RETENTION_DAYS`` setting, and the moments the log's filters take.

Every data pull, service call and unmasking is logged and the log is kept at least 3 years
(个人信息保护法); ``Engine.purge_pull_log`` refuses anything shorter. Unset, the setting keeps the
log forever; set, the worker purges entries older than it once a day.
"""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from .errors import Invalid

PULL_LOG_MIN_DAYS = 1096  # 3 years, leap day included: the statutory minimum
RETENTION_ENV = "TONGBAN_PULL_LOG_RETENTION_DAYS"
OUTCOMES = ("ok", "error")
KINDS = ("pull", "service", "unmask")  # what the log records: data pulls, service calls, unmaskings
LOCAL = ZoneInfo("Asia/Shanghai")
MOMENT_FORMAT = "an ISO 8601 date or date-time, e.g. 2026-01-31 or 2026-01-31T17:00:00+08:00"


def check_days(days, field: str = "older_than_days") -> int:
    """``days`` as an int when it keeps the log at least ``PULL_LOG_MIN_DAYS``; else ``Invalid``."""
    if isinstance(days, bool) or not isinstance(days, int):
        raise Invalid(f"{field} must be a whole number of days, not {days!r}",
                      {field: "must be a whole number of days"})
    if days < PULL_LOG_MIN_DAYS:
        raise Invalid(f"{field} is {days} days: the pull log must be kept at least {PULL_LOG_MIN_DAYS} days "
                      f"(3 years)", {field: f"must be at least {PULL_LOG_MIN_DAYS} (3 years)"})
    return days


def retention_days(environ=None) -> int | None:
    """The ``TONGBAN_PULL_LOG_RETENTION_DAYS`` setting: None when unset (keep forever), else the
    number of days; a value that is not a whole number or is below the minimum is ``Invalid``."""
    raw = (os.environ if environ is None else environ).get(RETENTION_ENV, "").strip()
    if not raw:
        return None
    try:
        days = int(raw, 10)
    except ValueError:
        raise Invalid(f"{RETENTION_ENV} must be a whole number of days (at least {PULL_LOG_MIN_DAYS}), "
                      f"not {raw!r}", {RETENTION_ENV: "must be a whole number of days"}) from None
    return check_days(days, RETENTION_ENV)


def cutoff(now: datetime, days: int) -> datetime:
    """The moment before which entries older than ``days`` lie."""
    try:
        return now - timedelta(days=days)
    except OverflowError:
        raise Invalid(f"older_than_days is {days} days: that reaches before the year 1",
                      {"older_than_days": "is too large"}) from None


def parse_moment(text: str, *, naive_is_local: bool = True) -> datetime:
    """An ISO 8601 date or date-time as an aware UTC datetime, for the log's ``since``/``until``.

    A date means 00:00 in Asia/Shanghai. A date-time without an offset is Asia/Shanghai time, or
    refused when ``naive_is_local`` is false. ``ValueError`` says what is wrong, in a phrase that
    follows the parameter's name ("must be ...")."""
    raw = (text or "").strip()
    if not raw:
        raise ValueError(f"must be {MOMENT_FORMAT}")
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        day = None
    if day is not None:
        value = datetime(day.year, day.month, day.day, tzinfo=LOCAL)
    else:
        try:
            value = datetime.fromisoformat(raw)
        except ValueError:
            raise ValueError(f"must be {MOMENT_FORMAT}") from None
        if value.tzinfo is None:
            if not naive_is_local:
                raise ValueError("must be a date, or a date-time with a UTC offset, e.g. 2026-01-31T17:00:00+08:00")
            value = value.replace(tzinfo=LOCAL)
    try:
        return value.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError("is out of range") from None
