"""`tongban serve --demo` (what `make run` runs) starts the whole product: pages and API, the
worker, and the demo data exchange on its own port, wired to the exchange connector."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time

import httpx

from tests.conftest import ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _library_keys() -> dict[str, list[str]]:
    """The process keys each library folder would deploy (empty list: the folder has problems)."""
    from cli.demo import library_folders
    from engine import definitions

    keys = {}
    for folder in library_folders():
        found, problems = definitions.check(definitions.read_paths([folder]))
        keys[folder.name] = found if not problems else []
    return keys


def test_serve_demo_runs_web_worker_and_exchange(tmp_path):
    port, xport = _free_port(), _free_port()
    env = {**os.environ, "TONGBAN_HOME": str(tmp_path), "TONGBAN_SECRET_FILE": str(tmp_path / "secret"),
           "TONGBAN_DATABASE_URL": f"sqlite:///{tmp_path / 'tongban.sqlite'}"}
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "serve", "--demo", "--port", str(port),
                             "--exchange-port", str(xport)], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Tongban is running at" in line:
                break
        out = "".join(lines)
        assert f"http://127.0.0.1:{port}/" in out, out
        assert "window_clerk" in out and "tongban-demo" in out  # one user per role, printed
        assert f"demo data exchange: http://127.0.0.1:{xport}" in out
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30) as web:
            page = web.get("/login")
            assert page.status_code == 200
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
            r = web.post("/login", data={"username": "window_clerk", "password": "tongban-demo",
                                         "csrf_token": token})
            assert r.status_code == 302
            csrf = re.search(r'name="csrf-token" content="([^"]+)"', web.get("/").text).group(1)
            started = web.post("/api/v1/instances", headers={"X-CSRF-Token": csrf}, json={
                "process_key": "pull_enterprise",
                "data": {"uscc": "91310104T3W7QWTK4F", "applicant_name": "姚萱"}})
            assert started.status_code in (200, 201), started.text
            iid = started.json()["instance_id"]
            # the pull goes to the exchange over HTTP; then the task appears in the inbox
            tasks = []
            for _ in range(100):
                tasks = [t for t in web.get("/api/v1/tasks").json() if t["instance_id"] == iid]
                if tasks:
                    break
                time.sleep(0.2)
            assert tasks, "the pulled task never reached the inbox"
            detail = web.get(f"/api/v1/tasks/{tasks[0]['id']}").json()
            pulled = {p["field"]: p for p in detail["pulled"]}
            assert pulled["enterprise_name"]["value"] == "上海外滩便利店有限公司"
            assert pulled["enterprise_name"]["source"]
            # the process library: every folder of processes/ with a .bpmn is deployed by --demo
            library = _library_keys()
            if library:
                deployed = {d["key"] for d in web.get("/api/v1/definitions").json()}
                for folder, keys in library.items():
                    assert keys and set(keys) <= deployed, (folder, keys, out)
                assert "NOT DEPLOYED" not in out, out
        health = httpx.get(f"http://127.0.0.1:{xport}/api/v1/health", headers={"X-API-Key": "demo-exchange-key"})
        assert health.status_code == 200 and health.headers.get("X-Request-Id")
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
