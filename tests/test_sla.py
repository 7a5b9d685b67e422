"""Legal time limits: counting across Spring Festival 2026 and 调休 Saturdays, yellow → red →
escalation chain, pause/resume (补正 and explicit), extensions, return and reassign, deemed
decisions, provisional deadlines in a year without a published schedule, monitor reads."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from engine.errors import Invalid, NotAllowed
from engine.models import AuditEvent, Job, SupervisionCard
from tests.sla_support import SLA_BPMN, SmtpSink

SH = ZoneInfo("Asia/Shanghai")


def at(y, m, d, h=9, mi=0):
    return datetime(y, m, d, h, mi, tzinfo=SH)


def day(iso):
    return datetime.fromisoformat(iso).astimezone(SH).date().isoformat()


@pytest.fixture
def sla_engine(engine):
    engine.deploy({"sla_licence.bpmn": SLA_BPMN.encode()})
    engine.add_department("city", "市政务服务局", 2)
    engine.add_department("district", "区行政审批局", 3, parent="city")
    engine.set_group_department("window", "district")
    engine.set_group_department("chief", "district")
    engine.set_group_department("approval", "district")
    engine.set_group_department("city_leader", "city")
    engine.add_user("chief_li", ["chief"])
    engine.add_user("city_boss", ["city_leader"])
    return engine


def open_task(engine, iid, bpmn_id=None):
    tasks = [t for t in engine.tasks(instance_id=iid) if bpmn_id is None or t["bpmn_id"] == bpmn_id]
    assert len(tasks) == 1, tasks
    return tasks[0]


def count(engine, model, **where):
    with engine.sessions() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return s.scalar(q)


def test_limits_are_counted_across_spring_festival_and_the_chain_fires_once(sla_engine, clock):
    eng = sla_engine
    clock.set(at(2026, 2, 10))  # Tuesday before Spring Festival
    iid = eng.start("sla_licence", {}, actor="window_clerk")["instance_id"]
    st = eng.sla_status(iid)
    task = st["tasks"][0]
    # the day after acceptance: 11, 12, 13, Sat 14 (调休, working) → promised 4 ends on Saturday 14 Feb
    assert day(task["due_at"]) == "2026-02-14"
    # statutory 5: 15–23 Feb are off → Tuesday 24 Feb
    assert day(task["statutory_due_at"]) == "2026-02-24"
    assert day(task["warn_at"]) == "2026-02-13" and task["state"] == "green" and not task["provisional"]
    # the case: promised 10 → 11,12,13,14,24,25,26,27, Sat 28 (调休), Mon 2 Mar
    assert day(st["instance"]["due_at"]) == "2026-03-02"
    assert day(st["instance"]["statutory_due_at"]) == "2026-03-16"
    assert open_task(eng, iid)["due_at"] == task["due_at"]  # the inbox shows the same deadline

    eng.run_due_jobs("w")
    assert count(eng, SupervisionCard) == 0
    clock.set(at(2026, 2, 14, 10))  # yellow on the 调休 Saturday
    assert eng.run_due_jobs("w") == {"done": 1}
    assert eng.sla_status(iid)["tasks"][0]["state"] == "yellow"
    assert [n["kind"] for n in eng.notices("window_clerk")] == ["notify"]
    assert [c["color"] for c in eng.supervision_cards()] == ["yellow"]

    clock.set(at(2026, 2, 15, 0, 30))  # a holiday, just after the promised limit ran out
    assert eng.run_due_jobs("w") == {"done": 1}
    st = eng.sla_status(iid)
    assert st["tasks"][0]["state"] == "red" and st["tasks"][0]["state_name"] == "超期"
    assert st["instance"]["state"] == "green"  # one step overdue is red even when the case is in time
    kinds = sorted(n["kind"] for n in eng.notices("window_clerk"))
    assert kinds == ["notify", "remind"]
    assert [n["kind"] for n in eng.notices("city_boss")] == ["raise"]  # district → city
    assert open_task(eng, iid)["candidate_groups"] == ["window"]

    clock.set(at(2026, 2, 26, 9))  # due+2wd = 25 Feb (24 and 25 are the next working days)
    assert eng.run_due_jobs("w") == {"done": 1}
    t = open_task(eng, iid)
    assert t["candidate_groups"] == ["chief"] and t["assignee"] is None
    assert t["due_at"] == task["due_at"]  # reassigning keeps the step's deadline
    assert [x["id"] for x in eng.tasks(user="chief_li")] == [t["id"]]
    assert [n["kind"] for n in eng.notices("chief_li")] == ["reassign"]

    clock.set(at(2026, 2, 27, 9))  # due+3wd: raise again, but the city has no parent
    assert eng.run_due_jobs("w") == {"done": 1}
    log = eng.escalation_log()
    assert [e["action"] for e in log][:1] == ["raise"] and log[0]["outcome"] == "skipped"

    clock.advance(days=30)
    eng.run_due_jobs("w")  # the case's own points (yellow, due) fire once each
    eng.run_due_jobs("w")
    cards = eng.supervision_cards()
    assert sorted(c["color"] for c in cards) == ["red", "red", "red", "red", "yellow", "yellow"]
    assert count(eng, AuditEvent, action="sla.escalation") == 6
    assert eng.run_due_jobs("w") == {}
    assert {n["kind"] for n in eng.notices("leader")} == {"notify"}


def test_supplement_stops_the_case_clock_and_returning_gives_a_fresh_step_clock(sla_engine, clock):
    eng = sla_engine
    clock.set(at(2026, 3, 2))  # Monday
    iid = eng.start("sla_licence", {}, actor="window_clerk")["instance_id"]
    assert day(eng.sla_status(iid)["instance"]["due_at"]) == "2026-03-16"
    first = open_task(eng, iid)
    eng.complete(first["id"], "window_clerk", {"need_supplement": True})
    st = eng.sla_status(iid)
    assert st["instance"]["status"] == "paused" and st["instance"]["pause_reason"] == "补正"
    assert st["tasks"][0]["status"] == "stopped" and st["tasks"][0]["end_reason"] == "completed"
    with eng.sessions() as s:  # the finished step's points never fire
        assert s.scalars(select(Job).where(Job.kind == "sla", Job.task_ref == f"clock:{st['tasks'][0]['id']}",
                                           Job.status == "pending")).all() == []
    clock.set(at(2026, 3, 5, 15))  # the supplement arrives on Thursday
    eng.complete(open_task(eng, iid, "supplement")["id"], "window_clerk", {"need_supplement": False})
    st = eng.sla_status(iid)
    inst = st["instance"]
    assert inst["status"] == "running" and inst["paused_units"] == 3  # 3, 4 and 5 March not counted
    assert day(inst["due_at"]) == "2026-03-19"
    assert [(p["reason"], p["source"], p["ended_at"] is not None) for p in st["pauses"]] == [
        ("补正", "element:supplement", True)]
    again = open_task(eng, iid, "accept")
    assert again["id"] != first["id"]
    assert day(again["due_at"]) == "2026-03-11"  # a fresh step clock from 5 March: 6, 9, 10, 11
    # review, then 退回: the returned step gets a new clock, the review's clock stops
    eng.complete(again["id"], "window_clerk", {"need_supplement": False})
    review = open_task(eng, iid, "review")
    clock.set(at(2026, 3, 6, 10))
    eng.complete(review["id"], "approver", {}, decision="return")
    back = open_task(eng, iid, "accept")
    assert day(back["due_at"]) == "2026-03-12"
    assert day(eng.sla_status(iid)["instance"]["due_at"]) == "2026-03-19"  # the case clock runs on
    clock.set(at(2026, 3, 30))
    eng.run_due_jobs("w")
    assert {c["task_id"] for c in eng.supervision_cards() if c["task_id"]} == {back["id"]}


def test_explicit_pause_holds_the_points_and_moves_the_deadlines(sla_engine, clock):
    eng = sla_engine
    clock.set(at(2026, 3, 2))
    iid = eng.start("sla_licence", {}, actor="window_clerk")["instance_id"]
    with pytest.raises(NotAllowed):
        eng.pause_clock(iid, "专家评审", "outsider")
    with pytest.raises(Invalid):
        eng.pause_clock(iid, " ", "window_clerk")
    eng.pause_clock(iid, "专家评审", "window_clerk")
    with pytest.raises(NotAllowed):
        eng.pause_clock(iid, "again", "window_clerk")
    with eng.sessions() as s:
        statuses = {j.status for j in s.scalars(select(Job).where(Job.kind == "sla"))}
    assert statuses == {"held"}
    clock.set(at(2026, 3, 20))  # far past every point: nothing fires while the clock stands still
    assert eng.run_due_jobs("w") == {}
    assert eng.sla_status(iid)["tasks"][0]["state"] == "green"
    out = eng.resume_clock(iid, "window_clerk")
    with pytest.raises(NotAllowed):
        eng.resume_clock(iid, "window_clerk")
    # paused on Mon 2 Mar, restarted Fri 20 Mar: 14 working days (3..20 March) are not counted
    st = eng.sla_status(iid)
    assert st["tasks"][0]["paused_units"] == 14 and st["instance"]["paused_units"] == 14
    assert day(st["tasks"][0]["due_at"]) == "2026-03-26"  # 23, 24, 25, 26
    assert len(out["clocks"]) == 2
    assert eng.run_due_jobs("w") == {}
    actions = [e["action"] for e in eng.trail(iid)]
    assert "sla.pause" in actions and "sla.resume" in actions


def test_extension_needs_the_approver_and_moves_the_limit(sla_engine, clock):
    eng = sla_engine
    clock.set(at(2026, 3, 2))
    iid = eng.start("sla_licence", {}, actor="window_clerk")["instance_id"]
    task = open_task(eng, iid)
    with pytest.raises(NotAllowed):
        eng.request_extension(task["id"], days=5, reason="需现场核查", actor="approver")  # not the handler
    with pytest.raises(Invalid):
        eng.request_extension(task["id"], days=0, reason="x", actor="window_clerk")
    ext = eng.request_extension(task["id"], days=5, reason="需现场核查", actor="window_clerk")
    assert ext["status"] == "pending" and ext["approver_group"] == "leader"
    assert [n["kind"] for n in eng.notices("leader")] == ["extension"]
    with pytest.raises(NotAllowed):
        eng.request_extension(task["id"], days=2, reason="again", actor="window_clerk")
    with pytest.raises(NotAllowed):
        eng.approve_extension(ext["id"], "window_clerk")  # not in the approver group
    clock.set(at(2026, 3, 6, 12))  # yellow (after 3 of 4 working days) fired before the approval
    eng.run_due_jobs("w")
    assert [c["color"] for c in eng.supervision_cards()] == ["yellow"]
    done = eng.approve_extension(ext["id"], "leader", "同意延期")
    assert done["status"] == "approved" and day(done["clock"]["due_at"]) == "2026-03-13"  # 6 Mar + 5 wd
    assert done["clock"]["state"] == "green" and done["clock"]["epoch"] == 1
    with pytest.raises(NotAllowed):
        eng.approve_extension(ext["id"], "leader")
    clock.set(at(2026, 3, 13, 10))  # the new yellow point (3 + 5 working days in) fires once more
    assert eng.run_due_jobs("w") == {"done": 2}  # and the case's own yellow point
    assert [c["color"] for c in eng.supervision_cards() if c["task_id"] == task["id"]] == ["yellow", "yellow"]
    refused = eng.refuse_extension(eng.request_extension(task["id"], days=1, reason="再延", actor="window_clerk")["id"],
                                   "leader", "不予延期")
    assert refused["status"] == "refused" and day(refused["clock"]["due_at"]) == "2026-03-13"
    clock.set(at(2026, 3, 16))
    with pytest.raises(NotAllowed):  # after the deadline: too late to ask
        eng.request_extension(task["id"], days=1, reason="late", actor="window_clerk")


def test_a_completed_step_never_fires_and_a_deemed_decision_completes_the_review(sla_engine, clock):
    eng = sla_engine
    clock.set(at(2026, 3, 2))
    iid = eng.start("sla_licence", {}, actor="window_clerk")["instance_id"]
    eng.complete(open_task(eng, iid)["id"], "window_clerk", {"need_supplement": False})
    review = open_task(eng, iid, "review")
    assert day(review["due_at"]) == "2026-03-04"
    clock.set(at(2026, 3, 5, 9))
    eng.run_due_jobs("w")
    h = eng.task(review["id"])
    assert h["status"] == "completed" and h["completed_by"] == "system:sla" and h["decision"] == "approve"
    assert eng.show(iid)["status"] == "completed"
    assert eng.sla_status(iid)["instance"]["status"] == "stopped"
    cards = eng.supervision_cards()
    assert [(c["name"], c["color"]) for c in cards] == [("审核决定", "red")]
    log = eng.escalation_log()
    assert [(e["action"], e["outcome"]) for e in log] == [("auto_decide", "done")]
    clock.advance(days=60)
    assert eng.run_due_jobs("w") == {}  # the accept step finished in time: its points never fire


def test_a_deadline_in_a_year_without_a_published_schedule_is_provisional(sla_engine, clock):
    eng = sla_engine
    clock.set(at(2026, 12, 28))
    iid = eng.start("sla_licence", {}, actor="window_clerk")["instance_id"]
    st = eng.sla_status(iid)
    assert st["tasks"][0]["provisional"] and st["instance"]["provisional"]
    eng.load_calendar('{"holidays": {"2027-01-01": "元旦"}, "workdays": {}}', "2027.json")
    clock.set(at(2026, 12, 29))
    eng.complete(open_task(eng, iid)["id"], "window_clerk", {"need_supplement": False})
    review = eng.sla_status(iid)["tasks"][-1]
    assert not review["provisional"]
    assert day(review["due_at"]) == "2026-12-31"


def test_hours_natural_days_and_warn_before(engine, clock):
    bpmn = SLA_BPMN.replace('<tb:sla statutory="5" promised="4" unit="workday" warn="0.8"/>',
                            '<tb:sla statutory="5" unit="day" warnBefore="2"/>').replace(
        '<tb:sla limit="2" unit="workday"/>', '<tb:sla limit="8" unit="hour" warn="0.5"/>')
    engine.deploy({"x.bpmn": bpmn.encode()})
    clock.set(at(2026, 2, 13, 9))
    iid = engine.start("sla_licence", {}, actor="window_clerk")["instance_id"]
    t = engine.sla_status(iid)["tasks"][0]
    assert day(t["due_at"]) == "2026-02-18" and day(t["warn_at"]) == "2026-02-16"  # natural days, holidays count
    engine.complete(open_task(engine, iid)["id"], "window_clerk", {"need_supplement": False})
    r = engine.sla_status(iid)["tasks"][-1]
    assert datetime.fromisoformat(r["due_at"]) == at(2026, 2, 13, 17).astimezone(UTC)
    assert datetime.fromisoformat(r["warn_at"]) == at(2026, 2, 13, 13).astimezone(UTC)


def test_notices_are_mailed_through_smtp(sla_engine, clock, monkeypatch):
    sink = SmtpSink()
    try:
        monkeypatch.setenv("TONGBAN_SMTP_HOST", "127.0.0.1")
        monkeypatch.setenv("TONGBAN_SMTP_PORT", str(sink.port))
        sla_engine.set_notify_email("window_clerk", "clerk@example.gov.cn")
        clock.set(at(2026, 3, 2))
        iid = sla_engine.start("sla_licence", {}, actor="window_clerk")["instance_id"]
        clock.set(at(2026, 3, 6, 12))
        assert sla_engine.run_due_jobs("w") == {"done": 1}  # yellow: one notice, its mail queued
        assert sla_engine.run_due_jobs("w") == {"done": 1}  # the mail
        notices = sla_engine.notices("window_clerk")
        assert len(notices) == 1 and notices[0]["email_status"] == "sent"
        assert len(sink.message_ids()) == 1 and sink.message_ids()[0].startswith(f"<tongban-notice-{notices[0]['id']}@")
        body = sink.messages[0].decode("utf-8", "replace")
        assert "clerk@example.gov.cn" in body and str(iid) in body
        sla_engine.mark_notice_read(notices[0]["id"], "window_clerk")
        assert sla_engine.notices("window_clerk", unread_only=True) == []
    finally:
        sink.close()


def test_monitor_reads_and_exports(sla_engine, clock):
    eng = sla_engine
    clock.set(at(2026, 3, 2))
    late = eng.start("sla_licence", {}, actor="window_clerk")["instance_id"]
    eng.claim(open_task(eng, late)["id"], "window_clerk")
    clock.set(at(2026, 3, 5, 12))
    fine = eng.start("sla_licence", {}, actor="window_clerk")["instance_id"]
    quick = eng.start("sla_licence", {}, actor="window_clerk")["instance_id"]
    clock.set(at(2026, 3, 5, 14))
    eng.complete(open_task(eng, quick)["id"], "window_clerk", {"need_supplement": False})
    clock.set(at(2026, 3, 7, 12))  # Saturday: late is overdue (due Thu 5 Mar... promised 4 → Fri 6 Mar)
    eng.run_due_jobs("w")
    ov = eng.sla_overview()
    assert ov["steps"]["red"] == 1
    assert [r["instance_id"] for r in ov["overdue_steps"]] == [late]
    assert ov["overdue_steps"][0]["holder"] == "window_clerk" and ov["overdue_steps"][0]["department"] == "district"
    district = next(r for r in ov["by_department"] if r["department"] == "district")
    assert district["red"] == 1 and district["green"] + district["yellow"] == 2
    assert ov["by_level"][0]["level_name"] == "区县"
    step = next(h for h in ov["handling"] if h["bpmn_id"] == "accept")
    assert step["count"] == 1 and step["avg_hours"] == 2.0 and step["p90_hours"] == 2.0
    assert sum(w["red"] + w["yellow"] for w in ov["trend"]) == len(eng.supervision_cards())
    assert eng.sla_overview("city")["steps"] == ov["steps"]  # the city's subtree holds the district
    assert fine not in [r["instance_id"] for r in ov["overdue_steps"]]
    csv_bytes = eng.sla_export("overdue", "csv")
    assert csv_bytes.startswith("\ufeff".encode()) and "受理审查".encode() in csv_bytes
    from openpyxl import load_workbook

    wb = load_workbook(io.BytesIO(eng.sla_export("cards", "xlsx")))
    rows = list(wb.active.values)
    assert rows[0][:2] == ("id", "color") and len(rows) == 1 + len(eng.supervision_cards())
    assert eng.sla_export("log", "csv").count(b"\n") == 1 + len(eng.escalation_log())
    with pytest.raises(Invalid):
        eng.sla_export("nothing")


def test_reassign_keeps_the_deadline_and_the_pending_points(sla_engine, clock):
    eng = sla_engine
    clock.set(at(2026, 3, 2))
    iid = eng.start("sla_licence", {}, actor="window_clerk")["instance_id"]
    t = open_task(eng, iid)
    with pytest.raises(NotAllowed):
        eng.reassign(t["id"], "outsider", group="chief")
    moved = eng.reassign(t["id"], "window_clerk", group="chief", reason="转办")
    assert moved["candidate_groups"] == ["chief"] and moved["due_at"] == t["due_at"]
    clock.set(at(2026, 3, 6, 12))
    assert eng.run_due_jobs("w") == {"done": 1}
    assert [n["kind"] for n in eng.notices("chief_li")] == ["notify"]  # the new holder is warned
    assert eng.notices("window_clerk") == []
    assert timedelta(0) < datetime.fromisoformat(t["due_at"]) - at(2026, 3, 5, 12)


# one review step whose extension elements start on line 9 of the file
REVIEW_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
  id="d" targetNamespace="urn:test">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="review"/>
    <bpmn:userTask id="review" tb:candidateGroups="approval">
      <bpmn:extensionElements>
        {extensions}
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_bad_escalation_declarations_are_located_deploy_errors(engine):
    from engine.errors import InvalidProcess

    bpmn = REVIEW_BPMN.replace("{key}", "esc_bad").replace(
        "{extensions}", '<tb:sla limit="2" unit="workday"/>\n        <tb:escalation at="{at}" action="{action}"/>')
    for at, action, words in (("tomorrow", "card", "not understood"), ("due+2wd", "card,shout", "shout")):
        with pytest.raises(InvalidProcess) as info:
            engine.deploy({"esc.bpmn": bpmn.replace("{at}", at).replace("{action}", action).encode()})
        problem = info.value.problems[0]
        assert problem.element_id == "review" and problem.line == 10 and words in problem.message
    assert engine.deploy({"esc.bpmn": bpmn.replace("{at}", "due+2wd").replace("{action}", "card").encode()})


@pytest.mark.parametrize("declaration, words", [
    ('limit="2" unit="minute"', "not a unit of time limits"),
    ('limit="abc"', "must be a positive number"),
    ('limit="-3"', "must be a positive number"),
    ('statutory="5" promised="8"', "beyond the statutory limit of 5"),
    ('limit="5" warn="soon"', "warn='soon' is not understood"),
])
def test_bad_limit_declarations_are_located_deploy_errors(engine, declaration, words):
    """A limit the clock cannot count would leave the step without a deadline (or count minutes as
    working days): refused at deploy, at the tb:sla element."""
    from engine.errors import InvalidProcess

    bpmn = REVIEW_BPMN.replace("{key}", "limit_bad").replace("{extensions}", f"<tb:sla {declaration}/>")
    with pytest.raises(InvalidProcess) as info:
        engine.deploy({"limit.bpmn": bpmn.encode()})
    problem = info.value.problems[0]
    assert problem.element_id == "review" and problem.line == 9 and words in problem.message, problem
    good = bpmn.replace(declaration, 'statutory="20" promised="5" unit="workday" warn="2wd"')
    assert engine.deploy({"limit.bpmn": good.encode()})


DEPT_BPMN = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
  id="d" targetNamespace="urn:test">
  <bpmn:process id="dept_chain" isExecutable="true">
    <bpmn:startEvent id="s"/>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="review"/>
    <bpmn:userTask id="review" tb:candidateGroups="window">
      <bpmn:extensionElements><tb:sla limit="2" unit="workday"/></bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="e"/>
    <bpmn:endEvent id="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_a_department_chain_applies_below_it_when_the_process_declares_none(engine, clock):
    engine.add_department("p", "示范省", 1)
    engine.add_department("p.c", "示范市", 2, "p")
    engine.set_group_department("window", "p.c")
    with pytest.raises(Invalid):
        engine.set_department_chain("p", [{"at": "someday", "action": "card"}])
    with pytest.raises(Invalid):
        engine.set_department_chain("p", [{"at": "yellow", "action": "shout"}])
    engine.set_department_chain("p", [{"at": "yellow", "action": "card"}], actor="admin")
    assert engine.department_chains()[0]["department"] == "p"
    engine.deploy({"dept.bpmn": DEPT_BPMN})
    clock.set(datetime(2026, 11, 30, 1, 0, tzinfo=UTC))  # Monday morning in Shanghai
    iid = engine.start("dept_chain", {})["instance_id"]
    assert engine.run_due_jobs("w") == {}
    clock.advance(days=3)  # past the yellow point (80 % of 2 working days)
    assert engine.run_due_jobs("w") == {"done": 1}
    assert [c["color"] for c in engine.supervision_cards()] == ["yellow"]
    assert engine.run_due_jobs("w") == {}  # once
    # removing the chain: new tasks get none
    engine.set_department_chain("p", [])
    assert engine.department_chains() == []
    engine.start("dept_chain", {})
    clock.advance(days=3)
    assert engine.run_due_jobs("w") == {}
    assert len(engine.supervision_cards()) == 1 and iid
