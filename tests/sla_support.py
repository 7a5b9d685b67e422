"""A licence process with legal time limits, a 补正 step that stops the clock, a return loop and an
escalation chain; and a tiny SMTP sink. Shared by tests/test_sla.py, tests/test_sla_workers.py and
bench/bench_sla.py."""

from __future__ import annotations

import socket
import threading

SLA_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:tb="urn:tongban:bpmn:1"
    id="Defs_sla" targetNamespace="urn:tongban:tests">
  <bpmn:process id="sla_licence" name="许可审批（时限）" isExecutable="true">
    <bpmn:extensionElements>
      <tb:sla statutory="20" promised="10" unit="workday" warn="0.8"/>
      <tb:escalation at="yellow" action="notify" scope="instance"/>
      <tb:escalation at="due" action="notify" target="group:leader" scope="instance"/>
    </bpmn:extensionElements>
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="accept" name="受理审查" tb:candidateGroups="window">
      <bpmn:extensionElements>
        <tb:sla statutory="5" promised="4" unit="workday" warn="0.8"/>
        <tb:escalation at="yellow" action="notify"/>
        <tb:escalation at="due" action="remind,raise"/>
        <tb:escalation at="due+2wd" action="reassign" target="chief"/>
        <tb:escalation at="due+3wd" action="raise"/>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:incoming>f_back</bpmn:incoming><bpmn:incoming>f_return</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:exclusiveGateway id="gw_complete" default="f_ok">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f_supp</bpmn:outgoing><bpmn:outgoing>f_ok</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:userTask id="supplement" name="补正材料登记" tb:candidateGroups="window" tb:pausesClock="补正">
      <bpmn:incoming>f_supp</bpmn:incoming><bpmn:outgoing>f_back</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:userTask id="review" name="审核决定" tb:candidateGroups="approval" tb:outcomes="approve:准予,return:退回">
      <bpmn:extensionElements>
        <tb:sla limit="2" unit="workday"/>
        <tb:escalation at="due" action="auto_decide" decision="approve"/>
      </bpmn:extensionElements>
      <bpmn:incoming>f_ok</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:exclusiveGateway id="gw_return" default="f_end">
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f_return</bpmn:outgoing><bpmn:outgoing>f_end</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:endEvent id="end"><bpmn:incoming>f_end</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="accept"/>
    <bpmn:sequenceFlow id="f2" sourceRef="accept" targetRef="gw_complete"/>
    <bpmn:sequenceFlow id="f_supp" sourceRef="gw_complete" targetRef="supplement">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">need_supplement == True</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_ok" sourceRef="gw_complete" targetRef="review"/>
    <bpmn:sequenceFlow id="f_back" sourceRef="supplement" targetRef="accept"/>
    <bpmn:sequenceFlow id="f3" sourceRef="review" targetRef="gw_return"/>
    <bpmn:sequenceFlow id="f_return" sourceRef="gw_return" targetRef="accept">
      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">decision == "return"</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f_end" sourceRef="gw_return" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""

# one user task whose deadline (1 hour) is the only point: for the worker and benchmark runs
ONE_POINT_BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" xmlns:tb="urn:tongban:bpmn:1"
    id="Defs_one" targetNamespace="urn:tongban:tests">
  <bpmn:process id="sla_one" name="单步时限" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="handle" name="办理" tb:candidateGroups="window" tb:assignee="window_clerk">
      <bpmn:extensionElements>
        <tb:sla limit="1" unit="hour"/>
        <tb:escalation at="due" action="notify,card"/>
      </bpmn:extensionElements>
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:userTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="handle"/>
    <bpmn:sequenceFlow id="f2" sourceRef="handle" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


class SmtpSink:
    """A minimal SMTP server on 127.0.0.1 that keeps every message it accepts (stdlib only)."""

    def __init__(self):
        self.messages: list[bytes] = []
        self._lock = threading.Lock()
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._stop = False
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while not self._stop:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn):
        f = conn.makefile("rb")

        def say(line):
            conn.sendall(line.encode() + b"\r\n")

        try:
            say("220 sink ESMTP")
            data = None
            while True:
                line = f.readline()
                if not line:
                    return
                if data is not None:
                    if line in (b".\r\n", b".\n"):
                        with self._lock:
                            self.messages.append(b"".join(data))
                        data = None
                        say("250 OK")
                    else:
                        data.append(line[1:] if line.startswith(b"..") else line)
                    continue
                cmd = line.strip().upper()
                if cmd.startswith(b"EHLO") or cmd.startswith(b"HELO"):
                    say("250 sink")
                elif cmd == b"DATA":
                    data = []
                    say("354 go ahead")
                elif cmd == b"QUIT":
                    say("221 bye")
                    return
                else:
                    say("250 OK")
        finally:
            conn.close()

    def message_ids(self) -> list[str]:
        out = []
        with self._lock:
            msgs = list(self.messages)
        for m in msgs:
            for line in m.split(b"\n"):
                if line.lower().startswith(b"message-id:"):
                    out.append(line.split(b":", 1)[1].strip().decode())
        return out

    def close(self):
        self._stop = True
        self._sock.close()
