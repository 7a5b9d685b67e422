"""``tongban calendar``: check and load the working-day calendar from the command line."""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path

import click


def _engine():
    from cli.main import _engine as make

    return make()


def _out(as_json, value, human):
    from cli.main import _out as out

    out(as_json, value, human)


@click.group("calendar")
def calendar():
    """Working days (holidays and 调休), from chinese-calendar plus loaded schedules."""


@calendar.command("due")
@click.argument("start")
@click.argument("n", type=int)
@click.option("--unit", type=click.Choice(["workday", "day"]), default="workday", show_default=True)
@click.option("--region", default="CN", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def due(start, n, unit, region, as_json):
    """Print the date of the N-th working day (or day) after START (START itself not counted)."""
    try:
        start_day = date.fromisoformat(start)
    except ValueError as exc:
        raise click.UsageError(f"START must be a date YYYY-MM-DD, not {start!r}") from exc
    if n < 0:
        raise click.UsageError("N cannot be negative")
    eng = _engine()
    result = eng.calendar_due(start_day, n, unit, region)
    _out(as_json, result, lambda r: r["due"] + ("  (provisional: no published schedule for that year)"
                                                 if r["provisional"] else ""))
    warning = eng.calendar_region_warning(region)
    if warning:
        click.echo(f"WARNING: {warning}", err=True)


@calendar.command("load")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--region", default="CN", show_default=True, help="region code; CN is the whole country")
@click.option("--as", "actor", default="system")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def load(file, region, actor, as_json):
    """Load a published schedule: JSON {"holidays": {...}, "workdays": {...}} or CSV date,kind,name."""
    text = file.read_text(encoding="utf-8-sig")
    result = _engine().load_calendar(text, file.name, region, actor)
    _out(as_json, result, lambda r: f"loaded {r['days']} days ({r['holidays']} holidays, {r['workdays']} "
                                    f"working weekend days) for {', '.join(map(str, r['years']))} ({r['region']})")


@calendar.command("status")
@click.option("--region", default="CN", show_default=True)
@click.option("--strict", is_flag=True, help="exit 1 when this or next year has no schedule")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
def status(region, strict, as_json):
    """Which years have a published schedule; warns when this or next year has none."""
    result = _engine().calendar_status(region)

    def human(r):
        lines = [f"{y['year']} ({y['region']}): {y['status']}" for y in r["years"]]
        return "\n".join(lines)

    _out(as_json, result, human)
    for warning in result["warnings"]:
        click.echo(f"WARNING: {warning}", err=True)
    if not result["ok"] and strict:
        sys.exit(1)
