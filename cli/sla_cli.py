"""``tongban sla``: legal clocks, pauses, extensions, and the monitor's lists from the command line."""

from __future__ import annotations

from pathlib import Path

import click


def _engine():
    from cli.main import _engine as make

    return make()


def _out(as_json, value, human=None):
    from cli.main import _out as out

    out(as_json, value, human)


json_opt = click.option("--json", "as_json", is_flag=True, help="machine-readable output")


@click.group("sla")
def sla():
    """Time limits (法定/承诺时限), pauses, extensions, escalations and supervision cards."""


UNITS = {"workday": "工作日", "day": "自然日", "hour": "小时", "fixed": ""}
CLOCK_STATUS = {"running": "计时中", "paused": "已暂停", "stopped": "已结束"}


def _when(value: str | None) -> str:
    """An ISO moment as the Beijing wall clock a clerk reads (deadlines end at 24:00 that day)."""
    if not value:
        return "-"
    from datetime import datetime

    from engine.calendar import TZ

    return datetime.fromisoformat(value).astimezone(TZ).strftime("%Y-%m-%d %H:%M")


def _limit(c: dict) -> str:
    unit = UNITS.get(c["unit"], c["unit"])
    if c["unit"] == "fixed":
        return "固定期限"
    parts = []
    if c["promised"] is not None:
        parts.append(f"承诺 {c['promised']:g} {unit}")
    if c["statutory"] is not None:
        parts.append(f"法定 {c['statutory']:g} {unit}")
    return " / ".join(parts) or "-"


def _clock_line(c: dict) -> str:
    what = "办件" if c["scope"] == "instance" else f"步骤 {c['name'] or c['bpmn_id']} (任务 {c['task_id']})"
    line = (f"{what}: {_limit(c)}, 到期 {_when(c['due_at'])}, 预警 {_when(c['warn_at'])}, "
            f"{c['state_name']} ({c['state']}), {CLOCK_STATUS.get(c['status'], c['status'])}")
    if c["statutory_overdue"]:
        line += ", 已超法定时限"
    if c["provisional"]:
        line += ", 暂定 (节假日安排未发布)"
    if c["extended"]:
        line += f", 已延期 {c['extended']:g}"
    if c["status"] == "paused":
        line += f", 暂停原因: {c['pause_reason'] or '-'}"
    return line


def status_text(r: dict) -> str:
    lines = [_clock_line(r["instance"])] if r["instance"] else ["办件: 未设时限"]
    lines += ["  " + _clock_line(c) for c in r["tasks"]]
    for p in r["pauses"]:
        lines.append(f"暂停 {_when(p['started_at'])} → {_when(p['ended_at']) if p['ended_at'] else '至今'}: "
                     f"{p['reason']} ({p['paused_by'] or p['source']})")
    for e in r["extensions"]:
        lines.append(f"延期申请 #{e['id']}: {e['days']} 天, {e['status']}, {e['reason']} ({e['requested_by']})")
    return "\n".join(lines)


@sla.command("status")
@click.argument("instance_id", type=int)
@json_opt
def status(instance_id, as_json):
    """The case's and its steps' clocks: deadlines, state (正常/预警/超期), pauses, extensions."""
    _out(as_json, _engine().sla_status(instance_id), status_text)


@sla.command("pause")
@click.argument("instance_id", type=int)
@click.option("--reason", required=True)
@click.option("--as", "actor", required=True)
@json_opt
def pause(instance_id, reason, actor, as_json):
    """Stop the case's clocks (expert review, hearing, inspection, 补正 ...)."""
    _out(as_json, _engine().pause_clock(instance_id, reason, actor))


@sla.command("resume")
@click.argument("instance_id", type=int)
@click.option("--as", "actor", required=True)
@json_opt
def resume(instance_id, actor, as_json):
    _out(as_json, _engine().resume_clock(instance_id, actor))


@sla.command("extend")
@click.option("--task", "task_id", type=int, default=None)
@click.option("--instance", "instance_id", type=int, default=None)
@click.option("--days", type=int, required=True)
@click.option("--reason", required=True)
@click.option("--as", "actor", required=True)
@json_opt
def extend(task_id, instance_id, days, reason, actor, as_json):
    """Request an extension (延期) of a step's or the case's limit."""
    _out(as_json, _engine().request_extension(task_id, instance_id=instance_id, days=days, reason=reason,
                                              actor=actor))


@sla.command("approve")
@click.argument("extension_id", type=int)
@click.option("--note", default="")
@click.option("--as", "actor", required=True)
@json_opt
def approve(extension_id, note, actor, as_json):
    _out(as_json, _engine().approve_extension(extension_id, actor, note))


@sla.command("refuse")
@click.argument("extension_id", type=int)
@click.option("--note", default="")
@click.option("--as", "actor", required=True)
@json_opt
def refuse(extension_id, note, actor, as_json):
    _out(as_json, _engine().refuse_extension(extension_id, actor, note))


@sla.command("overview")
@click.option("--department", default=None, help="department code: its subtree only")
@json_opt
def overview(department, as_json):
    """Yellow/red counts by department and level, overdue cases and steps, handling times, trend."""
    _out(as_json, _engine().sla_overview(department))


@sla.command("log")
@click.option("--limit", default=200, type=int)
@json_opt
def log(limit, as_json):
    """The escalation log, newest first."""
    _out(as_json, _engine().escalation_log(limit), lambda rows: "\n".join(
        f"{e['at']}  inst {e['instance_id']:<6} {e['point']:<10} {e['action']:<12} {e['outcome']:<8} "
        f"{e['target'] or ''}" for e in rows) or "no escalations")


@sla.command("chain")
@click.argument("department")
@click.option("--escalation", "escalations", multiple=True,
              help='POINT:ACTIONS[:TARGET], e.g. "yellow:notify" "due+2wd:card,raise"; none removes the chain')
@click.option("--as", "actor", default="system")
@json_opt
def chain(department, escalations, actor, as_json):
    """Set the escalation chain of a department (used by tasks without their own or a process chain)."""
    entries = []
    for text in escalations:
        at, _, rest = text.partition(":")
        actions, _, target = rest.partition(":")
        entries.append({"at": at, "action": actions or "notify", "target": target or None})
    result = _engine().set_department_chain(department, entries, actor)
    _out(as_json, result, lambda r: f"{r['department']}: " + (", ".join(
        f"{e['at']} → {'+'.join(e['actions'])}" for e in r["chain"]) or "no chain"))


@sla.command("cards")
@click.option("--color", type=click.Choice(["yellow", "red"]), default=None)
@click.option("--department", default=None)
@json_opt
def cards(color, department, as_json):
    """Supervision cards (黄牌/红牌) for 电子监察."""
    _out(as_json, _engine().supervision_cards(color=color, department=department), lambda rows: "\n".join(
        f"{c['issued_at']}  {c['color']:<6} inst {c['instance_id']:<6} {c['name']:<16} {c['holder'] or '-'}"
        for c in rows) or "no cards")


@sla.command("export")
@click.argument("kind", type=click.Choice(["overdue", "cards", "log"]))
@click.option("--format", "fmt", type=click.Choice(["xlsx", "csv"]), default="xlsx", show_default=True)
@click.option("--department", default=None)
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
def export(kind, fmt, department, output):
    """Write a list as xlsx or CSV (UTF-8 with BOM)."""
    output.write_bytes(_engine().sla_export(kind, fmt, department=department))
    click.echo(f"wrote {output}")
