"""Command line. Every command takes ``--json``; failures exit non-zero with one line on stderr."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import click
from sqlalchemy.exc import SQLAlchemyError

from cli.calendar_cli import calendar as calendar_group
from cli.sla_cli import sla as sla_group
from cli.tokens_cli import tokens as tokens_group
from engine.errors import EngineError, InvalidProcess

ROOT = Path(__file__).resolve().parent.parent


def _engine():
    from engine.api import Engine

    eng = Engine()
    eng.upgrade()
    return eng


def _out(ctx_json: bool, value, human=None):
    if ctx_json:
        click.echo(json.dumps(value, ensure_ascii=False, default=str))
    elif human is not None:
        click.echo(human(value) if callable(human) else human)
    else:
        click.echo(json.dumps(value, ensure_ascii=False, default=str, indent=2))


def _parse_data(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise click.UsageError(f"--data is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise click.UsageError("--data must be a JSON object")
    return value


class _Group(click.Group):
    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except InvalidProcess as exc:
            as_json = "--json" in sys.argv
            if as_json:
                click.echo(json.dumps({"error": exc.code, "message": str(exc),
                                       "problems": [p.as_dict() for p in exc.problems]}, ensure_ascii=False))
            else:
                for p in exc.problems[1:]:
                    click.echo(f"  {p}", err=True)
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except EngineError as exc:
            if "--json" in sys.argv:
                out = {"error": exc.code, "message": str(exc)}
                if getattr(exc, "fields", None):
                    out["fields"] = exc.fields
                click.echo(json.dumps(out, ensure_ascii=False))
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except click.UsageError as exc:
            # a wrong option or argument: one line (and JSON with --json), exit 2 as click does
            message = exc.format_message()
            if exc.ctx is not None and exc.ctx.command_path:
                message = f"{exc.ctx.command_path}: {message}"
            _fail("usage", message, 2)
        except SQLAlchemyError as exc:
            reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            _fail("database", f"the database cannot be used: {reason}", 1)


def _fail(code: str, message: str, status: int):
    message = " ".join(message.split())
    if "--json" in sys.argv:
        click.echo(json.dumps({"error": code, "message": message}, ensure_ascii=False))
    click.echo(f"error: {message}", err=True)
    sys.exit(status)


json_opt = click.option("--json", "as_json", is_flag=True, help="machine-readable output")


@click.group(cls=_Group)
def main():
    """Tongban (通办): run re-engineered administrative processes."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("tongban").setLevel(logging.INFO)


@main.command()
@click.argument("paths", nargs=-1, required=True)
@click.option("--as", "actor", default="system")
@json_opt
def deploy(paths, actor, as_json):
    """Deploy BPMN/DMN files or folders; prints key, version and id per process."""
    result = [d.as_dict() for d in _engine().deploy_paths(list(paths), actor=actor)]
    _out(as_json, result, lambda r: "\n".join(
        f"{d['key']} v{d['version']} (id {d['id']}){'' if d['created'] else ' unchanged'}" for d in r))


@main.command()
@click.argument("key")
@click.option("--data", default=None, help="JSON object of start data")
@click.option("--business-key", default=None)
@click.option("--as", "actor", default="system")
@json_opt
def start(key, data, business_key, actor, as_json):
    """Start an instance of the newest version of KEY."""
    r = _engine().start(key, _parse_data(data), business_key, actor=actor)
    _out(as_json, r, lambda r: f"instance {r['instance_id']} {r['status']}")


@main.command()
@click.option("--instance", "instance_id", type=int, default=None)
@click.option("--user", default=None)
@click.option("--group", default=None)
@click.option("--status", default="open", type=click.Choice(["open", "completed", "cancelled", "all"]))
@json_opt
def tasks(instance_id, user, group, status, as_json):
    """List human tasks."""
    rows = _engine().tasks(instance_id=instance_id, user=user, group=group, status=status)
    _out(as_json, rows, lambda rows: "\n".join(
        f"{t['id']:>6}  inst {t['instance_id']:<6} {t['bpmn_id']:<24} {t['name']:<20} "
        f"{','.join(t['candidate_groups']):<20} {t['assignee'] or '-':<12} due {t['due_at'] or '-'}"
        for t in rows) or "no tasks")


@main.command()
@click.argument("task_id", type=int)
@click.option("--as", "actor", required=True)
@json_opt
def claim(task_id, actor, as_json):
    """Claim a task."""
    _out(as_json, _engine().claim(task_id, actor), lambda t: f"task {t['id']} claimed by {t['assignee']}")


@main.command()
@click.argument("task_id", type=int)
@click.option("--data", default=None, help="JSON object of form data")
@click.option("--decision", default=None)
@click.option("--opinion", default=None)
@click.option("--as", "actor", required=True)
@json_opt
def complete(task_id, data, decision, opinion, actor, as_json):
    """Complete a task as a user who may act on it."""
    r = _engine().complete(task_id, actor, _parse_data(data), decision, opinion)
    _out(as_json, r, lambda r: f"instance {r['instance_id']} {r['status']}")


@main.command()
@click.argument("name")
@click.option("--payload", default=None, help="JSON object")
@click.option("--correlation", default=None, help="JSON object of correlation property values")
@click.option("--business-key", default=None)
@json_opt
def message(name, payload, correlation, business_key, as_json):
    """Deliver a message to the instance waiting for it."""
    r = _engine().send_message(name, _parse_data(payload), _parse_data(correlation) or None, business_key)
    _out(as_json, r)


@main.command()
@click.argument("instance_id", type=int)
@json_opt
def show(instance_id, as_json):
    """Status, data, open tasks and history of an instance."""
    _out(as_json, _engine().show(instance_id))


@main.command()
@click.option("--status", default=None)
@json_opt
def instances(status, as_json):
    """List instances, newest first."""
    rows = _engine().instances(status)
    _out(as_json, rows, lambda rows: "\n".join(
        f"{i['id']:>6}  {i['process_key']:<28} {i['status']:<10} {i['business_key'] or '-'}" for i in rows)
        or "no instances")


@main.command()
@json_opt
def definitions(as_json):
    """List deployed process versions."""
    _out(as_json, _engine().definitions(), lambda rows: "\n".join(
        f"{d['id']:>4}  {d['key']:<28} v{d['version']}" for d in rows))


@main.command()
@click.option("--once", is_flag=True, help="claim and run due jobs once, then exit")
@click.option("--interval", default=1.0, type=float)
@json_opt
def worker(once, interval, as_json):
    """Run due jobs (timers, retries) with APScheduler as the trigger."""
    from cli.worker import make_scheduler, worker_id

    eng = _engine()
    if once:
        _out(as_json, eng.run_due_jobs(worker_id()))
        return
    sched = make_scheduler(eng, interval=interval)  # an invalid setting stops here, before the start line
    click.echo(f"worker {worker_id()} claiming due jobs every {interval:g}s", err=True)
    sched.start()


@main.group()
def db():
    """Database schema."""


@db.command("upgrade")
@json_opt
def db_upgrade(as_json):
    from engine.db import database_url
    from engine.migrate import current, upgrade

    url = database_url()
    upgrade(url)
    _out(as_json, {"revision": current(url)}, lambda r: f"database at revision {r['revision']}")


@main.group()
def audit():
    """Audit log."""


@audit.command("verify")
@json_opt
def audit_verify(as_json):
    """Check the hash chain of the audit log."""
    v = _engine().verify_audit()
    _out(as_json, v.as_dict(), lambda v: f"audit chain ok ({v['events']} events)" if v["ok"]
         else f"audit chain BROKEN at event {v['first_bad_id']}: {v['reason']}")
    if not v.ok:
        sys.exit(1)


@main.group()
def users():
    """Users and their groups."""


@users.command("add")
@click.argument("name")
@click.option("--group", "groups", multiple=True)
@click.option("--display-name", default="")
@click.option("--role", "roles", multiple=True, type=click.Choice(["designer", "clerk", "monitor", "admin"]))
@click.option("--department", default=None, help="department code")
@click.option("--password", default=None, help="set a password (or use --password-stdin)")
@click.option("--password-stdin", is_flag=True, help="read the password from standard input")
@click.option("--email", default=None, help="address for the e-mail copy of notices (SLA warnings, escalations)")
@json_opt
def users_add(name, groups, display_name, roles, department, password, password_stdin, email, as_json):
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    if email is not None and email and ("@" not in email or any(c.isspace() for c in email)):
        raise click.UsageError(f"--email '{email}' is not an e-mail address")
    eng = _engine()
    user = eng.add_user(name, groups, display_name, roles=list(roles) if roles else None,
                        password=password, department=department)
    if email is not None:
        eng.set_notify_email(name, email or None)
        user["email"] = email or None
    _out(as_json, user, lambda u: f"user {u['name']} in {', '.join(u['groups']) or 'no groups'}")


@users.command("list")
@json_opt
def users_list(as_json):
    _out(as_json, _engine().users(), lambda rows: "\n".join(f"{u['name']:<20} {', '.join(u['groups'])}" for u in rows))


@main.command()
@click.option("--demo", is_flag=True, help="create the demo org, users and processes first")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, type=int, show_default=True)
@click.option("--no-worker", is_flag=True, help="serve pages only (run `tongban worker` separately)")
@click.option("--exchange-port", default=8600, type=int, show_default=True,
              help="with --demo: port of the demo data exchange (0 = any free port)")
def serve(demo, host, port, no_worker, exchange_port):
    """Run the whole product in one process: web pages and REST API, and the worker.

    Production runs gunicorn ('web:create_app()') and separate `tongban worker` processes."""
    from werkzeug.serving import make_server

    from web import create_app

    eng = _engine()
    if demo:
        from cli.demo import DEMO_PASSWORD, USERS, seed

        deployed = seed(eng)
        click.echo("deployed: " + ", ".join(f"{d.key} v{d.version}" for d in deployed))
        click.echo(f"demo users (password for all: {DEMO_PASSWORD}):")
        for name, (display, roles, groups, _dept) in USERS.items():
            click.echo(f"  {name:<14} {display}  roles={','.join(roles)}  groups={','.join(groups) or '-'}")
        _start_demo_exchange(eng, host, exchange_port)
    click.echo(f"database: {eng.db.url.render_as_string(hide_password=True)}")
    app = create_app(eng)
    if not no_worker:
        from cli.worker import make_scheduler

        make_scheduler(eng, background=True).start()
    server = make_server(host, port, app, threaded=True)
    click.echo(f"Tongban is running at http://{host}:{port}/  (Ctrl+C to stop)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


main.add_command(calendar_group)
main.add_command(sla_group)
main.add_command(tokens_group)

from cli.connectors_cli import register as _register_connector_commands  # noqa: E402

_register_connector_commands(main)  # exchange, check, incidents, retry, pulls, unmask, connectors

def _start_demo_exchange(eng, host: str, port: int) -> None:
    """Run the demo data exchange on its own port in this process and point the ``exchange``
    connector at it (unless an administrator configured another address)."""
    from connectors.exchange_server import DEFAULT_KEY, ExchangeApp, make_http_server

    try:
        server = make_http_server(ExchangeApp(), host, port)
    except OSError as exc:
        click.echo(f"demo data exchange not started ({exc}); the exchange connector keeps its configuration",
                   err=True)
        return
    import threading

    threading.Thread(target=server.serve_forever, daemon=True, name="demo-exchange").start()
    url = f"http://{host}:{server.server_address[1]}"
    current = next((c for c in eng.connector_configs() if c["name"] == "exchange"), {})
    configured = (current.get("config") or {}).get("base_url")
    if not configured or configured == "embedded" or configured.startswith(f"http://{host}:"):
        eng.set_connector_config("exchange", {**(current.get("config") or {}), "base_url": url},
                                 {"api_key": DEFAULT_KEY}, actor="system")
    click.echo(f"demo data exchange: {url}  (API key {DEFAULT_KEY}, header X-API-Key)")


if __name__ == "__main__":
    main()
