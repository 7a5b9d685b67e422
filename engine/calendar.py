"""Working days by the Chinese official calendar: weekends and legal holidays off, 调休
working weekends on.

Sources, most specific first, day by day: days an administrator loaded for a region, days loaded
for the whole country (region ``CN``), the ``chinese-calendar`` package (which carries the State
Council's schedule up to the year it was released), and, for a year nobody published, plain
weekends — such deadlines are *provisional* and the calendar says so (``year_status``). A loaded
day overrides that day only: a regional holiday file does not drop the national holidays.
Time zone: Asia/Shanghai.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from zoneinfo import ZoneInfo

try:
    import chinese_calendar as _cc
except ImportError:  # pragma: no cover - it is a declared dependency
    _cc = None

TZ = ZoneInfo("Asia/Shanghai")
NATIONAL = "CN"


def package_has_year(year: int) -> bool:
    if _cc is None:
        return False
    try:
        _cc.is_workday(date(year, 6, 1))
        return True
    except NotImplementedError:
        return False


def _package_workday(day: date) -> bool | None:
    if _cc is None:
        return None
    try:
        return bool(_cc.is_workday(day))
    except NotImplementedError:
        return None


@dataclass
class Calendar:
    """Loaded overrides: ``days[region][date] = (is_workday, name)``; ``years[region]`` = published years."""

    days: dict[str, dict[date, tuple[bool, str]]] = field(default_factory=dict)
    years: dict[str, set[int]] = field(default_factory=dict)

    def _override(self, day: date, region: str) -> bool | None:
        for r in ((region, NATIONAL) if region != NATIONAL else (NATIONAL,)):
            hit = self.days.get(r, {}).get(day)
            if hit is not None:
                return hit[0]
        return None

    def year_status(self, year: int, region: str = NATIONAL) -> str:
        """``loaded`` (an administrator loaded it), ``package`` (chinese-calendar has it) or
        ``missing`` (weekends only: deadlines in it are provisional)."""
        if year in self.years.get(region, set()) or year in self.years.get(NATIONAL, set()):
            return "loaded"
        return "package" if package_has_year(year) else "missing"

    def is_provisional(self, day: date, region: str = NATIONAL) -> bool:
        return self.year_status(day.year, region) == "missing"

    def is_workday(self, day: date, region: str = NATIONAL) -> bool:
        """A loaded day (the region's, else the country's) overrides that day only; every other day
        follows the package's schedule when it has the year, else plain weekends. Loading a file for
        a region or a year therefore never drops the national holidays it does not list."""
        hit = self._override(day, region)
        if hit is not None:
            return hit
        pkg = _package_workday(day)
        if pkg is not None:
            return pkg
        return day.weekday() < 5

    def add_workdays(self, start: date, n: int, region: str = NATIONAL) -> date:
        """The n-th working day after ``start`` (``start`` itself not counted, as 行政许可法 counts)."""
        if n < 0:
            raise ValueError("the number of working days cannot be negative")
        day, counted = start, 0
        while counted < n:
            day += timedelta(days=1)
            if self.is_workday(day, region):
                counted += 1
        return day

    def due(self, start: date, n: int, unit: str = "workday", region: str = NATIONAL) -> tuple[date, bool]:
        """(due date, provisional?) for N working days or natural days after ``start``."""
        if unit == "workday":
            end = self.add_workdays(start, n, region)
            span = [start + timedelta(days=i) for i in range(1, (end - start).days + 1)]
            return end, any(self.is_provisional(d, region) for d in span[:: max(1, len(span) // 8)] + [end])
        if unit == "day":
            if n < 0:
                raise ValueError("the number of days cannot be negative")
            end = start + timedelta(days=n)
            return end, False
        raise ValueError(f"unknown unit '{unit}' (workday or day)")


DEFAULT = Calendar()  # the package's schedule only, for callers without a database


# ---- schedule files --------------------------------------------------------------------

_KINDS = {"holiday": False, "off": False, "休": False, "workday": True, "work": True, "班": True}


def parse_schedule(text: str, filename: str = "") -> list[tuple[date, bool, str]]:
    """A year's schedule as published: JSON ``{"holidays": {"2027-01-01": "元旦", ...},
    "workdays": {"2027-02-07": "春节调休", ...}}`` (lists of dates work too), or CSV lines
    ``date,kind,name`` with kind holiday|workday (or 休|班). Returns (day, is_workday, name)."""
    text = text.lstrip("\ufeff")
    rows: list[tuple[date, bool, str]] = []
    if filename.endswith(".json") or text.lstrip().startswith("{"):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: line {exc.lineno}: {exc.msg}") from exc
        for key, working in (("holidays", False), ("workdays", True)):
            entries = doc.get(key) or {}
            items = entries.items() if isinstance(entries, dict) else ((d, "") for d in entries)
            for d, name in items:
                rows.append((_date(d, key), working, str(name or "")))
    else:
        for n, rec in enumerate(csv.reader(io.StringIO(text)), start=1):
            if not rec or not rec[0].strip() or rec[0].strip().startswith("#") or rec[0].strip() == "date":
                continue
            if len(rec) < 2 or rec[1].strip() not in _KINDS:
                raise ValueError(f"line {n}: expected 'date,holiday|workday[,name]', got {','.join(rec)!r}")
            rows.append((_date(rec[0], f"line {n}"), _KINDS[rec[1].strip()], rec[2].strip() if len(rec) > 2 else ""))
    if not rows:
        raise ValueError("the file lists no days")
    return rows


def _date(value, where: str) -> date:
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError as exc:
        raise ValueError(f"{where}: '{value}' is not a date YYYY-MM-DD") from exc
