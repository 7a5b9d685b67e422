"""Declared data pulls and service tasks through the engine, against the real demo exchange on 127.0.0.1."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from engine.errors import Invalid, NotAllowed, NotFound
from engine.models import HumanTask, Job, PullLog
from tests.conftest import example_files
from tests.exchange_fixtures import (
    API_KEY,
    blacklisted_enterprise,
    configure_exchange,
    count,
    good_enterprise,
)
from tests.exchange_fixtures import exchange as exchange  # noqa: F401 - fixture
from tests.exchange_fixtures import xengine as xengine  # noqa: F401 - fixture


def deploy(engine):
    engine.deploy(example_files("pull_enterprise.bpmn", "service_credit.bpmn"))


def start_pull(engine, ent=None):
    ent = ent or good_enterprise()
    r = engine.start("pull_enterprise", {"uscc": ent["uscc"], "applicant_name": ent["legal_rep"]}, actor="window_clerk")
    return r["instance_id"]


def all_tasks(engine, iid):
    return engine.tasks(instance_id=iid, status="all")


def test_pulled_fields_are_in_the_task_data_before_it_reaches_the_inbox(xengine, exchange):
    deploy(xengine)
    ent = good_enterprise()
    iid = start_pull(xengine, ent)
    [task] = xengine.tasks(instance_id=iid)
    assert task["status"] == "open" and task["bpmn_id"] == "accept"
    view = xengine.task(task["id"], "window_clerk")
    pulled = {p["field"]: p for p in view["pulled"]}
    assert [p["field"] for p in view["pulled"]] == [
        "enterprise_name", "legal_rep", "legal_rep_id", "enterprise_address", "enterprise_status"]
    assert pulled["enterprise_name"]["value"] == ent["enterprise_name"]
    assert pulled["enterprise_address"]["value"] == ent["address"]
    p = pulled["enterprise_name"]
    assert p["source"] == "数据共享交换平台" and p["operation"] == "enterprise" and len(p["request_id"]) == 32
    assert p["purpose"].startswith("核验") and p["basis"].startswith("《优化营商环境条例》") and p["at"]
    # only the declared fields entered the data (minimum necessary)
    assert view["data"]["enterprise_name"] == ent["enterprise_name"]
    for undeclared in ("business_scope", "registered_capital", "address", "status", "found"):
        assert undeclared not in view["data"]
    # completing the task merges them into the workflow data, where later steps and conditions see them
    xengine.complete(task["id"], "window_clerk", {"decision": "accept"})
    data = xengine.show(iid)["data"]
    assert data["enterprise_name"] == ent["enterprise_name"] and data["decision"] == "accept"
    assert "business_scope" not in data
    # the second step pulls its own data, after the first is done
    [second] = xengine.tasks(instance_id=iid)
    view = xengine.task(second["id"], "approver")
    assert {p["field"] for p in view["pulled"]} == {"premises_kind", "premises_address", "premises_area_m2"}
    assert view["data"]["premises_kind"] == "租赁"


def test_sensitive_fields_are_masked_unless_the_role_may_see_them_and_unmasking_is_logged(xengine, exchange):
    deploy(xengine)
    ent = good_enterprise()
    iid = start_pull(xengine, ent)
    [task] = xengine.tasks(instance_id=iid)
    full = ent["legal_rep_id"]
    masked = full[:6] + "*" * 8 + full[-4:]
    clerk = xengine.task(task["id"], "window_clerk")
    rep = next(p for p in clerk["pulled"] if p["field"] == "legal_rep_id")
    assert rep["value"] == masked and rep["masked"] and rep["sensitive"] == "id"
    assert clerk["data"]["legal_rep_id"] == masked and "legal_rep_id" in clerk["sensitive"]
    assert full not in json.dumps(clerk, ensure_ascii=False)
    # the approval group may see it in full (seeFull="approval"); admin is in that group too
    xengine.add_user("approval_clerk", ["approval", "window"])
    seen = xengine.task(task["id"], "approval_clerk")
    assert next(p for p in seen["pulled"] if p["field"] == "legal_rep_id")["value"] == full
    assert seen["data"]["legal_rep_id"] == full
    # unmasking is allowed to whoever may see the task, and it is logged
    assert xengine.unmask(task["id"], "legal_rep_id", "window_clerk", reason="核对法定代表人身份")["value"] == full
    [log] = xengine.pull_log(iid, kind="unmask")
    assert log["actor"] == "window_clerk" and log["fields"] == ["legal_rep_id"] and log["purpose"] == "核对法定代表人身份"
    assert any(e["action"] == "unmask" and e["actor"] == "window_clerk" for e in xengine.trail(iid))
    with pytest.raises(NotAllowed):
        xengine.unmask(task["id"], "legal_rep_id", "outsider")
    with pytest.raises(NotFound):
        xengine.unmask(task["id"], "business_scope", "window_clerk")
    with pytest.raises(NotAllowed):
        xengine.task(task["id"], "outsider")


def test_the_pull_log_says_who_what_why_and_keeps_no_values(xengine, exchange):
    deploy(xengine)
    ent = good_enterprise()
    iid = start_pull(xengine, ent)
    [log] = xengine.pull_log(iid)
    assert log["kind"] == "pull" and log["outcome"] == "ok" and log["task"] == "accept"
    assert log["connector"] == "exchange" and log["operation"] == "enterprise"
    assert log["fields"] == ["enterprise_name", "legal_rep", "legal_rep_id", "enterprise_address", "enterprise_status"]
    assert log["purpose"] and log["basis"] and log["actor"] == "system for window"
    assert log["task_id"] == xengine.tasks(instance_id=iid)[0]["id"]
    assert len(log["result_hash"]) == 64 and log["duration_ms"] >= 0 and len(log["request_id"]) == 32
    text = json.dumps(xengine.pull_log(), ensure_ascii=False)
    for value in (ent["enterprise_name"], ent["legal_rep_id"], ent["address"]):
        assert value not in text
    # the same result hashes the same: the hash identifies what was kept without storing it
    iid2 = start_pull(xengine, ent)
    assert xengine.pull_log(iid2)[0]["result_hash"] == log["result_hash"]
    assert xengine.verify_audit().ok


def test_connector_secrets_are_never_shown_logged_or_audited(xengine, exchange):
    deploy(xengine)
    start_pull(xengine)
    [cfg] = [c for c in xengine.connector_configs() if c["name"] == "exchange"]
    assert cfg["secrets"] == {"api_key": "set"} and cfg["config"]["base_url"] == exchange.url
    assert [c for c in xengine.connector_configs() if c["name"] == "sql"][0]["secrets"] == {"url": "not set"}
    outputs = json.dumps([xengine.connector_configs(), xengine.connectors(), xengine.trail(), xengine.pull_log(),
                          xengine.show(1)], ensure_ascii=False, default=str)
    assert API_KEY not in outputs
    with pytest.raises(Invalid):
        xengine.set_connector_config("exchange", {"base_url": exchange.url, "api_key": "oops"}, {}, actor="admin")
    # a wrong key: the pull fails (and says so without the key), a right key fixes it
    xengine.set_connector_config("exchange", {"base_url": exchange.url, "retries": 0}, {"api_key": "wrong"},
                                 actor="admin")
    iid = start_pull(xengine)
    [task] = all_tasks(xengine, iid)
    assert task["status"] == "waiting"
    [err] = xengine.pull_log(iid)
    assert err["outcome"] == "error" and "401" in err["error"] and "wrong" not in err["error"]
    configure_exchange(xengine, exchange)
    assert count(xengine, Job, kind="pull", status="pending") == 1


def test_connectors_lists_operations_with_schemas(xengine):
    ex = next(c for c in xengine.connectors() if c["name"] == "exchange")
    ops = {o["name"]: o for o in ex["operations"]}
    assert ops["enterprise"]["output_schema"]["properties"]["legal_rep_id"]["sensitive"] == "id"
    assert ops["identity"]["input_schema"]["required"] == ["id_number", "name"]
    assert ex["config_schema"]["api_key"]["secret"] is True


def _until_incident(engine, clock, iid, limit=10):
    outcomes = []
    for _ in range(limit):
        clock.advance(timedelta(hours=1))
        outcomes.append(engine.run_due_jobs("test-worker"))
        if engine.incidents(instance_id=iid):
            return outcomes
    raise AssertionError(f"no incident after {outcomes}")


@pytest.mark.parametrize("failure", ["down", "error500", "error429", "malformed", "wrong_schema", "slow"])
def test_failures_wait_retry_raise_an_incident_and_a_retry_after_recovery_duplicates_nothing(
        xengine, exchange, clock, failure):
    deploy(xengine)
    exchange.fail(failure)
    iid = start_pull(xengine)
    [task] = all_tasks(xengine, iid)
    # the instance waits: the task is not in any inbox, the job is scheduled again with backoff
    assert task["status"] == "waiting"
    assert xengine.tasks(user="window_clerk") == []
    assert [t["id"] for t in xengine.show(iid)["waiting_tasks"]] == [task["id"]]
    with xengine.readers() as s:
        job = s.scalars(select(Job).where(Job.instance_id == iid, Job.kind == "pull")).one()
        assert job.status == "pending" and job.attempts == 1 and job.due_at > clock.now()
        first_due = job.due_at
    # nothing happens before the backoff is over
    assert xengine.run_due_jobs("test-worker") == {}
    clock.advance(first_due - clock.now() + timedelta(seconds=1))
    assert xengine.run_due_jobs("test-worker") == {"retry": 1}
    _until_incident(xengine, clock, iid)
    [incident] = xengine.incidents(instance_id=iid)
    assert incident["kind"] == "job:pull" and incident["element_id"] == "accept"
    errors = [p for p in xengine.pull_log(iid) if p["outcome"] == "error"]
    assert len(errors) == 5 and all(p["error"] for p in errors)
    assert xengine.show(iid)["status"] == "running"
    assert all_tasks(xengine, iid)[0]["status"] == "waiting"
    # an administrator retries while it is still failing: a new incident, nothing else changes
    again = xengine.retry_incident(incident["id"], "admin")
    assert again["outcome"] == "retry"
    # the exchange recovers; the retry succeeds (the worker does the backoff retries)
    exchange.recover()
    clock.advance(timedelta(hours=1))
    assert xengine.run_due_jobs("test-worker") == {"done": 1}
    [task] = all_tasks(xengine, iid)
    assert task["status"] == "open"
    assert xengine.task(task["id"], "window_clerk")["data"]["enterprise_name"] == good_enterprise()["enterprise_name"]
    # nothing duplicated: one human task, one successful pull, one pull job, which is done
    assert count(xengine, HumanTask, instance_id=iid) == 1
    assert len([p for p in xengine.pull_log(iid) if p["outcome"] == "ok"]) == 1
    with xengine.readers() as s:
        jobs = list(s.scalars(select(Job).where(Job.instance_id == iid)))
        assert [(j.kind, j.status) for j in jobs] == [("pull", "done")]
        assert "inputs" not in jobs[0].payload  # the inputs (personal data) do not outlive the job
    with pytest.raises(NotAllowed):
        xengine.retry_incident(incident["id"], "admin")
    # and the process goes on
    xengine.complete(task["id"], "window_clerk", {"decision": "accept"})
    assert [t["bpmn_id"] for t in xengine.tasks(instance_id=iid)] == ["approve"]
    assert xengine.verify_audit().ok


def test_an_incident_retried_after_recovery_opens_the_task_at_once(xengine, exchange, clock):
    deploy(xengine)
    exchange.control(mode="error500")
    iid = start_pull(xengine)
    _until_incident(xengine, clock, iid)
    [incident] = xengine.incidents(instance_id=iid)
    exchange.control(mode="ok")
    assert xengine.retry_incident(incident["id"], "admin")["outcome"] == "done"
    assert xengine.incidents(instance_id=iid) == []
    assert [t["status"] for t in all_tasks(xengine, iid)] == ["open"]
    assert any(e["action"] == "incident.retry" and e["actor"] == "admin" for e in xengine.trail(iid))


def test_a_transient_failure_is_healed_by_the_worker_without_an_incident(xengine, exchange, clock):
    deploy(xengine)
    exchange.control(mode="error500", times=2)
    iid = start_pull(xengine)
    assert all_tasks(xengine, iid)[0]["status"] == "waiting"
    clock.advance(timedelta(minutes=5))
    xengine.run_due_jobs("w")
    clock.advance(timedelta(minutes=5))
    xengine.run_due_jobs("w")
    assert all_tasks(xengine, iid)[0]["status"] == "open"
    assert xengine.incidents(instance_id=iid) == []
    assert [p["outcome"] for p in reversed(xengine.pull_log(iid))] == ["error", "error", "ok"]


def test_the_worker_is_the_fallback_when_pulls_do_not_run_inline(xengine, exchange):
    deploy(xengine)
    xengine.run_pulls_inline = False
    iid = start_pull(xengine)
    assert all_tasks(xengine, iid)[0]["status"] == "waiting"
    assert exchange.requests == 0
    assert xengine.run_due_jobs("w") == {"done": 1}
    assert all_tasks(xengine, iid)[0]["status"] == "open"
    assert xengine.run_due_jobs("w") == {}
    assert exchange.requests == 1


def test_a_waiting_task_cannot_be_claimed_or_completed(xengine, exchange):
    deploy(xengine)
    exchange.stop()
    iid = start_pull(xengine)
    [task] = all_tasks(xengine, iid)
    with pytest.raises(NotAllowed, match="waiting"):
        xengine.claim(task["id"], "window_clerk")
    with pytest.raises(NotAllowed, match="waiting"):
        xengine.complete(task["id"], "window_clerk", {"decision": "accept"})


def test_service_task_calls_the_connector_and_routes_on_the_answer(xengine, exchange):
    deploy(xengine)
    ok = xengine.start("service_credit", {"uscc": good_enterprise()["uscc"]})["instance_id"]
    shown = xengine.show(ok)
    assert shown["status"] == "completed" and shown["data"]["blacklisted"] is False
    assert shown["data"]["route"] == "告知承诺"
    bad = xengine.start("service_credit", {"uscc": blacklisted_enterprise()["uscc"]})["instance_id"]
    [review] = xengine.tasks(instance_id=bad)
    assert review["bpmn_id"] == "manual_review"
    assert xengine.show(bad)["data"]["blacklist_reason"]
    [log] = xengine.pull_log(bad)
    assert log["kind"] == "service" and log["fields"] == ["blacklisted", "blacklist_reason"]
    assert any(e["action"] == "service" for e in xengine.trail(bad))


def test_a_failing_service_task_parks_the_instance_until_retried(xengine, exchange, clock):
    deploy(xengine)
    exchange.control(mode="wrong_schema")
    iid = xengine.start("service_credit", {"uscc": blacklisted_enterprise()["uscc"]})["instance_id"]
    assert xengine.show(iid)["status"] == "running" and all_tasks(xengine, iid) == []
    # the case view says what it waits for: the service call, to be retried
    [waiting] = xengine.show(iid)["pending_jobs"]
    assert waiting["kind"] == "service" and waiting["element_id"] == "credit_check" and waiting["attempts"] == 1
    assert waiting["last_error"] and "uscc" not in str(waiting)  # the call's inputs are not shown
    _until_incident(xengine, clock, iid)
    [incident] = xengine.incidents(instance_id=iid)
    assert incident["kind"] == "job:service" and incident["element_id"] == "credit_check"
    exchange.control(mode="ok")
    assert xengine.retry_incident(incident["id"], "admin")["outcome"] == "done"
    assert [t["bpmn_id"] for t in xengine.tasks(instance_id=iid)] == ["manual_review"]
    assert count(xengine, Job, instance_id=iid, kind="service") == 1
    assert xengine.show(iid)["pending_jobs"] == []
    with xengine.readers() as s:
        assert s.scalar(select(func.count()).select_from(PullLog).where(
            PullLog.instance_id == iid, PullLog.outcome == "ok")) == 1


def test_without_configuration_the_exchange_connector_uses_the_embedded_demo_data(engine):
    deploy(engine)
    iid = start_pull(engine)
    [task] = engine.tasks(instance_id=iid)
    view = engine.task(task["id"], "window_clerk")
    assert {p["source"] for p in view["pulled"]} == {"数据共享交换平台（内置演示）"}


def test_a_pull_input_that_cannot_be_evaluated_becomes_an_incident_at_once(xengine, exchange):
    deploy(xengine)
    iid = xengine.start("pull_enterprise", {"applicant_name": "张三"}, actor="window_clerk")["instance_id"]
    [incident] = xengine.incidents(instance_id=iid)
    assert "uscc" in incident["message"] and incident["kind"] == "job:pull"
    assert exchange.requests == 0


def test_a_cancelled_task_drops_its_pending_pull(xengine, exchange, clock):
    deploy(xengine)
    exchange.stop()
    iid = start_pull(xengine)
    with xengine.sessions.begin() as s:
        h = s.scalars(select(HumanTask).where(HumanTask.instance_id == iid)).one()
        h.status = "cancelled"
    exchange.start()
    clock.advance(timedelta(hours=1))
    assert xengine.run_due_jobs("w") == {"skipped": 1}
    assert exchange.requests == 0



def _during_the_call(monkeypatch, action):
    """Run ``action`` once while the exchange is being asked (after the job was read, before the apply)."""
    from connectors.http import HttpConnector

    original, done = HttpConnector.request, []

    def request(self, *args, **kwargs):
        if not done:
            done.append(1)
            action()
        return original(self, *args, **kwargs)

    monkeypatch.setattr(HttpConnector, "request", request)


def test_a_task_cancelled_during_the_call_gets_nothing_and_the_job_says_why(xengine, exchange, monkeypatch):
    from engine.models import AuditEvent, TaskPulled

    deploy(xengine)

    def cancel():
        with xengine.sessions.begin() as s:
            s.scalars(select(HumanTask).where(HumanTask.status == "waiting")).one().status = "cancelled"

    _during_the_call(monkeypatch, cancel)
    iid = start_pull(xengine)
    assert exchange.requests == 1
    [h] = all_tasks(xengine, iid)
    assert h["status"] == "cancelled"
    assert count(xengine, TaskPulled, instance_id=iid) == 0
    assert count(xengine, AuditEvent, instance_id=iid, action="pull") == 0
    assert xengine.pull_log(iid) == []
    with xengine.readers() as s:
        job = s.scalars(select(Job).where(Job.instance_id == iid, Job.kind == "pull")).one()
        assert (job.status, job.last_error, job.locked_by) == ("done", "the task is no longer waiting", None)
    assert xengine.verify_audit().ok


def test_a_job_taken_over_during_the_call_is_applied_by_nobody_twice(xengine, exchange, monkeypatch):
    from engine.models import AuditEvent, TaskPulled

    deploy(xengine)

    def take_over():
        with xengine.sessions.begin() as s:
            s.scalars(select(Job).where(Job.kind == "pull", Job.status == "pending")).one().locked_by = "other"

    _during_the_call(monkeypatch, take_over)
    iid = start_pull(xengine)
    [h] = all_tasks(xengine, iid)
    assert h["status"] == "waiting"  # the other worker will open it; this one wrote nothing
    assert count(xengine, TaskPulled, instance_id=iid) == 0
    assert count(xengine, AuditEvent, instance_id=iid, action="pull") == 0
    with xengine.readers() as s:
        job = s.scalars(select(Job).where(Job.instance_id == iid, Job.kind == "pull")).one()
        assert (job.status, job.locked_by, job.attempts) == ("pending", "other", 0)


def test_pull_events_hash_into_the_chain_like_every_other_event(xengine, exchange):
    """On PostgreSQL the pull's audit event is hashed by the database; the chain must verify and the
    stored hash must be the one the engine computes from the stored event."""
    from engine import audit
    from engine.models import AuditEvent

    deploy(xengine)
    ent = good_enterprise()
    iids = [start_pull(xengine, ent) for _ in range(3)]
    with xengine.readers() as s:
        events = list(s.scalars(select(AuditEvent).where(AuditEvent.instance_id.in_(iids)).order_by(AuditEvent.id)))
    pulls = [e for e in events if e.action == "pull"]
    assert len(pulls) == 3
    for e in pulls:
        assert e.hash == audit._digest(e.prev_hash, e.at, e.actor, e.action, e.instance_id, e.definition_id,
                                       e.task_ref, e.detail)
        assert e.detail["task_id"] and e.detail["pulls"][0]["operation"] == "enterprise"
    # each event links to the one before it
    for before, after in zip(events, events[1:], strict=False):
        assert after.prev_hash == before.hash
    assert xengine.verify_audit().ok


HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:tb="urn:tongban:bpmn:1" xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" '
        'id="d" targetNamespace="urn:t">\n')


def chain(key, *nodes):
    ids = ["start", *[n.split('id="', 1)[1].split('"', 1)[0] for n in nodes], "end"]
    flows = "".join(f'<bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}"/>'
                    for i, (a, b) in enumerate(zip(ids, ids[1:], strict=False)))
    return (f'<bpmn:process id="{key}" isExecutable="true"><bpmn:startEvent id="start"/>{"".join(nodes)}'
            f'<bpmn:endEvent id="end"/>{flows}</bpmn:process>')


# the enterprise record for one step: the name for the case, the legal representative's ID for that step only
SCOPED_PULL = ('<bpmn:extensionElements><tb:data connector="exchange" operation="enterprise" purpose="核验" '
               'basis="依据"><tb:input name="uscc" expr="uscc"/><tb:output name="enterprise_name"/>'
               '<tb:output name="legal_rep_id" scope="task"/></tb:data></bpmn:extensionElements>')


def deploy_scoped(engine, key: str, first: str) -> None:
    """``first`` (pulling SCOPED_PULL), then a user task ``b``."""
    xml = HEAD + chain(key, first, '<bpmn:userTask id="b" tb:candidateGroups="window"/>') + "</bpmn:definitions>"
    engine.deploy({f"{key}.bpmn": xml.encode()})


def test_a_task_scoped_field_is_shown_to_its_step_and_dropped_when_the_step_completes(xengine, exchange):
    ent = good_enterprise()
    deploy_scoped(xengine, "scoped", f'<bpmn:userTask id="a" tb:candidateGroups="window">{SCOPED_PULL}</bpmn:userTask>')
    iid = xengine.start("scoped", {"uscc": ent["uscc"]})["instance_id"]
    [a] = xengine.tasks(instance_id=iid)
    assert xengine.unmask(a["id"], "legal_rep_id", "window_clerk")["value"] == ent["legal_rep_id"]
    xengine.complete(a["id"], "window_clerk", {})
    data = xengine.show(iid)["data"]
    assert data["enterprise_name"] == ent["enterprise_name"] and "legal_rep_id" not in data
    [b] = xengine.tasks(instance_id=iid)
    assert "legal_rep_id" not in xengine.task(b["id"], "window_clerk")["data"]


def test_a_task_scoped_field_of_a_service_task_is_not_passed_on(xengine, exchange):
    ent = good_enterprise()
    deploy_scoped(xengine, "scoped_service", f'<bpmn:serviceTask id="fetch">{SCOPED_PULL}</bpmn:serviceTask>')
    iid = xengine.start("scoped_service", {"uscc": ent["uscc"]})["instance_id"]
    [b] = xengine.tasks(instance_id=iid)
    assert b["bpmn_id"] == "b"
    data = xengine.show(iid)["data"]
    assert data["enterprise_name"] == ent["enterprise_name"] and "legal_rep_id" not in data
    assert "legal_rep_id" not in xengine.task(b["id"], "window_clerk")["data"]
    [logged] = [p for p in xengine.pull_log(iid) if p["kind"] == "service"]
    assert logged["outcome"] == "ok" and set(logged["fields"]) == {"enterprise_name", "legal_rep_id"}


def test_a_service_task_in_a_called_process_runs_through_its_operator(xengine, exchange):
    child = chain("child", '<bpmn:serviceTask id="credit"><bpmn:extensionElements>'
                           '<spiffworkflow:serviceTaskOperator id="exchange.credit" resultVariable="credit">'
                           '<spiffworkflow:parameters><spiffworkflow:parameter id="subject_code" type="str" value="uscc"/>'
                           '</spiffworkflow:parameters></spiffworkflow:serviceTaskOperator>'
                           '</bpmn:extensionElements></bpmn:serviceTask>')
    parent = chain("parent", '<bpmn:callActivity id="call" calledElement="child"/>',
                   '<bpmn:userTask id="after" tb:candidateGroups="window"/>')
    xengine.deploy({"child.bpmn": (HEAD + child + "</bpmn:definitions>").encode(),
                    "parent.bpmn": (HEAD + parent + "</bpmn:definitions>").encode()})
    iid = xengine.start("parent", {"uscc": blacklisted_enterprise()["uscc"]})["instance_id"]
    [after] = xengine.tasks(instance_id=iid)
    assert after["bpmn_id"] == "after"
    xengine.complete(after["id"], "window_clerk", {})
    shown = xengine.show(iid)
    assert shown["status"] == "completed"
    assert shown["data"]["credit"]["blacklisted"] is True and shown["data"]["credit"]["found"] is True


def test_a_script_failing_after_a_service_call_is_an_incident_and_the_instance_waits(xengine, exchange):
    service = ('<bpmn:serviceTask id="credit"><bpmn:extensionElements><spiffworkflow:serviceTaskOperator '
               'id="exchange.credit"/><tb:data connector="exchange" operation="credit" purpose="p" basis="b">'
               '<tb:input name="subject_code" expr="uscc"/><tb:output name="blacklisted"/></tb:data>'
               '</bpmn:extensionElements></bpmn:serviceTask>')
    script = '<bpmn:scriptTask id="boom"><bpmn:script>x = 1 / 0</bpmn:script></bpmn:scriptTask>'
    xengine.deploy({"boomp.bpmn": (HEAD + chain("boomp", service, script) + "</bpmn:definitions>").encode()})
    iid = xengine.start("boomp", {"uscc": good_enterprise()["uscc"]})["instance_id"]
    [incident] = xengine.incidents(instance_id=iid)
    assert incident["kind"] == "job:service" and "division by zero" in incident["message"]
    assert xengine.show(iid)["status"] == "running"
    with xengine.readers() as s:
        assert s.scalars(select(Job.status).where(Job.instance_id == iid)).all() == ["incident"]
