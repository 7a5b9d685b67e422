"""The pull log is queryable (case, kind, connector, actor, time window, outcome) through the engine,
the CLI, the REST API and the admin page, and is kept at least 3 years: a purge deletes only what is
older than its cutoff, refuses anything shorter than 1096 days, and is audited in the hash chain;
the worker runs it daily when TONGBAN_PULL_LOG_RETENTION_DAYS is set."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from cli.worker import make_scheduler, purge_pull_log
from engine.errors import Invalid, NotAllowed
from engine.models import AuditEvent, PullLog
from engine.pulllog import PULL_LOG_MIN_DAYS, RETENTION_ENV, parse_moment, retention_days
from tests.conftest import ROOT, example_files
from tests.exchange_fixtures import exchange as exchange  # noqa: F401 - fixture
from tests.exchange_fixtures import good_enterprise
from tests.exchange_fixtures import xengine as xengine  # noqa: F401 - fixture

DAY = timedelta(days=1)


def add_pulls(engine, *rows: dict) -> list[int]:
    """Insert pull log rows directly (``at`` required); returns their ids in the order given."""
    with engine.sessions.begin() as s:
        objs = [PullLog(**{"kind": "pull", "actor": "system for window", "connector": "exchange",
                           "operation": "enterprise", "fields": ["enterprise_name"], "purpose": "核验企业登记信息",
                           "basis": "《优化营商环境条例》", "source": "数据共享交换平台", "duration_ms": 12,
                           "outcome": "ok", **row}) for row in rows]
        s.add_all(objs)
        s.flush()
        return [o.id for o in objs]


def ids(rows: list[dict]) -> list[int]:
    return [r["id"] for r in rows]


def audit_events(engine, action: str) -> list[AuditEvent]:
    with engine.readers() as s:
        return list(s.scalars(select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))


def pull_count(engine) -> int:
    with engine.readers() as s:
        return s.scalar(select(func.count()).select_from(PullLog))


@pytest.fixture
def logged(engine, clock):
    """Seven entries spread over four years before the clock's now (2026-01-05 09:00 UTC)."""
    now = clock.now()
    names = ["four_years", "d1097", "d1096", "d1095", "unmask", "http_error", "now"]
    rows = [
        {"at": now - 4 * 365 * DAY, "instance_id": 1},
        {"at": now - 1097 * DAY, "instance_id": 1, "outcome": "error", "error": "timeout"},
        {"at": now - 1096 * DAY, "kind": "service", "connector": "sql", "operation": "lookup", "actor": "system"},
        {"at": now - 1095 * DAY, "kind": "service", "connector": "sql", "operation": "lookup", "actor": "system"},
        {"at": now - 10 * DAY, "kind": "unmask", "actor": "window_clerk", "instance_id": 7, "purpose": "核对身份"},
        {"at": now - DAY, "connector": "http", "operation": "get", "instance_id": 7, "outcome": "error",
         "error": "HTTP 503"},
        {"at": now, "instance_id": 8},
    ]
    return dict(zip(names, add_pulls(engine, *rows), strict=True))


# ---- queries ----------------------------------------------------------------------------------
def test_each_filter_narrows_the_log_and_the_order_stays_newest_first(engine, clock, logged):
    L, now = logged, clock.now()
    assert ids(engine.pull_log()) == sorted(L.values(), reverse=True)
    assert ids(engine.pull_log(connector="exchange")) == [L["now"], L["unmask"], L["d1097"], L["four_years"]]
    assert ids(engine.pull_log(connector="sql")) == [L["d1095"], L["d1096"]]
    assert engine.pull_log(connector="exch") == []  # exact match, not a prefix
    assert ids(engine.pull_log(actor="window_clerk")) == [L["unmask"]]
    assert ids(engine.pull_log(actor="system")) == [L["d1095"], L["d1096"]]
    assert ids(engine.pull_log(outcome="error")) == [L["http_error"], L["d1097"]]
    assert {r["outcome"] for r in engine.pull_log(outcome="ok")} == {"ok"}
    assert len(engine.pull_log(outcome="ok")) == 5
    # since is inclusive, until exclusive
    assert ids(engine.pull_log(since=now - DAY)) == [L["now"], L["http_error"]]
    assert ids(engine.pull_log(until=now - DAY)) == [L["unmask"], L["d1095"], L["d1096"], L["d1097"],
                                                     L["four_years"]]
    assert ids(engine.pull_log(since=now - 11 * DAY, until=now - DAY)) == [L["unmask"]]
    assert engine.pull_log(since=now - DAY + timedelta(microseconds=1), until=now) == []
    # a window given in another zone means the same instant
    shanghai = (now - DAY).astimezone(ZoneInfo("Asia/Shanghai"))
    assert ids(engine.pull_log(since=shanghai, until=now)) == [L["http_error"]]
    # the old filters and the positional signature keep working, and everything combines
    assert ids(engine.pull_log(7)) == [L["http_error"], L["unmask"]]
    assert ids(engine.pull_log(7, 1)) == [L["http_error"]]
    assert ids(engine.pull_log(1, kind="pull")) == [L["d1097"], L["four_years"]]
    assert ids(engine.pull_log(kind="unmask")) == [L["unmask"]]
    assert ids(engine.pull_log(1, connector="exchange", outcome="error", since=now - 1100 * DAY,
                               until=now)) == [L["d1097"]]
    assert engine.pull_log(7, connector="http", outcome="ok") == []
    row = engine.pull_log(actor="window_clerk")[0]
    assert row["kind"] == "unmask" and row["purpose"] == "核对身份" and row["at"] == (now - 10 * DAY).isoformat()


def test_bad_filters_are_refused(engine, logged):
    with pytest.raises(Invalid) as err:
        engine.pull_log(outcome="failed")
    assert "outcome" in err.value.fields
    with pytest.raises(Invalid) as err:
        engine.pull_log(since=datetime(2026, 1, 1))  # naive: which zone?
    assert "since" in err.value.fields


def test_moments_parse_as_shanghai_dates_and_times():
    assert parse_moment("2026-01-05") == datetime(2026, 1, 4, 16, 0, tzinfo=UTC)
    assert parse_moment("2026-01-05T08:30") == datetime(2026, 1, 5, 0, 30, tzinfo=UTC)
    assert parse_moment("2026-01-05 08:30:00+00:00") == datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    assert parse_moment("2026-01-05T08:30:00Z") == datetime(2026, 1, 5, 8, 30, tzinfo=UTC)
    assert parse_moment("2026-01-05T08:30:00+08:00", naive_is_local=False) == datetime(2026, 1, 5, 0, 30, tzinfo=UTC)
    assert parse_moment("2026-01-05", naive_is_local=False) == datetime(2026, 1, 4, 16, 0, tzinfo=UTC)
    for bad in ("yesterday", "", "2026-13-01", "2026-01-05T25:00"):
        with pytest.raises(ValueError, match="ISO 8601"):
            parse_moment(bad)
    with pytest.raises(ValueError, match="offset"):
        parse_moment("2026-01-05T08:30", naive_is_local=False)
    with pytest.raises(ValueError, match="out of range"):
        parse_moment("0001-01-01")  # 00:00 in Shanghai is before the year 1 in UTC


# ---- retention --------------------------------------------------------------------------------
def test_purge_deletes_only_entries_older_than_the_cutoff_and_is_audited(engine, clock, logged):
    L, now = logged, clock.now()
    assert PULL_LOG_MIN_DAYS == 1096
    # administrators only (and the workers' own run as "system")
    for who in ("window_clerk", "no_such_user"):
        with pytest.raises(NotAllowed, match="administrators only"):
            engine.purge_pull_log(1096, who)
    assert pull_count(engine) == len(L) and audit_events(engine, "pull_log.purge") == []
    engine.add_user("admin", roles=["admin"])
    result = engine.purge_pull_log(1096, "admin")
    assert result == {"deleted": 2, "before": (now - 1096 * DAY).isoformat()}
    # the entry exactly at the cutoff is not older than it: kept
    assert sorted(ids(engine.pull_log())) == sorted(v for k, v in L.items() if k not in ("four_years", "d1097"))
    [event] = audit_events(engine, "pull_log.purge")
    assert event.actor == "admin" and event.at == now
    assert event.detail == {"deleted": 2, "before": (now - 1096 * DAY).isoformat(), "older_than_days": 1096}
    assert engine.trail(limit=1)[0]["action"] == "pull_log.purge"
    assert engine.verify_audit().ok
    # again: nothing more to delete, still on the record
    assert engine.purge_pull_log(1096, "admin")["deleted"] == 0
    assert [e.detail["deleted"] for e in audit_events(engine, "pull_log.purge")] == [2, 0]
    # two days later the entries that were 1095 and 1096 days old are past the cutoff
    clock.advance(days=2)
    assert engine.purge_pull_log(1096, "system") == {"deleted": 2, "before": (now + 2 * DAY - 1096 * DAY).isoformat()}
    assert sorted(ids(engine.pull_log())) == sorted([L["unmask"], L["http_error"], L["now"]])
    # a longer retention deletes less
    clock.advance(days=20)
    assert engine.purge_pull_log(3650, "admin")["deleted"] == 0
    assert pull_count(engine) == 3
    assert engine.verify_audit().ok


def test_purge_refuses_less_than_three_years(engine, logged):
    before = pull_count(engine)
    for bad in (1095, 30, 0, -5):
        with pytest.raises(Invalid) as err:
            engine.purge_pull_log(bad, "admin")
        assert set(err.value.fields) == {"older_than_days"}
        assert "1096" in str(err.value) and "\n" not in str(err.value)
    for bad in ("1200", 1200.0, True):
        with pytest.raises(Invalid):
            engine.purge_pull_log(bad, "admin")
    with pytest.raises(Invalid):
        engine.purge_pull_log(10**12, "admin")  # reaches before the year 1
    assert pull_count(engine) == before
    assert audit_events(engine, "pull_log.purge") == []
    assert engine.verify_audit().ok


def test_the_retention_setting():
    assert retention_days({}) is None
    assert retention_days({RETENTION_ENV: " "}) is None
    assert retention_days({RETENTION_ENV: "1200"}) == 1200
    assert retention_days({RETENTION_ENV: "1096"}) == 1096
    for bad, words in (("30", "at least 1096"), ("1095", "at least 1096"), ("3y", "whole number"),
                       ("12.5", "whole number")):
        with pytest.raises(Invalid, match=words) as err:
            retention_days({RETENTION_ENV: bad})
        assert RETENTION_ENV in str(err.value) and "\n" not in str(err.value)


def test_real_pulls_are_found_by_connector_and_actor_and_purged_after_three_years(xengine, exchange, clock):
    xengine.deploy(example_files("pull_enterprise.bpmn"))
    ent = good_enterprise()
    iid = xengine.start("pull_enterprise", {"uscc": ent["uscc"], "applicant_name": ent["legal_rep"]},
                        actor="window_clerk")["instance_id"]
    [log] = xengine.pull_log(connector="exchange", actor="system for window", outcome="ok")
    assert log["instance_id"] == iid and log["operation"] == "enterprise"
    assert xengine.pull_log(connector="sql") == [] and xengine.pull_log(outcome="error") == []
    assert xengine.pull_log(since=clock.now() + timedelta(seconds=1)) == []
    clock.advance(days=1096)
    xengine.add_user("admin", roles=["admin"])
    assert xengine.purge_pull_log(1096, "admin")["deleted"] == 0  # exactly 3 years old: kept
    clock.advance(seconds=1)
    assert xengine.purge_pull_log(1096, "admin")["deleted"] == 1
    assert xengine.pull_log(iid) == []
    assert xengine.verify_audit().ok


# ---- the worker -------------------------------------------------------------------------------
def test_the_worker_refuses_a_retention_below_three_years(engine, monkeypatch):
    monkeypatch.setenv(RETENTION_ENV, "30")
    with pytest.raises(Invalid, match=f"{RETENTION_ENV} is 30 days.*at least 1096"):
        make_scheduler(engine, background=True)
    monkeypatch.setenv(RETENTION_ENV, "three years")
    with pytest.raises(Invalid, match="whole number"):
        make_scheduler(engine, background=True)


def test_the_worker_purges_daily_when_a_retention_is_set(engine, clock, logged, monkeypatch):
    monkeypatch.delenv(RETENTION_ENV, raising=False)
    sched = make_scheduler(engine, background=True)
    assert sched.get_job("claim-jobs") is not None and sched.get_job("purge-pull-log") is None

    monkeypatch.setenv(RETENTION_ENV, "1200")
    started = datetime.now(UTC)
    sched = make_scheduler(engine, background=True)  # not started: the jobs are only scheduled
    job = sched.get_job("purge-pull-log")
    assert job is not None and sched.get_job("claim-jobs") is not None
    assert job.trigger.interval == timedelta(hours=24)
    assert job.max_instances == 1 and job.coalesce is True
    assert timedelta(seconds=50) <= job.next_run_time - started <= timedelta(seconds=70)
    # what the job runs: a purge as "system" with the configured days
    result = job.func(*job.args, **job.kwargs)
    assert result == {"deleted": 1, "before": (clock.now() - 1200 * DAY).isoformat()}  # only the 4-year-old one
    [event] = audit_events(engine, "pull_log.purge")
    assert event.actor == "system" and event.detail["older_than_days"] == 1200
    assert pull_count(engine) == len(logged) - 1
    # a second worker's run the same day finds nothing and adds no event; an administrator's purge
    # that deletes nothing is still recorded (someone asked for it)
    assert job.func(*job.args, **job.kwargs)["deleted"] == 0
    assert len(audit_events(engine, "pull_log.purge")) == 1
    engine.add_user("admin", roles=["admin"])
    assert engine.purge_pull_log(1200, "admin")["deleted"] == 0
    assert [e.actor for e in audit_events(engine, "pull_log.purge")] == ["system", "admin"]


def test_a_failed_purge_is_logged_and_does_not_stop_the_worker(caplog):
    class Broken:
        def purge_pull_log(self, days, actor, **_options):
            raise RuntimeError("database is down")

    with caplog.at_level(logging.ERROR, logger="tongban.worker"):
        assert purge_pull_log(Broken(), 1200) is None
    assert "pull log purge failed" in caplog.text and "database is down" in caplog.text


# ---- the command line ---------------------------------------------------------------------------
@pytest.fixture
def tongban(tmp_path, db_url):
    base = {**os.environ, "TONGBAN_DATABASE_URL": db_url, "TONGBAN_HOME": str(tmp_path)}
    base.pop(RETENTION_ENV, None)

    def run(*args, ok=True, env=None):
        proc = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env={**base, **(env or {})},
                              capture_output=True, text=True, timeout=120)
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run


@pytest.fixture
def cli_engine(db_url):
    from engine.api import Engine

    eng = Engine(db_url)  # the system clock, as the CLI has
    eng.upgrade()
    yield eng
    eng.db.dispose()


def test_cli_filters_the_pull_log(tongban, cli_engine):
    # around midnight of 2025-03-02 in Shanghai (2025-03-01 16:00 UTC)
    before_midnight, at_midnight, later = add_pulls(
        cli_engine,
        {"at": datetime(2025, 3, 1, 15, 59, 59, tzinfo=UTC), "outcome": "error", "error": "timeout"},
        {"at": datetime(2025, 3, 1, 16, 0, tzinfo=UTC), "connector": "sql", "operation": "lookup"},
        {"at": datetime(2025, 3, 3, 4, 0, tzinfo=UTC), "kind": "unmask", "actor": "window_clerk"})

    def pulls(*args):
        return ids(json.loads(tongban("pulls", *args, "--json").stdout))

    assert pulls() == [later, at_midnight, before_midnight]
    assert pulls("--since", "2025-03-02") == [later, at_midnight]  # a date: 00:00 in Asia/Shanghai
    assert pulls("--until", "2025-03-02") == [before_midnight]
    assert pulls("--since", "2025-03-02T00:00", "--until", "2025-03-03T12:01") == [later, at_midnight]
    assert pulls("--until", "2025-03-03T12:00:00+08:00") == [at_midnight, before_midnight]
    assert pulls("--since", "2025-03-03T04:00:00Z") == [later]
    assert pulls("--connector", "sql") == [at_midnight]
    assert pulls("--actor", "window_clerk") == [later]
    assert pulls("--outcome", "error") == [before_midnight]
    assert pulls("--connector", "exchange", "--outcome", "ok", "--kind", "unmask") == [later]
    human = tongban("pulls", "--outcome", "error").stdout
    assert "exchange.enterprise" in human and "timeout" in human
    bad = tongban("pulls", "--since", "yesterday", "--json", ok=False)
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]
    assert bad.stderr.startswith("error: --since must be an ISO 8601 date")
    assert json.loads(bad.stdout)["error"] == "validation"
    assert tongban("pulls", "--outcome", "maybe", ok=False).returncode == 2  # click's own choice check


def test_cli_purges_and_refuses_less_than_three_years(tongban, cli_engine):
    now = datetime.now(UTC)
    cli_engine.add_user("admin", roles=["admin"])
    cli_engine.add_user("window_clerk", ["window"])
    clerk = tongban("purge-pulls", "--as", "window_clerk", "--json", ok=False)
    assert clerk.returncode == 1 and json.loads(clerk.stdout)["error"] == "not_allowed"
    old, kept = add_pulls(cli_engine, {"at": now - 1300 * DAY}, {"at": now - 1000 * DAY})
    refused = tongban("purge-pulls", "--older-than-days", "1095", "--as", "admin", "--json", ok=False)
    assert refused.returncode == 1 and len(refused.stderr.strip().splitlines()) == 1
    assert "at least 1096" in refused.stderr and json.loads(refused.stdout)["error"] == "validation"
    bad_env = tongban("purge-pulls", "--as", "admin", ok=False, env={RETENTION_ENV: "365"})
    assert bad_env.returncode == 1 and bad_env.stderr.strip().startswith(f"error: {RETENTION_ENV} is 365 days")
    assert len(cli_engine.pull_log()) == 2

    # the default: the setting (1400 days keeps both) ...
    out = json.loads(tongban("purge-pulls", "--as", "admin", "--json", env={RETENTION_ENV: "1400"}).stdout)
    assert out["deleted"] == 0 and set(out) == {"deleted", "before"}
    assert abs(datetime.fromisoformat(out["before"]) - (now - 1400 * DAY)) < timedelta(minutes=2)
    # ... else 1096 days
    out = json.loads(tongban("purge-pulls", "--as", "admin", "--json").stdout)
    assert out["deleted"] == 1
    assert abs(datetime.fromisoformat(out["before"]) - (now - 1096 * DAY)) < timedelta(minutes=2)
    assert ids(cli_engine.pull_log()) == [kept]
    human = tongban("purge-pulls", "--older-than-days", "1096", "--as", "admin").stdout
    assert human.startswith("deleted 0 pull log entries from before ")
    events = [e for e in cli_engine.trail(limit=10) if e["action"] == "pull_log.purge"]
    assert [e["detail"]["deleted"] for e in events] == [0, 1, 0] and {e["actor"] for e in events} == {"admin"}
    assert cli_engine.verify_audit().ok
    assert old not in ids(cli_engine.pull_log())


# ---- REST and the admin page --------------------------------------------------------------------
@pytest.fixture
def web_logged(demo_engine, clock):
    now = clock.now()  # 2026-01-05 09:00 UTC = 17:00 in Shanghai
    return dict(zip(["old", "error", "unmask", "today"], add_pulls(
        demo_engine,
        {"at": now - 400 * DAY, "instance_id": 3},
        {"at": now - 2 * DAY, "instance_id": 3, "outcome": "error", "error": "HTTP 503", "connector": "http",
         "operation": "get"},
        {"at": now - timedelta(hours=3), "kind": "unmask", "actor": "window_clerk", "instance_id": 4},
        {"at": now, "instance_id": 4},
    ), strict=True))


def bearer(engine, user: str) -> dict:
    return {"Authorization": f"Bearer {engine.issue_token(user, f'test {user}', actor='admin')['token']}"}


def test_rest_pull_log_for_admins_with_filters(app, demo_engine, web_logged):
    L = web_logged
    c = app.test_client()
    admin = bearer(demo_engine, "admin")

    def get(query="", headers=admin):
        return c.get(f"/api/v1/pull-log{query}", headers=headers)

    r = get()
    assert r.status_code == 200 and ids(r.get_json()) == [L["today"], L["unmask"], L["error"], L["old"]]
    assert set(r.get_json()[0]) >= {"at", "kind", "actor", "instance_id", "connector", "operation", "fields",
                                    "purpose", "basis", "duration_ms", "outcome", "result_hash"}
    assert ids(get("?connector=http").get_json()) == [L["error"]]
    assert ids(get("?actor=window_clerk").get_json()) == [L["unmask"]]
    assert ids(get("?outcome=error").get_json()) == [L["error"]]
    assert ids(get("?kind=unmask").get_json()) == [L["unmask"]]
    assert ids(get("?instance_id=3").get_json()) == [L["error"], L["old"]]
    assert ids(get("?instance=3").get_json()) == [L["error"], L["old"]]  # the parameter's earlier name
    assert ids(get("?instance=3&instance_id=3").get_json()) == [L["error"], L["old"]]
    assert ids(get("?since=2026-01-05").get_json()) == [L["today"], L["unmask"]]  # from 00:00 in Shanghai
    assert ids(get("?since=2026-01-04T00:00:00%2B08:00&until=2026-01-05T09:00:00Z").get_json()) == [L["unmask"]]
    assert ids(get("?until=2026-01-05").get_json()) == [L["error"], L["old"]]
    assert ids(get("?instance=4&outcome=ok&connector=exchange&limit=1").get_json()) == [L["today"]]
    assert get("?connector=exch").get_json() == []

    # a clerk is refused; without a token it is 401
    r = get(headers=bearer(demo_engine, "window_clerk"))
    assert r.status_code == 403 and r.get_json()["error"] == "not_allowed"
    assert get("?since=yesterday", headers=bearer(demo_engine, "monitor")).status_code == 403
    assert get(headers={}).status_code == 401


BAD_QUERIES = [
    ("?since=yesterday", "since"),
    ("?since=2026-01-05T08:00", "since"),  # a date-time needs its offset here
    ("?until=2026-02-30", "until"),
    ("?since=2026-01-05&until=2026-01-04", "until"),
    ("?outcome=failed", "outcome"),
    ("?kind=download", "kind"),
    ("?instance=abc", "instance"),
    ("?instance=0", "instance"),
    ("?instance_id=abc", "instance_id"),
    ("?instance_id=3&instance=4", "instance"),
    ("?limit=0", "limit"),
    ("?limit=501", "limit"),
    ("?connector=" + "x" * 101, "connector"),
]


def test_rest_pull_log_bad_filters_are_400_naming_the_filter(app, demo_engine):
    c, admin = app.test_client(), bearer(demo_engine, "admin")
    for query, field in BAD_QUERIES:
        r = c.get(f"/api/v1/pull-log{query}", headers=admin)
        assert r.status_code == 400, (query, r.get_data(as_text=True))
        body = r.get_json()
        assert body["error"] == "validation" and set(body["fields"]) == {field}, (query, body)
        assert body["message"] == f"invalid request: {field}"


def test_the_endpoint_is_documented(app):
    doc = app.test_client().get("/api/v1/openapi.json").get_json()
    op = doc["paths"]["/pull-log"]["get"]
    assert op["operationId"] == "listPullLog" and {"400", "401", "403"} <= set(op["responses"])
    assert {p["name"] for p in op["parameters"]} == {"instance_id", "instance", "kind", "connector", "actor",
                                                     "since", "until", "outcome", "limit"}
    assert [p["name"] for p in op["parameters"] if p.get("deprecated")] == ["instance"]
    assert op["responses"]["200"]["content"]["application/json"]["schema"]["items"] == {
        "$ref": "#/components/schemas/PullLogEntry"}
    assert "result_hash" in doc["components"]["schemas"]["PullLogEntry"]["properties"]


def page_ids(html: str) -> list[int]:
    return [int(i) for i in re.findall(r'<tr data-kind="\w+"[^>]*><td>(\d+)</td>', html)]


def test_admin_page_filters_and_shows_bad_dates_inline(client_for, web_logged):
    L = web_logged
    admin = client_for("admin")

    def page(query):
        r = admin.get(f"/admin/connectors/log{query}")
        assert r.status_code == 200
        return r.get_data(as_text=True)

    assert page_ids(page("")) == [L["today"], L["unmask"], L["error"], L["old"]]
    assert page_ids(page("?connector=http")) == [L["error"]]
    assert page_ids(page("?actor=window_clerk")) == [L["unmask"]]
    assert page_ids(page("?outcome=error")) == [L["error"]]
    assert page_ids(page("?outcome=nonsense")) == [L["today"], L["unmask"], L["error"], L["old"]]
    # dates are days in Shanghai; the end date counts whole
    assert page_ids(page("?since=2026-01-05")) == [L["today"], L["unmask"]]
    assert page_ids(page("?since=2026-01-03&until=2026-01-04")) == [L["error"]]
    assert page_ids(page("?until=2026-01-05")) == [L["today"], L["unmask"], L["error"], L["old"]]
    html = page("?since=2026-01-03&until=2026-01-04&connector=http&outcome=error")
    assert 'name="since" value="2026-01-03"' in html and 'name="until" value="2026-01-04"' in html
    assert 'name="connector" value="http"' in html and '<option value="error" selected>' in html
    # a bad date is a message on the page, not an error page; the other filters still apply
    html = page("?since=not-a-date&actor=window_clerk")
    assert 'id="bad-since"' in html and 'id="bad-until"' not in html and page_ids(html) == [L["unmask"]]
    html = page("?until=2026-02-30")
    assert 'id="bad-until"' in html
    for odd in ("?instance=%C2%B2", "?instance=99999999999999999999", "?until=9999-12-31",
                "?since=9999-12-31T23:59:59-12:00", "?limit=x"):
        page(odd)  # never a 500
    # in English too
    html = page("?lang=en&since=bad")
    assert "The start date must be a date" in html and "To (inclusive)" in html
    assert client_for("window_clerk").get("/admin/connectors/log").status_code == 403


def test_cli_worker_with_a_bad_retention_says_only_why_and_exits_1(tongban, cli_engine):
    bad = tongban("worker", ok=False, env={RETENTION_ENV: "30"})
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [bad.stderr.strip()]  # one line: no start line before it
    assert bad.stderr.startswith("error: ") and RETENTION_ENV in bad.stderr and "1096" in bad.stderr
