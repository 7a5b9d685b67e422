"""Electronic licences: a service task with tb:licence issues one (number, 证照标识, verification
code) inside the engine and a later one revokes it; the record is read through the REST API by
who may see the case, printed as a PDF with a QR code, and verified in public by its code."""

from __future__ import annotations

import base64
import re
import threading
import zlib
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from engine import licences
from engine.errors import InvalidProcess, NotFound
from engine.models import AuditEvent, Licence, PullLog

API = "/api/v1"

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    id="defs_licence_case" targetNamespace="urn:tongban:tests">
  <bpmn:process id="licence_case" name="综合许可发证" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="review" name="审查" tb:candidateGroups="approval">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:serviceTask id="issue_licence" name="制发行业综合许可证">
      <bpmn:extensionElements>
        <tb:licence action="issue" name="行业综合许可证" typeCode="11300" prefix="ZH"
            issuer="示范市开发区行政审批局" issuerCode="11320000MB0000001X" jurisdiction="310115"
            holder="enterprise_name" holderCode="uscc" holderCodeType="001"
            items="licence_items" address="premises_address" validYears="5"/>
      </bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:userTask id="post_check" name="事后核查" tb:candidateGroups="market">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing></bpmn:userTask>
    <bpmn:serviceTask id="revoke_licence" name="撤销许可">
      <bpmn:extensionElements><tb:licence action="revoke" reason="revoke_reason"/></bpmn:extensionElements>
      <bpmn:incoming>f4</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f5</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="review"/>
    <bpmn:sequenceFlow id="f2" sourceRef="review" targetRef="issue_licence"/>
    <bpmn:sequenceFlow id="f3" sourceRef="issue_licence" targetRef="post_check"/>
    <bpmn:sequenceFlow id="f4" sourceRef="post_check" targetRef="revoke_licence"/>
    <bpmn:sequenceFlow id="f5" sourceRef="revoke_licence" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

SHOP = {"enterprise_name": "示范市便民超市有限公司", "uscc": "91310115MA1K4B2C3D",
        "licence_items": ["食品经营许可", "烟草专卖零售许可"], "premises_address": "示范市开发区长江路 18 号",
        "revoke_reason": "告知承诺核查不合格"}


def deploy(eng, bpmn: str = BPMN, name: str = "licence_case.bpmn"):
    eng.deploy({name: bpmn.encode()}, actor="system")


def case_at_review(eng, key: str = "licence_case", **data) -> int:
    return eng.start(key, {**SHOP, **data}, actor="window_clerk")["instance_id"]


def approve(eng, iid: int) -> None:
    [task] = eng.tasks(instance_id=iid)
    assert task["bpmn_id"] == "review"
    eng.complete(task["id"], "approver", {})


def issued_case(eng, key: str = "licence_case", **data) -> int:
    iid = case_at_review(eng, key, **data)
    approve(eng, iid)
    return iid


def post_check(eng, iid: int) -> None:
    [task] = eng.tasks(instance_id=iid)
    assert task["bpmn_id"] == "post_check"
    eng.complete(task["id"], "market_clerk", {})


def count(eng, model, **where) -> int:
    with eng.readers() as s:
        q = select(func.count()).select_from(model)
        for k, v in where.items():
            q = q.where(getattr(model, k) == v)
        return s.scalar(q)


def actions(eng, iid: int) -> list[str]:
    return [e["action"] for e in eng.trail(iid)]


# ---- issuing ----------------------------------------------------------------------------------
def test_issuing_writes_one_licence_and_puts_its_fields_into_the_case_data(engine):
    deploy(engine)
    iid = issued_case(engine)
    data = engine.show(iid)["data"]
    # the clock says 2026-01-05 09:00 UTC, 17:00 in China: issued that day, five years less a day
    assert data["licence_no"] == "ZH3101152026000001"
    assert data["licence_id"] == "11300.11320000MB0000001X.ZH3101152026000001"
    assert data["licence_issued_on"] == "2026-01-05" and data["licence_valid_to"] == "2031-01-04"
    assert data["licence_status"] == "valid"
    assert re.fullmatch(f"[{licences.VERIFY_ALPHABET}]{{16}}", data["licence_verify_code"])
    # the case moved on to the next step, with the licence fields visible to it
    [task] = engine.tasks(instance_id=iid)
    assert task["bpmn_id"] == "post_check"
    assert engine.task(task["id"], "market_clerk")["data"]["licence_no"] == data["licence_no"]
    lic = engine.licence(data["licence_no"])
    assert lic == engine.licences(instance_id=iid)[0]
    assert {k: lic[k] for k in ("name", "type_code", "holder", "holder_code", "holder_code_type", "issuer",
                                "issuer_code", "jurisdiction", "address", "items", "valid_from", "status",
                                "instance_id", "task_ref", "verify_code")} == {
        "name": "行业综合许可证", "type_code": "11300", "holder": SHOP["enterprise_name"],
        "holder_code": SHOP["uscc"], "holder_code_type": "001", "issuer": "示范市开发区行政审批局",
        "issuer_code": "11320000MB0000001X", "jurisdiction": "310115", "address": SHOP["premises_address"],
        "items": SHOP["licence_items"], "valid_from": "2026-01-05", "status": "valid", "instance_id": iid,
        "task_ref": "issue_licence", "verify_code": data["licence_verify_code"]}
    assert engine.licences(holder_code=SHOP["uscc"]) == [lic]
    assert engine.licences(holder_code="91310115MA0000000X") == []
    # issued inside the engine: no connector was called
    assert count(engine, PullLog, instance_id=iid) == 0
    assert actions(engine, iid).count("licence.issue") == 1
    [event] = [e for e in engine.trail(iid) if e["action"] == "licence.issue"]
    assert event["task"] == "issue_licence" and event["detail"]["licence_no"] == data["licence_no"]
    assert engine.verify_audit().ok


def test_serials_count_per_prefix_and_year_of_the_issuing_day_in_china(engine, clock):
    deploy(engine)
    deploy(engine, BPMN.replace('id="licence_case"', 'id="drug_case"').replace('prefix="ZH"', 'prefix="YP"')
           .replace('jurisdiction="310115"', 'jurisdiction="310101"'), "drug_case.bpmn")
    numbers = [engine.show(issued_case(engine))["data"]["licence_no"] for _ in range(3)]
    assert numbers == ["ZH3101152026000001", "ZH3101152026000002", "ZH3101152026000003"]
    assert engine.show(issued_case(engine, "drug_case"))["data"]["licence_no"] == "YP3101012026000001"
    # 2026-12-31 16:30 UTC is already 1 January 2027 in China: a new year, a new count
    clock.set(datetime(2026, 12, 31, 16, 30, tzinfo=UTC))
    data = engine.show(issued_case(engine))["data"]
    assert data["licence_no"] == "ZH3101152027000001"
    assert data["licence_issued_on"] == "2027-01-01" and data["licence_valid_to"] == "2031-12-31"
    assert len({lic["verify_code"] for lic in engine.licences()}) == 5


def test_issuing_again_for_the_same_task_returns_the_first_licence(engine):
    deploy(engine)
    iid = issued_case(engine)
    first = engine.show(iid)["data"]
    decl = engine.definition(engine.definitions()[0]["id"])["manifest"]["services"]["issue_licence"]["licence"]
    # what a retried job would do: the same (instance, task) gets the same record, nothing new
    with engine.sessions.begin() as s:
        again = licences.issue(s, engine, iid, "issue_licence", decl, {**SHOP, "enterprise_name": "别的名字"})
    assert again == {k: first[k] for k in licences.DATA_FIELDS}
    assert count(engine, Licence) == 1
    assert count(engine, AuditEvent, action="licence.issue") == 1
    # the job is done: running due jobs again issues nothing
    engine.run_due_jobs()
    assert count(engine, Licence) == 1


def test_concurrent_issuing_never_hands_out_a_serial_twice(engine):
    deploy(engine)
    iids = [case_at_review(engine) for _ in range(6)]
    decl = engine.definition(engine.definitions()[0]["id"])["manifest"]["services"]["issue_licence"]["licence"]
    barrier = threading.Barrier(len(iids))
    errors = []

    def issue(iid):
        try:
            barrier.wait(10)
            with engine.sessions.begin() as s:
                licences.issue(s, engine, iid, "issue_licence", decl, SHOP)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=issue, args=(iid,)) for iid in iids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    numbers = sorted(lic["licence_no"] for lic in engine.licences())
    assert numbers == [f"ZH3101152026{n:06d}" for n in range(1, 7)]
    assert engine.verify_audit().ok


def test_revoking_marks_the_cases_licences_revoked(engine, clock):
    deploy(engine)
    iid = issued_case(engine)
    other = issued_case(engine)
    no = engine.show(iid)["data"]["licence_no"]
    clock.advance(days=90)
    post_check(engine, iid)
    shown = engine.show(iid)
    assert shown["status"] == "completed"
    assert shown["data"]["licence_status"] == "revoked" and shown["data"]["licence_revoked_on"] == "2026-04-05"
    lic = engine.licence(no)
    assert lic["status"] == "revoked" and lic["revoke_reason"] == "告知承诺核查不合格"
    assert lic["revoked_at"].startswith("2026-04-05T09:00")
    # another case's licence is untouched
    assert engine.licences(instance_id=other)[0]["status"] == "valid"
    [event] = [e for e in engine.trail(iid) if e["action"] == "licence.revoke"]
    assert event["detail"]["licence_nos"] == [no] and event["task"] == "revoke_licence"
    assert engine.verify_audit().ok


def test_a_holder_expression_that_fails_becomes_an_incident_and_nothing_is_issued(engine):
    deploy(engine)
    data = {k: v for k, v in SHOP.items() if k != "enterprise_name"}
    iid = engine.start("licence_case", data, actor="window_clerk")["instance_id"]
    approve(engine, iid)
    [incident] = engine.incidents(instance_id=iid)
    assert incident["element_id"] == "issue_licence" and incident["kind"] == "job:service"
    assert "licence holder" in incident["message"] and "enterprise_name" in incident["message"]
    assert engine.licences(instance_id=iid) == [] and engine.tasks(instance_id=iid) == []
    assert engine.show(iid)["status"] == "running" and "licence_no" not in engine.show(iid)["data"]
    # an empty holder code is refused as clearly
    iid2 = issued_case(engine, uscc="  ")
    [incident2] = engine.incidents(instance_id=iid2)
    assert "holderCode" in incident2["message"] and "empty" in incident2["message"]
    assert engine.licences() == []
    # retrying without a fix fails the same way, still issuing nothing
    assert engine.retry_incident(incident2["id"], "admin")["outcome"] == "incident"
    assert engine.licences() == []
    assert engine.verify_audit().ok


def test_a_wrong_declaration_is_refused_at_deploy_with_its_line(engine):
    with pytest.raises(InvalidProcess) as exc:
        deploy(engine, BPMN.replace('issuer="示范市开发区行政审批局" ', ""))
    [problem] = exc.value.problems
    assert problem.element_id == "issue_licence" and "issuer" in problem.message and problem.line
    with pytest.raises(InvalidProcess) as exc:
        deploy(engine, BPMN.replace('action="revoke"', 'action="suspend"'))
    assert "issue or revoke" in str(exc.value)
    with pytest.raises(InvalidProcess) as exc:
        deploy(engine, BPMN.replace('validYears="5"', 'validYears="five"'))
    assert "validYears" in str(exc.value)
    with pytest.raises(InvalidProcess) as exc:
        deploy(engine, BPMN.replace('holder="enterprise_name"', 'holder="__import__(1)"'))
    assert "holder" in str(exc.value)


def test_a_licence_without_valid_years_is_long_term(engine):
    deploy(engine, BPMN.replace(' validYears="5"', ""))
    data = engine.show(issued_case(engine, licence_items="食品经营许可，酒类零售"))["data"]
    assert data["licence_valid_to"] is None
    assert engine.licence(data["licence_no"])["items"] == ["食品经营许可", "酒类零售"]


def test_verification_needs_the_right_code(engine):
    deploy(engine)
    data = engine.show(issued_case(engine))["data"]
    shown = engine.verify_licence(data["licence_no"], data["licence_verify_code"].lower())
    assert shown["holder"] == SHOP["enterprise_name"] and shown["status"] == "valid"
    assert "verify_code" not in shown and "instance_id" not in shown and "address" not in shown
    for no, code in [(data["licence_no"], "AAAAAAAAAAAAAAAA"), (data["licence_no"], ""), ("ZH0", "x"),
                     (data["licence_no"], "\x00")]:
        with pytest.raises(NotFound):
            engine.verify_licence(no, code)


# ---- the web: REST, PDF, public verification ----------------------------------------------------
@pytest.fixture
def shop_case(demo_engine):
    deploy(demo_engine)
    iid = issued_case(demo_engine)
    return iid, demo_engine.show(iid)["data"]


def test_rest_licences_are_read_by_who_may_see_the_case(shop_case, client_for, app):
    iid, data = shop_case
    no = data["licence_no"]
    approver = client_for("approver")  # did the review: may see the case
    r = approver.get(f"{API}/licences/{no}")
    assert r.status_code == 200
    body = r.get_json()
    assert body["licence_no"] == no and body["verify_code"] == data["licence_verify_code"]
    assert body["verify_url"] == f"http://localhost/verify/{no}?c={data['licence_verify_code']}"
    assert [x["licence_no"] for x in approver.get(f"{API}/licences?instance_id={iid}").get_json()] == [no]
    assert [x["licence_no"] for x in approver.get(f"{API}/licences").get_json()] == [no]
    # a clerk of another department has nothing to do with the case
    tobacco = client_for("tobacco_clerk")
    assert tobacco.get(f"{API}/licences/{no}").status_code == 403
    assert tobacco.get(f"{API}/licences/{no}/pdf").status_code == 403
    assert tobacco.get(f"{API}/licences?instance_id={iid}").status_code == 403
    assert tobacco.get(f"{API}/licences").get_json() == []
    # the monitor reads every licence
    assert [x["licence_no"] for x in client_for("monitor").get(f"{API}/licences").get_json()] == [no]
    assert approver.get(f"{API}/licences/ZH3101152026999999").status_code == 404
    assert approver.get(f"{API}/licences?instance_id=abc").status_code == 400
    anonymous = app.test_client()
    for path in (f"/licences/{no}", f"/licences/{no}/pdf", "/licences"):
        assert anonymous.get(API + path).status_code == 401


def _page_streams(pdf: bytes) -> bytes:
    """The decoded content of every stream of the PDF (ASCII85 and Flate, as reportlab writes them)."""
    out = []
    for head, raw in re.findall(rb"<<((?:(?!<<).)*?)>>\s*stream\r?\n(.*?)\s*endstream", pdf, re.S):
        if b"/ASCII85Decode" in head:
            raw = base64.a85decode(raw.strip().removesuffix(b"~>"))
        if b"/FlateDecode" in head:
            raw = zlib.decompress(raw)
        out.append(raw)
    return b"\n".join(out)


def test_the_pdf_carries_the_record_and_a_qr_code_of_the_verification_address(shop_case, client_for, app):
    _iid, data = shop_case
    no, code = data["licence_no"], data["licence_verify_code"]
    app.config["TONGBAN_PUBLIC_URL"] = "https://zwfw.example.gov.cn/"
    r = client_for("approver").get(f"{API}/licences/{no}/pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    pdf = r.data
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    url = f"https://zwfw.example.gov.cn/verify/{no}?c={code}"
    # the QR code is a link to the address, and the address is printed beneath it
    assert f"/URI ({url})".encode() in pdf
    content = _page_streams(pdf)
    assert f"({url}) Tj".encode() in content
    assert b"/STSong-Light" in pdf  # Chinese text in the built-in CID font
    assert len(re.findall(rb" re\b", content)) > 100  # the code's dark modules, drawn as rectangles
    assert b"/Title" in pdf


def test_the_printed_qr_code_scans_to_the_verification_page(shop_case, client_for, app):
    """Render the PDF as a printer would, read the QR code from the pixels, follow it without signing in."""
    import pypdfium2 as pdfium  # dev dependencies (pyproject): pypdfium2 renders, zxing-cpp reads
    import zxingcpp

    _iid, data = shop_case
    no, code = data["licence_no"], data["licence_verify_code"]
    pdf = client_for("approver").get(f"{API}/licences/{no}/pdf").data
    doc = pdfium.PdfDocument(pdf)
    try:
        image = doc[0].render(scale=2).to_pil()  # A4 at 144 dpi
    finally:
        doc.close()
    found = zxingcpp.read_barcodes(image)
    assert [b.format.name for b in found] == ["QRCode"]
    scanned = found[0].text
    assert scanned == f"http://localhost/verify/{no}?c={code}"
    page = app.test_client().get(scanned.removeprefix("http://localhost"))
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert no in html and SHOP["enterprise_name"] in html and "有效" in html


def test_the_verify_page_is_public_and_shows_only_the_licences_public_face(shop_case, app, demo_engine):
    iid, data = shop_case
    no, code = data["licence_no"], data["licence_verify_code"]
    anonymous = app.test_client()
    r = anonymous.get(f"/verify/{no}?c={code}")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    for shown in (no, SHOP["enterprise_name"], SHOP["uscc"], "示范市开发区行政审批局", "食品经营许可",
                  "烟草专卖零售许可", "2031-01-04", "有效"):
        assert shown in page
    for hidden in (code, SHOP["premises_address"], SHOP["revoke_reason"], "window_clerk"):
        assert hidden not in page
    assert 'id="licence-status" data-status="valid"' in page
    for path in (f"/verify/{no}?c=AAAAAAAAAAAAAAAA", f"/verify/ZH3101152026999999?c={code}"):
        r = anonymous.get(path)
        assert r.status_code == 404 and "证照不存在或校验码不符" in r.get_data(as_text=True)
        assert SHOP["enterprise_name"] not in r.get_data(as_text=True)
    # without a code: a form asks for it, and tells nothing about the licence
    asked = anonymous.get(f"/verify/{no}")
    assert asked.status_code == 200 and 'id="verify-form"' in asked.get_data(as_text=True)
    assert SHOP["enterprise_name"] not in asked.get_data(as_text=True)
    # the JSON twin
    body = anonymous.get(f"{API}/verify/{no}?c={code}").get_json()
    assert body["status"] == "valid" and body["holder_code"] == SHOP["uscc"] and "verify_code" not in body
    r = anonymous.get(f"{API}/verify/{no}?c=wrong")
    assert r.status_code == 404 and r.get_json()["error"] == "not_found"
    # after the revocation the same page says so, with the date
    post_check(demo_engine, iid)
    page = anonymous.get(f"/verify/{no}?c={code}").get_data(as_text=True)
    assert 'data-status="revoked"' in page and "已撤销（2026-01-05）" in page
    assert anonymous.get(f"{API}/verify/{no}?c={code}").get_json()["status"] == "revoked"
    english = anonymous.get(f"/verify/{no}?c={code}&lang=en").get_data(as_text=True)
    assert "Revoked" in english and "Licence verification" in english


def test_the_case_page_links_to_its_licence_and_the_licence_page_to_the_pdf(shop_case, client_for):
    iid, data = shop_case
    no = data["licence_no"]
    approver = client_for("approver")
    page = approver.get(f"/instances/{iid}").get_data(as_text=True)
    assert 'id="case-licences"' in page and f'href="/licences/{no}"' in page
    assert f'href="{API}/licences/{no}/pdf"' in page
    r = approver.get(f"/licences/{no}")
    assert r.status_code == 200
    page = r.get_data(as_text=True)
    assert f'href="{API}/licences/{no}/pdf"' in page and f"/verify/{no}?c={data['licence_verify_code']}" in page
    assert client_for("tobacco_clerk").get(f"/licences/{no}").status_code == 403


CHAINED = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    id="defs_chained" targetNamespace="urn:tongban:tests">
  <bpmn:process id="chained" name="发证后核查" isExecutable="true">
    <bpmn:extensionElements><tb:applicant fields="enterprise_name,uscc"/></bpmn:extensionElements>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:serviceTask id="issue_licence" name="发证">
      <bpmn:extensionElements>
        <tb:licence name="许可证" typeCode="11300" prefix="ZH" issuer="审批局" issuerCode="11320000MB0000001X"
            jurisdiction="310115" holder="enterprise_name" holderCode="uscc"/>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:userTask id="notify" name="抄告" tb:candidateGroups="market">
      <bpmn:extensionElements>
        <tb:data connector="exchange" operation="credit" purpose="核查" basis="《优化营商环境条例》">
          <tb:input name="subject_code" expr="licence_no"/>
          <tb:output name="blacklisted"/>
        </tb:data>
      </bpmn:extensionElements>
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="issue_licence"/>
    <bpmn:sequenceFlow id="f2" sourceRef="issue_licence" targetRef="notify"/>
    <bpmn:sequenceFlow id="f3" sourceRef="notify" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


def test_the_flow_check_knows_a_licence_task_writes_the_licence_fields(engine):
    assert engine.check({"chained.bpmn": CHAINED.encode()})["problems"] == []
    # the same step without the licence task before it: nothing produces licence_no
    unissued = CHAINED.replace('sourceRef="start" targetRef="issue_licence"', 'sourceRef="start" targetRef="notify"')
    unissued = unissued.replace('<bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3', '<bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f3')
    problems = engine.check({"chained.bpmn": unissued.encode()})["problems"]
    assert any("'licence_no'" in p["message"] and p["element_id"] == "notify" for p in problems), problems
