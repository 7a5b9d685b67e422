"""Designer pages through the Flask test client: roles, upload with a located report, deploy
of the checked upload, hostile XML, version view, compare, and the modeler's deploy endpoint."""

from __future__ import annotations

import io
import re

from tests.conftest import EXAMPLES


def bad_file() -> bytes:
    """The script example as a new process whose script imports a module (refused at deploy)."""
    text = (EXAMPLES / "script_task.bpmn").read_text(encoding="utf-8")
    text = text.replace('id="script_task"', 'id="designer_bad"').replace(
        "fee = 100 + floor_area * 3", "import os\nfee = 100 + floor_area * 3")
    return text.encode()


def good_file(key: str = "designer_good", name: str = "泳道：窗口受理-科室审批") -> bytes:
    text = (EXAMPLES / "lanes.bpmn").read_text(encoding="utf-8")
    return text.replace("lanes_review", key).replace('name="泳道：窗口受理-科室审批"', f'name="{name}"').encode()


def script_line(content: bytes) -> int:
    return next(i for i, line in enumerate(content.decode().splitlines(), 1) if "<bpmn:script>" in line)


def upload(client, files: dict[str, bytes], url="/designer/upload"):
    data = {"csrf_token": client.csrf, "files": [(io.BytesIO(b), n) for n, b in files.items()]}
    return client.post(url, data=data, content_type="multipart/form-data")


def bundle_of(html: str) -> str:
    m = re.search(r'name="bundle" value="([^"]+)"', html)
    assert m, "report has no bundle to deploy"
    return m.group(1)


def test_roles_gate_designer_pages(client_for, demo_engine):
    clerk = client_for("window_clerk")
    some_id = demo_engine.definitions()[0]["id"]
    for url in ("/designer/", "/designer/upload", "/designer/modeler", f"/designer/definitions/{some_id}",
                f"/designer/modeler/{some_id}", "/designer/compare/lanes_review"):
        assert clerk.get(url).status_code == 403, url
    r = clerk.post("/designer/modeler/deploy", json={"xml": good_file().decode()},
                   headers={"X-CSRF-Token": clerk.csrf})
    assert r.status_code == 403
    assert client_for("monitor").get("/designer/").status_code == 403
    designer = client_for("designer")
    page = designer.get("/designer/").get_data(as_text=True)
    assert "lanes_review" in page and "exclusive_gateway" in page
    assert client_for("admin").get("/designer/").status_code == 200  # admin holds every role


def test_bad_upload_reports_element_and_line_and_deploys_nothing(client_for, demo_engine):
    c = client_for("designer")
    before = len(demo_engine.definitions())
    content = bad_file()
    r = upload(c, {"bad.bpmn": content})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert 'data-element-id="calc_fee"' in html
    assert f'data-line="{script_line(content)}"' in html
    assert "import" in html  # the message names what is wrong
    assert "deploy-button" not in html
    assert 'class="diagram bpmn-view"' in html and "calc_fee" in html  # drawn, with calc_fee to highlight
    assert '<span class="hit">' in html  # the source lines around the error
    assert len(demo_engine.definitions()) == before
    assert not demo_engine.versions("designer_bad")
    # posting the bad upload to deploy directly is refused the same way
    r = upload(c, {"bad.bpmn": content}, url="/designer/deploy")
    assert r.status_code == 422 and 'data-element-id="calc_fee"' in r.get_data(as_text=True)
    assert not demo_engine.versions("designer_bad")


def test_broken_xml_shows_source_lines_instead_of_a_diagram(client_for):
    c = client_for("designer")
    broken = good_file().decode().replace('<bpmn:userTask id="approve" name="审批">',
                                          '<bpmn:userTask id="approve" name="审批"', 1).encode()
    r = upload(c, {"broken.bpmn": broken})
    assert r.status_code == 422
    html = r.get_data(as_text=True)
    assert "bpmn-view" not in html and "cannot-draw" in html
    assert '<span class="hit">' in html


def test_good_upload_is_checked_then_deployed_from_the_same_upload(client_for, demo_engine):
    c = client_for("designer")
    r = upload(c, {"good.bpmn": good_file()})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert "deploy-button" in html and "designer_good" in html
    assert not demo_engine.versions("designer_good")  # checking stores nothing
    r = c.post("/designer/deploy", data={"csrf_token": c.csrf, "bundle": bundle_of(html)})
    assert r.status_code == 302
    versions = demo_engine.versions("designer_good")
    assert [v["version"] for v in versions] == [1]
    assert r.location.endswith(f"/designer/definitions/{versions[0]['id']}")
    page = c.get(r.location).get_data(as_text=True)
    assert "designer_good" in page and 'data-task="accept"' in page and "已部署" in page
    # a bundle that was altered is refused
    r = c.post("/designer/deploy", data={"csrf_token": c.csrf, "bundle": bundle_of(html)[:-3] + "xyz"})
    assert r.status_code == 400


def test_deploy_needs_csrf(client_for, demo_engine):
    c = client_for("designer")
    r = c.post("/designer/deploy", data={"files": [(io.BytesIO(good_file()), "good.bpmn")]},
               content_type="multipart/form-data")
    assert r.status_code == 400
    r = c.post("/designer/modeler/deploy", json={"xml": good_file().decode()})
    assert r.status_code == 400
    assert not demo_engine.versions("designer_good")


def test_hostile_xml_is_rejected(client_for, demo_engine):
    c = client_for("designer")
    xxe = ('<?xml version="1.0"?>\n<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
           '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d">'
           '<bpmn:process id="p" isExecutable="true"><bpmn:startEvent id="s" name="&x;"/></bpmn:process>'
           '</bpmn:definitions>')
    laughs = ('<?xml version="1.0"?>\n<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;">]>\n'
              '<lolz>&lol2;</lolz>')
    for name, content in (("xxe.bpmn", xxe), ("laughs.bpmn", laughs)):
        r = upload(c, {name: content.encode()})
        assert r.status_code == 422, name
        html = r.get_data(as_text=True)
        assert "DOCTYPE" in html and 'data-line="2"' in html
        assert "root:" not in html  # nothing of /etc/passwd
    r = c.post("/designer/modeler/deploy", json={"xml": xxe}, headers={"X-CSRF-Token": c.csrf})
    assert r.status_code == 422 and r.get_json()["problems"][0]["line"] == 2
    assert not demo_engine.versions("p")


def test_version_page_shows_diagram_and_manifest(client_for, demo_engine):
    c = client_for("designer")
    d = demo_engine.versions("parallel_gateway")[0]
    html = c.get(f"/designer/definitions/{d['id']}").get_data(as_text=True)
    assert 'data-task="market_review"' in html and "market" in html
    assert "3 工作日" in html  # the tb:sla of market_review
    assert 'id="xml-main"' in html
    pulls = demo_engine.versions("pull_enterprise")[0]
    html = c.get(f"/designer/definitions/{pulls['id']}").get_data(as_text=True)
    assert "exchange.enterprise" in html and "enterprise_name" in html
    xml = c.get(f"/designer/definitions/{d['id']}/bpmn")
    assert xml.status_code == 200 and b'id="parallel_gateway"' in xml.data


def test_compare_two_versions(client_for, demo_engine):
    c = client_for("designer")
    demo_engine.deploy({"v1.bpmn": good_file()}, actor="designer")
    v2 = good_file().decode().replace('<bpmn:userTask id="approve" name="审批">',
                                      '<bpmn:userTask id="approve" name="审批（科长）" '
                                      'xmlns:tb="urn:tongban:bpmn:1" tb:candidateGroups="leader">')
    v2 = v2.replace('<bpmn:userTask id="accept" name="受理">', '<bpmn:manualTask id="accept" name="受理">')
    v2 = v2.replace("</bpmn:userTask>\n    <bpmn:userTask", "</bpmn:manualTask>\n    <bpmn:userTask", 1)
    demo_engine.deploy({"v2.bpmn": v2.encode()}, actor="designer")
    assert [v["version"] for v in demo_engine.versions("designer_good")] == [2, 1]
    r = c.get("/designer/compare/designer_good?a=1&b=2")
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'data-task="approve" data-field="name"' in html
    assert 'data-task="approve" data-field="candidate_groups"' in html
    assert 'data-task="accept" data-field="type"' in html
    assert re.search(r'class="d-add">\+ *&lt;bpmn:userTask [^<]*name=&#34;审批（科长）&#34;', html)
    assert re.search(r'class="d-del">- *&lt;bpmn:userTask id=&#34;approve&#34; name=&#34;审批&#34;', html)
    assert c.get("/designer/compare/designer_good?a=1&b=9").status_code == 404
    assert c.get("/designer/compare/no_such_key").status_code == 404


def test_modeler_pages_open_new_and_existing(client_for, demo_engine):
    c = client_for("designer")
    html = c.get("/designer/modeler").get_data(as_text=True)
    assert "bpmn-modeler.production.min.js" in html and "new_process" in html
    d = demo_engine.versions("lanes_review")[0]
    html = c.get(f"/designer/modeler/{d['id']}").get_data(as_text=True)
    assert "lanes_review" in html and f'"base_id": {d["id"]}' in html
    assert c.get("/designer/modeler/999999").status_code == 404
    assert c.get("/static/tb-moddle.json").get_json()["uri"] == "urn:tongban:bpmn:1"


def test_modeler_deploy_returns_new_version_or_problems(client_for, demo_engine):
    c = client_for("designer")
    headers = {"X-CSRF-Token": c.csrf}
    r = c.post("/designer/modeler/deploy", json={"xml": good_file().decode(), "filename": "good.bpmn"},
               headers=headers)
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["ok"] and body["deployed"][0]["key"] == "designer_good" and body["deployed"][0]["version"] == 1
    # the same content again (same file name: the spec records it) is a no-op
    body = c.post("/designer/modeler/deploy", json={"xml": good_file().decode(), "filename": "good.bpmn"},
                  headers=headers).get_json()
    assert body["deployed"][0]["created"] is False and body["deployed"][0]["version"] == 1
    # problems come back located, nothing stored
    r = c.post("/designer/modeler/deploy", json={"xml": bad_file().decode()}, headers=headers)
    assert r.status_code == 422
    body = r.get_json()
    assert not body["ok"] and body["problems"][0]["element_id"] == "calc_fee"
    assert body["problems"][0]["line"] == script_line(bad_file())
    assert not demo_engine.versions("designer_bad")
    assert c.post("/designer/modeler/deploy", json={"nope": 1}, headers=headers).status_code == 400


def test_modeler_deploy_of_an_edited_version_keeps_its_dmn(client_for, demo_engine):
    """Editing the DMN example in the modeler sends only the BPMN; the DMN comes from the base version."""
    c = client_for("designer")
    base = demo_engine.versions("dmn_decision")[0]
    d = demo_engine.definition(base["id"])
    name, xml = next((n, x) for n, x in d["sources"].items() if 'id="dmn_decision"' in x)
    edited = xml.replace('isExecutable="true"', 'isExecutable="true" name="DMN 已修改"', 1) \
        if 'name=' not in xml.split('id="dmn_decision"')[1].split(">")[0] else \
        re.sub(r'(<bpmn:process id="dmn_decision" name=")[^"]*', r"\1DMN 已修改", xml)
    r = c.post("/designer/modeler/deploy", json={"xml": edited, "filename": name.rsplit("/", 1)[-1],
                                                  "base_id": base["id"]}, headers={"X-CSRF-Token": c.csrf})
    assert r.status_code == 200, r.get_json()
    new = demo_engine.versions("dmn_decision")[0]
    assert new["version"] == base["version"] + 1 and new["name"] == "DMN 已修改"


def test_designer_pages_speak_english_too(client_for, demo_engine):
    c = client_for("designer")
    assert "Upload BPMN / DMN" in c.get("/designer/?lang=en").get_data(as_text=True)
    d = demo_engine.versions("lanes_review")[0]
    assert "Edit in the modeler" in c.get(f"/designer/definitions/{d['id']}").get_data(as_text=True)
    html = c.get("/designer/modeler").get_data(as_text=True)
    assert "Candidate groups (comma-separated)" in html and "Deployed {key} version {version}." in html
    assert "流程设计" in c.get("/designer/?lang=zh_Hans").get_data(as_text=True)


def test_upload_of_a_bpmn_with_its_dmn(client_for, demo_engine):
    c = client_for("designer")
    files = {n: (EXAMPLES / n).read_bytes() for n in ("dmn_decision.bpmn", "dmn_decision.dmn")}
    r = upload(c, files)
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'data-file="dmn_decision.dmn"' in html and "deploy-button" in html
    before = demo_engine.versions("dmn_decision")[0]["version"]
    r = c.post("/designer/deploy", data={"csrf_token": c.csrf, "bundle": bundle_of(html)})
    assert r.status_code == 302
    assert demo_engine.versions("dmn_decision")[0]["version"] >= before
    # the BPMN alone cannot find its decision table: located, not deployed
    r = upload(c, {"dmn_decision.bpmn": files["dmn_decision.bpmn"]})
    assert r.status_code == 422 and 'class="problem"' in r.get_data(as_text=True)


def test_modeler_deploy_with_an_unknown_base(client_for):
    c = client_for("designer")
    r = c.post("/designer/modeler/deploy", json={"xml": good_file().decode(), "base_id": 999999},
               headers={"X-CSRF-Token": c.csrf})
    assert r.status_code == 404 and r.get_json()["ok"] is False


def test_upload_report_shows_the_data_flow_check(client_for):
    c = client_for("designer")
    r = upload(c, {"pull_enterprise.bpmn": (EXAMPLES / "pull_enterprise.bpmn").read_bytes()})
    assert r.status_code == 200
    html = r.get_data(as_text=True)
    assert 'id="flow-check"' in html and 'data-process="pull_enterprise"' in html
    assert "exchange.enterprise" in html and "enterprise_name" in html
