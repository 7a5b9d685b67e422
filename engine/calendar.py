"""Working days by the Chinese official calendar (legal holidays off, 调休 weekends on)."""

from __future__ import annotations

from datetime import date, timedelta

try:
    import chinese_calendar as _cc
except ImportError:  # pragma: no cover - it is a declared dependency
    _cc = None


def is_workday(day: date) -> bool:
    if _cc is not None:
        try:
            return bool(_cc.is_workday(day))
        except NotImplementedError:
            pass  # year not published in the installed package: count weekends only
    return day.weekday() < 5


def add_workdays(start: date, n: int) -> date:
    """The n-th working day after ``start`` (``start`` itself is not counted)."""
    day = start
    counted = 0
    while counted < n:
        day += timedelta(days=1)
        if is_workday(day):
            counted += 1
    return day
