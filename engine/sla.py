"""Due and warning times of human tasks, from the manifest's SLA or ``dueDate``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from .calendar import add_workdays

LOCAL = ZoneInfo("Asia/Shanghai")
_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$")


def _duration(text: str) -> timedelta | None:
    m = _DURATION.match(text.strip())
    if not m or not any(m.groups()):
        return None
    d, h, mi, s = (int(x or 0) for x in m.groups())
    return timedelta(days=d, hours=h, minutes=mi, seconds=s)


def due_times(entry: dict, now: datetime, data: dict) -> tuple[datetime | None, datetime | None]:
    sla = entry.get("sla") or {}
    due = None
    if sla.get("limit"):
        limit = float(sla["limit"])
        unit = sla.get("unit", "workday")
        if unit == "workday":
            local = now.astimezone(LOCAL)
            end_day = add_workdays(local.date(), int(limit))
            due = datetime.combine(end_day, datetime.max.time().replace(microsecond=0), LOCAL)
        elif unit == "day":
            due = now + timedelta(days=limit)
        elif unit == "hour":
            due = now + timedelta(hours=limit)
    elif entry.get("due"):
        text = entry["due"]
        if text.startswith("${") and text.endswith("}"):
            text = str(data.get(text[2:-1].strip()) or "")
        span = _duration(text) if text else None
        if span is not None:
            due = now + span
        elif text:
            try:
                due = datetime.fromisoformat(text)
                if due.tzinfo is None:
                    due = due.replace(tzinfo=LOCAL)
            except ValueError:
                due = None
    if due is None:
        return None, None
    warn = float(sla.get("warn", 0.8)) if sla.get("warn") else 0.8
    return due, now + (due - now) * warn
