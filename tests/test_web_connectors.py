"""数据连接 pages through the Flask test client, against the real demo exchange on 127.0.0.1:
the admin edits connector configuration and secrets (never shown back), the pull log and
incidents (retried from the admin page and the instance page), and the task page's pulled data
with provenance, masking and 查看完整 (logged)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from tests.exchange_fixtures import API_KEY, good_enterprise
from tests.exchange_fixtures import exchange as exchange  # noqa: F401 - fixture

NEW_KEY = "second-key-also-secret-9c1e"


@pytest.fixture
def admin(client_for):
    return client_for("admin")


def configure_via_page(c, exchange, api_key: str = API_KEY):
    r = c.post("/admin/connectors/exchange", data={
        "csrf_token": c.csrf, "cfg_base_url": exchange.url, "cfg_timeout": "1", "cfg_retries": "0",
        "cfg_backoff": "0", "cfg_breaker_failures": "100", "cfg_api_key_header": "", "secret_api_key": api_key})
    assert r.status_code == 302, r.get_data(as_text=True)[:2000]
    return r


def start_pull(engine, ent=None) -> int:
    ent = ent or good_enterprise()
    return engine.start("pull_enterprise", {"uscc": ent["uscc"], "applicant_name": ent["legal_rep"]},
                        actor="window_clerk")["instance_id"]


def body(r) -> str:
    return r.get_data(as_text=True)


@pytest.fixture
def configured(demo_engine, admin, exchange):
    configure_via_page(admin, exchange)
    yield demo_engine
    demo_engine.connector_pool.close()


def test_admin_sees_and_edits_connectors_and_the_secret_is_never_shown(demo_engine, admin, exchange):
    seen = []

    def get(url):
        r = admin.get(url)
        seen.append(body(r))
        return r

    r = get("/admin/connectors")
    assert r.status_code == 200
    page = body(r)
    assert 'id="tab-connectors"' in page and "数据连接" in page
    for name in ("exchange", "http", "sql"):
        assert f'id="connector-{name}"' in page
    ops = re.search(r'id="operations-exchange".*?</table>', page, re.S).group(0)
    for op in ("enterprise", "identity", "credit", "premises"):
        assert f"<code>{op}</code>" in ops
    assert "未设置" in re.search(r'id="secret-exchange-api_key".*?</div>', page, re.S).group(0)

    r = configure_via_page(admin, exchange)
    seen.append(body(r))
    [cfg] = [c for c in demo_engine.connector_configs() if c["name"] == "exchange"]
    assert cfg["config"] == {"base_url": exchange.url, "timeout": 1.0, "retries": 0, "backoff": 0.0,
                             "breaker_failures": 100}
    assert cfg["secrets"] == {"api_key": "set"} and cfg["updated_by"] == "admin"
    page = body(get("/admin/connectors"))
    assert "已设置" in re.search(r'id="secret-exchange-api_key".*?</div>', page, re.S).group(0)
    assert f'value="{exchange.url}"' in page

    # an empty secret input keeps the stored secret; the configuration changes
    r = admin.post("/admin/connectors/exchange", data={
        "csrf_token": admin.csrf, "cfg_base_url": exchange.url, "cfg_timeout": "2.5", "cfg_retries": "0",
        "secret_api_key": ""}, follow_redirects=True)
    seen.append(body(r))
    assert r.status_code == 200 and "已保存" in body(r)
    [cfg] = [c for c in demo_engine.connector_configs() if c["name"] == "exchange"]
    assert cfg["config"]["timeout"] == 2.5 and cfg["secrets"] == {"api_key": "set"}
    # and the connector still authenticates with it: a pull succeeds
    iid = start_pull(demo_engine)
    assert [t["status"] for t in demo_engine.tasks(instance_id=iid, status="all")] == ["open"]

    # a new secret replaces the old one, again never shown
    r = admin.post("/admin/connectors/exchange", data={
        "csrf_token": admin.csrf, "cfg_base_url": exchange.url, "secret_api_key": NEW_KEY}, follow_redirects=True)
    seen.append(body(r))
    [new] = [c for c in demo_engine.connector_configs() if c["name"] == "exchange"]
    assert new["revision"] == cfg["revision"] + 1 and new["secrets"] == {"api_key": "set"}
    assert new["config"] == {"base_url": exchange.url}  # empty inputs: the defaults apply

    # bad input: 400 with a message, nothing stored, the typed secret not echoed
    r = admin.post("/admin/connectors/exchange", data={
        "csrf_token": admin.csrf, "cfg_timeout": "fast", "extra_json": "{not json", "secret_api_key": API_KEY})
    seen.append(body(r))
    assert r.status_code == 400 and "JSON" in body(r)
    r = admin.post("/admin/connectors/exchange", data={
        "csrf_token": admin.csrf, "extra_json": '{"api_key": "plain-leak-1234"}'})
    assert r.status_code == 400 and "api_key" in body(r)
    assert "plain-leak-1234" not in str(demo_engine.connector_configs())
    # no CSRF token: refused
    assert admin.post("/admin/connectors/exchange", data={"secret_api_key": "x" * 12}).status_code == 400
    assert admin.post("/admin/connectors/nosuch", data={"csrf_token": admin.csrf}).status_code == 404

    # clearing removes it
    admin.post("/admin/connectors/exchange", data={"csrf_token": admin.csrf, "cfg_base_url": exchange.url,
                                                   "clear_api_key": "1"})
    [cfg] = [c for c in demo_engine.connector_configs() if c["name"] == "exchange"]
    assert cfg["secrets"] == {"api_key": "not set"}

    seen += [body(get("/admin/connectors")), body(get("/admin/connectors/log")), body(get("/admin/audit"))]
    for text in seen:
        assert API_KEY not in text and NEW_KEY not in text


def test_clerks_may_not_open_or_post_to_the_connector_pages(client_for, demo_engine):
    for name in ("window_clerk", "monitor", "designer"):
        c = client_for(name)
        assert c.get("/admin/connectors").status_code == 403
        assert c.get("/admin/connectors/log").status_code == 403
        assert c.post("/admin/connectors/exchange", data={"csrf_token": c.csrf,
                                                          "secret_api_key": "x" * 12}).status_code == 403
        assert c.post("/admin/incidents/1/retry", data={"csrf_token": c.csrf}).status_code == 403
    assert "tab-connectors" not in body(client_for("window_clerk").get("/"))
    [cfg] = [c for c in demo_engine.connector_configs() if c["name"] == "exchange"]
    assert cfg["secrets"] == {"api_key": "not set"}


def test_the_task_page_shows_provenance_and_masks_and_unmasking_is_logged(configured, client_for, exchange):
    engine = configured
    ent = good_enterprise()
    iid = start_pull(engine, ent)
    [task] = engine.tasks(instance_id=iid)
    clerk = client_for("window_clerk")
    page = body(clerk.get(f"/tasks/{task['id']}"))
    table = re.search(r'id="pulled-data".*?</table>', page, re.S).group(0)
    full = ent["legal_rep_id"]
    masked = full[:6] + "*" * 8 + full[-4:]
    assert ent["enterprise_name"] in table and masked in table
    assert full not in page
    view = engine.task(task["id"], "window_clerk")
    request_id = view["pulled"][0]["request_id"]
    assert "数据共享交换平台" in table and "exchange.enterprise" in table and request_id in table
    purpose, basis = view["pulled"][0]["purpose"], view["pulled"][0]["basis"]
    assert purpose.startswith("核验") and basis.startswith("《优化营商环境条例》")
    provenance = re.search(r'class="muted provenance".*?</p>', page, re.S).group(0)
    assert purpose in provenance and basis in provenance  # 用途 and 依据
    assert 'id="unmask-legal_rep_id"' in table and 'id="unmask-enterprise_name"' not in table

    # a reason is required; without CSRF the post is refused
    url = f"/tasks/{task['id']}/unmask"
    r = clerk.post(url, data={"csrf_token": clerk.csrf, "field": "legal_rep_id", "reason": " "})
    assert r.status_code == 400 and full not in body(r)
    assert clerk.post(url, data={"field": "legal_rep_id", "reason": "x"}).status_code == 400
    assert engine.pull_log(iid, kind="unmask") == []

    r = clerk.post(url, data={"csrf_token": clerk.csrf, "field": "legal_rep_id", "reason": "核对法定代表人身份"})
    assert r.status_code == 200
    assert re.search(r'id="revealed-legal_rep_id">([^<]*)<', body(r)).group(1) == full
    assert 'id="unmask-notice"' in body(r)
    [log] = engine.pull_log(iid, kind="unmask")
    assert log["actor"] == "window_clerk" and log["fields"] == ["legal_rep_id"] and log["purpose"] == "核对法定代表人身份"
    assert full not in body(clerk.get(f"/tasks/{task['id']}"))  # shown once, masked again afterwards

    # refusals are shown as a message: an unknown field; a monitor reads the task but may not unmask
    r = clerk.post(url, data={"csrf_token": clerk.csrf, "field": "business_scope", "reason": "看看"})
    assert r.status_code == 404 and 'id="action-error"' in body(r)
    monitor = client_for("monitor")
    assert monitor.get(f"/tasks/{task['id']}").status_code == 200
    r = monitor.post(url, data={"csrf_token": monitor.csrf, "field": "legal_rep_id", "reason": "检查"})
    assert r.status_code == 403 and 'id="action-error"' in body(r) and full not in body(r)
    # a clerk of another group does not see the task at all
    other = client_for("market_clerk")
    assert other.post(url, data={"csrf_token": other.csrf, "field": "legal_rep_id", "reason": "x"}).status_code == 403
    assert len(engine.pull_log(iid, kind="unmask")) == 1

    # the admin's pull log view, filtered by instance
    admin = client_for("admin")
    page = body(admin.get(f"/admin/connectors/log?instance={iid}"))
    rows = re.findall(r'<tr data-kind="(\w+)"', page)
    assert sorted(rows) == ["pull", "unmask"]
    assert "核对法定代表人身份" in page and full not in page and ent["enterprise_name"] not in page
    page = body(admin.get(f"/admin/connectors/log?instance={iid}&kind=unmask"))
    assert re.findall(r'<tr data-kind="(\w+)"', page) == ["unmask"]
    assert re.findall(r'<tr data-kind="(\w+)"', body(admin.get("/admin/connectors/log?instance=999999"))) == []


def _until_incident(engine, clock, iid, limit=10):
    for _ in range(limit):
        clock.advance(timedelta(hours=1))
        engine.run_due_jobs("test-worker")
        if engine.incidents(instance_id=iid):
            return
    raise AssertionError("no incident")


@pytest.mark.parametrize("where", ["admin", "instance"])
def test_an_incident_is_listed_and_retried_from_the_page_after_the_exchange_recovers(
        configured, client_for, exchange, clock, where):
    engine = configured
    exchange.control(mode="error500")
    iid = start_pull(engine)
    assert [t["status"] for t in engine.tasks(instance_id=iid, status="all")] == ["waiting"]
    _until_incident(engine, clock, iid)
    [incident] = engine.incidents(instance_id=iid)
    admin = client_for("admin")
    listing = body(admin.get("/admin/connectors"))
    assert f'data-incident="{incident["id"]}"' in listing and "job:pull" in listing
    instance_page = body(admin.get(f"/instances/{iid}"))
    assert f'data-incident="{incident["id"]}"' in instance_page and "retry-button" in instance_page
    # a clerk sees the incident on the instance page but gets no retry button
    clerk_page = body(client_for("window_clerk").get(f"/instances/{iid}"))
    assert f'data-incident="{incident["id"]}"' in clerk_page and "retry-button" not in clerk_page

    url = f"/admin/incidents/{incident['id']}/retry"
    back = "/admin/connectors" if where == "admin" else f"/instances/{iid}"
    assert admin.post(url, data={"next": back}).status_code == 400  # no CSRF token
    assert engine.incidents(instance_id=iid) == [incident]

    exchange.control(mode="ok")
    r = admin.post(url, data={"csrf_token": admin.csrf, "next": back})
    assert r.status_code == 302 and r.headers["Location"].endswith(back)
    page = body(admin.get(back))
    assert "重试成功" in page
    assert engine.incidents(instance_id=iid) == []
    assert [t["status"] for t in engine.tasks(instance_id=iid, status="all")] == ["open"]
    assert any(e["action"] == "incident.retry" and e["actor"] == "admin" for e in engine.trail(iid))
    # retrying again: the engine refuses, the page says so
    r = admin.post(url, data={"csrf_token": admin.csrf, "next": back}, follow_redirects=True)
    assert "操作失败" in body(r)
    # resolved incidents are listed on request
    assert f'data-incident="{incident["id"]}"' in body(admin.get("/admin/connectors?resolved=1"))
    assert f'data-incident="{incident["id"]}"' not in body(admin.get("/admin/connectors"))
