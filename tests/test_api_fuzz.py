"""Fuzz the REST API with schemathesis against its own OpenAPI document: for every operation,
generated requests (authenticated as an admin) never get a 5xx, and every response conforms to
the document (status code, content type, body schema). Bounded and derandomized so it is quick
and repeatable."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from schemathesis import GenerationConfig
from schemathesis.specs.openapi.checks import ignored_auth

FORM_BPMN = Path(__file__).resolve().parent / "data" / "api_form.bpmn"
MAX_EXAMPLES = 25


@pytest.fixture
def fuzz_target(app, demo_engine):
    """The app with something to find: a deployed form process, an instance with an open task,
    a claimed task, a completed one; and an admin bearer token."""
    demo_engine.deploy({"api_form.bpmn": FORM_BPMN.read_bytes()}, actor="designer")
    for i in range(3):
        demo_engine.start("api_form", {"applicant": f"申请人{i}"}, business_key=f"BK-{i}", actor="window_clerk")
    tasks = demo_engine.tasks(process_key="api_form")
    demo_engine.claim(tasks[1]["id"], "window_clerk")
    demo_engine.complete(tasks[2]["id"], "window_clerk", {"amount": 3}, "approve")
    token = demo_engine.issue_token("admin", "fuzz", actor="admin")
    return app, token


def _fuzzer(operation, headers: dict, own_token_id: int):
    method = operation.method.upper()

    @given(case=operation.as_strategy())
    @settings(max_examples=MAX_EXAMPLES, derandomize=True, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    def run(case):
        if method == "DELETE":  # never revoke the token the fuzzer is using
            assume(case.path_parameters.get("token_id") != own_token_id)
        if method == "PATCH":  # nor deactivate its user
            assume(case.path_parameters.get("name") != "admin")
        response = case.call_wsgi(headers=headers)
        assert response.status_code < 500, f"{case.method} {case.formatted_path}: {response.status_code}"
        # every other check: no 5xx, documented status, content type, headers and body schema
        case.validate_response(response, excluded_checks=(ignored_auth,))
        if 200 <= response.status_code < 300 and operation.path != "/openapi.json":
            # what succeeded with the token is refused without it (JSON 401, never a redirect)
            anonymous = case.call_wsgi()
            assert anonymous.status_code == 401, f"{case.method} {case.formatted_path} without a token"
            assert anonymous.json["error"] == "unauthorized"

    return run


def test_api_conforms_to_its_openapi_document(fuzz_target):
    app, token = fuzz_target
    # the admin's bearer token goes in explicitly; no generated (random) session cookies or tokens
    schema = schemathesis.from_wsgi("/api/v1/openapi.json", app, validate_schema=True,
                                    generation_config=GenerationConfig(with_security_parameters=False))
    headers = {"Authorization": f"Bearer {token['token']}"}
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1
        try:
            _fuzzer(operation, headers, token["id"])()
        except Exception as exc:  # collect every operation's failure, then report them all
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert operations >= 25
    assert not failures, "\n\n".join(failures)
