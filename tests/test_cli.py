"""The command line as a user types it: JSON contracts and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import EXAMPLES, ROOT


@pytest.fixture
def tongban(tmp_path, db_url):
    env = {**os.environ, "TONGBAN_DATABASE_URL": db_url, "TONGBAN_HOME": str(tmp_path)}

    def run(*args, ok=True, env=env):
        proc = subprocess.run([sys.executable, "-m", "cli.main", *args], cwd=ROOT, env={**os.environ, **env},
                              capture_output=True, text=True, timeout=120)
        if ok:
            assert proc.returncode == 0, proc.stderr
        return proc

    return run


def test_a_clerk_runs_a_process_from_the_command_line(tongban):
    deployed = json.loads(tongban("deploy", str(EXAMPLES / "lanes.bpmn"), "--json").stdout)
    assert deployed == [{"key": "lanes_review", "version": 1, "id": deployed[0]["id"], "created": True}]
    again = json.loads(tongban("deploy", str(EXAMPLES / "lanes.bpmn"), "--json").stdout)
    assert again[0]["version"] == 1 and again[0]["created"] is False
    tongban("users", "add", "zhang", "--group", "window", "--group", "approval", "--json")
    started = json.loads(tongban("start", "lanes_review", "--data", '{"applicant": "张三"}',
                                 "--business-key", "BK-9", "--as", "zhang", "--json").stdout)
    assert started["status"] == "running"
    tasks = json.loads(tongban("tasks", "--user", "zhang", "--json").stdout)
    assert len(tasks) == 1
    expected_keys = {"id", "instance_id", "bpmn_id", "name", "lane", "candidate_groups", "assignee", "status", "due_at"}
    assert expected_keys <= set(tasks[0])
    assert tasks[0]["candidate_groups"] == ["window"] and tasks[0]["instance_id"] == started["instance_id"]
    assert json.loads(tongban("tasks", "--group", "approval", "--json").stdout) == []
    done = json.loads(tongban("complete", str(tasks[0]["id"]), "--data", '{"accepted": true}',
                              "--as", "zhang", "--json").stdout)
    assert done == {"instance_id": started["instance_id"], "status": "running"}
    second = tongban("complete", str(tasks[0]["id"]), "--as", "zhang", "--json", ok=False)
    assert second.returncode != 0
    assert second.stderr.strip().splitlines()[-1].startswith("error: task")
    nxt = json.loads(tongban("tasks", "--instance", str(started["instance_id"]), "--json").stdout)[0]
    tongban("complete", str(nxt["id"]), "--as", "zhang", "--json")
    shown = json.loads(tongban("show", str(started["instance_id"]), "--json").stdout)
    assert shown["status"] == "completed" and shown["data"]["accepted"] is True
    assert [h["action"] for h in shown["history"]][:2] == ["start", "complete"]
    listed = json.loads(tongban("instances", "--json").stdout)
    assert listed[0]["id"] == started["instance_id"]
    assert json.loads(tongban("audit", "verify", "--json").stdout)["ok"] is True
    assert json.loads(tongban("worker", "--once", "--json").stdout) == {}


def test_errors_are_one_line_and_non_zero(tongban, tmp_path):
    bad = tmp_path / "bad.bpmn"
    bad.write_text("<bpmn:definitions xmlns:bpmn='http://www.omg.org/spec/BPMN/20100524/MODEL'>\n<oops>")
    proc = tongban("deploy", str(bad), "--json", ok=False)
    assert proc.returncode == 1
    out = json.loads(proc.stdout)
    assert out["error"] == "invalid_process" and out["problems"][0]["line"]
    assert len(proc.stderr.strip().splitlines()) == 1
    proc = tongban("start", "no_such_process", "--json", ok=False)
    assert proc.returncode == 1 and "no process with key" in proc.stderr
    # wrong options and arguments: one line too (and JSON with --json), exit 2
    for args in (["start", "x", "--data", "{bad", "--json"], ["complete", "abc", "--json"],
                 ["complete", "1", "--json"], ["calendar", "due", "notadate", "1", "--json"]):
        proc = tongban(*args, ok=False)
        assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, (args, proc.stderr)
        assert proc.stderr.startswith("error: ") and json.loads(proc.stdout)["error"] == "usage", args
    # a database that cannot be reached: one line, no traceback
    proc = tongban("instances", "--json", ok=False, env={"TONGBAN_DATABASE_URL": "postgresql://u@127.0.0.1:9/none"})
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert json.loads(proc.stdout)["error"] == "database" and "Traceback" not in proc.stderr
    proc = tongban("start", "x", "--data", "{not json", ok=False)
    assert proc.returncode != 0


TIMER_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:tb="urn:tongban:bpmn:1" id="d" targetNamespace="urn:t">
  <bpmn:process id="short_wait" isExecutable="true">
    <bpmn:startEvent id="start"/>
    <bpmn:intermediateCatchEvent id="wait">
      <bpmn:timerEventDefinition><bpmn:timeDuration xsi:type="bpmn:tFormalExpression">"PT1S"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:intermediateCatchEvent>
    <bpmn:userTask id="after" name="等待之后" tb:candidateGroups="window"/>
    <bpmn:endEvent id="end"/>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="wait"/>
    <bpmn:sequenceFlow id="f2" sourceRef="wait" targetRef="after"/>
    <bpmn:sequenceFlow id="f3" sourceRef="after" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_the_worker_process_fires_a_timer(tongban, tmp_path, db_url):
    import time

    f = tmp_path / "short_wait.bpmn"
    f.write_text(TIMER_BPMN, encoding="utf-8")
    tongban("deploy", str(f), "--json")
    iid = json.loads(tongban("start", "short_wait", "--json").stdout)["instance_id"]
    assert json.loads(tongban("tasks", "--instance", str(iid), "--json").stdout) == []
    env = {**os.environ, "TONGBAN_DATABASE_URL": db_url, "TONGBAN_HOME": str(tmp_path)}
    worker = subprocess.Popen([sys.executable, "-m", "cli.main", "worker", "--interval", "0.5"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        tasks = []
        while time.monotonic() < deadline and not tasks:
            time.sleep(0.5)
            tasks = json.loads(tongban("tasks", "--instance", str(iid), "--json").stdout)
    finally:
        worker.terminate()
        worker.wait(timeout=10)
    assert [t["bpmn_id"] for t in tasks] == ["after"]
    history = json.loads(tongban("show", str(iid), "--json").stdout)["history"]
    assert [h["action"] for h in history].count("timer") == 1


def test_users_add_sets_the_address_for_mailed_notices(tongban, db_url):
    from sqlalchemy import create_engine, text

    out = json.loads(tongban("users", "add", "mail_clerk", "--group", "window", "--email", "clerk@example.org",
                             "--json").stdout)
    assert out["name"] == "mail_clerk" and out["email"] == "clerk@example.org"
    with create_engine(db_url).connect() as c:
        assert c.execute(text("SELECT email FROM tb_notify_address WHERE user_name = 'mail_clerk'")).scalar() == \
            "clerk@example.org"
    bad = tongban("users", "add", "mail_clerk", "--email", "not an address", "--json", ok=False)
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"] == "usage"


def test_sla_status_reads_as_text_and_as_json(tongban):
    tongban("deploy", str(EXAMPLES / "approval_chain.bpmn"), "--json")
    tongban("users", "add", "li", "--group", "window", "--json")
    iid = json.loads(tongban("start", "approval_chain", "--as", "li", "--json").stdout)["instance_id"]
    tongban("sla", "pause", str(iid), "--reason", "专家评审", "--as", "li", "--json")
    as_json = json.loads(tongban("sla", "status", str(iid), "--json").stdout)
    [step] = as_json["tasks"]
    assert step["bpmn_id"] == "accept" and step["unit"] == "workday" and step["status"] == "paused"
    text = tongban("sla", "status", str(iid)).stdout
    assert not text.lstrip().startswith("{")  # for a person: one line per clock, then the pauses
    assert f"步骤 窗口受理 (任务 {step['task_id']}): 法定 1 工作日" in text
    assert "已暂停" in text and "暂停原因: 专家评审" in text and "至今: 专家评审 (li)" in text
    missing = tongban("sla", "status", "999999", ok=False)
    assert missing.returncode != 0 and missing.stderr.strip().splitlines()[-1] == "error: no instance 999999"
