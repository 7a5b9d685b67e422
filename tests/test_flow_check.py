"""The flow check on good and bad models: where each task's data comes from, errors and warnings,
counts, deploy blocked with located problems, and the ``tongban check`` command."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from cli.main import main as cli
from engine import flowcheck
from engine.errors import InvalidProcess
from tests.conftest import EXAMPLES, example_files

HEAD = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1" '
        'id="d" targetNamespace="urn:t">\n')


def model(body: str, ext: str = '<tb:applicant fields="uscc"/>', key: str = "p") -> dict[str, bytes]:
    xml = (HEAD + f'<bpmn:process id="{key}" isExecutable="true">\n'
           + (f"<bpmn:extensionElements>{ext}</bpmn:extensionElements>\n" if ext else "")
           + body + "\n</bpmn:process>\n</bpmn:definitions>\n")
    return {f"{key}.bpmn": xml.encode()}


def pull(op="enterprise", inputs='<tb:input name="uscc" expr="uscc"/>', outputs='<tb:output name="enterprise_name"/>',
         connector="exchange", purpose="核验", basis="《条例》"):
    return (f'<bpmn:extensionElements><tb:data connector="{connector}" operation="{op}" purpose="{purpose}" '
            f'basis="{basis}">{inputs}{outputs}</tb:data></bpmn:extensionElements>')


def seq(*nodes: str) -> str:
    """start -> nodes... -> end, each node given as (id, xml-without-flows) pairs joined."""
    ids = ["start", *[n.split('id="', 1)[1].split('"', 1)[0] for n in nodes], "end"]
    flows = "".join(f'<bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}"/>\n'
                    for i, (a, b) in enumerate(zip(ids, ids[1:], strict=False)))
    return '<bpmn:startEvent id="start"/>\n' + "\n".join(nodes) + '\n<bpmn:endEvent id="end"/>\n' + flows


def user(tid, inner="", attrs='tb:candidateGroups="window"'):
    return f'<bpmn:userTask id="{tid}" name="{tid}" {attrs}>{inner}</bpmn:userTask>'


def report(files):
    return flowcheck.check_files(files)


def only(rep):
    [p] = rep["processes"]
    return p


def messages(items):
    return [e["message"] for e in items]


def test_the_examples_pass_and_report_where_data_comes_from():
    rep = report(example_files("pull_enterprise.bpmn", "service_credit.bpmn"))
    assert rep["ok"] and rep["errors"] == 0 and rep["warnings"] == 0
    p = {x["key"]: x for x in rep["processes"]}["pull_enterprise"]
    accept = next(t for t in p["tasks"] if t["id"] == "accept")
    assert accept["needs"] == [{"name": "uscc", "for": "input 'uscc' of exchange.enterprise", "source": "applicant",
                                "from": []}]
    assert accept["pulls"][0]["fields"][:2] == ["enterprise_name", "legal_rep"]
    approve = next(t for t in p["tasks"] if t["id"] == "approve")
    assert "legal_rep_id" in approve["receives"] and "premises_address" in approve["receives"]
    assert p["counts"] == {"applicant_fields": 2, "pulled_fields": 8}


def test_every_example_in_the_folder_passes_the_check():
    files = {str(f): f.read_bytes() for f in sorted(EXAMPLES.glob("*.bpmn"))}
    rep = report(files)
    assert rep["errors"] == 0, [e for p in rep["processes"] for e in p["errors"]]


def test_an_input_produced_on_one_path_only_is_an_error():
    body = (
        '<bpmn:startEvent id="start"/>'
        '<bpmn:exclusiveGateway id="gw" default="f_b"/>'
        + user("a", '<bpmn:extensionElements><tb:field id="licence_no" type="string"/></bpmn:extensionElements>')
        + user("b")
        + '<bpmn:exclusiveGateway id="join"/>'
        + user("check", pull("licence", '<tb:input name="licence_no" expr="licence_no"/>',
                             '<tb:output name="licence_name"/>'))
        + '<bpmn:endEvent id="end"/>'
        '<bpmn:sequenceFlow id="f0" sourceRef="start" targetRef="gw"/>'
        '<bpmn:sequenceFlow id="f_a" sourceRef="gw" targetRef="a"><bpmn:conditionExpression>uscc</bpmn:conditionExpression></bpmn:sequenceFlow>'
        '<bpmn:sequenceFlow id="f_b" sourceRef="gw" targetRef="b"/>'
        '<bpmn:sequenceFlow id="f1" sourceRef="a" targetRef="join"/>'
        '<bpmn:sequenceFlow id="f2" sourceRef="b" targetRef="join"/>'
        '<bpmn:sequenceFlow id="f3" sourceRef="join" targetRef="check"/>'
        '<bpmn:sequenceFlow id="f4" sourceRef="check" targetRef="end"/>')
    p = only(report(model(body)))
    [err] = p["errors"]
    assert err["element_id"] == "check" and err["line"] == 5
    assert "'licence_no'" in err["message"] and "only on some paths" in err["message"]
    need = next(t for t in p["tasks"] if t["id"] == "check")["needs"][0]
    assert need["source"] is None and need["from"] == ["a"]


def test_parallel_branches_both_produce_before_a_join():
    body = (
        '<bpmn:startEvent id="start"/><bpmn:parallelGateway id="fork"/>'
        + user("a", '<bpmn:extensionElements><tb:field id="licence_no"/></bpmn:extensionElements>') + user("b")
        + '<bpmn:parallelGateway id="join"/>'
        + user("check", pull("licence", '<tb:input name="licence_no" expr="licence_no"/>',
                             '<tb:output name="licence_name"/>'))
        + '<bpmn:endEvent id="end"/>'
        + "".join(f'<bpmn:sequenceFlow id="f{i}" sourceRef="{a}" targetRef="{b}"/>' for i, (a, b) in enumerate(
            [("start", "fork"), ("fork", "a"), ("fork", "b"), ("a", "join"), ("b", "join"), ("join", "check"),
             ("check", "end")])))
    p = only(report(model(body)))
    assert p["errors"] == []
    assert next(t for t in p["tasks"] if t["id"] == "check")["needs"][0]["source"] == "earlier task"


def test_a_pulled_field_feeds_a_later_pull():
    body = seq(user("a", pull()),
               user("b", pull("identity", '<tb:input name="id_number" expr="rep_id"/><tb:input name="name" expr="rep"/>',
                              '<tb:output name="name_match"/>')))
    p = only(report(model(body)))
    assert any("'rep_id'" in m for m in messages(p["errors"]))
    body = seq(user("a", pull(outputs='<tb:output name="legal_rep_id" as="rep_id"/><tb:output name="legal_rep" as="rep"/>')),
               user("b", pull("identity", '<tb:input name="id_number" expr="rep_id"/><tb:input name="name" expr="rep"/>',
                              '<tb:output name="name_match"/>')))
    p = only(report(model(body)))
    assert p["errors"] == []
    assert {n["name"]: n["source"] for n in p["tasks"][1]["needs"]} == {"rep_id": "pulled", "rep": "pulled"}


def test_a_field_the_authority_may_not_see_is_an_error_and_task_scope_fixes_it():
    ext = ('<tb:applicant fields="uscc"/><tb:authority group="window" fields="enterprise_name,legal_rep_id"/>'
           '<tb:authority group="tobacco" fields="enterprise_name"/>')
    body = seq(user("a", pull(outputs='<tb:output name="enterprise_name"/><tb:output name="legal_rep_id"/>')),
               user("t", attrs='tb:candidateGroups="tobacco"'))
    p = only(report(model(body, ext)))
    [err] = p["errors"]
    assert err["element_id"] == "t" and "'legal_rep_id'" in err["message"] and "may not see" in err["message"]
    body = seq(user("a", pull(outputs='<tb:output name="enterprise_name"/><tb:output name="legal_rep_id" scope="task"/>')),
               user("t", attrs='tb:candidateGroups="tobacco"'))
    assert only(report(model(body, ext)))["errors"] == []
    # a task's own visibleFields says the same for one task
    body = seq(user("a", pull(outputs='<tb:output name="enterprise_name"/><tb:output name="legal_rep_id"/>'),
                    attrs='tb:candidateGroups="window" tb:visibleFields="enterprise_name"'))
    [err] = only(report(model(body)))["errors"]
    assert err["element_id"] == "a" and "'legal_rep_id'" in err["message"]


@pytest.mark.parametrize("inner,expected", [
    (pull(connector="nosuch"), "unknown connector 'nosuch'"),
    (pull(op="nosuch"), "has no operation 'nosuch'"),
    (pull(outputs='<tb:output name="no_such_field"/>'), "returns no field 'no_such_field'"),
    (pull(inputs='<tb:input name="code" expr="uscc"/>'), "has no input 'code'"),
    (pull(inputs=""), "needs the input 'uscc'"),
    (pull(purpose=""), "states no purpose"),
    (pull(basis=""), "states no legal basis"),
    (pull(outputs=""), "keeps no fields"),
    (pull(inputs='<tb:input name="uscc" expr="uscc +"/>'), "input 'uscc' of exchange.enterprise: syntax error"),
])
def test_bad_declarations_are_located_errors(inner, expected):
    p = only(report(model(seq(user("a", inner)))))
    assert any(expected in m for m in messages(p["errors"])), p["errors"]
    assert all(e["element_id"] == "a" and e["line"] == 6 for e in p["errors"])


def test_duplicate_filling_and_unread_pulls_are_warnings():
    ext = '<tb:applicant fields="uscc,enterprise_name,legal_rep"/>'
    body = seq(user("a", pull(outputs='<tb:output name="enterprise_name"/><tb:output name="business_scope"/>'),
                    attrs='tb:candidateGroups="window" tb:visibleFields="enterprise_name"'))
    p = only(report(model(body, ext)))
    warnings = messages(p["warnings"])
    assert any("重复填报" in w and "'enterprise_name'" in w for w in warnings)
    assert any("重复填报" in w and "'legal_rep'" in w for w in warnings)
    assert not any("'uscc'" in w for w in warnings)  # the key the connector needs is not a duplicate
    assert any("nobody reads" in w and "business_scope" in w for w in warnings)
    # business_scope is also not visible: that's an authority error
    assert any("'business_scope'" in m for m in messages(p["errors"]))
    assert p["counts"] == {"applicant_fields": 3, "pulled_fields": 2}


def test_undeclared_applicant_data_is_assumed_with_a_warning():
    p = only(report(model(seq(user("a", pull())), ext="")))
    assert p["errors"] == []
    assert p["tasks"][0]["needs"][0]["source"] == "applicant (undeclared)"
    assert any("assumed to come from the applicant" in w for w in messages(p["warnings"]))


def test_deploy_is_blocked_with_located_problems(engine):
    files = model(seq(user("a", pull(op="nosuch"))))
    with pytest.raises(InvalidProcess) as exc:
        engine.deploy(files)
    [problem] = exc.value.problems
    assert problem.element_id == "a" and problem.line == 6 and problem.file == "p.bpmn"
    assert engine.definitions() == []
    checked = engine.check(files)
    assert checked["keys"] == [] and checked["problems"][0]["element_id"] == "a"
    assert engine.check(model(seq(user("a", pull()))))["keys"] == ["p"]


def test_cli_check_reports_and_exits_non_zero_on_errors(tmp_path):
    good = tmp_path / "good.bpmn"
    good.write_bytes(model(seq(user("a", pull())))["p.bpmn"])
    bad = tmp_path / "bad.bpmn"
    bad.write_bytes(model(seq(user("b", pull(connector="nosuch"))), key="q")["q.bpmn"])
    runner = CliRunner()
    r = runner.invoke(cli, ["check", str(good), "--json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.output)
    assert doc["ok"] and doc["counts"] == {"applicant_fields": 1, "pulled_fields": 1}
    r = runner.invoke(cli, ["check", str(good), str(bad), "--json"])
    assert r.exit_code == 1
    doc = json.loads(r.output)  # one JSON document
    assert not doc["ok"] and doc["errors"] == 1
    assert doc["processes"][1]["errors"][0]["element_id"] == "b"
    r = runner.invoke(cli, ["check", str(EXAMPLES / "pull_enterprise.bpmn")])
    assert r.exit_code == 0 and "needs uscc" in r.output and "applicant fills 2" in r.output
    broken = tmp_path / "broken.bpmn"
    broken.write_text("<bpmn:definitions")
    r = runner.invoke(cli, ["check", str(broken), "--json"])
    assert r.exit_code == 1 and json.loads(r.output)["problems"]
