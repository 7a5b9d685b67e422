"""Commands for connectors: the demo exchange, the flow check, incidents, the pull log, configuration."""

from __future__ import annotations

import json
import sys

import click

json_opt = click.option("--json", "as_json", is_flag=True, help="machine-readable output")


def _engine():
    from cli.main import _engine as make

    return make()


def _out(as_json, value, human=None):
    from cli.main import _out as out

    out(as_json, value, human)

COMMANDS: list = []


def _command(*args, **kwargs):
    def wrap(fn):
        cmd = click.command(*args, **kwargs)(fn)
        COMMANDS.append(cmd)
        return cmd

    return wrap


def register(group: click.Group) -> None:
    for cmd in COMMANDS:
        group.add_command(cmd)


@_command()
@click.option("--host", default="127.0.0.1")
@click.option("--port", default=8600, type=int)
@click.option("--seed", default=20240601, type=int, help="seed of the generated data (same seed, same data)")
@click.option("--size", default=3000, type=int, help="records of each kind")
@click.option("--api-key", default=None, help="key clients must send (default: demo-exchange-key)")
@click.option("--delay", default=0.0, type=float, help="seconds added to every answer (tests)")
@click.option("--mode", default="ok", help="ok | error500 | error429 | malformed | wrong_schema | timeout")
def exchange(host, port, seed, size, api_key, delay, mode):
    """Run the demo data exchange (the government data-sharing platform, with generated data)."""
    from connectors.exchange_server import DEFAULT_KEY, Controls, ExchangeApp, make_http_server

    app = ExchangeApp(seed=seed, size=size, api_key=api_key or DEFAULT_KEY, controls=Controls(mode=mode, delay=delay))
    server = make_http_server(app, host, port)
    d = app.data
    click.echo(f"demo data exchange on http://{host}:{server.server_address[1]}  seed {seed}: "
               f"{len(d.enterprises)} enterprises, {len(d.persons)} persons, {len(d.licences)} e-licences, "
               f"{len(d.blacklist)} on the 严重失信 list, {len(d.properties)} properties", err=True)
    if not api_key:
        click.echo(f"API key: {DEFAULT_KEY}  (header X-API-Key)", err=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


def _check_human(report: dict) -> str:
    lines = []
    for p in report.get("problems", []):
        lines.append(f"ERROR {p['file']}:{p['line']} [{p['element_id']}] {p['message']}")
    for proc in report["processes"]:
        lines.append(f"process {proc['key']} ({proc['name']})  {proc['file']}")
        for t in proc["tasks"]:
            lines.append(f"  {t['id']:<24} {t['type']:<12} {','.join(t['groups']) or '-'}")
            for n in t["needs"]:
                src = n["source"] or "MISSING"
                where = f" from {', '.join(n['from'])}" if n["from"] else ""
                lines.append(f"      needs {n['name']:<20} {src}{where}  ({n['for']})")
            for pull in t["pulls"]:
                lines.append(f"      pulls {pull['connector']}.{pull['operation']}: {', '.join(pull['fields']) or '-'}"
                             f"  用途 {pull['purpose'] or '-'}  依据 {pull['basis'] or '-'}")
            if t["receives"]:
                lines.append(f"      receives {', '.join(t['receives'])}")
        for e in proc["errors"]:
            lines.append(f"  ERROR   line {e['line']} [{e['element_id']}] {e['message']}")
        for w in proc["warnings"]:
            lines.append(f"  WARNING line {w['line']} [{w['element_id']}] {w['message']}")
        c = proc["counts"]
        lines.append(f"  fields: applicant fills {c['applicant_fields']}, pulled {c['pulled_fields']}")
        lines.extend(_summary_lines(proc))
    c = report["counts"]
    lines.append(f"{'ok' if report['ok'] else 'FAILED'}: {report['errors']} errors, {report['warnings']} warnings; "
                 f"applicant fills {c['applicant_fields']} fields, {c['pulled_fields']} pulled")
    return "\n".join(lines)


def _limit_text(limit: dict | None) -> str:
    units = {"workday": "个工作日", "day": "个自然日", "hour": "小时"}
    return f"{limit['value']}{units.get(limit['unit'], ' ' + limit['unit'])}" if limit else "-"


def _summary_lines(proc: dict) -> list[str]:
    """Departments, steps and promised vs statutory limits of one process, for people."""
    if "steps" not in proc:
        return []
    lines = [f"  departments ({len(proc['departments'])}): {', '.join(proc['departments']) or '-'}",
             f"  steps ({len(proc['steps'])}):"]
    for i, st in enumerate(proc["steps"], 1):
        who = ", ".join(st["departments"]) or "-"
        lim = st.get("limit") or {}
        when = ""
        if lim.get("promised") or lim.get("statutory"):
            when = f"  承诺 {_limit_text(lim.get('promised'))} / 法定 {_limit_text(lim.get('statutory'))}"
        lines.append(f"    {i:>2}. {st['name']} [{st['id']}] {st['type']}  {who}{when}")
    limits = proc["limits"]
    lines.append(f"  limits: promised {_limit_text(limits['promised'])}, statutory {_limit_text(limits['statutory'])}"
                 f" (承诺时限 vs 法定时限; {len(limits['tasks'])} step(s) with their own limit)")
    return lines


def _group_departments() -> dict[str, str]:
    """group → department name from the configured database, when there is one already (the
    check itself needs no database and creates none); {} otherwise."""
    import os

    from engine.db import DEFAULT_DIR

    url = os.environ.get("TONGBAN_DATABASE_URL")
    if not url:
        path = DEFAULT_DIR / "tongban.sqlite"
        if not path.is_file():
            return {}
        url = f"sqlite:///{path}"
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        if parsed.get_backend_name() == "sqlite" and not (parsed.database and os.path.isfile(parsed.database)):
            return {}
        from engine.api import Engine

        eng = Engine(url)
        try:
            names = {d["code"]: d["name"] for d in eng.departments()}
            return {g["name"]: names[g["department"]] for g in eng.groups() if g["department"] in names}
        finally:
            eng.db.dispose()
    except Exception:  # noqa: BLE001 - no database, or not migrated: name the groups instead
        return {}


@_command()
@click.argument("paths", nargs=-1, required=True)
@json_opt
def check(paths, as_json):
    """The flow check: per task, the data it needs and where it comes from; per process the
    departments, the steps and promised vs statutory limits; exit 1 on errors."""
    from engine import definitions, flowcheck

    files = definitions.read_paths(list(paths))
    report = flowcheck.check_files(files, group_departments=_group_departments())
    _, problems = definitions.check(files)
    report["problems"] = [p.as_dict() for p in problems]
    report["errors"] += len(problems)
    report["ok"] = report["errors"] == 0
    _out(as_json, report, _check_human)
    if not report["ok"]:
        sys.exit(1)


@_command()
@click.option("--all", "show_all", is_flag=True, help="resolved ones too")
@click.option("--instance", "instance_id", type=int, default=None)
@json_opt
def incidents(show_all, instance_id, as_json):
    """Incidents (failed pulls, service calls, scripts, timers), newest first."""
    rows = _engine().incidents(open_only=not show_all, instance_id=instance_id)
    _out(as_json, rows, lambda rows: "\n".join(
        f"{i['id']:>6}  inst {i['instance_id'] or '-':<6} {i['kind']:<12} {i['element_id'] or '-':<20} "
        f"{'resolved' if i['resolved'] else 'open':<9} {i['message']}" for i in rows) or "no incidents")


@_command()
@click.argument("incident_id", type=int)
@click.option("--as", "actor", default="admin")
@json_opt
def retry(incident_id, actor, as_json):
    """Retry the job behind an incident now (e.g. a pull after the exchange recovered)."""
    r = _engine().retry_incident(incident_id, actor)
    _out(as_json, r, lambda r: f"incident {r['incident_id']}: job {r['job_id']} {r['outcome']}")


def _moment(value: str | None, option: str):
    """--since/--until: an ISO date (00:00 in Asia/Shanghai) or date-time (Asia/Shanghai unless it
    has an offset) as an aware UTC datetime."""
    if value is None:
        return None
    from engine.errors import Invalid
    from engine.pulllog import parse_moment

    try:
        return parse_moment(value)
    except ValueError as exc:
        raise Invalid(f"--{option} {exc}, not {value!r}", {option: str(exc)}) from None


@_command()
@click.option("--instance", "instance_id", type=int, default=None)
@click.option("--kind", default=None, type=click.Choice(["pull", "service", "unmask"]))
@click.option("--connector", default=None, help="only this connector")
@click.option("--actor", default=None, help="only entries by this actor")
@click.option("--since", default=None, metavar="DATE",
              help="from this ISO date or date-time on (a date is 00:00 Asia/Shanghai; no offset: Asia/Shanghai)")
@click.option("--until", default=None, metavar="DATE", help="before this ISO date or date-time (exclusive)")
@click.option("--outcome", default=None, type=click.Choice(["ok", "error"]))
@click.option("--limit", default=200, type=int)
@json_opt
def pulls(instance_id, kind, connector, actor, since, until, outcome, limit, as_json):
    """The pull log: who pulled which fields of which case, for what purpose, with what outcome."""
    rows = _engine().pull_log(instance_id, limit, kind=kind, connector=connector, actor=actor,
                              since=_moment(since, "since"), until=_moment(until, "until"), outcome=outcome)
    _out(as_json, rows, lambda rows: "\n".join(
        f"{p['at'][:19]}  inst {p['instance_id'] or '-':<6} {p['task'] or '-':<18} {p['kind']:<7} "
        f"{p['connector']}.{p['operation']:<12} {p['outcome']:<5} {p['duration_ms']:>5}ms  "
        f"{','.join(p['fields'])}  {p['error'] or ''}" for p in rows) or "no pulls")


@_command("purge-pulls")
@click.option("--older-than-days", "days", type=int, default=None,
              help="delete entries older than this (at least 1096, 3 years; default: "
                   "TONGBAN_PULL_LOG_RETENTION_DAYS, else 1096)")
@click.option("--as", "actor", required=True)
@json_opt
def purge_pulls(days, actor, as_json):
    """Delete pull log entries older than the retention period (never less than 3 years); audited."""
    from engine.pulllog import PULL_LOG_MIN_DAYS, retention_days

    if days is None:
        days = retention_days() or PULL_LOG_MIN_DAYS
    r = _engine().purge_pull_log(days, actor)
    _out(as_json, r, lambda r: f"deleted {r['deleted']} pull log entries from before {r['before']}")


@_command()
@click.argument("task_id", type=int)
@click.argument("field")
@click.option("--as", "actor", required=True)
@click.option("--reason", default="")
@json_opt
def unmask(task_id, field, actor, reason, as_json):
    """Show a masked pulled field in full (the unmasking is logged)."""
    _out(as_json, _engine().unmask(task_id, field, actor, reason), lambda r: f"{r['field']}: {r['value']}")


@click.group("connectors")
def connectors_group():
    """Installed connectors and their configuration (secrets are never shown)."""


COMMANDS.append(connectors_group)


@connectors_group.command("list")
@json_opt
def connectors_list(as_json):
    eng = _engine()
    rows = [{**c, "configuration": cfg} for c, cfg in zip(eng.connectors(), eng.connector_configs(), strict=True)]
    _out(as_json, rows, lambda rows: "\n".join(
        f"{c['name']:<10} {c['title']:<24} operations: {', '.join(o['name'] for o in c['operations']) or '(configured)'}"
        f"  secrets: {', '.join(f'{k} {v}' for k, v in c['configuration']['secrets'].items()) or '-'}"
        for c in rows))


@connectors_group.command("set")
@click.argument("name")
@click.option("--config", "config_json", default="{}", help="JSON object (replaces the stored configuration)")
@click.option("--secret", "secrets", multiple=True, help="KEY=VALUE (repeatable); KEY= removes it")
@click.option("--as", "actor", default="admin")
@json_opt
def connectors_set(name, config_json, secrets, actor, as_json):
    try:
        config = json.loads(config_json)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--config is not valid JSON: {exc}") from exc
    pairs = {}
    for item in secrets:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.UsageError("--secret takes KEY=VALUE")
        pairs[key] = value
    _out(as_json, _engine().set_connector_config(name, config, pairs, actor),
         lambda r: f"connector {r['name']} configured (revision {r['revision']})")
