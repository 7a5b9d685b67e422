"""The demo data exchange over real HTTP on 127.0.0.1: keys, request ids, data quality, test controls."""

from __future__ import annotations

import time

import httpx
import pytest

from connectors.exchange_data import (
    OPERATIONS,
    generate,
    id_check,
    org_code_check,
    uscc_check,
    valid_id,
    valid_uscc,
)
from tests.exchange_fixtures import API_KEY, blacklisted_enterprise, dataset, good_enterprise
from tests.exchange_fixtures import exchange as exchange  # noqa: F401 - the fixture

KEY = {"X-API-Key": API_KEY}


def q(ex, op, body, headers=KEY, timeout=5.0):
    return httpx.post(f"{ex.url}/api/v1/query/{op}", json=body, headers=headers, timeout=timeout)


def test_check_characters_follow_the_standards():
    # GB 11643's own example and a hand-computed USCC
    assert valid_id("11010519491231002X")
    assert not valid_id("110105194912310021")
    assert not valid_id("110105194902300027")  # 30 February
    assert id_check("11010519491231002") == "X"
    body = "91310115MA1H7000" + org_code_check("MA1H7000")
    assert body[-1] == "2"  # 22·3+10·7+1·9+17·10+7·5 = 350; 11 - 350 % 11 = 2
    code = body + uscc_check(body)
    assert valid_uscc(code)
    assert not valid_uscc(code[:-1] + ("0" if code[-1] != "0" else "1"))
    assert not valid_uscc("91310115MA1H7I000X")  # I is not in the alphabet
    # the organisation code inside (positions 9-17) carries its own GB 11714 check: letters count A=10 … Z=35
    assert org_code_check("MA1K4B2C") == "X"  # 22·3+10·7+1·9+20·10+4·5+11·8+2·4+12·2 = 485; 11 - 485 % 11 = 10 → X
    body = "91310115" + "MA1K4B2C" + "0"
    assert not valid_uscc(body + uscc_check(body))  # right mod-31 character, wrong organisation-code check


def test_generated_data_is_large_valid_and_reproducible():
    ds = dataset()
    assert len(ds.enterprises) == 3000 and len(ds.persons) == 3000 and len(ds.licences) >= 3000
    assert all(valid_uscc(c) for c in ds.enterprises)
    assert all(valid_id(n) for n in ds.persons)
    assert all(valid_id(e["legal_rep_id"]) for e in ds.enterprises.values())
    assert all(lic["holder_code_type"] == "001" and valid_uscc(lic["holder_code"]) for lic in ds.licences.values())
    assert 50 <= len(ds.blacklist) <= 150
    assert len(ds.properties) >= 3000
    again = generate(20240601, 200)
    assert list(again.enterprises) == list(generate(20240601, 200).enterprises)
    assert list(again.enterprises) != list(generate(7, 200).enterprises)


def test_a_key_is_required_and_every_answer_has_a_request_id(exchange):
    code = good_enterprise()["uscc"]
    for headers in ({}, {"X-API-Key": "wrong"}):
        r = q(exchange, "enterprise", {"uscc": code}, headers=headers)
        assert r.status_code == 401
        assert r.headers["X-Request-Id"] == r.json()["request_id"]
        assert "enterprise_name" not in r.text
    r = q(exchange, "enterprise", {"uscc": code}, headers={"Authorization": f"Bearer {API_KEY}"})
    assert r.status_code == 200
    ids = set()
    for _ in range(3):
        r = q(exchange, "enterprise", {"uscc": code})
        assert r.headers["X-Request-Id"] == r.json()["request_id"]
        ids.add(r.json()["request_id"])
    assert len(ids) == 3
    r = httpx.get(f"{exchange.url}/api/v1/nope", headers=KEY)
    assert r.status_code == 404 and r.json()["request_id"] == r.headers["X-Request-Id"]
    h = httpx.get(f"{exchange.url}/api/v1/health")
    assert h.status_code == 200 and h.json()["records"]["enterprises"] == 3000


def test_operations_answer_realistic_records(exchange):
    ent = good_enterprise()
    data = q(exchange, "enterprise", {"uscc": ent["uscc"]}).json()["data"]
    assert data["found"] and data["enterprise_name"] == ent["enterprise_name"] and data["legal_rep"]
    assert q(exchange, "enterprise", {"uscc": "91310115MA1H70000X"}).json()["data"] == {"found": False}

    person = dataset().persons[ent["legal_rep_id"]]
    ok = q(exchange, "identity", {"id_number": person["id_number"], "name": person["name"]}).json()["data"]
    assert ok["found"] and ok["name_match"] and ok["id_valid"]
    wrong = q(exchange, "identity", {"id_number": person["id_number"], "name": "某某某"}).json()["data"]
    assert wrong["found"] and not wrong["name_match"]
    bad = q(exchange, "identity", {"id_number": "110105194912310021", "name": "x"}).json()["data"]
    assert not bad["found"] and not bad["id_valid"]

    lic = q(exchange, "licences", {"holder_code": ent["uscc"]}).json()["data"]
    assert lic["count"] >= 1 and lic["licences"][0]["licence_name"] == "营业执照"
    assert {"licence_no", "holder", "holder_code", "holder_code_type", "issuer", "valid_from", "valid_to"} \
        <= set(lic["licences"][0])

    assert q(exchange, "credit", {"subject_code": ent["uscc"]}).json()["data"] == {"found": True, "blacklisted": False}
    hit = q(exchange, "credit", {"subject_code": blacklisted_enterprise()["uscc"]}).json()["data"]
    assert hit["blacklisted"] and hit["blacklist_reason"] and hit["list_authority"]

    prem = q(exchange, "premises", {"uscc": ent["uscc"]}).json()["data"]
    assert prem["found"] and prem["premises_kind"] == "租赁" and prem["lease_filing_no"].startswith("租备")
    prop = q(exchange, "property", {"cert_no": prem["cert_no"]}).json()["data"]
    assert prop["found"] and prop["property_address"] == prem["premises_address"]


def test_every_answer_matches_the_declared_output_schema(exchange):
    from engine.connectors import Operation, check_output

    ent = good_enterprise(1)
    inputs = {"enterprise": {"uscc": ent["uscc"]}, "identity": {"id_number": ent["legal_rep_id"], "name": ent["legal_rep"]},
              "licences": {"holder_code": ent["uscc"]}, "credit": {"subject_code": ent["uscc"]},
              "premises": {"uscc": ent["uscc"]}}
    inputs["licence"] = {"licence_no": dataset().licences_by_holder[ent["uscc"]][0]}
    inputs["property"] = {"cert_no": q(exchange, "premises", inputs["premises"]).json()["data"]["cert_no"]}
    inputs["tobacco_layout"] = {"address": ent["address"]}
    inputs["push_registration"] = {"department": "税务", "uscc": ent["uscc"], "enterprise_name": ent["enterprise_name"],
                                   "items": "税务登记"}
    for name, (title, ins, outs) in OPERATIONS.items():
        data = q(exchange, name, inputs[name]).json()["data"]
        assert check_output(Operation(name, title, ins, outs), data) is data
        assert set(data) <= set(outs["properties"]), (name, set(data) - set(outs["properties"]))


def test_bad_requests_are_400(exchange):
    assert q(exchange, "enterprise", {}).status_code == 400
    r = httpx.post(f"{exchange.url}/api/v1/query/enterprise", content=b"[1", headers=KEY)
    assert r.status_code == 400 and r.json()["request_id"]


@pytest.mark.parametrize("mode,status", [("error500", 500), ("error429", 429)])
def test_controls_make_it_fail_a_number_of_times(exchange, mode, status):
    exchange.control(mode=mode, times=2)
    code = good_enterprise()["uscc"]
    assert [q(exchange, "enterprise", {"uscc": code}).status_code for _ in range(3)] == [status, status, 200]


def test_controls_malformed_wrong_schema_and_slow(exchange):
    code = good_enterprise()["uscc"]
    exchange.control(mode="malformed")
    r = q(exchange, "enterprise", {"uscc": code})
    assert r.status_code == 200 and r.headers["X-Request-Id"]
    with pytest.raises(ValueError):
        r.json()
    exchange.control(mode="wrong_schema")
    assert "data" not in q(exchange, "enterprise", {"uscc": code}).json()
    exchange.control(mode="ok", delay=0.3)
    started = time.perf_counter()
    assert q(exchange, "enterprise", {"uscc": code}).status_code == 200
    assert time.perf_counter() - started >= 0.3
    assert exchange.control(delay=0)["delay"] == 0
    assert httpx.post(f"{exchange.url}/api/v1/_control", json={"mode": "x"}, headers=KEY).status_code == 400
    assert httpx.post(f"{exchange.url}/api/v1/_control", json={"mode": "ok"}).status_code == 401


def test_one_connection_serves_many_requests_and_unread_bodies_do_not_leak(exchange):
    """HTTP/1.1 kept-alive: a client's requests share one connection; a body the exchange did not
    read (refused key, unknown route) is drained, so the next request on it is parsed cleanly."""
    code = good_enterprise()["uscc"]
    seen = []
    with httpx.Client(base_url=exchange.url, headers=KEY,
                      event_hooks={"request": [lambda r: seen.append(r.extensions)]}) as c:
        first = c.post("/api/v1/query/enterprise", json={"uscc": code})
        assert first.status_code == 200 and first.http_version == "HTTP/1.1"
        assert c.post("/api/v1/query/enterprise", content=b'{"uscc": "x"}' * 500,
                      headers={"X-API-Key": "wrong"}).status_code == 401
        assert c.request("GET", "/api/v1/no-such-route", content=b"GET /api/v1/health HTTP/1.1\r\n\r\n").status_code == 404
        again = c.post("/api/v1/query/enterprise", json={"uscc": code})
        assert again.status_code == 200 and again.json()["data"] == first.json()["data"]
        assert again.headers["X-Request-Id"] != first.headers["X-Request-Id"]
        assert len(exchange.server._open) == 1  # the four requests came on one connection
    assert len(seen) == 4


def test_a_stopped_exchange_is_down_for_clients_holding_a_connection(exchange):
    code = good_enterprise()["uscc"]
    with httpx.Client(base_url=exchange.url, headers=KEY, timeout=2.0) as c:
        assert c.post("/api/v1/query/enterprise", json={"uscc": code}).status_code == 200
        exchange.stop()
        with pytest.raises(httpx.TransportError):
            c.post("/api/v1/query/enterprise", json={"uscc": code})
        exchange.start()
        assert c.post("/api/v1/query/enterprise", json={"uscc": code}).status_code == 200


def test_the_cli_command_serves_the_exchange(tmp_path):
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "cli.main", "exchange", "--port", str(port), "--size", "300",
                             "--api-key", "k1"], stderr=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                r = httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=0.5)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        assert r.json()["records"]["enterprises"] == 300
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/operations").status_code == 401
        assert "enterprise" in httpx.get(f"http://127.0.0.1:{port}/api/v1/operations",
                                         headers={"X-API-Key": "k1"}).json()["operations"]
    finally:
        proc.terminate()
        proc.wait(10)
