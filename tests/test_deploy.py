"""Deploying BPMN: every rejected upload names the element and/or the line, in words a process
designer understands; hostile uploads are refused before anything is parsed or stored;
versions; the manifest dialects (tb:, camunda:, spiffworkflow:properties) and lanes."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from engine.errors import InvalidProcess
from engine.models import Instance
from tests.conftest import example_files

NS = ('xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1" '
      'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
      'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"')


def bpmn(body: str, flows: str, *, key: str = "p", name: str = "测试流程", encoding: str = "UTF-8") -> str:
    """A process as text (start → ... → end); encode it yourself, in the declared encoding."""
    return f"""<?xml version="1.0" encoding="{encoding}"?>
<bpmn:definitions {NS} id="d_{key}" targetNamespace="urn:test">
  <bpmn:process id="{key}" name="{name}" isExecutable="true">
    <bpmn:startEvent id="start"/>
    {body}
    <bpmn:endEvent id="end"/>
    {flows}
  </bpmn:process>
</bpmn:definitions>
"""


def flow(fid: str, source: str, target: str, condition: str | None = None) -> str:
    if condition is None:
        return f'<bpmn:sequenceFlow id="{fid}" sourceRef="{source}" targetRef="{target}"/>\n    '
    return (f'<bpmn:sequenceFlow id="{fid}" sourceRef="{source}" targetRef="{target}">'
            f"<bpmn:conditionExpression>{condition}</bpmn:conditionExpression></bpmn:sequenceFlow>\n    ")


def one_task(task: str = '<bpmn:userTask id="accept" name="受理" tb:candidateGroups="window"/>', **kw) -> str:
    return bpmn(task, flow("f1", "start", "accept") + flow("f2", "accept", "end"), **kw)


def script_process(script: str) -> str:
    return bpmn(f'<bpmn:scriptTask id="calc" name="计算">\n      <bpmn:script>{script}</bpmn:script>\n'
                "    </bpmn:scriptTask>", flow("f1", "start", "calc") + flow("f2", "calc", "end"))


def line_containing(text: str, needle: str, nth: int = 0) -> int:
    lines = [i for i, line in enumerate(text.splitlines(), 1) if needle in line]
    assert lines, needle
    return lines[nth]


def rejected(engine, files: dict[str, bytes]) -> list:
    with pytest.raises(InvalidProcess) as info:
        engine.deploy(files)
    problems = info.value.problems
    assert problems, "InvalidProcess must list at least one problem"
    assert engine.definitions() == [], "a rejected upload stores nothing"
    return problems


def find(problems, **wanted):
    """The first problem whose attributes equal ``wanted``; fails with all problems shown."""
    for p in problems:
        if all(getattr(p, k) == v for k, v in wanted.items()):
            return p
    raise AssertionError(f"no problem with {wanted} in {[p.as_dict() for p in problems]}")


# ---- the XML itself -------------------------------------------------------------------------

def test_an_unclosed_tag_is_reported_with_its_line(engine):
    text = one_task('<bpmn:userTask id="accept" name="受理">')
    problems = rejected(engine, {"unclosed.bpmn": text.encode()})
    p = find(problems, file="unclosed.bpmn")
    assert p.line == line_containing(text, '<bpmn:userTask id="accept"')
    assert "not well-formed XML" in p.message and "userTask" in p.message and "not closed" in p.message


def test_a_gbk_file_with_chinese_names_deploys_and_reads_correctly(engine):
    text = one_task('<bpmn:userTask id="accept" name="窗口受理（烟草专卖）" tb:candidateGroups="window"/>',
                    key="gbk_process", name="一业一证：餐饮", encoding="GBK")
    content = text.encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        content.decode("utf-8")  # really GBK bytes, not UTF-8 that happens to say GBK
    [deployed] = engine.deploy({"gbk.bpmn": content})
    assert (deployed.key, deployed.version, deployed.created) == ("gbk_process", 1, True)
    assert engine.definitions()[0]["name"] == "一业一证：餐饮"
    iid = engine.start("gbk_process", {}, actor="admin")["instance_id"]
    [task] = engine.tasks(instance_id=iid)
    assert task["name"] == "窗口受理（烟草专卖）"


def test_a_file_declared_utf8_with_invalid_bytes_is_rejected_at_that_line(engine):
    text = one_task('<bpmn:userTask id="accept" name="ACCEPT_HERE" tb:candidateGroups="window"/>')
    content = text.encode().replace(b"ACCEPT_HERE", "受理".encode("gbk"))  # GBK bytes in a UTF-8 file
    problems = rejected(engine, {"mixed.bpmn": content})
    p = find(problems, file="mixed.bpmn")
    assert p.line == line_containing(text, "ACCEPT_HERE")
    assert "UTF-8" in p.message and "not valid" in p.message


def test_an_unknown_encoding_name_is_rejected(engine):
    content = one_task(encoding="X-NO-SUCH-CHARSET").encode()
    problems = rejected(engine, {"weird.bpmn": content})
    p = find(problems, file="weird.bpmn", line=1)
    assert "X-NO-SUCH-CHARSET" in p.message and "encoding" in p.message


def _with_doctype(doctype: str, text: str) -> str:
    head, rest = text.split("\n", 1)
    return f"{head}\n{doctype}\n{rest}"


PASSWD_MARKERS = ("root:", "/bin/", "nologin")


@pytest.mark.parametrize("encoding", ["UTF-8", "UTF-16"])
def test_an_external_entity_is_rejected_and_the_file_never_shows(engine, encoding):
    text = _with_doctype('<!DOCTYPE bpmn:definitions [<!ENTITY secret SYSTEM "file:///etc/passwd">]>',
                         one_task('<bpmn:userTask id="accept" name="&secret;"/>', encoding=encoding))
    with pytest.raises(InvalidProcess) as info:
        engine.deploy({"xxe.bpmn": text.encode(encoding.lower())})
    p = find(info.value.problems, file="xxe.bpmn", line=2)
    assert "DOCTYPE" in p.message
    everything = " ".join([str(info.value), repr(info.value.problems),
                           *(str(q.as_dict()) for q in info.value.problems), str(engine.definitions())])
    for marker in PASSWD_MARKERS:
        assert marker not in everything
    assert engine.definitions() == []


def test_billion_laughs_is_rejected_quickly(engine):
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol;" if i == 1 else f"&lol{i - 1};") * 10}">' for i in range(1, 10))
    text = _with_doctype(f"<!DOCTYPE bpmn:definitions [{entities}]>",
                         one_task('<bpmn:userTask id="accept" name="&lol9;"/>'))
    started = time.monotonic()
    problems = rejected(engine, {"lol.bpmn": text.encode()})
    assert time.monotonic() - started < 2.0
    p = find(problems, file="lol.bpmn", line=2)
    assert "entity" in p.message.lower()


def test_a_50_mb_upload_is_rejected_with_its_size(engine):
    text = one_task()
    head, tail = text.split("<bpmn:process", 1)
    content = (head + "<!--").encode() + b"x" * (50 * 1024 * 1024) + ("-->\n<bpmn:process" + tail).encode()
    assert len(content) > 50 * 1024 * 1024
    started = time.monotonic()
    problems = rejected(engine, {"huge.bpmn": content})
    assert time.monotonic() - started < 5.0
    p = find(problems, file="huge.bpmn")
    assert "50.0 MB" in p.message and "limit" in p.message


# ---- the process model -----------------------------------------------------------------------

def test_an_unsupported_element_is_rejected_with_its_id_and_line(engine):
    # complexGateway is valid BPMN 2.0 (the XSD accepts it) but SpiffWorkflow 3.2 has no parser for it;
    # SpiffWorkflow names the element but gives no line, so the engine looks the line up
    text = bpmn('<bpmn:complexGateway id="pick_branches" name="复杂网关"/>',
                flow("f1", "start", "pick_branches") + flow("f2", "pick_branches", "end"))
    problems = rejected(engine, {"complex.bpmn": text.encode()})
    p = find(problems, element_id="pick_branches")
    assert p.line == line_containing(text, 'id="pick_branches"')
    assert p.file == "complex.bpmn"
    assert "complexGateway" in p.message and "not supported" in p.message


def test_a_dangling_sequence_flow_is_named(engine):
    text = bpmn('<bpmn:userTask id="accept"/>', flow("f1", "start", "accept") + flow("to_nowhere", "accept", "gone"))
    problems = rejected(engine, {"dangling.bpmn": text.encode()})
    p = find(problems, element_id="to_nowhere")
    assert p.line == line_containing(text, 'id="to_nowhere"')
    assert "'gone'" in p.message and "dangling" in p.message


def test_a_script_syntax_error_points_at_the_script_line_in_the_file(engine):
    text = script_process("fee = 100\n      total = (fee +\n      done = True")
    problems = rejected(engine, {"syntax.bpmn": text.encode()})
    p = find(problems, element_id="calc")
    assert p.line == line_containing(text, "total = (fee +")
    assert "syntax error" in p.message


def test_a_script_written_on_its_own_lines_reports_the_file_line(engine):
    # the script's text starts with a newline after <bpmn:script>, as modelers write it
    text = script_process("\nfee = 100\nfee = fee * 2\ntotal = fee +\n")
    p = find(rejected(engine, {"lines.bpmn": text.encode()}), element_id="calc")
    assert p.line == line_containing(text, "total = fee +")


def test_an_indented_script_as_modelling_tools_save_it_deploys_and_runs(engine):
    text = script_process("\n        fee = 100\n        if fee > 50:\n            fee = fee * 2\n      ")
    engine.deploy({"indented.bpmn": text.encode()})
    iid = engine.start("p", {}, actor="admin")["instance_id"]
    shown = engine.show(iid)
    assert shown["status"] == "completed" and shown["data"]["fee"] == 200


def test_an_indented_script_with_an_error_reports_the_file_line(engine):
    text = script_process("\n        fee = 100\n        total = fee +\n      ")
    p = find(rejected(engine, {"indented_bad.bpmn": text.encode()}), element_id="calc")
    assert p.line == line_containing(text, "total = fee +")


@pytest.mark.parametrize("script, words", [
    ("import os", "import"),
    ("x = __import__('os')", "__import__"),
    ("x = ().__class__.__bases__", "__bases__"),
    ("x = open('/etc/passwd').read()", "open"),
    ("from subprocess import run", "import"),
])
def test_a_hostile_script_is_rejected_at_deploy(engine, script, words):
    text = script_process("a = 1\n" + script)
    problems = rejected(engine, {"hostile.bpmn": text.encode()})
    p = find(problems, element_id="calc")
    assert p.line == line_containing(text, script)
    assert words in p.message


def _gateway(condition: str) -> str:
    return bpmn('<bpmn:exclusiveGateway id="big" default="small_case"/>',
                flow("f1", "start", "big") + flow("large_case", "big", "end", condition)
                + flow("small_case", "big", "end"))


def test_a_condition_with_a_syntax_error_is_rejected(engine):
    text = _gateway("amount &gt; &gt; 10000")
    problems = rejected(engine, {"cond.bpmn": text.encode()})
    p = find(problems, element_id="large_case")
    assert p.line == line_containing(text, 'id="large_case"')
    assert "conditionExpression" in p.message and "syntax error" in p.message
    assert "Python expression" in p.message


def test_a_condition_error_names_the_flow_even_when_the_expression_has_an_id(engine):
    text = _gateway("placeholder").replace(
        "<bpmn:conditionExpression>placeholder</bpmn:conditionExpression>",
        '<bpmn:conditionExpression id="expr_1">\n        ${approved}\n      </bpmn:conditionExpression>')
    p = find(rejected(engine, {"cond.bpmn": text.encode()}), element_id="large_case")
    assert p.line == line_containing(text, "${approved}")


def test_a_hostile_condition_is_rejected(engine):
    problems = rejected(engine, {"cond.bpmn": _gateway("__import__('os').system('id') == 0").encode()})
    assert "__import__" in find(problems, element_id="large_case").message


def test_a_good_condition_deploys(engine):
    [d] = engine.deploy({"cond.bpmn": _gateway("amount &gt; 10000").encode()})
    assert (d.key, d.version, d.created) == ("p", 1, True)


# ---- versions --------------------------------------------------------------------------------

def test_deploying_the_same_content_twice_is_a_no_op(engine):
    files = {"v.bpmn": one_task(key="versioned").encode()}
    [first] = engine.deploy(files)
    [again] = engine.deploy(files)
    assert (first.version, first.created) == (1, True)
    assert (again.key, again.version, again.id, again.created) == ("versioned", 1, first.id, False)
    assert [d["version"] for d in engine.definitions()] == [1]


def test_the_same_folder_or_file_under_another_spelling_of_its_path_is_a_no_op(engine, tmp_path, monkeypatch):
    folder = tmp_path / "library" / "one_process"
    (folder / "sub").mkdir(parents=True)
    (folder / "main.bpmn").write_text(one_task(key="spelled"), encoding="utf-8")
    (folder / "sub" / "dup.bpmn").write_text(one_task(key="spelled_too"), encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    first = engine.deploy_paths(["library/one_process"])
    assert sorted((d.key, d.version, d.created) for d in first) == [("spelled", 1, True), ("spelled_too", 1, True)]
    for spelling in (str(folder), "library/one_process/", "./library/../library/one_process"):
        again = engine.deploy_paths([spelling])
        assert sorted((d.key, d.version, d.created) for d in again) == [
            ("spelled", 1, False), ("spelled_too", 1, False)], spelling
    monkeypatch.chdir(folder)
    assert [(d.version, d.created) for d in engine.deploy_paths(["."])] == [(1, False), (1, False)]
    # a single file of the folder, wherever it is deployed from: its process is the same content
    for spelling in (str(folder / "main.bpmn"), "main.bpmn"):
        assert [(d.key, d.version, d.created) for d in engine.deploy_paths([spelling])] == [
            ("spelled", 1, False)], spelling
    monkeypatch.chdir(tmp_path)
    assert [(d.version, d.created) for d in engine.deploy_paths(["library/one_process/main.bpmn"])] == [(1, False)]
    assert [d["version"] for d in engine.definitions() if d["key"] == "spelled"] == [1]
    # a changed file is a new version, whichever way it comes
    (folder / "main.bpmn").write_text(one_task(key="spelled").replace("受理", "受理并核验"), encoding="utf-8")
    assert [(d.version, d.created) for d in engine.deploy_paths(["library/one_process/main.bpmn"])] == [(2, True)]
    assert sorted((d.key, d.version, d.created) for d in engine.deploy_paths(["library/one_process"])) == [
        ("spelled", 2, False), ("spelled_too", 1, False)]


def test_a_version_stored_with_a_checksum_of_another_rule_is_compared_by_its_content(engine):
    """Rows deployed when the checksum still covered the file name: re-deploying them unchanged,
    under any file name, stays a no-op."""
    import hashlib
    import json

    from sqlalchemy import update

    from engine.models import ProcessDefinition
    files = {"old/v.bpmn": one_task(key="legacy").encode()}
    [first] = engine.deploy(files)
    with engine.sessions.begin() as s:
        row = s.get(ProcessDefinition, first.id)
        h = hashlib.sha256(row.spec.encode())
        h.update(json.dumps(row.manifest, sort_keys=True, ensure_ascii=False).encode())
        legacy = h.hexdigest()
        assert legacy != row.checksum and '"file": "old/v.bpmn"' in row.spec
        s.execute(update(ProcessDefinition).where(ProcessDefinition.id == first.id).values(checksum=legacy))
    assert [(d.version, d.created) for d in engine.deploy(files)] == [(1, False)]
    assert [(d.version, d.created) for d in engine.deploy({"v.bpmn": files["old/v.bpmn"]})] == [(1, False)]


def definition_of(engine, instance_id: int) -> int:
    with engine.sessions() as s:
        return s.get(Instance, instance_id).definition_id


def test_changed_content_is_version_2_and_running_instances_stay_on_version_1(engine):
    v1 = one_task(key="versioned")
    v2 = bpmn('<bpmn:userTask id="accept" name="受理" tb:candidateGroups="window"/>\n'
              '    <bpmn:userTask id="review" name="复核" tb:candidateGroups="approval"/>',
              flow("f1", "start", "accept") + flow("f2", "accept", "review") + flow("f3", "review", "end"),
              key="versioned")
    [d1] = engine.deploy({"v.bpmn": v1.encode()})
    old = engine.start("versioned", {"n": 1}, actor="admin")["instance_id"]
    [d2] = engine.deploy({"v.bpmn": v2.encode()})
    assert (d2.version, d2.created) == (2, True)
    assert [d["version"] for d in engine.definitions()] == [1, 2]

    new = engine.start("versioned", {"n": 2}, actor="admin")["instance_id"]
    # (show()["version"] is the instance row's lock counter, so ask the row for its definition)
    assert definition_of(engine, old) == d1.id
    assert definition_of(engine, new) == d2.id

    [task] = engine.tasks(instance_id=old)
    assert engine.complete(task["id"], "admin", {"accepted": True})["status"] == "completed"
    assert engine.show(old)["data"]["accepted"] is True and definition_of(engine, old) == d1.id

    [task] = engine.tasks(instance_id=new)
    assert engine.complete(task["id"], "admin", {"accepted": True})["status"] != "completed"
    assert [t["bpmn_id"] for t in engine.tasks(instance_id=new)] == ["review"]


def test_a_rejected_new_version_leaves_the_old_one_in_place(engine):
    engine.deploy({"v.bpmn": one_task(key="versioned").encode()})
    rejected_text = bpmn('<bpmn:complexGateway id="cg"/>', flow("f1", "start", "cg") + flow("f2", "cg", "end"),
                         key="versioned")
    with pytest.raises(InvalidProcess):
        engine.deploy({"v.bpmn": rejected_text.encode()})
    assert [d["version"] for d in engine.definitions()] == [1]


# ---- manifest dialects and lanes --------------------------------------------------------------

def _utc(value: str | datetime) -> datetime:
    when = datetime.fromisoformat(value) if isinstance(value, str) else value
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def _by_bpmn_id(tasks):
    return {t["bpmn_id"]: t for t in tasks}


def test_the_manifest_reads_tb_and_camunda(engine, clock):
    engine.deploy(example_files("parallel_gateway.bpmn"))
    iid = engine.start("parallel_gateway", {"applicant": "张三"}, actor="admin")["instance_id"]
    tasks = _by_bpmn_id(engine.tasks(instance_id=iid))
    assert set(tasks) == {"market_review", "tobacco_review", "drug_review"}
    now = clock.now()
    # tb:candidateGroups + tb:formKey + <tb:sla limit="3" unit="workday">
    market = tasks["market_review"]
    assert market["candidate_groups"] == ["market"] and market["form_key"] == "market_review"
    assert _utc(market["due_at"]) > _utc(now) + timedelta(days=2)
    # camunda:candidateGroups + camunda:dueDate="P3D"
    tobacco = tasks["tobacco_review"]
    assert tobacco["candidate_groups"] == ["tobacco"]
    assert _utc(tobacco["due_at"]) == _utc(now) + timedelta(days=3)
    # tb:candidateGroups only: no due date
    assert tasks["drug_review"]["candidate_groups"] == ["drug"] and tasks["drug_review"]["due_at"] is None
    assert [t["bpmn_id"] for t in engine.tasks(group="tobacco")] == ["tobacco_review"]


def test_the_manifest_reads_spiffworkflow_properties_and_precedence(engine, clock):
    spiff = ('<bpmn:extensionElements><spiffworkflow:properties>'
             '<spiffworkflow:property name="candidateGroups" value="approval"/>'
             '<spiffworkflow:property name="dueDate" value="PT4H"/>'
             '<spiffworkflow:property name="formKey" value="spiff_form"/>'
             "</spiffworkflow:properties></bpmn:extensionElements>")
    body = (f'<bpmn:userTask id="spiff_only" name="仅spiff">{spiff}</bpmn:userTask>\n'
            f'    <bpmn:userTask id="all_three" name="三种写法" tb:candidateGroups="window" '
            f'camunda:candidateGroups="market">{spiff}</bpmn:userTask>\n'
            f'    <bpmn:userTask id="camunda_and_spiff" name="camunda优先" camunda:candidateGroups="drug">'
            f"{spiff}</bpmn:userTask>\n"
            '    <bpmn:parallelGateway id="fork"/><bpmn:parallelGateway id="join"/>')
    flows = (flow("f0", "start", "fork") + flow("f1", "fork", "spiff_only") + flow("f2", "fork", "all_three")
             + flow("f3", "fork", "camunda_and_spiff") + flow("f4", "spiff_only", "join")
             + flow("f5", "all_three", "join") + flow("f6", "camunda_and_spiff", "join") + flow("f7", "join", "end"))
    engine.deploy({"dialects.bpmn": bpmn(body, flows, key="dialects").encode()})
    iid = engine.start("dialects", {}, actor="admin")["instance_id"]
    tasks = _by_bpmn_id(engine.tasks(instance_id=iid))
    spiff_only = tasks["spiff_only"]
    assert spiff_only["candidate_groups"] == ["approval"] and spiff_only["form_key"] == "spiff_form"
    assert _utc(spiff_only["due_at"]) == _utc(clock.now()) + timedelta(hours=4)
    assert tasks["all_three"]["candidate_groups"] == ["window"]          # tb: wins
    assert tasks["camunda_and_spiff"]["candidate_groups"] == ["drug"]    # then camunda:


def test_lanes_become_candidate_groups_when_nothing_else_says(engine):
    engine.deploy(example_files("lanes.bpmn"))
    iid = engine.start("lanes_review", {"applicant": "张三"}, actor="admin")["instance_id"]
    [accept] = engine.tasks(instance_id=iid)
    assert (accept["bpmn_id"], accept["candidate_groups"], accept["lane"]) == ("accept", ["window"], "综合窗口")
    assert engine.tasks(user="approver") == []
    engine.complete(accept["id"], "window_clerk", {"accepted": True})
    [approve] = engine.tasks(instance_id=iid)
    assert (approve["bpmn_id"], approve["candidate_groups"], approve["lane"]) == ("approve", ["approval"], "审批科")
    assert [t["id"] for t in engine.tasks(user="approver")] == [approve["id"]]
    assert engine.complete(approve["id"], "approver", {"approved": True})["status"] == "completed"


# ---- no executable process ---------------------------------------------------------------------

def test_a_descriptive_model_is_rejected_at_its_process(engine):
    text = one_task(key="described").replace('isExecutable="true"', 'isExecutable="false"')
    problems = rejected(engine, {"described.bpmn": text.encode()})
    p = find(problems, element_id="described")
    assert p.line == line_containing(text, '<bpmn:process id="described"')
    assert 'isExecutable="false"' in p.message
